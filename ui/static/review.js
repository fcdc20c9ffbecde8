// callbuffer QA review page: audited recordings, their reports, and the reviewer's verdict on each flag.
//
// Contract with the server (see server/audits/api.py):
//   GET  /v1/audited-calls?category=&min_score=&max_score=&since=&until=  -> {"calls": [...]}, worst first
//   GET  /v1/audited-calls/{id}         -> the call + "report" (or null) + "flags"
//   GET  /v1/audited-calls/{id}/audio   -> the recording (byte ranges, so the player can seek)
//   PUT  /v1/flags/{flag_id}            {"status": "confirmed"|"dismissed"|"pending", "note"} -> the flag
//   POST /v1/audits  multipart files + channels + language + keep_pii + agent -> {"id": job, "calls"}; 413 too big
//   GET  /v1/audits/{job}               -> {"status": queued|running|done|failed, "calls"}
//   GET  /v1/search?q=&speaker=&source=&agent=&limit=&offset= -> {"total", "hits": [{call_id, source,
//        turn, start, segments: [{text, match}], before, after, open, ...}]} (server/search/api.py)
//   GET  /v1/calls/{id}                 -> a live call's turns and alerts (read-only view of a search hit)
// Served at /review and /static/review.html: every path here is absolute. `?call=ID` opens a call;
// `&turn=N&t=S` at that turn and moment (the player seeks there); `?live=ID&t=S` a live call at a turn.
// For reviewers (and admins) signed in through common.js `auth`; nothing is asked of the API before.
//
// Security: every string from the server is rendered with textContent / Text nodes, never as HTML.
"use strict";

(() => {
  const { h, str, num, list, speakerOf, clock, when, auth, authFetch } = window.cb;

  const JOB_POLL_MS = 1000;
  const LIST_POLL_MS = 4000;
  const PLAY_LEAD_S = 1;
  const ID_RE = /^[A-Za-z0-9._-]{1,80}$/;

  const SPEAKERS = {
    agent: "Agent · Оператор",
    customer: "Customer · Клиент",
    unknown: "Speaker · Говорящий",
  };
  const KINDS = {
    forbidden: "Don't say this · Так не говорим",
    trigger: "Customer needs care · Внимательно",
    practice: "Good practice · Хорошо",
  };
  const FLAG_STATES = {
    pending: "Pending review · Ждёт проверки",
    confirmed: "Confirmed · Подтверждено",
    dismissed: "Dismissed · Отклонено",
  };
  const ITEM_STATES = {
    passed: { icon: "✓", label: "passed" },
    failed: { icon: "✗", label: "failed" },
    not_applicable: { icon: "–", label: "n/a" },
    advisory: { icon: "!", label: "advisory" },
  };
  const CALL_STATES = {
    queued: "queued · в очереди",
    running: "auditing… · проверяется…",
    failed: "failed · ошибка",
    done: "done",
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    errorBanner: $("error-banner"),
    errorText: $("error-text"),
    errorDismiss: $("error-dismiss"),
    uploadBox: $("upload-box"),
    uploadForm: $("upload-form"),
    uploadFiles: $("upload-files"),
    uploadChannels: $("upload-channels"),
    uploadLanguage: $("upload-language"),
    uploadKeepPii: $("upload-keep-pii"),
    uploadAgent: $("upload-agent"),
    uploadSubmit: $("upload-submit"),
    uploadStatus: $("upload-status"),
    filterForm: $("filter-form"),
    filterCategory: $("filter-category"),
    filterMin: $("filter-min-score"),
    filterMax: $("filter-max-score"),
    filterSince: $("filter-since"),
    filterUntil: $("filter-until"),
    filterReset: $("filter-reset"),
    filterError: $("filter-error"),
    refreshList: $("refresh-list"),
    callList: $("call-list"),
    callListNote: $("call-list-note"),
    detailEmpty: $("detail-empty"),
    detailBody: $("detail-body"),
    detailTitle: $("detail-title"),
    detailScore: $("detail-score"),
    detailMeta: $("detail-meta"),
    detailStatus: $("detail-status"),
    diarizationBanner: $("diarization-banner"),
    reportNotes: $("report-notes"),
    player: $("player"),
    audioNote: $("audio-note"),
    scorecardBody: document.querySelector("#scorecard tbody"),
    scorecardTable: $("scorecard"),
    scorecardSummary: $("scorecard-summary"),
    scorecardEmpty: $("scorecard-empty"),
    talkTime: $("talk-time"),
    timingExtra: $("timing-extra"),
    flagList: $("flag-list"),
    flagCount: $("flag-count"),
    flagsEmpty: $("flags-empty"),
    transcriptList: $("transcript-list"),
    transcriptEmpty: $("transcript-empty"),
    srStatus: $("sr-status"),
    searchForm: $("search-form"),
    searchQ: $("search-q"),
    searchSpeaker: $("search-speaker"),
    searchSource: $("search-source"),
    searchAgent: $("search-agent"),
    searchBox: $("search-box"),
    searchCount: $("search-count"),
    searchNote: $("search-note"),
    searchResults: $("search-results"),
    searchMore: $("search-more"),
    searchClear: $("search-clear"),
    liveBody: $("live-body"),
    liveTitle: $("live-title"),
    liveMeta: $("live-meta"),
    liveTranscript: $("live-transcript"),
  };

  const state = {
    calls: [],
    categories: new Set(), // every category id seen in any list, so filtering keeps the choices
    titles: new Map(), // category id -> title, from the reports opened so far
    callId: null,
    detail: null,
    turnEls: new Map(), // turn index -> li
    listTimer: null,
    listSeq: 0,
    detailSeq: 0,
    uploading: false,
    shown: false, // signed in as someone the page is for
    search: { params: null, offset: 0, seq: 0 }, // the search shown in the side panel
  };
  const SEARCH_PAGE = 20;

  // ---------------------------------------------------------------- helpers

  function isNum(value) {
    return value !== null && value !== undefined && value !== "" && Number.isFinite(Number(value));
  }

  function kindOf(value) {
    return value === "forbidden" || value === "trigger" || value === "practice" ? value : "trigger";
  }

  function percent(score) {
    return `${Math.round(num(score) * 100)}%`;
  }

  function scoreLevel(score) {
    if (!isNum(score)) return "none";
    const s = Number(score);
    if (s >= 0.8) return "good";
    if (s >= 0.5) return "fair";
    return "poor";
  }

  function fillBadge(el, call) {
    el.className = "score-badge";
    if (isNum(call.score)) {
      el.textContent = percent(call.score);
      el.dataset.level = scoreLevel(call.score);
      el.title = `Scorecard score ${percent(call.score)}`;
    } else {
      el.textContent = call.status === "done" ? "—" : CALL_STATES[call.status] || str(call.status) || "—";
      el.dataset.level = call.status === "failed" ? "failed" : "none";
      el.title = "";
    }
  }

  function categoryTitle(id) {
    return state.titles.get(id) || id;
  }

  function announce(text) {
    ui.srStatus.textContent = "";
    window.setTimeout(() => {
      ui.srStatus.textContent = text;
    }, 30);
  }

  function showError(text) {
    ui.errorText.textContent = text;
    ui.errorBanner.hidden = false;
  }

  // fetch + JSON; throws an Error whose message is the server's "detail" (FastAPI) when there is one.
  // A 401 shows the login form and a 403 says who is not allowed (authFetch).
  async function api(path, options) {
    const response = await authFetch(path, {
      ...options,
      headers: { Accept: "application/json", ...((options && options.headers) || {}) },
    });
    let body = null;
    const text = await response.text();
    if (text) {
      try {
        body = JSON.parse(text);
      } catch (_err) {
        body = null;
      }
    }
    if (!response.ok) {
      const err = new Error(detailOf(body) || `HTTP ${response.status} ${response.statusText}`.trim());
      err.status = response.status;
      throw err;
    }
    return body;
  }

  function detailOf(body) {
    if (!body || body.detail === undefined) return "";
    if (typeof body.detail === "string") return body.detail;
    // FastAPI validation errors: [{"loc": [...], "msg": "..."}]
    return list(body.detail)
      .map((d) => `${list(d && d.loc).slice(1).join(".")}: ${str(d && d.msg)}`)
      .join("; ");
  }

  // ---------------------------------------------------------------- the list

  function filterQuery() {
    const params = new URLSearchParams();
    const category = ui.filterCategory.value;
    if (category) params.set("category", category);
    const bounds = [
      ["min_score", ui.filterMin],
      ["max_score", ui.filterMax],
    ];
    for (const [name, input] of bounds) {
      if (input.value === "") continue;
      const value = Number(input.value);
      if (!Number.isFinite(value) || value < 0 || value > 100) {
        throw new Error("Score bounds are percentages from 0 to 100 · Оценка — от 0 до 100 %");
      }
      params.set(name, String(value / 100));
    }
    if (ui.filterSince.value) params.set("since", ui.filterSince.value);
    if (ui.filterUntil.value) {
      // The API's `until` is exclusive; the date picker means "up to and including that day".
      const next = new Date(`${ui.filterUntil.value}T00:00:00Z`);
      next.setUTCDate(next.getUTCDate() + 1);
      params.set("until", next.toISOString().slice(0, 10));
    }
    return params.toString();
  }

  async function loadList() {
    let query;
    try {
      query = filterQuery();
      ui.filterError.hidden = true;
    } catch (err) {
      ui.filterError.textContent = err.message;
      ui.filterError.hidden = false;
      return;
    }
    const seq = ++state.listSeq;
    ui.callList.setAttribute("aria-busy", "true");
    try {
      const body = await api(`/v1/audited-calls${query ? `?${query}` : ""}`);
      if (seq !== state.listSeq) return;
      state.calls = list(body && body.calls).filter((c) => c && typeof c === "object");
      renderList();
      // The open call's audit finished (or failed) since it was shown: show its report.
      const open = state.calls.find((c) => c.id === state.callId);
      if (open && state.detail && state.detail.id === open.id && open.status !== state.detail.status) {
        openCall(open.id, { focus: false });
      }
    } catch (err) {
      if (seq !== state.listSeq) return;
      ui.callListNote.textContent = `Could not load calls · Не удалось загрузить список: ${err.message}`;
      ui.callListNote.hidden = false;
    } finally {
      if (seq === state.listSeq) ui.callList.removeAttribute("aria-busy");
    }
    scheduleListPoll();
  }

  // While some audit is queued or running, the list refreshes itself.
  function scheduleListPoll() {
    window.clearTimeout(state.listTimer);
    const busy = state.calls.some((c) => c.status === "queued" || c.status === "running");
    if (busy && state.shown) state.listTimer = window.setTimeout(loadList, LIST_POLL_MS);
  }

  function renderList() {
    for (const call of state.calls) {
      for (const cat of list(call.categories)) state.categories.add(str(cat));
    }
    renderCategoryOptions();
    const items = state.calls.map(renderCallRow);
    ui.callList.replaceChildren(...items);
    const filtered = ui.filterForm.dataset.active === "true";
    ui.callListNote.textContent = items.length
      ? `${items.length} call${items.length === 1 ? "" : "s"}, worst score first`
      : filtered
        ? "No calls match the filters · Ничего не найдено"
        : "No audited calls yet: upload a recording above · Пока нет проверенных звонков";
    ui.callListNote.hidden = false;
  }

  function renderCategoryOptions() {
    const current = ui.filterCategory.value;
    const ids = [...state.categories].filter((id) => id).sort();
    const options = [new Option("all · все", "")];
    for (const id of ids) {
      const title = state.titles.get(id);
      options.push(new Option(title ? `${title} (${id})` : id, id));
    }
    ui.filterCategory.replaceChildren(...options);
    ui.filterCategory.value = ids.includes(current) ? current : "";
  }

  function renderCallRow(call) {
    const id = str(call.id);
    const li = h("li", "call-row");
    li.dataset.callId = id;
    li.dataset.status = str(call.status);
    const button = h("button", "call-open");
    button.type = "button";
    button.dataset.callId = id;
    if (id === state.callId) {
      button.setAttribute("aria-current", "true");
      li.classList.add("is-current");
    }

    const badge = h("span");
    fillBadge(badge, call);
    const main = h("span", "call-main");
    main.append(h("span", "call-file", str(call.file) || id));
    const meta = h("span", "call-meta");
    meta.append(
      h("span", "call-date", when(call.audited_at || call.uploaded_at)),
      h("span", "call-duration", isNum(call.duration) ? clock(call.duration) : "—"),
    );
    if (call.agent) meta.append(h("span", "call-agent", str(call.agent)));
    const pending = Number(call.pending_flags) || 0;
    const pendingEl = h("span", "call-pending", pending ? `${pending} to review` : "reviewed");
    pendingEl.dataset.count = String(pending);
    meta.append(pendingEl);
    main.append(meta);
    const cats = h("span", "call-categories");
    for (const cat of list(call.categories)) {
      const chip = h("span", "chip", categoryTitle(str(cat)));
      chip.dataset.category = str(cat);
      cats.append(chip);
    }
    if (call.status === "failed" && call.error) cats.append(h("span", "call-error", str(call.error)));
    main.append(cats);
    button.append(badge, main);
    button.addEventListener("click", () => openCall(id));
    li.append(button);
    return li;
  }

  // Titles learnt from an opened report replace the bare ids in the list's chips and the category select.
  function showCategoryTitles() {
    for (const chip of ui.callList.querySelectorAll(".chip[data-category]")) {
      chip.textContent = categoryTitle(chip.dataset.category);
    }
    for (const option of ui.filterCategory.options) {
      const title = option.value && state.titles.get(option.value);
      if (title) option.textContent = `${title} (${option.value})`;
    }
  }

  function markCurrentRow() {
    for (const li of ui.callList.children) {
      const current = li.dataset.callId === state.callId;
      li.classList.toggle("is-current", current);
      const button = li.querySelector(".call-open");
      if (current) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  function updateRowPending() {
    if (!state.detail) return;
    const pending = list(state.detail.flags).filter((f) => f.status === "pending").length;
    const call = state.calls.find((c) => c.id === state.callId);
    if (call) call.pending_flags = pending;
    for (const li of ui.callList.children) {
      if (li.dataset.callId !== state.callId) continue;
      const el = li.querySelector(".call-pending");
      el.textContent = pending ? `${pending} to review` : "reviewed";
      el.dataset.count = String(pending);
    }
  }

  // ---------------------------------------------------------------- one call

  // `at` ({turn, start}): show that turn of the transcript and play the recording from that moment.
  async function openCall(id, { focus = true, at = null } = {}) {
    if (!ID_RE.test(id)) {
      showError(`Not a call id: ${id}`);
      return;
    }
    const seq = ++state.detailSeq;
    state.callId = id;
    markCurrentRow();
    const url = new URL(window.location.href);
    url.search = "";
    url.searchParams.set("call", id);
    if (at) {
      url.searchParams.set("turn", String(at.turn));
      url.searchParams.set("t", String(num(at.start)));
    }
    window.history.replaceState(null, "", url);
    try {
      const body = await api(`/v1/audited-calls/${encodeURIComponent(id)}`);
      if (seq !== state.detailSeq) return;
      renderDetail(body || {});
      if (at) {
        showTurn(Number(at.turn));
        playFrom(at.start);
      } else if (focus) ui.detailTitle.focus({ preventScroll: false });
    } catch (err) {
      if (seq !== state.detailSeq) return;
      showError(`Could not open the call ${id}: ${err.message}`);
    }
  }

  function renderDetail(call) {
    const previousCall = state.detail && state.detail.id;
    state.detail = call;
    const report = call.report && typeof call.report === "object" ? call.report : null;
    for (const d of list(report && report.detections)) {
      if (d && d.category && d.title) state.titles.set(str(d.category), str(d.title));
    }
    showCategoryTitles();
    ui.detailEmpty.hidden = true;
    ui.liveBody.hidden = true;
    ui.detailBody.hidden = false;
    ui.detailBody.dataset.callId = str(call.id);
    ui.detailTitle.textContent = str(call.file) || str(call.id);
    document.title = `${str(call.file) || str(call.id)} · callbuffer review`;
    fillBadge(ui.detailScore, call);

    const meta = [];
    if (call.agent) meta.push(`agent ${str(call.agent)}`);
    if (call.uploaded_at) meta.push(`uploaded ${when(call.uploaded_at)}`);
    if (call.audited_at) meta.push(`audited ${when(call.audited_at)}`);
    const duration = report && isNum(report.duration) ? report.duration : call.duration;
    if (isNum(duration)) meta.push(`duration ${clock(duration)}`);
    if (report && report.language) meta.push(`language ${str(report.language)}`);
    if (report && report.masked === true) meta.push("personal data masked");
    if (report && report.masked === false) meta.push("personal data NOT masked");
    ui.detailMeta.textContent = meta.join(" · ");

    if (call.status !== "done" || !report) {
      const text =
        call.status === "failed"
          ? `Audit failed · Проверка не удалась: ${str(call.error) || "unknown error"}`
          : `${CALL_STATES[call.status] || str(call.status)}: the report is not ready yet`;
      ui.detailStatus.textContent = text;
      ui.detailStatus.dataset.status = str(call.status);
      ui.detailStatus.hidden = false;
    } else {
      ui.detailStatus.hidden = true;
    }

    ui.diarizationBanner.hidden = !(report && report.diarization === "none");
    const notes = list(report && report.notes).map((n) => h("li", null, str(n)));
    ui.reportNotes.replaceChildren(...notes);
    ui.reportNotes.hidden = notes.length === 0;

    if (previousCall !== call.id) setAudio(call);
    renderScorecard(report);
    renderTalkTime(report);
    renderTranscript(report);
    renderFlags(call, report);
  }

  function setAudio(call) {
    ui.audioNote.textContent = "";
    ui.player.pause();
    ui.player.src = `/v1/audited-calls/${encodeURIComponent(str(call.id))}/audio`;
    ui.player.load();
  }

  ui.player.addEventListener("error", () => {
    if (!ui.player.getAttribute("src")) return;
    const code = ui.player.error ? ui.player.error.code : 0;
    ui.audioNote.textContent =
      code === 4
        ? "The recording is not stored or cannot be played · Запись недоступна"
        : "The recording could not be loaded · Не удалось загрузить запись";
  });

  function playFrom(start) {
    const target = Math.max(0, num(start) - PLAY_LEAD_S);
    const player = ui.player;
    const go = () => {
      player.currentTime = target;
      const playing = player.play();
      if (playing && typeof playing.catch === "function") {
        playing.catch((err) => {
          ui.audioNote.textContent = `Press play to listen from ${clock(target)} (${str(err && err.name)})`;
        });
      }
    };
    if (player.readyState >= 1) go();
    else {
      player.addEventListener("loadedmetadata", go, { once: true });
      if (player.networkState === 0 || player.networkState === 3) player.load();
    }
    ui.audioNote.textContent = `▶ ${clock(target)}`;
  }

  function playButton(start, label) {
    const button = h("button", "play-from", "▶ play from here");
    button.type = "button";
    button.dataset.start = String(num(start));
    button.setAttribute("aria-label", `Play from ${clock(Math.max(0, num(start) - PLAY_LEAD_S))}: ${label}`);
    button.addEventListener("click", () => playFrom(start));
    return button;
  }

  function renderScorecard(report) {
    const card = report && report.scorecard && typeof report.scorecard === "object" ? report.scorecard : null;
    const items = list(card && card.items).filter((i) => i && typeof i === "object");
    const turns = new Map(list(report && report.turns).map((t) => [Number(t && t.index), t]));
    const rows = items.map((item) => {
      const tr = h("tr", "score-item");
      tr.dataset.itemId = str(item.id);
      const status = ITEM_STATES[item.status] ? item.status : "advisory";
      tr.dataset.status = status;
      const title = h("td", "item-title");
      title.append(h("span", "item-name", str(item.title) || str(item.id)));
      if (item.note) title.append(h("span", "item-note", str(item.note)));
      const statusCell = h("td");
      const badge = h("span", "item-status", `${ITEM_STATES[status].icon} ${ITEM_STATES[status].label}`);
      badge.dataset.status = status;
      statusCell.append(badge);
      const refs = h("td", "item-turns");
      for (const index of list(item.turns)) {
        const n = Number(index);
        if (!Number.isInteger(n)) continue;
        const turn = turns.get(n);
        const link = h("a", "turn-ref", turn ? clock(turn.start) : `#${n + 1}`);
        link.href = `#turn-${n}`;
        link.dataset.turn = String(n);
        link.setAttribute("aria-label", `Show turn ${n + 1}${turn ? ` at ${clock(turn.start)}` : ""}`);
        link.addEventListener("click", (event) => {
          event.preventDefault();
          showTurn(n);
        });
        refs.append(link, document.createTextNode(" "));
      }
      tr.append(title, statusCell, refs);
      return tr;
    });
    ui.scorecardBody.replaceChildren(...rows);
    ui.scorecardTable.hidden = rows.length === 0;
    ui.scorecardEmpty.hidden = rows.length > 0;
    const parts = [];
    if (card && isNum(card.score)) parts.push(percent(card.score));
    if (card && isNum(card.passed)) parts.push(`${card.passed} passed`);
    if (card && isNum(card.failed)) parts.push(`${card.failed} failed`);
    ui.scorecardSummary.textContent = parts.length ? `· ${parts.join(", ")}` : "";
  }

  function renderTalkTime(report) {
    const talk = report && report.talk_time && typeof report.talk_time === "object" ? report.talk_time : {};
    const roles = ["agent", "customer", "unknown"].filter((r) => isNum(talk[r]) && (r !== "unknown" || talk[r] > 0));
    const total = roles.reduce((sum, r) => sum + num(talk[r]), 0);
    const rows = roles.map((role) => {
      const row = h("div", `talk-row talk-row--${role}`);
      row.dataset.speaker = role;
      const share = total > 0 ? num(talk[role]) / total : 0;
      row.append(h("span", "talk-who", SPEAKERS[role]));
      const bar = h("span", "talk-bar");
      const fill = h("span", "talk-fill");
      fill.style.width = `${Math.round(share * 100)}%`;
      bar.append(fill);
      row.append(bar, h("span", "talk-value", `${clock(talk[role])} · ${Math.round(share * 100)}%`));
      return row;
    });
    ui.talkTime.replaceChildren(...rows);
    if (!rows.length) ui.talkTime.append(h("p", "muted note", "No talk time in this report"));
    const extra = [];
    const silences = list(report && report.silences);
    const overtalk = list(report && report.overtalk);
    if (report && Array.isArray(report.silences)) {
      const longest = silences.reduce((m, s) => Math.max(m, num(s && s.end) - num(s && s.start)), 0);
      extra.push(`${silences.length} silence${silences.length === 1 ? "" : "s"}${longest ? ` (longest ${longest.toFixed(1)} s)` : ""}`);
    }
    if (report && Array.isArray(report.overtalk)) {
      extra.push(`${overtalk.length} overtalk${overtalk.length === 1 ? "" : "s"}`);
    }
    ui.timingExtra.textContent = extra.join(" · ");
  }

  function alertDetections(report) {
    return list(report && report.detections).filter((d) => d && typeof d === "object");
  }

  function renderTranscript(report) {
    state.turnEls.clear();
    const byTurn = new Map();
    for (const d of alertDetections(report)) {
      const n = Number(d.turn);
      if (!byTurn.has(n)) byTurn.set(n, []);
      byTurn.get(n).push(d);
    }
    const items = list(report && report.turns)
      .filter((t) => t && typeof t === "object")
      .map((turn, position) => {
        const index = Number.isInteger(Number(turn.index)) ? Number(turn.index) : position;
        const speaker = speakerOf(turn.speaker);
        const li = h("li", `turn turn--${speaker}`);
        li.id = `turn-${index}`;
        li.tabIndex = -1;
        li.dataset.index = String(index);
        li.dataset.speaker = speaker;
        li.dataset.start = String(num(turn.start));
        const head = h("div", "turn-meta");
        head.append(h("span", "turn-speaker", SPEAKERS[speaker]), h("span", "turn-time", clock(turn.start)));
        const found = byTurn.get(index) || [];
        const alerts = found.filter((d) => d.kind === "forbidden" || d.kind === "trigger");
        const chips = h("span", "turn-chips");
        for (const d of found) {
          const kind = kindOf(d.kind);
          const chip = h("span", `turn-flag turn-flag--${kind}`);
          chip.dataset.category = str(d.category);
          chip.dataset.kind = kind;
          chip.append(h("span", "turn-flag-kind", KINDS[kind]), h("span", "turn-flag-title", str(d.title) || str(d.category)));
          chips.append(chip);
        }
        head.append(chips);
        head.append(playButton(turn.start, `turn ${index + 1}`));
        li.append(head);
        li.append(turnText(str(turn.text), alerts));
        if (alerts.length) {
          li.classList.add("is-flagged", `is-flagged-${alerts.some((d) => d.kind === "forbidden") ? "forbidden" : "trigger"}`);
        }
        state.turnEls.set(index, li);
        return li;
      });
    ui.transcriptList.replaceChildren(...items);
    ui.transcriptEmpty.hidden = items.length > 0;
  }

  // The turn's text with the span of each alert that fired marked (text nodes only).
  function turnText(text, alerts) {
    const p = h("p", "turn-text");
    const spans = alerts
      .map((d) => list(d.span).map(Number))
      .filter((s) => s.length === 2 && Number.isInteger(s[0]) && Number.isInteger(s[1]) && s[0] < s[1] && s[1] <= text.length)
      .sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [a, b] of spans) {
      if (a < at) continue; // overlapping spans: keep the first
      if (a > at) p.append(document.createTextNode(text.slice(at, a)));
      p.append(h("mark", "turn-span", text.slice(a, b)));
      at = b;
    }
    if (at < text.length) p.append(document.createTextNode(text.slice(at)));
    return p;
  }

  function showTurn(index) {
    const li = state.turnEls.get(index);
    if (!li) {
      announce(`Turn ${index + 1} is not in the transcript`);
      return;
    }
    for (const el of ui.transcriptList.querySelectorAll(".turn.is-highlighted")) el.classList.remove("is-highlighted");
    // Restart the flash animation even on the same turn.
    void li.offsetWidth;
    li.classList.add("is-highlighted");
    li.scrollIntoView({ block: "center", behavior: "auto" });
    li.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- flags

  function renderFlags(call, report) {
    const detections = list(report && report.detections);
    const flags = list(call.flags).filter((f) => f && typeof f === "object");
    const items = flags.map((flag) => renderFlag(flag, detections[Number(flag.detection)]));
    ui.flagList.replaceChildren(...items);
    ui.flagsEmpty.hidden = items.length > 0;
    updateFlagCount();
  }

  function updateFlagCount() {
    const flags = list(state.detail && state.detail.flags);
    const pending = flags.filter((f) => f.status === "pending").length;
    ui.flagCount.textContent = flags.length ? `· ${pending} of ${flags.length} to review` : "";
  }

  function renderFlag(flag, detection) {
    const kind = kindOf(flag.kind);
    const li = h("li", `flag flag--${kind}`);
    li.dataset.flagId = str(flag.id);
    li.dataset.kind = kind;
    li.dataset.category = str(flag.category);
    const title = (detection && detection.category === flag.category && str(detection.title)) || categoryTitle(str(flag.category));

    const head = h("div", "flag-head");
    head.append(h("span", "flag-kind", KINDS[kind]), h("span", "flag-time", `${clock(flag.start)}–${clock(flag.end)}`));
    const speaker = speakerOf(flag.speaker);
    head.append(h("span", `flag-speaker flag-speaker--${speaker}`, SPEAKERS[speaker]));
    li.append(head);
    const titleEl = h("p", "flag-title", title);
    const cat = h("code", "flag-category", str(flag.category));
    titleEl.append(document.createTextNode(" "), cat);
    li.append(titleEl);
    li.append(h("blockquote", "flag-text", str(flag.text)));
    if (isNum(flag.score)) li.append(h("p", "flag-score muted", `confidence ${Number(flag.score).toFixed(2)}`));

    const actions = h("div", "flag-actions");
    actions.append(playButton(flag.start, title));
    const turnIndex = detection && Number.isInteger(Number(detection.turn)) ? Number(detection.turn) : null;
    if (turnIndex !== null) {
      const show = h("button", "flag-show link-button", "show in transcript");
      show.type = "button";
      show.addEventListener("click", () => showTurn(turnIndex));
      actions.append(show);
    }
    const noteId = `flag-note-${str(flag.id)}`;
    const noteLabel = h("label", "visually-hidden", `Note on ${title}`);
    noteLabel.htmlFor = noteId;
    const note = h("input", "flag-note");
    note.id = noteId;
    note.type = "text";
    note.maxLength = 2000;
    note.placeholder = "note (optional) · комментарий";
    note.value = str(flag.note);
    const confirm = h("button", "flag-confirm", "✓ Confirm · Верно");
    confirm.type = "button";
    const dismiss = h("button", "flag-dismiss", "✗ Dismiss · Ошибка");
    dismiss.type = "button";
    const reset = h("button", "flag-reset link-button", "undo");
    reset.type = "button";
    confirm.addEventListener("click", () => review(li, flag, "confirmed"));
    dismiss.addEventListener("click", () => review(li, flag, "dismissed"));
    reset.addEventListener("click", () => review(li, flag, "pending"));
    actions.append(noteLabel, note, confirm, dismiss, reset);
    li.append(actions);
    const stateEl = h("p", "flag-state");
    stateEl.setAttribute("role", "status");
    li.append(stateEl);
    showFlagState(li, flag);
    return li;
  }

  function showFlagState(li, flag) {
    const status = FLAG_STATES[flag.status] ? flag.status : "pending";
    li.dataset.status = status;
    li.querySelector(".flag-confirm").setAttribute("aria-pressed", String(status === "confirmed"));
    li.querySelector(".flag-dismiss").setAttribute("aria-pressed", String(status === "dismissed"));
    li.querySelector(".flag-reset").hidden = status === "pending";
    const stateEl = li.querySelector(".flag-state");
    stateEl.dataset.status = status;
    stateEl.textContent =
      status !== "pending" && flag.reviewed_at ? `${FLAG_STATES[status]} · ${when(flag.reviewed_at)}` : FLAG_STATES[status];
  }

  async function review(li, flag, status) {
    const note = li.querySelector(".flag-note");
    const buttons = li.querySelectorAll(".flag-actions button:not(.play-from):not(.flag-show)");
    for (const b of buttons) b.disabled = true;
    li.setAttribute("aria-busy", "true");
    const callId = state.callId;
    try {
      const updated = await api(`/v1/flags/${encodeURIComponent(str(flag.id))}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ status, note: status === "pending" ? "" : note.value }),
      });
      Object.assign(flag, updated || { status });
      if (status === "pending") note.value = "";
      if (state.callId === callId) {
        showFlagState(li, flag);
        updateFlagCount();
        updateRowPending();
      }
      announce(FLAG_STATES[flag.status] || str(flag.status));
    } catch (err) {
      const stateEl = li.querySelector(".flag-state");
      stateEl.textContent = `Could not save · Не сохранено: ${err.message}`;
      stateEl.dataset.status = "error";
    } finally {
      for (const b of buttons) b.disabled = false;
      li.removeAttribute("aria-busy");
    }
  }

  // ---------------------------------------------------------------- search across calls

  function searchParams() {
    const params = new URLSearchParams();
    params.set("q", ui.searchQ.value.trim());
    if (ui.searchSpeaker.value) params.set("speaker", ui.searchSpeaker.value);
    if (ui.searchSource.value) params.set("source", ui.searchSource.value);
    if (ui.searchAgent.value.trim()) params.set("agent", ui.searchAgent.value.trim());
    return params;
  }

  async function runSearch(more = false) {
    if (!more) {
      if (!ui.searchQ.value.trim()) {
        ui.searchQ.focus();
        return;
      }
      state.search.params = searchParams();
      state.search.offset = 0;
      ui.searchResults.replaceChildren();
    }
    const params = new URLSearchParams(state.search.params);
    params.set("limit", String(SEARCH_PAGE));
    params.set("offset", String(state.search.offset));
    const seq = ++state.search.seq;
    ui.searchBox.hidden = false;
    ui.searchNote.textContent = "Searching… · Ищем…";
    ui.searchNote.dataset.state = "busy";
    ui.searchMore.hidden = true;
    try {
      const body = await api(`/v1/search?${params}`);
      if (seq !== state.search.seq) return;
      const hits = list(body && body.hits).filter((hit) => hit && typeof hit === "object");
      ui.searchResults.append(...hits.map(renderHit));
      state.search.offset += hits.length;
      const total = Number(body && body.total) || 0;
      ui.searchCount.textContent = `· ${total}`;
      ui.searchNote.dataset.state = "done";
      ui.searchNote.textContent = total
        ? `${state.search.offset} of ${total} turns, newest call first · Новые звонки сверху`
        : "Nothing found · Ничего не найдено";
      ui.searchMore.hidden = state.search.offset >= total;
      announce(total ? `${total} turns found` : "Nothing found");
    } catch (err) {
      if (seq !== state.search.seq) return;
      ui.searchCount.textContent = "";
      ui.searchNote.dataset.state = "error";
      ui.searchNote.textContent = err.message;
    }
  }

  // One hit: where it is, the turn before, the turn with the matched words marked, the turn after.
  function renderHit(hit) {
    const li = h("li", "search-hit");
    li.dataset.source = str(hit.source);
    li.dataset.callId = str(hit.call_id);
    const button = h("button", "search-open");
    button.type = "button";
    const meta = h("span", "search-meta");
    meta.append(
      h("span", `search-source search-source--${hit.source === "live" ? "live" : "audited"}`,
        hit.source === "live" ? "live · звонок" : "audited · запись"),
      h("span", "search-date", when(hit.call_date)),
      h("span", "search-time", `${clock(hit.start)}`),
    );
    if (hit.agent) meta.append(h("span", "search-agent", str(hit.agent)));
    button.append(meta);
    if (hit.before) button.append(contextLine(hit.before, "before"));
    const line = h("span", `search-line search-line--hit turn--${speakerOf(hit.speaker)}`);
    line.append(h("span", "search-speaker", SPEAKERS[speakerOf(hit.speaker)]));
    const text = h("span", "search-text");
    for (const segment of list(hit.segments)) {
      if (!segment || typeof segment !== "object") continue;
      text.append(segment.match ? h("mark", "search-mark", str(segment.text)) : document.createTextNode(str(segment.text)));
    }
    line.append(text);
    button.append(line);
    if (hit.after) button.append(contextLine(hit.after, "after"));
    button.addEventListener("click", () => openHit(hit));
    li.append(button);
    return li;
  }

  function contextLine(turn, where) {
    const line = h("span", `search-line search-line--${where}`);
    line.append(h("span", "search-speaker", SPEAKERS[speakerOf(turn.speaker)]), h("span", "search-text", str(turn.text)));
    return line;
  }

  function openHit(hit) {
    const at = { turn: Number(hit.turn) || 0, start: num(hit.start) };
    if (hit.source === "live") openLive(str(hit.call_id), at);
    else openCall(str(hit.call_id), { at });
  }

  // A live call (no recording): its stored turns and alerts, read-only, scrolled to the turn at `at.start`.
  async function openLive(id, at) {
    if (!ID_RE.test(id)) {
      showError(`Not a call id: ${id}`);
      return;
    }
    const seq = ++state.detailSeq;
    state.callId = null;
    markCurrentRow();
    ui.player.pause();
    const url = new URL(window.location.href);
    url.search = "";
    url.searchParams.set("live", id);
    if (at) url.searchParams.set("t", String(at.start));
    window.history.replaceState(null, "", url);
    try {
      const call = (await api(`/v1/calls/${encodeURIComponent(id)}`)) || {};
      if (seq !== state.detailSeq) return;
      renderLive(call, at);
    } catch (err) {
      if (seq !== state.detailSeq) return;
      showError(`Could not open the live call ${id}: ${err.message}`);
    }
  }

  function renderLive(call, at) {
    state.detail = null;
    ui.detailEmpty.hidden = true;
    ui.detailBody.hidden = true;
    ui.liveBody.hidden = false;
    ui.liveBody.dataset.callId = str(call.call_id);
    ui.liveTitle.textContent = `Live call · Звонок ${str(call.call_id)}`;
    document.title = `${str(call.call_id)} · callbuffer review`;
    const meta = [];
    if (call.agent) meta.push(`agent ${str(call.agent)}`);
    if (call.started_at) meta.push(`started ${when(call.started_at)}`);
    if (call.status) meta.push(str(call.status));
    if (call.language) meta.push(`language ${str(call.language)}`);
    ui.liveMeta.textContent = meta.join(" · ");
    const alerts = list(call.alerts).filter((a) => a && typeof a === "object");
    let target = null;
    const items = list(call.turns)
      .filter((t) => t && typeof t === "object")
      .map((turn, index) => {
        const speaker = speakerOf(turn.speaker);
        const li = h("li", `turn turn--${speaker}`);
        li.tabIndex = -1;
        li.dataset.index = String(index);
        li.dataset.start = String(num(turn.start));
        const head = h("div", "turn-meta");
        head.append(h("span", "turn-speaker", SPEAKERS[speaker]), h("span", "turn-time", clock(turn.start)));
        const mine = alerts.filter((a) => num(a.start) === num(turn.start) && speakerOf(a.speaker) === speaker);
        const chips = h("span", "turn-chips");
        for (const a of mine) {
          const kind = kindOf(a.kind);
          const chip = h("span", `turn-flag turn-flag--${kind}`);
          chip.dataset.category = str(a.category);
          chip.append(h("span", "turn-flag-kind", KINDS[kind]), h("span", "turn-flag-title", str(a.title) || str(a.category)));
          chips.append(chip);
        }
        head.append(chips);
        li.append(head, turnText(str(turn.text), mine));
        if (at && target === null && Math.abs(num(turn.start) - num(at.start)) < 0.005) target = li;
        return li;
      });
    ui.liveTranscript.replaceChildren(...items);
    if (target) {
      void target.offsetWidth;
      target.classList.add("is-highlighted");
      target.scrollIntoView({ block: "center", behavior: "auto" });
      target.focus({ preventScroll: true });
    }
  }

  // ---------------------------------------------------------------- upload

  function setUploadStatus(stateName, text) {
    ui.uploadStatus.dataset.state = stateName;
    ui.uploadStatus.textContent = text;
  }

  async function upload(event) {
    event.preventDefault();
    if (state.uploading) return;
    const files = [...(ui.uploadFiles.files || [])];
    if (!files.length) {
      setUploadStatus("error", "Choose one or more recordings first · Выберите файлы");
      return;
    }
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    form.append("channels", ui.uploadChannels.value);
    if (ui.uploadLanguage.value) form.append("language", ui.uploadLanguage.value);
    form.append("keep_pii", ui.uploadKeepPii.checked ? "true" : "false");
    if (ui.uploadAgent.value.trim()) form.append("agent", ui.uploadAgent.value.trim());

    state.uploading = true;
    ui.uploadSubmit.disabled = true;
    setUploadStatus("uploading", `Uploading ${files.length} file${files.length === 1 ? "" : "s"}… · Загрузка…`);
    try {
      let job;
      try {
        job = await api("/v1/audits", { method: "POST", body: form });
      } catch (err) {
        const prefix =
          err.status === 413 ? "File too large · Слишком большой файл" : "Upload failed · Ошибка загрузки";
        const code = err.status ? ` (HTTP ${err.status})` : "";
        setUploadStatus("error", `${prefix}${code}: ${err.message}`);
        return;
      }
      ui.uploadForm.reset();
      await followJob(str(job && job.id));
    } finally {
      state.uploading = false;
      ui.uploadSubmit.disabled = false;
    }
  }

  async function followJob(jobId) {
    if (!ID_RE.test(jobId)) {
      setUploadStatus("error", "The server did not return a job id");
      return;
    }
    setUploadStatus("queued", `Queued for audit · В очереди (${jobId})`);
    await loadList();
    for (;;) {
      await new Promise((resolve) => window.setTimeout(resolve, JOB_POLL_MS));
      let job;
      try {
        job = await api(`/v1/audits/${encodeURIComponent(jobId)}`);
      } catch (err) {
        setUploadStatus("error", `Could not follow the audit · Не удалось узнать статус: ${err.message}`);
        return;
      }
      const calls = list(job && job.calls);
      const finished = calls.filter((c) => c && (c.status === "done" || c.status === "failed")).length;
      const status = str(job && job.status);
      if (status === "done" || status === "failed") {
        const failed = calls.filter((c) => c && c.status === "failed");
        const reasons = failed.map((c) => `${str(c.file)}: ${str(c.error)}`).join("; ");
        if (failed.length) {
          setUploadStatus("failed", `Audited ${calls.length - failed.length} of ${calls.length}; failed · ошибка: ${reasons}`);
        } else {
          setUploadStatus("done", `Audited ${calls.length} recording${calls.length === 1 ? "" : "s"} · Готово`);
        }
        await loadList();
        return;
      }
      setUploadStatus(
        status === "running" ? "running" : "queued",
        `${status === "running" ? "Auditing" : "Queued"}… ${finished} of ${calls.length} done · Проверяется…`,
      );
    }
  }

  // ---------------------------------------------------------------- wiring

  ui.errorDismiss.addEventListener("click", () => {
    ui.errorBanner.hidden = true;
  });
  ui.uploadForm.addEventListener("submit", upload);
  ui.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch(false);
  });
  ui.searchMore.addEventListener("click", () => runSearch(true));
  ui.searchClear.addEventListener("click", () => {
    state.search.seq += 1;
    ui.searchBox.hidden = true;
    ui.searchResults.replaceChildren();
  });
  ui.filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    applyFilters();
  });
  for (const input of [ui.filterCategory, ui.filterSince, ui.filterUntil, ui.filterMin, ui.filterMax]) {
    input.addEventListener("change", applyFilters);
  }
  ui.filterReset.addEventListener("click", () => {
    ui.filterForm.reset();
    applyFilters();
  });
  ui.refreshList.addEventListener("click", () => {
    loadList();
    if (state.callId) openCall(state.callId, { focus: false });
  });

  function applyFilters() {
    const active = [ui.filterCategory, ui.filterMin, ui.filterMax, ui.filterSince, ui.filterUntil].some((i) => i.value !== "");
    ui.filterForm.dataset.active = String(active);
    loadList();
  }

  ui.filterForm.dataset.active = "false";

  // Shown once signed in (again): the list, and the call in the address (?call=ID).
  function enter() {
    state.shown = true;
    ui.errorBanner.hidden = true;
    loadList();
    const params = new URLSearchParams(window.location.search);
    const live = params.get("live");
    const at = params.has("t") ? { turn: Number(params.get("turn")) || 0, start: num(params.get("t")) } : null;
    if (!state.callId && live && ID_RE.test(live)) {
      openLive(live, at);
      return;
    }
    const wanted = state.callId || params.get("call");
    if (wanted && ID_RE.test(wanted)) openCall(wanted, { focus: false, at: state.callId ? null : at });
  }

  // Signed out: stop polling and playing; what answers are still on their way are not shown.
  function leave() {
    state.shown = false;
    window.clearTimeout(state.listTimer);
    state.listTimer = null;
    state.listSeq += 1;
    state.detailSeq += 1;
    ui.player.pause();
  }

  auth.start({ roles: ["reviewer"], audience: { en: "reviewers", ru: "проверяющих" }, enter, leave });
})();
