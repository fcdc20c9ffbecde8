// callbuffer: an agent's own page (/me): their alerts per 100 calls by category and over time, the share
// of their calls whose scorecard passed, their good practices, and their calls that raised alerts, with
// the alerts. Only ever the signed-in agent's own: the page asks for `agent=<me>`, and the server
// (server/stats/api.py) answers an agent with their own numbers whatever is asked (another agent: 403).
//
// Contract: GET /v1/stats, /v1/stats.csv (see charts.js); GET /v1/stats/options -> {alerts, practices};
// GET /v1/stats/calls?agent=&since=&until=&source=&limit= -> {"calls": [{source, id, created_at, score,
// alerts: [{category, kind, speaker, text, start}]}]}.
"use strict";

(() => {
  const { h, str, list, clock, when, auth, authFetch } = window.cb;
  const { plot, queryOf, CATEGORY_COLOURS } = window.cbCharts;

  const $ = (id) => document.getElementById(id);
  const form = $("my-filters");
  const titles = {};
  const alertKinds = {};
  let me = null;
  let plots = [];

  const label = (key) => titles[key] || key;

  function buildPlots() {
    const colour = (key) => CATEGORY_COLOURS[alertKinds[key]] || CATEGORY_COLOURS.forbidden;
    plots = [
      { spec: { id: "my-alerts-category", title: "My alerts per 100 calls, by category · Мои алерты", metric: "alerts", group: "category", kind: "hbar", axis: "alerts per 100 calls", label, colour } },
      { spec: { id: "my-alerts-time", title: "My alerts per 100 calls, over time · Динамика", metric: "alerts", group: "week", kind: "line", axis: "alerts per 100 calls", label }, time: true },
      { spec: { id: "my-pass-time", title: "My scorecard passed, % of calls · Оценка пройдена", metric: "pass", group: "week", kind: "line", axis: "% passed", label }, time: true },
      { spec: { id: "my-practices", title: "My good practices, % of calls · Мои хорошие практики", metric: "practices", group: "category", kind: "hbar", axis: "% of calls", label, colour: () => CATEGORY_COLOURS.practice } },
    ].map((p) => ({ ...p, card: plot(p.spec) }));
    $("plots").replaceChildren(...plots.map((p) => p.card.node));
  }

  async function loadTitles() {
    const response = await authFetch("/v1/stats/options", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    for (const c of [...list(body.alerts), ...list(body.practices)]) titles[c.id] = str(c.title);
    for (const c of list(body.alerts)) alertKinds[c.id] = str(c.kind);
  }

  function params() {
    const v = { since: form.elements.since.value, until: form.elements.until.value, source: form.elements.source.value };
    return { ...v, agent: me.name };
  }

  function apply() {
    const p = params();
    if (p.since && p.until && p.until < p.since) {
      $("filter-error").textContent = "“To” is before “From” · Дата «по» раньше даты «с»";
      $("filter-error").hidden = false;
      return;
    }
    $("filter-error").hidden = true;
    for (const item of plots) item.card.load(item.time ? { ...p, group: form.elements.period.value } : p);
    loadCalls(p);
  }

  async function loadCalls(p) {
    const note = $("my-calls-note");
    note.textContent = "Loading… · Загрузка…";
    try {
      const response = await authFetch(`/v1/stats/calls?${queryOf({ ...p, limit: 100 })}`, { headers: { Accept: "application/json" } });
      const body = await response.json();
      if (!response.ok) throw new Error(str(body && body.detail) || `HTTP ${response.status}`);
      showCalls(list(body.calls));
    } catch (err) {
      note.textContent = `Could not load · Не удалось загрузить: ${str(err && err.message)}`;
    }
  }

  function showCalls(calls) {
    $("my-calls-count").textContent = `(${calls.length})`;
    $("my-calls-note").textContent = calls.length ? "" : "No call raised an alert · Алертов не было";
    $("my-calls").replaceChildren(
      ...calls.map((call) => {
        const item = h("li", "my-call");
        item.dataset.callId = str(call.id);
        const head = h("div", "my-call-head");
        head.append(
          h("span", "", when(call.created_at)),
          h("span", "chip", call.source === "audited" ? "audited · запись" : "live · живой"),
          h("span", "muted", str(call.id)),
          h("span", "muted", call.score === null || call.score === undefined ? "" : `score ${Math.round(Number(call.score) * 100)}%`),
        );
        const alerts = h("ul", "my-call-alerts");
        for (const a of list(call.alerts)) {
          const line = h("li", "my-alert");
          line.append(h("span", `kind-${str(a.kind)}`, label(str(a.category))), document.createTextNode(` ${clock(a.start)} «${str(a.text)}»`));
          alerts.append(line);
        }
        item.append(head, alerts);
        return item;
      }),
    );
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });

  auth.start({
    roles: ["agent"],
    audience: { en: "agents", ru: "операторов" },
    async enter(who) {
      me = who;
      $("me-name").textContent = `· ${str(who.name)}`;
      buildPlots();
      try {
        await loadTitles();
      } catch (err) {
        $("filter-error").textContent = `Could not load the categories: ${str(err && err.message)}`;
        $("filter-error").hidden = false;
      }
      apply();
    },
    leave() {
      me = null;
      $("plots").replaceChildren();
      $("my-calls").replaceChildren();
    },
  });
})();
