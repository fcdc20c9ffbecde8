// callbuffer trends page (/trends), for reviewers, trainers and admins: alerts per 100 calls by category,
// by agent and team and over time, the share of calls whose scorecard passed, and good practices per
// agent, over live and audited calls, with filters. Each plot is a card from charts.js with its own CSV.
//
// Contract with the server (server/stats/api.py): GET /v1/stats/options -> {agents, teams, alerts,
// practices: [{id, title}]}; GET /v1/stats and /v1/stats.csv (see charts.js).
// The filters are kept in the page's address (?since=&until=&agent=…), so a view can be shared.
"use strict";

(() => {
  const { h, str, list, auth, authFetch } = window.cb;
  const { plot, CATEGORY_COLOURS } = window.cbCharts;

  const $ = (id) => document.getElementById(id);
  const form = $("trend-filters");
  const fields = ["since", "until", "period", "agent", "team", "category", "source"];
  const titles = {};
  const kinds = {}; // category -> "alert" | "practice"
  const alertKinds = {}; // alert category -> "forbidden" | "trigger"
  let plots = [];

  const label = (key) => titles[key] || key;

  function buildPlots(practices) {
    const colour = (key) => CATEGORY_COLOURS[alertKinds[key]] || CATEGORY_COLOURS.forbidden;
    const perCall = "alerts per 100 calls";
    const choice = {
      param: "category",
      label: "Which good practice · Какая практика",
      options: practices.map((c) => ({ value: c.id, text: str(c.title) })),
    };
    const specs = [
      { id: "plot-alerts-category", title: "Alerts per 100 calls, by category · Алерты на 100 звонков", metric: "alerts", group: "category", kind: "hbar", axis: perCall, colour, uses: "alert" },
      { id: "plot-alerts-agent", title: "Alerts per 100 calls, by agent · По операторам", metric: "alerts", group: "agent", kind: "bar", axis: perCall, uses: "alert" },
      { id: "plot-alerts-team", title: "Alerts per 100 calls, by team · По командам", metric: "alerts", group: "team", kind: "bar", axis: perCall, uses: "alert" },
      { id: "plot-alerts-time", title: "Alerts per 100 calls, over time · Динамика", metric: "alerts", group: "week", kind: "line", axis: perCall, uses: "alert", time: true },
      { id: "plot-pass-time", title: "Scorecard passed, % of calls, over time · Оценка пройдена", metric: "pass", group: "week", kind: "line", axis: "% passed", uses: "none", time: true },
      { id: "plot-pass-agent", title: "Scorecard passed, % of calls, by agent · По операторам", metric: "pass", group: "agent", kind: "bar", axis: "% passed", uses: "none" },
      { id: "plot-practices-agent", title: "Good practice, % of calls, by agent · Хорошие практики", metric: "practices", group: "agent", kind: "bar", axis: "% of calls", colour: () => CATEGORY_COLOURS.practice, choice, uses: "practice" },
      { id: "plot-practices-category", title: "Good practices, % of calls · Хорошие практики", metric: "practices", group: "category", kind: "hbar", axis: "% of calls", colour: () => CATEGORY_COLOURS.practice, uses: "practice" },
    ];
    plots = specs.map((spec) => ({ spec, uses: spec.uses, time: spec.time, card: plot({ ...spec, label }) }));
    $("plots").replaceChildren(...plots.map((p) => p.card.node));
  }

  function option(value, text) {
    const node = h("option", "", text);
    node.value = value;
    return node;
  }

  async function loadOptions() {
    const response = await authFetch("/v1/stats/options", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    for (const c of list(body.alerts)) {
      titles[c.id] = str(c.title);
      kinds[c.id] = "alert";
      alertKinds[c.id] = str(c.kind);
    }
    for (const c of list(body.practices)) {
      titles[c.id] = str(c.title);
      kinds[c.id] = "practice";
    }
    $("f-agent").replaceChildren(option("", "all · все"), ...list(body.agents).map((a) => option(a, a)), option(body.no_agent, body.no_agent));
    $("f-team").replaceChildren(option("", "all · все"), ...list(body.teams).map((t) => option(t, t)), option(body.no_team, body.no_team));
    const alerts = h("optgroup");
    alerts.label = "Alerts · Алерты";
    alerts.append(...list(body.alerts).map((c) => option(c.id, str(c.title))));
    const practices = h("optgroup");
    practices.label = "Good practices · Практики";
    practices.append(...list(body.practices).map((c) => option(c.id, str(c.title))));
    $("f-category").replaceChildren(option("", "all · все"), alerts, practices);
    return list(body.practices);
  }

  function fromAddress() {
    const q = new URLSearchParams(window.location.search);
    for (const name of fields) {
      const value = q.get(name);
      if (value !== null && form.elements[name]) form.elements[name].value = value;
    }
  }

  function values() {
    const out = {};
    for (const name of fields) out[name] = form.elements[name].value;
    return out;
  }

  function showError(text) {
    $("filter-error").textContent = text;
    $("filter-error").hidden = !text;
  }

  function apply() {
    const v = values();
    if (v.since && v.until && v.until < v.since) {
      showError("“To” is before “From” · Дата «по» раньше даты «с»");
      return;
    }
    showError("");
    const address = new URLSearchParams();
    for (const [name, value] of Object.entries(v)) if (value && !(name === "source" && value === "all")) address.set(name, value);
    window.history.replaceState(null, "", `${window.location.pathname}${address.toString() ? `?${address}` : ""}`);
    const base = { since: v.since, until: v.until, agent: v.agent, team: v.team, source: v.source };
    const kind = kinds[v.category];
    for (const p of plots) {
      const params = { ...base };
      if (v.category && kind === p.uses) {
        if (p.spec.choice) p.card.choose(v.category);
        else params.category = v.category;
      }
      if (p.time) params.group = v.period;
      p.card.load(params);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  $("f-reset").addEventListener("click", () => {
    form.reset();
    apply();
  });

  auth.start({
    roles: ["reviewer", "trainer"],
    audience: { en: "reviewers, trainers and admins", ru: "контролёров, тренеров и администраторов" },
    async enter() {
      let practices = [];
      try {
        practices = await loadOptions();
      } catch (err) {
        showError(`Could not load the filters · Не удалось загрузить фильтры: ${str(err && err.message)}`);
      }
      buildPlots(practices);
      fromAddress();
      apply();
    },
    leave() {
      $("plots").replaceChildren();
    },
  });
})();
