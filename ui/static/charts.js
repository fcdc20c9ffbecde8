// callbuffer trend plots, shared by the trends page (/trends) and an agent's own page (/me): each plot is a
// card with its title, a "CSV" link to exactly its numbers, a Chart.js canvas (vendored in
// /static/vendor/chartjs, no CDN), and the same numbers as a table for screen readers (and anyone who
// would rather read them). Loaded after common.js and the vendored Chart.js; exposes `window.cbCharts`.
//
// Contract with the server (server/stats/api.py):
//   GET /v1/stats?metric=alerts|pass|practices&group=category|agent|team|day|week&since=&until=&agent=
//                 &team=&category=&source=   -> {"unit", "rows": [{key, series, calls, count, value}], "total"}
//   GET /v1/stats.csv?…same…                  -> the same rows as CSV
// `value` is null where a group has no calls (a gap in a line, no bar).
"use strict";

window.cbCharts = Object.freeze(
  (() => {
    const { h, str, num, list, authFetch } = window.cb;

    const PALETTE = ["#2457c5", "#0f7a5a", "#a15c00", "#b42318", "#6d28d9", "#0e7490", "#be185d", "#4d7c0f"];
    const CATEGORY_COLOURS = { forbidden: "#b42318", trigger: "#a15c00", practice: "#157f3c" };

    // Query string of the defined, non-empty parameters.
    function queryOf(params) {
      const q = new URLSearchParams();
      for (const [name, value] of Object.entries(params)) {
        if (value !== undefined && value !== null && value !== "") q.set(name, String(value));
      }
      return q.toString();
    }

    // A plot card. spec: {id, title, metric, group, kind: "bar"|"hbar"|"line", axis (the value axis' title),
    // label(key) -> a key's label, colour(key) -> bar colour (optional), choice (optional): {param, label,
    // options: [{value, text}]}, a select in the card's head whose value is sent as `param` (e.g. which
    // practice to show per agent)}. Returns {node, load(params), choose(value)}; load() fetches and draws.
    function plot(spec) {
      const card = h("section", "plot box");
      card.id = spec.id;
      card.dataset.metric = spec.metric;
      const head = h("div", "plot-head");
      const title = h("h2", "plot-title", spec.title);
      title.id = `${spec.id}-title`;
      card.setAttribute("aria-labelledby", title.id);
      const csv = h("a", "plot-csv", "CSV");
      csv.setAttribute("aria-label", `${spec.title}: download the numbers as CSV`);
      let select = null;
      if (spec.choice) {
        select = h("select", "plot-choice");
        select.id = `${spec.id}-choice`;
        select.setAttribute("aria-label", spec.choice.label);
        for (const o of list(spec.choice.options)) {
          const node = h("option", "", o.text);
          node.value = o.value;
          select.append(node);
        }
        select.addEventListener("change", () => last && load(last));
      }
      head.append(...(select ? [title, select, csv] : [title, csv]));
      const note = h("p", "plot-note muted");
      note.setAttribute("role", "status");
      const frame = h("div", "plot-frame");
      const canvas = h("canvas", "plot-canvas");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", spec.title);
      frame.append(canvas);
      const details = h("details", "plot-numbers");
      details.append(h("summary", "", "Numbers · Числа"));
      const table = h("table", "plot-table");
      details.append(table);
      card.append(head, note, frame, details);

      let chart = null;
      let loaded = 0;
      let last = null;

      function choose(value) {
        if (select && [...select.options].some((o) => o.value === value)) select.value = value;
      }

      async function load(params) {
        last = params;
        const wanted = { ...params, metric: spec.metric, group: params.group || spec.group };
        if (select) wanted[spec.choice.param] = select.value;
        const query = queryOf(wanted);
        const mine = ++loaded;
        csv.href = `/v1/stats.csv?${query}`;
        csv.download = `callbuffer-${wanted.metric}-by-${wanted.group}.csv`;
        card.dataset.state = "loading";
        note.textContent = "Loading… · Загрузка…";
        let body;
        try {
          const response = await authFetch(`/v1/stats?${query}`, { headers: { Accept: "application/json" } });
          body = await response.json();
          if (!response.ok) throw new Error(str(body && body.detail) || `HTTP ${response.status}`);
        } catch (err) {
          if (mine !== loaded) return;
          card.dataset.state = "error";
          note.textContent = `Could not load · Не удалось загрузить: ${str(err && err.message)}`;
          return;
        }
        if (mine !== loaded) return;
        draw(body, wanted.group);
      }

      function draw(body, group) {
        const rows = list(body.rows);
        const total = body.total || {};
        const keys = [...new Set(rows.map((r) => str(r.key)))];
        const series = [...new Set(rows.filter((r) => r.series !== null).map((r) => str(r.series)))];
        const value = (key, name) => {
          const row = rows.find((r) => str(r.key) === key && (name === null || str(r.series) === name));
          return row && row.value !== null && row.value !== undefined ? Number(row.value) : null;
        };
        const label = spec.label || ((key) => key);
        const datasets = series.length
          ? series.map((name, i) => ({
              label: label(name),
              data: keys.map((key) => value(key, name)),
              backgroundColor: PALETTE[i % PALETTE.length],
              borderColor: PALETTE[i % PALETTE.length],
            }))
          : [
              {
                label: str(body.unit),
                data: keys.map((key) => value(key, null)),
                backgroundColor: keys.map((key) => (spec.colour ? spec.colour(key) : PALETTE[0])),
                borderColor: PALETTE[0],
                spanGaps: false,
                pointRadius: 3,
              },
            ];
        const config = {
          type: spec.kind === "line" ? "line" : "bar",
          data: { labels: keys.map((key) => (series.length || group === "day" || group === "week" ? key : label(key))), datasets },
          options: {
            animation: false,
            responsive: true,
            maintainAspectRatio: false,
            indexAxis: spec.kind === "hbar" ? "y" : "x",
            plugins: {
              legend: { display: series.length > 0, position: "bottom", labels: { boxWidth: 12 } },
              tooltip: { callbacks: { footer: (items) => footer(rows, keys, series, items) } },
            },
            scales: {
              [spec.kind === "hbar" ? "x" : "y"]: {
                beginAtZero: true,
                title: { display: true, text: spec.axis || str(body.unit) },
                ...(body.metric === "alerts" ? {} : { max: 100 }),
              },
              [spec.kind === "hbar" ? "y" : "x"]: {
                ticks: { autoSkip: spec.kind === "line", font: { size: 11 } },
              },
            },
          },
        };
        if (chart) chart.destroy();
        chart = new window.Chart(canvas, config);
        canvas.setAttribute("aria-label", `${spec.title}: ${summary(rows, label)}`);
        fillTable(rows, series.length > 0, group, body.unit, label);
        const calls = num(total.calls);
        card.dataset.state = "ready";
        note.textContent =
          calls === 0
            ? "No calls match the filters · Нет звонков"
            : `${calls} ${body.metric === "alerts" ? "calls" : "scored calls"} · total ${total.value ?? "—"} (${str(body.unit)})`;
      }

      function footer(rows, keys, series, items) {
        const item = items[0];
        if (!item) return "";
        const key = keys[item.dataIndex];
        const name = series.length ? series[item.datasetIndex] : null;
        const row = rows.find((r) => str(r.key) === key && (name === null || str(r.series) === name));
        return row ? `${row.count} of ${row.calls} calls` : "";
      }

      function summary(rows, label) {
        const shown = rows.filter((r) => r.value !== null).slice(0, 12);
        return shown.map((r) => `${label(str(r.key))}${r.series ? ` ${label(str(r.series))}` : ""} ${r.value}`).join("; ");
      }

      function fillTable(rows, hasSeries, group, unit, label) {
        table.replaceChildren();
        const head = h("tr");
        const cols = [group, ...(hasSeries ? ["practice"] : []), "calls", "count", str(unit)];
        for (const col of cols) {
          const th = h("th", "", col);
          th.scope = "col";
          head.append(th);
        }
        const thead = h("thead");
        thead.append(head);
        const tbody = h("tbody");
        for (const r of rows) {
          const tr = h("tr");
          const keyText = group === "day" || group === "week" ? str(r.key) : label(str(r.key));
          tr.append(h("td", "", keyText));
          if (hasSeries) tr.append(h("td", "", label(str(r.series))));
          tr.append(h("td", "num", r.calls), h("td", "num", r.count), h("td", "num", r.value === null ? "—" : r.value));
          tbody.append(tr);
        }
        table.append(thead, tbody);
      }

      return { node: card, load, choose, chart: () => chart };
    }

    return { plot, queryOf, PALETTE, CATEGORY_COLOURS };
  })(),
);
