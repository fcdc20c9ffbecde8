// callbuffer trainer workspace: edit a phrase pack's categories, try phrases, evaluate a version against the
// live one, compare versions, import/export, publish (or roll back), and turn dismissed flags into
// counter-examples.
//
// Contract with the server (see server/packs/api.py, server/audits/api.py):
//   GET  /v1/packs                                   -> {"active": {name, version}, "versions": [...]}
//   GET  /v1/packs/{name}/versions/{v}               -> the pack as JSON
//   PUT  /v1/packs/{name}?note=                      pack JSON -> {name, version} (a new version); 422 detail
//   GET  /v1/packs/{name}/versions/{v}/export        -> YAML download
//   POST /v1/packs/import                            multipart file -> {name, version}; 422 detail names line
//   GET  /v1/packs/{name}/diff?from=&to=             -> {old_version, new_version, categories, neutral}
//   POST /v1/packs/{name}/versions/{v}/try           {text, speaker, lang} -> {"labels": [...]}
//   POST /v1/packs/{name}/versions/{v}/evaluate      JSON lines (or ?source=flags)
//                                                    -> {draft, active, changed}
//   POST /v1/packs/{name}/versions/{v}/evaluate-call multipart `script` (a call script, YAML or JSON)
//                                                    -> {name, version, mode, totals, calls: [{turns}]};
//                                                    422 detail names the file and field, 413, 503
//   POST /v1/packs/{name}/versions/{v}/publish       -> {"active": {name, version}}
//   GET  /v1/flags/export?status=dismissed           -> JSON lines of dismissed flags
// Served at /trainer and /static/trainer.html: every path here is absolute. `?pack=NAME&version=N` opens a
// version. Rejected suggestions are remembered in localStorage ("callbuffer.trainer.rejected").
// For trainers (and admins) signed in through common.js `auth`; nothing is asked of the API before. A
// session that ends mid-edit keeps the unsaved edits: after signing in again they can still be saved.
//
// Security: every string from the server or the pack is rendered with textContent / Text nodes or put in
// form fields' `value`, never parsed as HTML.
"use strict";

(() => {
  const { h, str, list, speakerOf, clock, when, auth, authFetch } = window.cb;

  const TRY_DEBOUNCE_MS = 400;
  const BUILDING_AFTER_MS = 700;
  const REJECTED_KEY = "callbuffer.trainer.rejected";
  const LANGS = ["ru", "en"];
  const LISTS = {
    examples: "Examples · Примеры",
    counter_examples: "Counter-examples · Контрпримеры",
    responses: "Responses · Ответы",
  };
  // rule-found cues the classifier weighs with the examples (models/time_cues.py): cue id -> its select
  const CUE_SELECTS = {
    promised_time: "edit-cue-time",
    when_question: "edit-cue-when",
  };
  const KINDS = {
    forbidden: "forbidden",
    trigger: "trigger",
    practice: "practice",
  };
  const SPEAKERS = { agent: "agent", customer: "customer", unknown: "unknown" };
  const MAX_RESPONSES = 4;
  // a turn's alert outcomes in a heard call: chip class, mark, and what it means
  const OUTCOMES = {
    hit: { chip: "chip--ok", mark: "✓", label: "raised as expected · сработала" },
    miss: { chip: "chip--miss", mark: "✗", label: "missed · пропущена" },
    false: { chip: "chip--false", mark: "!", label: "false alarm · ложное срабатывание" },
    also: { chip: "chip--also", mark: "~", label: "raised, allowed here · допустимо" },
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    liveNote: $("live-note"),
    errorBanner: $("error-banner"),
    errorText: $("error-text"),
    errorDismiss: $("error-dismiss"),
    packSelect: $("pack-select"),
    versionSelect: $("version-select"),
    versionMeta: $("version-meta"),
    publish: $("publish"),
    publishStatus: $("publish-status"),
    exportLink: $("export-link"),
    importFile: $("import-file"),
    importStatus: $("import-status"),
    categoryList: $("category-list"),
    categoryCount: $("category-count"),
    neutralOpen: $("neutral-open"),
    neutralCount: $("neutral-count"),
    suggestions: $("suggestions"),
    suggestionCount: $("suggestion-count"),
    suggestionsNote: $("suggestions-note"),
    tabs: [...document.querySelectorAll('[role="tab"]')],
    saveForm: $("save-form"),
    saveNote: $("save-note"),
    saveVersion: $("save-version"),
    saveStatus: $("save-status"),
    saveErrors: $("save-errors"),
    saveErrorList: $("save-error-list"),
    dirtyNote: $("dirty-note"),
    editorEmpty: $("editor-empty"),
    categoryEditor: $("category-editor"),
    editorTitle: $("editor-title"),
    editorKind: $("editor-kind"),
    editorMeta: $("editor-meta"),
    titleRu: $("edit-title-ru"),
    titleEn: $("edit-title-en"),
    severity: $("edit-severity"),
    cues: Object.fromEntries(Object.entries(CUE_SELECTS).map(([cue, id]) => [cue, $(id)])),
    description: $("edit-description"),
    phraseLists: $("phrase-lists"),
    neutralEditor: $("neutral-editor"),
    neutralLists: $("neutral-lists"),
    evalForm: $("eval-form"),
    evalText: $("eval-text"),
    evalFile: $("eval-file"),
    evalRun: $("eval-run"),
    evalFlags: $("eval-flags"),
    evalStatus: $("eval-status"),
    evalResult: $("eval-result"),
    evalSummary: $("eval-summary"),
    evalHead: document.querySelector("#eval-table thead"),
    evalBody: document.querySelector("#eval-table tbody"),
    evalAll: $("eval-all"),
    evalChanged: $("eval-changed"),
    evalChangedCount: $("eval-changed-count"),
    evalChangedEmpty: $("eval-changed-empty"),
    callEval: $("call-eval"),
    callForm: $("call-form"),
    callFile: $("call-file"),
    callRun: $("call-run"),
    callElapsed: $("call-elapsed"),
    callStatus: $("call-status"),
    callResult: $("call-result"),
    callSummary: $("call-summary"),
    callBody: document.querySelector("#call-table tbody"),
    diffForm: $("diff-form"),
    diffFrom: $("diff-from"),
    diffTo: $("diff-to"),
    diffStatus: $("diff-status"),
    diffResult: $("diff-result"),
    tryForm: $("try-form"),
    tryText: $("try-text"),
    trySpeaker: $("try-speaker"),
    tryLang: $("try-lang"),
    tryStatus: $("try-status"),
    tryResults: $("try-results"),
    confirmDialog: $("confirm-dialog"),
    confirmText: $("confirm-text"),
    confirmDetail: $("confirm-detail"),
    confirmOk: $("confirm-ok"),
    confirmCancel: $("confirm-cancel"),
    srStatus: $("sr-status"),
  };

  const state = {
    listing: { active: null, versions: [] },
    name: null,
    version: null,
    pack: null, // the editable copy of the selected version
    base: "", // JSON of the version as loaded, to tell unsaved changes
    baseCategories: new Map(), // id -> JSON as loaded
    selected: null, // {type: "category", id} | {type: "neutral"}
    invalid: new Set(), // "category|list|lang|index" of fields the server refused
    suggestions: [],
    rejected: loadRejected(),
    evalAlsoOk: new Map(),
    lastEval: null,
    callTimer: null,
    trySeq: 0,
    tryTimer: null,
    tryAbort: null,
    loadSeq: 0,
    diffName: null,
    busy: false,
  };

  // ---------------------------------------------------------------- helpers

  function num(value) {
    const n = Number(value);
    return Number.isFinite(n) ? n : 0;
  }

  function kindOf(value) {
    return KINDS[value] ? value : "trigger";
  }

  function fixed(value, digits = 2) {
    return num(value).toFixed(digits);
  }

  function signed(delta, digits = 2) {
    const rounded = Number(delta.toFixed(digits));
    if (rounded === 0) return "±0";
    return `${rounded > 0 ? "+" : "−"}${Math.abs(rounded).toFixed(digits)}`;
  }

  function announce(text) {
    ui.srStatus.textContent = "";
    window.setTimeout(() => {
      ui.srStatus.textContent = text;
    }, 30);
  }

  function setStatus(el, stateName, text) {
    el.dataset.state = stateName;
    el.textContent = text;
  }

  function showError(text) {
    ui.errorText.textContent = text;
    ui.errorBanner.hidden = false;
  }

  function titleOf(category) {
    if (!category || !category.title) return str(category && category.id);
    return str(category.title.ru) || str(category.title.en) || str(category.id);
  }

  function findCategory(id) {
    return state.pack ? list(state.pack.categories).find((c) => c.id === id) || null : null;
  }

  function byLang(value) {
    const out = value && typeof value === "object" ? value : {};
    for (const lang of LANGS) if (!Array.isArray(out[lang])) out[lang] = [];
    return out;
  }

  function guessLang(text) {
    return /[А-Яа-яЁё]/.test(text) ? "ru" : "en";
  }

  function sameSet(a, b) {
    const x = new Set(a);
    const y = new Set(b);
    return x.size === y.size && [...x].every((v) => y.has(v));
  }

  function versionsOf(name) {
    return state.listing.versions.filter((v) => v.name === name).sort((a, b) => b.version - a.version);
  }

  function activeKey() {
    const a = state.listing.active;
    return a ? `${a.name}|${a.version}` : "";
  }

  function isActive(name, version) {
    return activeKey() === `${name}|${version}`;
  }

  function loadRejected() {
    try {
      const stored = JSON.parse(window.localStorage.getItem(REJECTED_KEY) || "[]");
      return new Set(list(stored).map(str));
    } catch (_err) {
      return new Set();
    }
  }

  function saveRejected() {
    try {
      window.localStorage.setItem(REJECTED_KEY, JSON.stringify([...state.rejected]));
    } catch (_err) {
      // private mode or storage full: rejections last until the page is reloaded
    }
  }

  // fetch; throws an Error whose message is the server's readable "detail" and whose `.detail` is the raw
  // one (a string, or FastAPI's list of validation errors). A 401 shows the login form and a 403 says who
  // is not allowed (authFetch).
  async function api(path, options = {}) {
    const { raw, ...init } = options;
    const response = await authFetch(path, {
      ...init,
      headers: { Accept: raw ? "*/*" : "application/json", ...(init.headers || {}) },
    });
    const text = await response.text();
    if (!response.ok) {
      let body = null;
      try {
        body = JSON.parse(text);
      } catch (_err) {
        body = null;
      }
      const err = new Error(
        detailText(body && body.detail) || `HTTP ${response.status} ${response.statusText}`.trim(),
      );
      err.status = response.status;
      err.detail = body ? body.detail : undefined;
      throw err;
    }
    if (raw) return text;
    return text ? JSON.parse(text) : null;
  }

  function detailText(detail) {
    if (detail === undefined || detail === null) return "";
    if (typeof detail === "string") return detail;
    return list(detail)
      .map((d) => {
        const where = describeLoc(list(d && d.loc)).text;
        return `${where ? `${where}: ` : ""}${cleanMsg(d && d.msg)}`;
      })
      .join("\n");
  }

  function cleanMsg(msg) {
    return str(msg).replace(/^Value error, /, "");
  }

  // FastAPI location (["body", "categories", 3, "examples", "ru", 5]) -> readable text and, when it points
  // into a category, that category's id and the rest of the path.
  function describeLoc(loc) {
    const parts = loc[0] === "body" ? loc.slice(1) : loc.slice();
    if (parts[0] === "categories" && Number.isInteger(parts[1])) {
      const cat = state.pack && list(state.pack.categories)[parts[1]];
      const id = cat && cat.id ? str(cat.id) : `#${parts[1] + 1}`;
      const rest = parts.slice(2);
      const field = rest.map((p) => (Number.isInteger(p) ? `#${p + 1}` : str(p))).join(" › ");
      return { text: `category ${id}${field ? ` › ${field}` : ""}`, category: cat ? cat.id : null, rest };
    }
    if (parts[0] === "neutral") {
      const field = parts.map((p) => (Number.isInteger(p) ? `#${p + 1}` : str(p))).join(" › ");
      return { text: field, neutral: true, rest: parts.slice(1) };
    }
    return { text: parts.map(str).join(" › "), category: null, rest: [] };
  }

  // A custom confirmation (a <dialog>), resolved true on OK.
  function confirmBox(text, detail, okLabel) {
    ui.confirmText.textContent = text;
    ui.confirmDetail.textContent = detail || "";
    ui.confirmDetail.hidden = !detail;
    ui.confirmOk.textContent = okLabel || "OK";
    return new Promise((resolve) => {
      const done = (value) => {
        ui.confirmOk.removeEventListener("click", ok);
        ui.confirmCancel.removeEventListener("click", cancel);
        ui.confirmDialog.removeEventListener("close", closed);
        if (ui.confirmDialog.open) ui.confirmDialog.close();
        resolve(value);
      };
      const ok = () => done(true);
      const cancel = () => done(false);
      const closed = () => done(false);
      ui.confirmOk.addEventListener("click", ok);
      ui.confirmCancel.addEventListener("click", cancel);
      ui.confirmDialog.addEventListener("close", closed);
      ui.confirmDialog.showModal();
      ui.confirmCancel.focus();
    });
  }

  // ---------------------------------------------------------------- packs and versions

  async function loadListing() {
    const body = await api("/v1/packs");
    state.listing = {
      active: body && body.active ? body.active : null,
      versions: list(body && body.versions).filter((v) => v && typeof v === "object"),
    };
    renderLiveNote();
  }

  function renderLiveNote() {
    const a = state.listing.active;
    ui.liveNote.textContent = a ? `Live · В работе: ${str(a.name)} v${num(a.version)}` : "No live pack";
  }

  function renderPackOptions() {
    const names = [...new Set(state.listing.versions.map((v) => str(v.name)))].sort();
    const active = state.listing.active;
    ui.packSelect.replaceChildren(
      ...names.map((name) => {
        const live = active && active.name === name;
        return new Option(live ? `${name} ● live` : name, name);
      }),
    );
    if (state.name) ui.packSelect.value = state.name;
  }

  function renderVersionOptions() {
    const options = versionsOf(state.name).map((v) => {
      const live = isActive(v.name, v.version);
      const note = str(v.note);
      const label = `v${v.version}${live ? " ● active" : ""}${note ? ` — ${note}` : ""}`;
      const option = new Option(label.length > 90 ? `${label.slice(0, 89)}…` : label, String(v.version));
      if (live) option.dataset.active = "true";
      return option;
    });
    ui.versionSelect.replaceChildren(...options);
    if (state.version !== null) ui.versionSelect.value = String(state.version);
    renderVersionMeta();
    renderDiffOptions();
  }

  function renderVersionMeta() {
    const info = versionsOf(state.name).find((v) => v.version === state.version);
    const live = isActive(state.name, state.version);
    ui.versionMeta.replaceChildren();
    if (!info) return;
    if (live) ui.versionMeta.append(h("span", "active-badge", "active · в работе"), " ");
    ui.versionMeta.append(`${when(info.created_at)}${info.note ? ` · ${str(info.note)}` : ""}`);
    ui.publish.textContent = live ? `v${state.version} is live · опубликована` : `Publish v${state.version}…`;
    ui.publish.disabled = live;
    ui.exportLink.href =
      `/v1/packs/${encodeURIComponent(state.name)}/versions/${state.version}/export`;
    ui.exportLink.setAttribute("download", `${state.name}-v${state.version}.yaml`);
  }

  function isDirty() {
    return state.pack !== null && JSON.stringify(state.pack) !== state.base;
  }

  async function confirmDiscard() {
    if (!isDirty()) return true;
    return confirmBox(
      "Discard unsaved changes? · Отменить несохранённые правки?",
      `Your edits to v${state.version} are not saved.`,
      "Discard · Отменить правки",
    );
  }

  // Open a version in the editor. Returns false when the trainer kept their unsaved edits.
  async function selectVersion(name, version, { force = false } = {}) {
    if (!force && !(await confirmDiscard())) {
      ui.packSelect.value = str(state.name);
      renderVersionOptions();
      return false;
    }
    const seq = ++state.loadSeq;
    ui.categoryList.setAttribute("aria-busy", "true");
    try {
      const pack = await api(`/v1/packs/${encodeURIComponent(name)}/versions/${version}`);
      if (seq !== state.loadSeq) return false;
      state.name = name;
      state.version = version;
      state.pack = normalise(pack);
      state.base = JSON.stringify(state.pack);
      state.baseCategories = new Map(list(state.pack.categories).map((c) => [c.id, JSON.stringify(c)]));
      state.invalid.clear();
      if (state.selected && state.selected.type === "category" && !findCategory(state.selected.id)) {
        state.selected = null;
      }
      renderPackOptions();
      renderVersionOptions();
      renderCategories();
      renderEditor();
      renderSuggestions();
      updateDirty();
      const params = new URLSearchParams(window.location.search);
      params.set("pack", name);
      params.set("version", String(version));
      window.history.replaceState(null, "", `${window.location.pathname}?${params}`);
      scheduleTry(0);
      return true;
    } catch (err) {
      if (seq === state.loadSeq) showError(`Could not open ${name} v${version}: ${err.message}`);
      return false;
    } finally {
      if (seq === state.loadSeq) ui.categoryList.removeAttribute("aria-busy");
    }
  }

  // Every phrase list present, so the editor can show (and add to) empty ones.
  function normalise(pack) {
    const out = pack && typeof pack === "object" ? pack : { categories: [] };
    out.categories = list(out.categories);
    for (const cat of out.categories) {
      cat.title = cat.title && typeof cat.title === "object" ? cat.title : { ru: "", en: "" };
      for (const name of Object.keys(LISTS)) cat[name] = byLang(cat[name]);
      if (typeof cat.description !== "string") cat.description = str(cat.description);
    }
    out.neutral = byLang(out.neutral);
    return out;
  }

  function updateDirty() {
    const dirty = isDirty();
    ui.dirtyNote.hidden = !dirty;
    document.body.dataset.dirty = dirty ? "true" : "false";
    for (const li of ui.categoryList.children) {
      const cat = findCategory(li.dataset.category);
      const changed = cat ? JSON.stringify(cat) !== state.baseCategories.get(cat.id) : false;
      li.classList.toggle("is-changed", changed);
    }
  }

  function edited() {
    updateDirty();
  }

  // ---------------------------------------------------------------- categories list

  function renderCategories() {
    const cats = list(state.pack && state.pack.categories);
    ui.categoryCount.textContent = `(${cats.length})`;
    const items = cats.map((cat) => {
      const li = h("li", "cat-row");
      li.dataset.category = str(cat.id);
      li.dataset.kind = kindOf(cat.kind);
      const button = h("button", "cat-open");
      button.type = "button";
      const badge = h("span", `kind-badge kind--${kindOf(cat.kind)}`, kindOf(cat.kind));
      const main = h("span", "cat-main");
      main.append(h("span", "cat-title", titleOf(cat)), h("span", "cat-id", str(cat.id)));
      button.append(badge, main, h("span", "cat-changed", "●"));
      button.addEventListener("click", () => selectCategory(cat.id));
      li.append(button);
      return li;
    });
    ui.categoryList.replaceChildren(...items);
    const neutral = state.pack ? state.pack.neutral : null;
    ui.neutralCount.textContent = neutral ? `(${neutral.ru.length + neutral.en.length})` : "";
    markCurrent();
  }

  function markCurrent() {
    const sel = state.selected;
    for (const li of ui.categoryList.children) {
      const current = sel && sel.type === "category" && sel.id === li.dataset.category;
      li.classList.toggle("is-current", Boolean(current));
      const button = li.querySelector(".cat-open");
      if (current) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
    const neutral = sel && sel.type === "neutral";
    ui.neutralOpen.classList.toggle("is-current", Boolean(neutral));
    if (neutral) ui.neutralOpen.setAttribute("aria-current", "true");
    else ui.neutralOpen.removeAttribute("aria-current");
  }

  function selectCategory(id) {
    state.selected = { type: "category", id };
    selectTab("tab-edit");
    markCurrent();
    renderEditor();
  }

  // ---------------------------------------------------------------- the editor

  function renderEditor() {
    const sel = state.selected;
    const cat = sel && sel.type === "category" ? findCategory(sel.id) : null;
    const neutral = Boolean(sel && sel.type === "neutral" && state.pack);
    ui.editorEmpty.hidden = Boolean(cat || neutral);
    ui.categoryEditor.hidden = !cat;
    ui.neutralEditor.hidden = !neutral;
    if (neutral) {
      ui.neutralLists.replaceChildren(
        phraseSection("neutral", "Phrases · Фразы", state.pack.neutral, null),
      );
    }
    if (!cat) return;
    ui.categoryEditor.dataset.category = cat.id;
    ui.editorTitle.textContent = titleOf(cat);
    ui.editorKind.className = `kind-badge kind--${kindOf(cat.kind)}`;
    ui.editorKind.textContent = kindOf(cat.kind);
    const side = str(SPEAKERS[cat.speaker] || cat.speaker);
    ui.editorMeta.textContent = `${str(cat.id)} · listens to the ${side} · severity ${str(cat.severity)}`;
    ui.titleRu.value = str(cat.title.ru);
    ui.titleEn.value = str(cat.title.en);
    ui.severity.value = ["low", "medium", "high"].includes(cat.severity) ? cat.severity : "medium";
    for (const [cue, select] of Object.entries(ui.cues)) {
      const effect = (cat.cues || {})[cue];
      select.value = ["for", "against"].includes(effect) ? effect : "";
    }
    ui.description.value = str(cat.description);
    const sections = Object.keys(LISTS).map((name) => phraseSection(name, LISTS[name], cat[name], cat));
    ui.phraseLists.replaceChildren(...sections);
  }

  function currentCategory() {
    const sel = state.selected;
    return sel && sel.type === "category" ? findCategory(sel.id) : null;
  }

  function bindField(input, apply) {
    input.addEventListener("input", () => {
      const cat = currentCategory();
      if (!cat) return;
      apply(cat, input.value);
      if (input === ui.titleRu || input === ui.titleEn) {
        ui.editorTitle.textContent = titleOf(cat);
        const row = [...ui.categoryList.children].find((li) => li.dataset.category === cat.id);
        if (row) row.querySelector(".cat-title").textContent = titleOf(cat);
      }
      edited();
    });
  }

  // One phrase list (examples, counter_examples, responses or neutral) in both languages.
  function phraseSection(listName, label, phrases, cat) {
    const section = h("section", "phrase-section");
    section.dataset.list = listName;
    const head = h("h2", "phrase-section-title", label);
    if (listName === "responses" && cat && kindOf(cat.kind) !== "practice") {
      head.append(h("span", "muted small", ` at most ${MAX_RESPONSES} per language`));
    }
    const grid = h("div", "phrase-grid");
    for (const lang of LANGS) {
      const group = h("div", "phrase-group");
      group.dataset.list = listName;
      group.dataset.lang = lang;
      renderGroup(group, listName, lang, phrases, cat);
      grid.append(group);
    }
    section.append(head, grid);
    return section;
  }

  function renderGroup(group, listName, lang, phrases, cat) {
    const items = phrases[lang];
    const head = h("h3", "phrase-group-title");
    head.append(h("span", "lang-tag", lang), " ");
    const count = h("span", "count", `${items.length}`);
    if (listName === "responses" && items.length > MAX_RESPONSES) count.classList.add("is-over");
    head.append(count);
    const ol = h("ol", "phrase-list");
    items.forEach((phrase, index) => {
      const li = h("li", "phrase");
      const input = h("input", "phrase-input");
      input.type = "text";
      input.value = str(phrase);
      input.maxLength = 500;
      input.setAttribute("aria-label", `${LISTS[listName] || listName} ${lang} #${index + 1}`);
      if (state.invalid.has(invalidKey(cat, listName, lang, index))) {
        input.classList.add("is-invalid");
        input.setAttribute("aria-invalid", "true");
      }
      input.addEventListener("input", () => {
        items[index] = input.value;
        input.classList.remove("is-invalid");
        input.removeAttribute("aria-invalid");
        edited();
      });
      const remove = h("button", "phrase-delete", "×");
      remove.type = "button";
      remove.title = "Delete · Удалить";
      remove.setAttribute("aria-label", `Delete ${lang} #${index + 1}`);
      remove.addEventListener("click", () => {
        items.splice(index, 1);
        shiftInvalid(cat, listName, lang, index);
        renderGroup(group, listName, lang, phrases, cat);
        edited();
        const inputs = group.querySelectorAll(".phrase-input");
        (inputs[Math.min(index, inputs.length - 1)] || group.querySelector(".phrase-new")).focus();
      });
      li.append(input, remove);
      ol.append(li);
    });
    const add = h("div", "phrase-add-row");
    const fresh = h("input", "phrase-new");
    fresh.type = "text";
    fresh.maxLength = 500;
    fresh.placeholder = lang === "ru" ? "Новая фраза…" : "New phrase…";
    fresh.setAttribute("aria-label", `New ${LISTS[listName] || listName} phrase, ${lang}`);
    const addButton = h("button", "phrase-add", "Add · Добавить");
    addButton.type = "button";
    const doAdd = () => {
      const text = fresh.value.trim();
      if (!text) {
        fresh.focus();
        return;
      }
      items.push(text);
      renderGroup(group, listName, lang, phrases, cat);
      edited();
      group.querySelector(".phrase-new").focus();
      announce(`Added · Добавлено: ${text}`);
    };
    addButton.addEventListener("click", doAdd);
    fresh.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        doAdd();
      }
    });
    add.append(fresh, addButton);
    group.replaceChildren(head, ol, add);
  }

  function invalidKey(cat, listName, lang, index) {
    return `${cat ? cat.id : "neutral"}|${listName}|${lang}|${index}`;
  }

  // A deleted phrase moves the server's "invalid" marks after it up by one.
  function shiftInvalid(cat, listName, lang, index) {
    const prefix = `${cat ? cat.id : "neutral"}|${listName}|${lang}|`;
    const kept = new Set();
    for (const key of state.invalid) {
      if (!key.startsWith(prefix)) {
        kept.add(key);
        continue;
      }
      const i = Number(key.slice(prefix.length));
      if (i < index) kept.add(key);
      else if (i > index) kept.add(`${prefix}${i - 1}`);
    }
    state.invalid = kept;
  }

  // ---------------------------------------------------------------- saving

  async function saveVersion(event) {
    event.preventDefault();
    if (!state.pack || state.busy) return;
    const from = state.version;
    const name = state.name;
    const note = ui.saveNote.value.trim();
    state.busy = true;
    ui.saveVersion.disabled = true;
    ui.saveErrors.hidden = true;
    state.invalid.clear();
    setStatus(ui.saveStatus, "busy", "Saving… · Сохранение…");
    try {
      const query = note ? `?note=${encodeURIComponent(note)}` : "";
      const saved = await api(`/v1/packs/${encodeURIComponent(name)}${query}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(state.pack),
      });
      const version = num(saved && saved.version);
      ui.saveNote.value = "";
      await loadListing();
      await selectVersion(str(saved.name) || name, version, { force: true });
      setStatus(ui.saveStatus, "done", `Saved as v${version} · Сохранено как v${version} (not live yet)`);
      announce(`Saved as version ${version}`);
      ui.diffFrom.value = String(from);
      ui.diffTo.value = String(version);
      runDiff();
    } catch (err) {
      setStatus(ui.saveStatus, "error", `Not saved · Не сохранено (HTTP ${err.status || "?"})`);
      showSaveErrors(err);
      renderEditor();
    } finally {
      state.busy = false;
      ui.saveVersion.disabled = false;
    }
  }

  function showSaveErrors(err) {
    const detail = err.detail;
    const entries = [];
    if (Array.isArray(detail)) {
      for (const d of detail) {
        const where = describeLoc(list(d && d.loc));
        entries.push({ where: where.text, msg: cleanMsg(d && d.msg), ...where });
        const rest = where.rest || [];
        const indexed = rest.length >= 2 && Number.isInteger(rest[rest.length - 1]);
        if ((where.category || where.neutral) && indexed) {
          const [listName, lang, index] = where.neutral ? ["neutral", rest[0], rest[1]] : rest;
          if (LANGS.includes(lang)) {
            const cat = where.neutral ? null : findCategory(where.category);
            state.invalid.add(invalidKey(cat, listName, lang, index));
          }
        }
      }
    } else {
      for (const line of str(detail === undefined ? err.message : detail).split("\n")) {
        if (!line.trim()) continue;
        const match = /categor(?:y|ies)[^'"]*['"]?([a-z][a-z0-9_]{1,63})/.exec(line);
        const id = match && findCategory(match[1]) ? match[1] : null;
        entries.push({ where: "", msg: line, category: id });
      }
    }
    const items = entries.map((e) => {
      const li = h("li", "save-error");
      if (e.where) li.append(h("span", "save-error-where", e.where), ": ");
      li.append(h("span", "save-error-msg", e.msg));
      if (e.category || e.neutral) {
        const go = h("button", "link-button save-error-open", "open · открыть");
        go.type = "button";
        go.addEventListener("click", () => {
          if (e.neutral) openNeutral();
          else selectCategory(e.category);
        });
        li.append(" ", go);
      }
      return li;
    });
    ui.saveErrorList.replaceChildren(...items);
    ui.saveErrors.hidden = items.length === 0;
    // Show the first refused category, so its marked field is on screen.
    const first = entries.find((e) => e.category || e.neutral);
    if (first && first.neutral) openNeutral();
    else if (first && !(state.selected && state.selected.id === first.category)) {
      selectCategory(first.category);
    }
  }

  function openNeutral() {
    state.selected = { type: "neutral" };
    selectTab("tab-edit");
    markCurrent();
    renderEditor();
  }

  // ---------------------------------------------------------------- try a phrase

  function scheduleTry(delay = TRY_DEBOUNCE_MS) {
    window.clearTimeout(state.tryTimer);
    state.tryTimer = window.setTimeout(runTry, delay);
  }

  async function runTry() {
    const text = ui.tryText.value;
    if (state.tryAbort) state.tryAbort.abort();
    state.tryAbort = null;
    const seq = ++state.trySeq;
    if (!text.trim() || !state.name) {
      ui.tryResults.replaceChildren();
      setStatus(ui.tryStatus, "idle", "");
      return;
    }
    const name = state.name;
    const version = state.version;
    const speaker = ui.trySpeaker.value;
    const lang = ui.tryLang.value || null;
    const controller = new AbortController();
    state.tryAbort = controller;
    ui.tryResults.setAttribute("aria-busy", "true");
    const building = window.setTimeout(() => {
      if (seq === state.trySeq) {
        setStatus(
          ui.tryStatus,
          "building",
          `building… the classifier of v${version} (the first time takes 10–20 s) · строится классификатор`,
        );
      }
    }, BUILDING_AFTER_MS);
    setStatus(ui.tryStatus, "busy", `Checking on v${version}… · Проверяем…`);
    try {
      const body = await api(`/v1/packs/${encodeURIComponent(name)}/versions/${version}/try`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text, speaker, lang }),
        signal: controller.signal,
      });
      if (seq !== state.trySeq) return;
      const labels = list(body && body.labels);
      renderTry(text, labels);
      const unsaved = isDirty() ? " · unsaved edits are not included: save to try them" : "";
      setStatus(
        ui.tryStatus,
        labels.length ? "fired" : "quiet",
        (labels.length
          ? `v${version}: ${labels.length} ${labels.length === 1 ? "category fires" : "categories fire"}`
          : `v${version}: nothing fires · ничего не сработало`) + unsaved,
      );
    } catch (err) {
      if (err.name === "AbortError" || seq !== state.trySeq) return;
      ui.tryResults.replaceChildren();
      setStatus(ui.tryStatus, "error", `Could not try · Ошибка: ${err.message}`);
    } finally {
      window.clearTimeout(building);
      if (seq === state.trySeq) ui.tryResults.removeAttribute("aria-busy");
    }
  }

  function renderTry(text, labels) {
    const items = labels.map((label) => {
      const kind = kindOf(label.kind);
      const li = h("li", `try-label kind--${kind}`);
      li.dataset.category = str(label.category);
      const head = h("div", "try-head");
      head.append(
        h("span", `kind-badge kind--${kind}`, kind),
        h("span", "try-title", str(label.title) || str(label.category)),
        h("span", "try-category", str(label.category)),
      );
      const score = Math.max(0, Math.min(1, num(label.score)));
      const row = h("div", "score-row");
      const bar = h("span", "score-bar");
      bar.setAttribute("role", "meter");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "1");
      bar.setAttribute("aria-valuenow", String(score));
      bar.setAttribute("aria-label", "score");
      const fill = h("span", "score-fill");
      fill.style.width = `${Math.round(score * 100)}%`;
      bar.append(fill);
      row.append(bar, h("span", "score-value", fixed(score, 2)));
      li.append(head, row, highlighted(text, label.start, label.end));
      if (label.example) {
        const example = h("p", "try-example");
        example.append(h("span", "muted", "nearest example · ближайший пример: "));
        example.append(h("q", "try-example-text", str(label.example)));
        li.append(example);
      }
      const open = h("button", "link-button try-open", "edit category · к категории");
      open.type = "button";
      open.hidden = !findCategory(label.category);
      open.addEventListener("click", () => selectCategory(label.category));
      li.append(open);
      return li;
    });
    ui.tryResults.replaceChildren(...items);
  }

  function highlighted(text, start, end) {
    const p = h("p", "try-text");
    const a = Math.max(0, Math.min(text.length, Math.floor(num(start))));
    const b = Math.max(a, Math.min(text.length, Math.floor(num(end))));
    if (b <= a) {
      p.textContent = text;
      return p;
    }
    p.append(text.slice(0, a), h("mark", "try-span", text.slice(a, b)), text.slice(b));
    return p;
  }

  // ---------------------------------------------------------------- evaluation

  async function runEval(source) {
    if (!state.name) return;
    let body;
    let query = "";
    if (source === "flags") {
      query = "?source=flags";
      state.evalAlsoOk = new Map();
    } else {
      body = ui.evalText.value;
      if (!body.trim()) {
        setStatus(ui.evalStatus, "error", "Paste JSON lines or choose a file first · Вставьте строки JSONL");
        return;
      }
      state.evalAlsoOk = alsoOkOf(body);
    }
    const version = state.version;
    const live = state.listing.active;
    ui.evalRun.disabled = true;
    ui.evalFlags.disabled = true;
    setStatus(
      ui.evalStatus,
      "busy",
      `Evaluating v${version} and the live v${live ? live.version : "?"}… ` +
        "(building a classifier the first time takes 10–20 s) · Идёт оценка…",
    );
    try {
      const result = await api(
        `/v1/packs/${encodeURIComponent(state.name)}/versions/${version}/evaluate${query}`,
        body === undefined
          ? { method: "POST" }
          : { method: "POST", headers: { "Content-Type": "application/x-ndjson" }, body },
      );
      state.lastEval = result;
      renderEval(result);
      const rows = num(result && result.draft && result.draft.rows);
      setStatus(ui.evalStatus, "done", `${rows} row${rows === 1 ? "" : "s"} evaluated · оценено`);
    } catch (err) {
      setStatus(ui.evalStatus, "error", `Could not evaluate · Ошибка: ${err.message}`);
    } finally {
      ui.evalRun.disabled = false;
      ui.evalFlags.disabled = false;
    }
  }

  function alsoOkOf(text) {
    const map = new Map();
    for (const line of text.split("\n")) {
      try {
        const row = JSON.parse(line);
        if (row && row.id !== undefined && row.id !== null) map.set(str(row.id), list(row.also_ok).map(str));
      } catch (_err) {
        // the server names bad lines
      }
    }
    return map;
  }

  function reportLabel(report, fallback) {
    return report ? `${str(report.name)} v${num(report.version)}` : fallback;
  }

  function renderEval(result) {
    const draft = (result && result.draft) || {};
    const active = (result && result.active) || {};
    ui.evalResult.hidden = false;
    const draftName = `${reportLabel(draft, "draft")} (selected)`;
    const activeName = `${reportLabel(active, "active")} (live)`;

    // Summary: macro-F1, false alarms, rows.
    const table = h("table", "eval-summary-table");
    const head = h("tr");
    head.append(h("th", "", ""), h("th", "col-draft", draftName), h("th", "col-active", activeName));
    head.append(h("th", "col-delta", "Δ"));
    const thead = h("thead");
    thead.append(head);
    const tbody = h("tbody");
    const metric = (key, label, value, better, digits) => {
      const tr = h("tr");
      tr.dataset.metric = key;
      const d = value(draft);
      const a = value(active);
      tr.append(h("th", "", label), h("td", "draft", d.text), h("td", "active", a.text));
      tr.append(deltaCell(d.value - a.value, better, digits));
      tbody.append(tr);
    };
    metric("macro_f1", "Macro-F1", (r) => ({ value: num(r.macro_f1), text: fixed(r.macro_f1, 3) }), "up", 3);
    metric(
      "false_alarms",
      "False alarms · Ложные срабатывания",
      (r) => ({
        value: num(r.false_alarms),
        text: `${num(r.false_alarms)} of ${num(r.clean_rows)} clean rows`,
      }),
      "down",
      0,
    );
    metric(
      "wrong",
      "Wrong rows · Ошибки",
      (r) => ({ value: list(r.wrong).length, text: `${list(r.wrong).length} of ${num(r.rows)}` }),
      "down",
      0,
    );
    table.append(thead, tbody);
    ui.evalSummary.replaceChildren(table);

    renderEvalTable(draft, active, draftName, activeName);
    renderChanged(list(result && result.changed), draft, active);
  }

  function deltaCell(delta, better, digits) {
    const whole = `${delta > 0 ? "+" : "−"}${Math.abs(delta)}`;
    const text = digits === 0 && delta !== 0 ? whole : signed(delta, digits);
    const td = h("td", "delta", text);
    const eps = digits === 0 ? 0 : 0.5 * 10 ** -digits;
    const direction = delta > eps ? "up" : delta < -eps ? "down" : "same";
    td.dataset.direction = direction;
    td.dataset.verdict = direction === "same" ? "same" : direction === better ? "better" : "worse";
    return td;
  }

  function renderEvalTable(draft, active, draftName, activeName) {
    const metrics = [
      ["precision", "Precision"],
      ["recall", "Recall"],
      ["f1", "F1"],
    ];
    const top = h("tr");
    const catTh = h("th", "", "Category · Категория");
    catTh.rowSpan = 2;
    const supTh = h("th", "num", "Rows");
    supTh.rowSpan = 2;
    supTh.title = "support: rows labelled with the category";
    top.append(catTh, supTh);
    const sub = h("tr");
    for (const [, label] of metrics) {
      const th = h("th", "group", label);
      th.colSpan = 3;
      top.append(th);
      const d = h("th", "num col-draft", `v${num(draft.version)}`);
      d.title = draftName;
      const a = h("th", "num col-active", `v${num(active.version)} live`);
      a.title = activeName;
      sub.append(d, a, h("th", "num col-delta", "Δ"));
    }
    ui.evalHead.replaceChildren(top, sub);

    const draftCats = new Map(list(draft.categories).map((c) => [str(c.category), c]));
    const activeCats = new Map(list(active.categories).map((c) => [str(c.category), c]));
    const ids = [...new Set([...draftCats.keys(), ...activeCats.keys()])];
    const used = (c) => c && (num(c.support) || num(c.tp) || num(c.fp) || num(c.fn));
    const showAll = ui.evalAll.checked;
    const rows = [];
    for (const id of ids) {
      const d = draftCats.get(id);
      const a = activeCats.get(id);
      if (!showAll && !used(d) && !used(a)) continue;
      const tr = h("tr", "eval-row");
      tr.dataset.category = id;
      const cat = findCategory(id);
      const cell = h("td", "cat-cell");
      const kind = kindOf((d || a || {}).kind);
      cell.append(h("span", `kind-badge kind--${kind}`, kind), " ");
      cell.append(h("span", "eval-cat-title", cat ? titleOf(cat) : id), " ", h("span", "cat-id", id));
      tr.append(cell, h("td", "num support", String(num((d || a).support))));
      for (const [key] of metrics) {
        const dv = d ? num(d[key]) : null;
        const av = a ? num(a[key]) : null;
        const dc = h("td", "num draft", dv === null ? "—" : fixed(dv));
        dc.dataset.col = `${key}-draft`;
        const ac = h("td", "num active", av === null ? "—" : fixed(av));
        ac.dataset.col = `${key}-active`;
        const delta = dv === null || av === null ? h("td", "num delta", "—") : deltaCell(dv - av, "up", 2);
        delta.classList.add("num");
        delta.dataset.col = `${key}-delta`;
        tr.append(dc, ac, delta);
      }
      rows.push(tr);
    }
    if (!rows.length) rows.push(emptyRow("No category has rows · Нет размеченных строк", 11));
    ui.evalBody.replaceChildren(...rows);
  }

  // a table's only row when it has nothing to show: one muted cell across `columns`
  function emptyRow(text, columns) {
    const td = h("td", "muted", text);
    td.colSpan = columns;
    const tr = h("tr");
    tr.append(td);
    return tr;
  }

  function renderChanged(changed, draft, active) {
    ui.evalChangedCount.textContent = `(${changed.length})`;
    ui.evalChangedEmpty.hidden = changed.length > 0;
    const items = changed.map((row) => {
      const expected = list(row.labels).map(str);
      const ok = new Set([...expected, ...(state.evalAlsoOk.get(str(row.id)) || [])]);
      const counted = (found) => list(found).filter((c) => !ok.has(c) || expected.includes(c));
      const activeRight = sameSet(counted(row.active), expected);
      const draftRight = sameSet(counted(row.draft), expected);
      const li = h("li", "changed-row");
      li.dataset.verdict = draftRight === activeRight ? "different" : draftRight ? "better" : "worse";
      if (row.id !== null && row.id !== undefined) li.dataset.rowId = str(row.id);
      const meta = h("div", "changed-meta");
      meta.append(
        h("span", `speaker speaker--${SPEAKERS[row.speaker] ? row.speaker : "unknown"}`, str(row.speaker)),
        h("span", "muted", row.id !== null && row.id !== undefined ? `#${str(row.id)}` : ""),
        h(
          "span",
          "verdict",
          li.dataset.verdict === "better"
            ? "✓ fixed by the selected version · исправлено"
            : li.dataset.verdict === "worse"
              ? "✗ broken by the selected version · стало хуже"
              : "changed · изменилось",
        ),
      );
      li.append(meta, h("p", "changed-text", str(row.text)));
      const grid = h("dl", "changed-labels");
      const chips = (values) => {
        const dd = h("dd", "chips");
        if (!values.length) dd.append(h("span", "chip chip--none", "nothing · ничего"));
        for (const c of values) {
          const chip = h("span", "chip", c);
          chip.classList.add(expected.includes(c) ? "chip--ok" : ok.has(c) ? "chip--also" : "chip--bad");
          dd.append(chip);
        }
        return dd;
      };
      const expectedDd = h("dd", "chips expected");
      if (!expected.length) expectedDd.append(h("span", "chip chip--none", "nothing · ничего"));
      for (const c of expected) expectedDd.append(h("span", "chip chip--expected", c));
      const activeDd = chips(list(row.active).map(str));
      activeDd.classList.add("active");
      const draftDd = chips(list(row.draft).map(str));
      draftDd.classList.add("draft");
      grid.append(
        h("dt", "", "expected · ожидается"),
        expectedDd,
        h("dt", "", `${reportLabel(active, "active")} live`),
        activeDd,
        h("dt", "", `${reportLabel(draft, "draft")} selected`),
        draftDd,
      );
      li.append(grid);
      return li;
    });
    ui.evalChanged.replaceChildren(...items);
  }

  async function loadEvalFile() {
    const file = ui.evalFile.files && ui.evalFile.files[0];
    if (!file) return;
    try {
      ui.evalText.value = await file.text();
      const count = ui.evalText.value.split("\n").filter((l) => l.trim()).length;
      setStatus(ui.evalStatus, "idle", `${file.name}: ${count} rows loaded · загружено`);
      runEval("upload");
    } catch (err) {
      setStatus(ui.evalStatus, "error", `${file.name}: ${err.message}`);
    }
  }

  // ---------------------------------------------------------------- a labelled call, spoken and heard

  // The chosen call script is spoken by the server's TTS into a phone call, heard by the audit's Whisper
  // and judged by the selected version (10–60 s): the turn table, said against heard, with each turn's
  // alerts as hit / missed / false alarm / allowed.
  async function runCall() {
    if (!state.name || state.callTimer !== null) return;
    const file = ui.callFile.files && ui.callFile.files[0];
    if (!file) {
      setStatus(ui.callStatus, "error", "Choose a call script first (.yaml, .json) · Выберите файл сценария");
      ui.callFile.focus();
      return;
    }
    const name = state.name;
    const version = state.version;
    const form = new FormData();
    form.append("script", file, file.name);
    const started = Date.now();
    const elapsed = () => clock((Date.now() - started) / 1000);
    ui.callRun.disabled = true;
    ui.callFile.disabled = true;
    ui.callResult.hidden = true;
    ui.callEval.setAttribute("aria-busy", "true");
    ui.callElapsed.textContent = elapsed();
    state.callTimer = window.setInterval(() => {
      ui.callElapsed.textContent = elapsed();
    }, 1000);
    setStatus(
      ui.callStatus,
      "busy",
      `Speaking ${file.name} and listening with v${version}… (10–60 s) · Озвучиваем и распознаём звонок…`,
    );
    try {
      const result = await api(`/v1/packs/${encodeURIComponent(name)}/versions/${version}/evaluate-call`, {
        method: "POST",
        body: form,
      });
      renderCall(result);
      const totals = (result && result.totals) || {};
      const unsaved = isDirty() ? " · unsaved edits are not included: save to hear them" : "";
      const judge = reportLabel(result, `v${version}`);
      setStatus(
        ui.callStatus,
        "done",
        `${file.name}: heard and judged by ${judge} in ${elapsed()} · готово${unsaved}`,
      );
      announce(`Alerts raised: ${num(totals.hits)} of ${num(totals.expected)}`);
    } catch (err) {
      setStatus(ui.callStatus, "error", `Could not hear the call · Звонок не прослушан:\n${err.message}`);
    } finally {
      window.clearInterval(state.callTimer);
      state.callTimer = null;
      ui.callElapsed.textContent = "";
      ui.callRun.disabled = false;
      ui.callFile.disabled = false;
      ui.callEval.removeAttribute("aria-busy");
    }
  }

  function renderCall(result) {
    const totals = (result && result.totals) || {};
    const calls = list(result && result.calls).filter((c) => c && typeof c === "object");
    ui.callResult.hidden = false;

    // Summary: alerts raised of expected, false alarms, repeated finals.
    const about = h("p", "muted small call-about");
    const names = calls.map((c) => `${str(c.name)}${c.split ? ` (${str(c.split)})` : ""}`).join(", ");
    about.textContent =
      `${names || "call"} · heard by the ${str(result && result.mode) || "audit"} path, ` +
      `judged by ${reportLabel(result, "the selected version")}`;
    const table = h("table", "eval-summary-table call-summary-table");
    const tbody = h("tbody");
    const metric = (key, label, text, verdict) => {
      const tr = h("tr");
      tr.dataset.metric = key;
      const td = h("td", "", text);
      td.dataset.verdict = verdict;
      tr.append(h("th", "", label), td);
      tbody.append(tr);
    };
    const expected = num(totals.expected);
    const hits = num(totals.hits);
    const known = totals.recall !== null && totals.recall !== undefined;
    const recall = known ? ` (${Math.round(num(totals.recall) * 100)}%)` : "";
    metric(
      "alerts",
      "Alerts raised · Подсказки сработали",
      `${hits} of ${expected}${recall}`,
      expected === 0 ? "same" : hits >= expected ? "better" : "worse",
    );
    const falseAlarms = num(totals.false_alarms);
    metric(
      "false_alarms",
      "False alarms · Ложные срабатывания",
      String(falseAlarms),
      falseAlarms ? "worse" : "better",
    );
    const repeated = num(totals.repeated_finals);
    metric(
      "repeated_finals",
      "Repeated finals · Повторы в распознанном",
      String(repeated),
      repeated ? "worse" : "better",
    );
    table.append(tbody);
    const failed = list(result && result.failed).map((f) =>
      h("p", "status call-failed", `${str(f && f.call)}: ${str(f && f.error)}`),
    );
    for (const p of failed) p.dataset.state = "error";
    ui.callSummary.replaceChildren(about, table, ...failed);

    // The turn table, call by call.
    const rows = [];
    for (const call of calls) {
      if (calls.length > 1) {
        const tr = h("tr", "call-group");
        const th = h("th", "", str(call.name));
        th.colSpan = 5;
        th.scope = "colgroup";
        tr.append(th);
        rows.push(tr);
      }
      for (const turn of list(call.turns)) if (turn && typeof turn === "object") rows.push(callRow(turn));
    }
    if (!rows.length) rows.push(emptyRow("Nothing was said or heard · Ничего не сказано и не распознано", 5));
    ui.callBody.replaceChildren(...rows);
  }

  function callRow(turn) {
    const said = turn.said === null || turn.said === undefined ? null : str(turn.said);
    const speaker = speakerOf(turn.speaker);
    const hits = list(turn.hits).map(str);
    const misses = list(turn.misses).map(str);
    const falseAlarms = list(turn.false_alarms).map(str);
    const allowed = list(turn.alerted)
      .map(str)
      .filter((c) => !hits.includes(c) && !falseAlarms.includes(c));
    const tr = h("tr", "call-row");
    tr.dataset.said = said === null ? "none" : "said";
    tr.dataset.speaker = speaker;
    if (misses.length) tr.dataset.missed = "true";
    if (falseAlarms.length) tr.dataset.falseAlarm = "true";

    const time = h("td", "call-time");
    time.append(h("time", "", clock(turn.start)));
    time.title = `${fixed(turn.start, 1)}–${fixed(turn.end, 1)} s`;
    const who = h("td", "call-speaker");
    who.append(h("span", `speaker speaker--${speaker}`, speaker));
    const saidCell = h("td", "call-said");
    if (said === null) saidCell.append(h("span", "muted call-none", "(nothing said) · (ничего не сказано)"));
    else saidCell.textContent = said;
    const heardCell = h("td", "call-heard");
    const heard = list(turn.heard)
      .map((piece) => str(piece && piece.text))
      .filter((text) => text.trim());
    if (!heard.length) {
      heardCell.append(h("span", "muted call-none", "(nothing heard) · (ничего не распознано)"));
    }
    for (const text of heard) heardCell.append(h("span", "call-heard-text", text));
    for (const run of list(turn.repeated)) {
      heardCell.append(h("span", "call-repeat", `repeated · повтор: «${str(run)}»`));
    }
    const alerts = h("td", "call-alerts");
    const chips = h("div", "chips");
    for (const c of hits) chips.append(outcomeChip("hit", c));
    for (const c of misses) chips.append(outcomeChip("miss", c));
    for (const c of falseAlarms) chips.append(outcomeChip("false", c));
    for (const c of allowed) chips.append(outcomeChip("also", c));
    if (!chips.childElementCount) chips.append(h("span", "muted", "—"));
    alerts.append(chips);
    tr.append(time, who, saidCell, heardCell, alerts);
    return tr;
  }

  function outcomeChip(outcome, category) {
    const { chip: className, mark, label } = OUTCOMES[outcome];
    const chip = h("span", `chip call-chip ${className}`);
    chip.dataset.outcome = outcome;
    chip.dataset.category = category;
    chip.title = `${label}: ${category}`;
    const sign = h("span", "call-chip-mark", mark);
    sign.setAttribute("aria-hidden", "true");
    chip.append(sign, h("span", "visually-hidden", `${label}: `), category);
    return chip;
  }

  // ---------------------------------------------------------------- diff

  function renderDiffOptions() {
    const versions = versionsOf(state.name);
    const keepFrom = ui.diffFrom.value;
    const keepTo = ui.diffTo.value;
    const label = (v) => `v${v.version}${isActive(v.name, v.version) ? " ● active" : ""}`;
    const options = () => versions.map((v) => new Option(label(v), String(v.version)));
    ui.diffFrom.replaceChildren(...options());
    ui.diffTo.replaceChildren(...options());
    const has = (value) => versions.some((v) => String(v.version) === value);
    const active = state.listing.active;
    let from = null;
    if (active && active.name === state.name && active.version !== state.version) from = active.version;
    else from = (versions.find((v) => v.version < state.version) || {}).version;
    ui.diffTo.value = has(keepTo) && state.diffName === state.name ? keepTo : String(state.version);
    const fallback = String(from === undefined ? state.version : from);
    ui.diffFrom.value = has(keepFrom) && state.diffName === state.name ? keepFrom : fallback;
    state.diffName = state.name;
  }

  async function runDiff(event) {
    if (event) event.preventDefault();
    if (!state.name) return;
    const from = ui.diffFrom.value;
    const to = ui.diffTo.value;
    setStatus(ui.diffStatus, "busy", `Comparing v${from} and v${to}… · Сравниваем…`);
    try {
      const params = new URLSearchParams({ from, to });
      const diff = await api(`/v1/packs/${encodeURIComponent(state.name)}/diff?${params}`);
      renderDiff(diff);
      const n = list(diff.categories).length + (list(diff.neutral).length ? 1 : 0);
      setStatus(
        ui.diffStatus,
        n ? "done" : "empty",
        n
          ? `v${num(diff.old_version)} → v${num(diff.new_version)}: ${n} change${n === 1 ? "" : "s"}`
          : `No differences between v${num(diff.old_version)} and v${num(diff.new_version)} · Нет различий`,
      );
    } catch (err) {
      ui.diffResult.replaceChildren();
      setStatus(ui.diffStatus, "error", `Could not compare · Ошибка: ${err.message}`);
    }
  }

  function plain(value) {
    if (value && typeof value === "object") {
      return Object.entries(value)
        .map(([k, v]) => `${k}: ${str(v)}`)
        .join(" · ");
    }
    return str(value);
  }

  function renderPhraseChanges(changes) {
    const box = h("div", "diff-phrases");
    for (const pc of changes) {
      const group = h("div", "diff-group");
      group.dataset.list = str(pc.list);
      group.dataset.lang = str(pc.lang);
      group.append(h("h4", "diff-group-title", `${LISTS[pc.list] || str(pc.list)} · ${str(pc.lang)}`));
      const ul = h("ul", "diff-lines");
      for (const text of list(pc.added)) {
        const li = h("li", "diff-added");
        li.append(h("span", "diff-sign", "+"), h("ins", "diff-text", str(text)));
        ul.append(li);
      }
      for (const text of list(pc.removed)) {
        const li = h("li", "diff-removed");
        li.append(h("span", "diff-sign", "−"), h("del", "diff-text", str(text)));
        ul.append(li);
      }
      group.append(ul);
      box.append(group);
    }
    return box;
  }

  function renderDiff(diff) {
    const items = list(diff && diff.categories).map((change) => {
      const status = ["added", "removed", "changed"].includes(change.status) ? change.status : "changed";
      const li = h("li", `diff-cat diff-cat--${status}`);
      li.dataset.category = str(change.id);
      li.dataset.status = status;
      const head = h("div", "diff-head");
      const cat = findCategory(change.id);
      head.append(
        h("span", `diff-status diff-status--${status}`, status),
        h("span", "diff-id", str(change.id)),
        h("span", "muted", cat ? titleOf(cat) : ""),
      );
      li.append(head);
      const fields = Object.entries(change.fields && typeof change.fields === "object" ? change.fields : {});
      if (fields.length) {
        const dl = h("dl", "diff-fields");
        for (const [name, pair] of fields) {
          const [before, after] = list(pair);
          const dd = h("dd", "diff-field");
          dd.dataset.field = name;
          dd.append(
            h("del", "diff-text", plain(before)),
            h("span", "diff-arrow", " → "),
            h("ins", "diff-text", plain(after)),
          );
          dl.append(h("dt", "", name), dd);
        }
        li.append(dl);
      }
      li.append(renderPhraseChanges(list(change.phrases)));
      return li;
    });
    const neutral = list(diff && diff.neutral);
    if (neutral.length) {
      const li = h("li", "diff-cat diff-cat--changed");
      li.dataset.category = "neutral";
      li.dataset.status = "changed";
      const head = h("div", "diff-head");
      head.append(h("span", "diff-status diff-status--changed", "changed"), h("span", "diff-id", "neutral"));
      li.append(head, renderPhraseChanges(neutral));
      items.push(li);
    }
    ui.diffResult.replaceChildren(...items);
  }

  // ---------------------------------------------------------------- import / publish

  async function importFile() {
    const file = ui.importFile.files && ui.importFile.files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    setStatus(ui.importStatus, "busy", `Importing ${file.name}… · Импорт…`);
    try {
      const saved = await api("/v1/packs/import", { method: "POST", body: form });
      await loadListing();
      renderPackOptions();
      const opened = await selectVersion(str(saved.name), num(saved.version));
      if (!opened) renderVersionOptions();
      setStatus(
        ui.importStatus,
        "done",
        `Imported ${file.name} as ${str(saved.name)} v${num(saved.version)} · Импортировано (not live yet)`,
      );
    } catch (err) {
      setStatus(ui.importStatus, "error", `Import refused · Файл не принят:\n${err.message}`);
    } finally {
      ui.importFile.value = "";
    }
  }

  async function publish() {
    if (!state.name || state.busy) return;
    const name = state.name;
    const version = state.version;
    const active = state.listing.active;
    const details = [];
    if (active && active.name === name && active.version > version) {
      details.push(`This rolls live calls back from v${active.version} · Это откат с v${active.version}.`);
    } else if (active) {
      const now = `${active.name} v${active.version}`;
      details.push(`Live calls and audits now use ${now}; the turns that follow will use v${version}.`);
    }
    if (isDirty()) details.push("Your unsaved edits are not part of it: save them first to publish them.");
    const ok = await confirmBox(
      `Publish v${version} to live calls? · Опубликовать v${version} для звонков?`,
      details.join(" "),
      `Publish v${version} · Опубликовать`,
    );
    if (!ok) return;
    state.busy = true;
    ui.publish.disabled = true;
    setStatus(
      ui.publishStatus,
      "busy",
      `Publishing v${version}… (building its classifier can take 10–20 s; calls go on) · Публикация…`,
    );
    try {
      const result = await api(`/v1/packs/${encodeURIComponent(name)}/versions/${version}/publish`, {
        method: "POST",
      });
      await loadListing();
      renderPackOptions();
      renderVersionOptions();
      const now = (result && result.active) || {};
      setStatus(
        ui.publishStatus,
        "done",
        `${str(now.name)} v${num(now.version)} is live: new turns use it · опубликована`,
      );
      announce(`Version ${num(now.version)} is live`);
    } catch (err) {
      setStatus(ui.publishStatus, "error", `Not published · Не опубликовано: ${err.message}`);
      renderVersionMeta();
    } finally {
      state.busy = false;
    }
  }

  // ---------------------------------------------------------------- suggested counter-examples

  async function loadSuggestions() {
    try {
      const text = await api("/v1/flags/export?status=dismissed", { raw: true });
      const rows = [];
      for (const line of str(text).split("\n")) {
        if (!line.trim()) continue;
        try {
          const row = JSON.parse(line);
          if (row && typeof row === "object" && row.dismissed && str(row.text).trim()) rows.push(row);
        } catch (_err) {
          // a line that is not JSON is skipped
        }
      }
      state.suggestions = rows;
      ui.suggestionsNote.textContent = "";
    } catch (err) {
      state.suggestions = [];
      ui.suggestionsNote.textContent = `Could not load dismissed flags: ${err.message}`;
    }
    renderSuggestions();
  }

  function suggestionLang(row) {
    return LANGS.includes(row.lang) ? row.lang : guessLang(str(row.text));
  }

  function pendingSuggestions() {
    return state.suggestions.filter((row) => {
      if (state.rejected.has(str(row.id))) return false;
      const cat = findCategory(str(row.dismissed));
      if (!cat) return true;
      return !cat.counter_examples[suggestionLang(row)].includes(str(row.text).trim());
    });
  }

  function renderSuggestions() {
    const pending = pendingSuggestions();
    ui.suggestionCount.textContent = `(${pending.length})`;
    const groups = new Map();
    for (const row of pending) {
      const id = str(row.dismissed);
      if (!groups.has(id)) groups.set(id, []);
      groups.get(id).push(row);
    }
    const blocks = [...groups.entries()].map(([id, rows]) => {
      const cat = findCategory(id);
      const box = h("div", "suggestion-group");
      box.dataset.category = id;
      const title = h("h3", "suggestion-group-title");
      title.append(h("span", "", cat ? titleOf(cat) : id), " ", h("span", "cat-id", id));
      const ul = h("ul", "suggestion-list");
      for (const row of rows) ul.append(renderSuggestion(row, cat));
      box.append(title, ul);
      return box;
    });
    ui.suggestions.replaceChildren(...blocks);
    if (!pending.length && !ui.suggestionsNote.textContent) {
      ui.suggestions.append(h("p", "muted small empty-note", "Nothing to review · Нет предложений"));
    }
  }

  function renderSuggestion(row, cat) {
    const lang = suggestionLang(row);
    const li = h("li", "suggestion");
    li.dataset.flagId = str(row.id);
    li.append(h("p", "suggestion-text", str(row.text)));
    const meta = h("p", "suggestion-meta muted");
    meta.append(h("span", "lang-tag", lang), ` ${str(row.speaker)}`);
    if (row.note) meta.append(" · ", h("span", "suggestion-note", str(row.note)));
    li.append(meta);
    const actions = h("div", "suggestion-actions");
    const accept = h("button", "suggestion-accept", "Accept · Принять");
    accept.type = "button";
    if (!cat) {
      accept.disabled = true;
      accept.title = "This category is not in the selected version";
    } else {
      accept.title = `Add to ${cat.id} counter-examples (${lang})`;
    }
    accept.addEventListener("click", () => acceptSuggestion(row));
    const reject = h("button", "suggestion-reject", "Reject · Скрыть");
    reject.type = "button";
    reject.addEventListener("click", () => {
      state.rejected.add(str(row.id));
      saveRejected();
      renderSuggestions();
      announce("Suggestion hidden");
    });
    actions.append(accept, reject);
    li.append(actions);
    return li;
  }

  function acceptSuggestion(row) {
    const cat = findCategory(str(row.dismissed));
    if (!cat) return;
    const lang = suggestionLang(row);
    const text = str(row.text).trim();
    if (!cat.counter_examples[lang].includes(text)) cat.counter_examples[lang].push(text);
    selectCategory(cat.id);
    edited();
    renderSuggestions();
    setStatus(
      ui.saveStatus,
      "idle",
      `Added to ${cat.id} counter-examples (${lang}); save to keep it · Добавлено, сохраните версию`,
    );
    const selector = `.phrase-group[data-list="counter_examples"][data-lang="${lang}"]`;
    const group = ui.phraseLists.querySelector(selector);
    if (group) group.scrollIntoView({ block: "nearest" });
  }

  // ---------------------------------------------------------------- tabs

  function selectTab(id) {
    for (const tab of ui.tabs) {
      const on = tab.id === id;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      $(tab.getAttribute("aria-controls")).hidden = !on;
    }
  }

  // ---------------------------------------------------------------- wiring

  function bind() {
    ui.errorDismiss.addEventListener("click", () => {
      ui.errorBanner.hidden = true;
    });
    ui.packSelect.addEventListener("change", async () => {
      const name = ui.packSelect.value;
      const latest = versionsOf(name)[0];
      if (!latest) return;
      const active = state.listing.active;
      const version = active && active.name === name ? active.version : latest.version;
      await selectVersion(name, version);
    });
    ui.versionSelect.addEventListener("change", async () => {
      await selectVersion(state.name, Number(ui.versionSelect.value));
    });
    ui.neutralOpen.addEventListener("click", openNeutral);
    ui.publish.addEventListener("click", publish);
    ui.importFile.addEventListener("change", importFile);
    ui.saveForm.addEventListener("submit", saveVersion);
    bindField(ui.titleRu, (cat, v) => {
      cat.title.ru = v;
    });
    bindField(ui.titleEn, (cat, v) => {
      cat.title.en = v;
    });
    bindField(ui.description, (cat, v) => {
      cat.description = v;
    });
    ui.severity.addEventListener("change", () => {
      const cat = currentCategory();
      if (!cat) return;
      cat.severity = ui.severity.value;
      edited();
    });
    for (const [cue, select] of Object.entries(ui.cues)) {
      select.addEventListener("change", () => {
        const cat = currentCategory();
        if (!cat) return;
        const cues = { ...(cat.cues || {}) };
        if (select.value) cues[cue] = select.value;
        else delete cues[cue];
        cat.cues = cues;
        edited();
      });
    }
    for (const tab of ui.tabs) {
      tab.addEventListener("click", () => selectTab(tab.id));
      tab.addEventListener("keydown", (event) => {
        const i = ui.tabs.indexOf(tab);
        let next = null;
        if (event.key === "ArrowRight") next = ui.tabs[(i + 1) % ui.tabs.length];
        if (event.key === "ArrowLeft") next = ui.tabs[(i - 1 + ui.tabs.length) % ui.tabs.length];
        if (next) {
          event.preventDefault();
          selectTab(next.id);
          next.focus();
        }
      });
    }
    ui.tryForm.addEventListener("submit", (event) => {
      event.preventDefault();
      scheduleTry(0);
    });
    ui.tryText.addEventListener("input", () => scheduleTry());
    ui.trySpeaker.addEventListener("change", () => scheduleTry(0));
    ui.tryLang.addEventListener("change", () => scheduleTry(0));
    ui.evalForm.addEventListener("submit", (event) => {
      event.preventDefault();
      runEval("upload");
    });
    ui.evalFlags.addEventListener("click", () => runEval("flags"));
    ui.evalFile.addEventListener("change", loadEvalFile);
    ui.evalAll.addEventListener("change", () => {
      if (state.lastEval) renderEval(state.lastEval);
    });
    ui.callForm.addEventListener("submit", (event) => {
      event.preventDefault();
      runCall();
    });
    ui.diffForm.addEventListener("submit", runDiff);
    window.addEventListener("beforeunload", (event) => {
      if (isDirty()) event.preventDefault();
    });
  }

  async function start() {
    document.body.dataset.ready = "false";
    try {
      await loadListing();
      const params = new URLSearchParams(window.location.search);
      const active = state.listing.active;
      let name = params.get("pack") || (active && active.name);
      let version = Number(params.get("version")) || null;
      if (!name || !versionsOf(name).length) {
        name = active ? active.name : str((state.listing.versions[0] || {}).name);
      }
      if (!version || !versionsOf(name).some((v) => v.version === version)) {
        version = active && active.name === name ? active.version : (versionsOf(name)[0] || {}).version;
      }
      state.name = name;
      renderPackOptions();
      if (name && version) await selectVersion(name, version, { force: true });
    } catch (err) {
      showError(`Could not load the packs · Не удалось загрузить наборы: ${err.message}`);
    }
    await loadSuggestions();
    document.body.dataset.ready = "true";
  }

  // Shown once signed in: the first time (or after a first load that failed) everything is loaded; after
  // signing in again the edits on screen are kept and only the suggestions are refreshed.
  async function enter() {
    ui.errorBanner.hidden = true;
    if (!state.pack) {
      await start();
      return;
    }
    document.body.dataset.ready = "false";
    await loadSuggestions();
    document.body.dataset.ready = "true";
  }

  function leave() {
    window.clearTimeout(state.tryTimer);
    state.tryTimer = null;
    if (state.tryAbort) state.tryAbort.abort();
    state.tryAbort = null;
    if (ui.confirmDialog.open) ui.confirmDialog.close();
  }

  bind();
  auth.start({ roles: ["trainer"], audience: { en: "trainers", ru: "тренеров" }, enter, leave });
})();
