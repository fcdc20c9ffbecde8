// callbuffer shared page helpers, loaded (deferred) before each page's own script: the agent sidebar, the QA
// review page and the trainer workspace. Everything is exposed on a single frozen `window.cb` object; the
// pages destructure what they use.
//
// Security: h() sets textContent, never HTML.
"use strict";

window.cb = Object.freeze(
  (() => {
    // Element with an optional class and text (rendered as a Text node).
    function h(tag, className, text) {
      const node = document.createElement(tag);
      if (className) node.className = className;
      if (text !== undefined && text !== null) node.textContent = String(text);
      return node;
    }

    function str(value) {
      return typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
    }

    // A finite, non-negative number, else 0.
    function num(value) {
      const n = Number(value);
      return Number.isFinite(n) && n >= 0 ? n : 0;
    }

    function list(value) {
      return Array.isArray(value) ? value : [];
    }

    function speakerOf(value) {
      return value === "agent" || value === "customer" ? value : "unknown";
    }

    // Seconds -> "mm:ss" (or "h:mm:ss" past an hour).
    function clock(seconds) {
      const total = Math.floor(num(seconds));
      const s = total % 60;
      const m = Math.floor(total / 60) % 60;
      const hours = Math.floor(total / 3600);
      const pad = (n) => String(n).padStart(2, "0");
      return hours > 0 ? `${hours}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
    }

    // ISO timestamp -> "YYYY-MM-DD HH:MM" in the browser's time zone (the input as is when unparseable).
    function when(iso) {
      const date = new Date(str(iso));
      if (Number.isNaN(date.getTime())) return str(iso);
      const pad = (n) => String(n).padStart(2, "0");
      return (
        `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
        `${pad(date.getHours())}:${pad(date.getMinutes())}`
      );
    }

    return { h, str, num, list, speakerOf, clock, when };
  })(),
);
