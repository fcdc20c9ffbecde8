// callbuffer agent sidebar: joins a call's event stream and shows its transcript and alert cards.
//
// Contract with the server (see server/live/protocol.py):
//   GET /v1/calls?active=1            -> {"calls": [{"call_id", "status", "started_at", "roles", "language"}]}
//   WS  /v1/calls/{call_id}/events    -> replay of the call so far, then live events, as JSON text frames:
//       transcript | alert | overload | error | end
// A socket that closes without "end" is reopened with backoff; the replay that follows is de-duplicated.
// Both need a signed-in agent or reviewer (common.js `auth`; the session cookie goes with them). A socket
// the server refuses (an `error` event, then close code 1008: signed out, another agent's call) is not
// reopened: the page asks /v1/auth/me and shows the login form, the role message or the refusal.
//
// Security: every string from the server is rendered with textContent / Text nodes, never as HTML.
"use strict";

(() => {
  const { h, str, num, speakerOf, clock, auth, authFetch } = window.cb;

  const CALL_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 5000;
  const CLOSE_POLICY = 1008; // the server refused the socket (or dropped a listener that fell behind)
  const CALLS_POLL_MS = 10000;
  const COPIED_MS = 2000;
  const NEAR_BOTTOM_PX = 40;

  const SPEAKERS = {
    agent: "Agent · Оператор",
    customer: "Customer · Клиент",
    unknown: "Speaker · Говорящий",
  };
  const KINDS = {
    forbidden: { label: "Don't say this · Так не говорим", icon: "✖" },
    trigger: { label: "Customer needs care · Внимательно", icon: "⚠" },
  };
  const STATUS = {
    idle: "Not connected · Не подключено",
    connecting: "Connecting… · Подключение…",
    live: "Live · На связи",
    reconnecting: "Reconnecting… · Переподключение…",
    ended: "Call ended · Звонок завершён",
    refused: "Not allowed · Нет доступа",
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    callId: $("call-id"),
    status: $("status"),
    switchCall: $("switch-call"),
    picker: $("picker"),
    joinForm: $("join-form"),
    callInput: $("call-input"),
    joinError: $("join-error"),
    refreshCalls: $("refresh-calls"),
    callList: $("call-list"),
    callListNote: $("call-list-note"),
    overloadBanner: $("overload-banner"),
    overloadText: $("overload-text"),
    overloadDismiss: $("overload-dismiss"),
    errorBanner: $("error-banner"),
    errorText: $("error-text"),
    errorDismiss: $("error-dismiss"),
    callView: $("call-view"),
    alertList: $("alert-list"),
    alertCount: $("alert-count"),
    alertsEmpty: $("alerts-empty"),
    transcriptScroll: $("transcript-scroll"),
    transcriptList: $("transcript-list"),
    transcriptEmpty: $("transcript-empty"),
    callEnded: $("call-ended"),
    jumpLatest: $("jump-latest"),
    srStatus: $("sr-status"),
  };

  const state = {
    callId: null,
    ws: null,
    ended: false,
    connectedOnce: false,
    retryMs: BACKOFF_FIRST_MS,
    retryTimer: null,
    callsTimer: null,
    turns: new Map(), // speaker|start -> {el, textEl, speaker, start, final, text}
    alerts: new Set(), // category|start|speaker
  };

  // ---------------------------------------------------------------- helpers

  function timeKey(seconds) {
    return num(seconds).toFixed(3);
  }

  function announce(text) {
    ui.srStatus.textContent = "";
    // A fresh text node each time so screen readers repeat an identical message.
    window.setTimeout(() => {
      ui.srStatus.textContent = text;
    }, 30);
  }

  function setStatus(name, detail) {
    ui.status.dataset.state = name;
    ui.status.textContent = detail ? `${STATUS[name]} ${detail}` : STATUS[name];
  }

  function showBanner(banner, textEl, text) {
    textEl.textContent = text;
    banner.hidden = false;
  }

  // ---------------------------------------------------------------- call list and joining

  async function loadCalls() {
    try {
      const response = await authFetch("/v1/calls?active=1", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      renderCalls(Array.isArray(body && body.calls) ? body.calls : []);
    } catch (err) {
      ui.callListNote.textContent = `Could not load calls · Не удалось загрузить список (${str(err && err.message)})`;
      ui.callListNote.hidden = false;
    }
  }

  function renderCalls(calls) {
    const items = [];
    for (const call of calls) {
      const id = str(call && call.call_id);
      if (!CALL_ID_RE.test(id)) continue;
      const button = h("button", "call-item");
      button.type = "button";
      button.dataset.callId = id;
      button.append(h("span", "call-item-id", id));
      const meta = [];
      const started = new Date(str(call.started_at));
      if (!Number.isNaN(started.getTime())) {
        meta.push(started.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
      }
      if (call.language) meta.push(str(call.language));
      if (call.status && call.status !== "active") meta.push(str(call.status));
      if (meta.length) button.append(h("span", "call-item-meta", meta.join(" · ")));
      button.addEventListener("click", () => join(id));
      const li = h("li");
      li.append(button);
      items.push(li);
    }
    ui.callList.replaceChildren(...items);
    ui.callListNote.textContent = "No active calls · Активных звонков нет";
    ui.callListNote.hidden = items.length > 0;
  }

  function showPicker(show) {
    ui.picker.hidden = !show;
    window.clearInterval(state.callsTimer);
    state.callsTimer = null;
    if (show) {
      loadCalls();
      state.callsTimer = window.setInterval(loadCalls, CALLS_POLL_MS);
    }
  }

  function validCallId(id) {
    return CALL_ID_RE.test(id) && id !== "." && id !== "..";
  }

  function join(rawId) {
    const id = str(rawId).trim();
    if (!validCallId(id)) {
      ui.joinError.textContent =
        "A call id is 1–64 letters, digits, '.', '_' or '-' · Номер звонка: латиница, цифры, '.', '_', '-'";
      ui.joinError.hidden = false;
      return;
    }
    ui.joinError.hidden = true;
    if (id === state.callId && (state.ws || state.retryTimer || state.ended)) {
      showPicker(false);
      return;
    }
    leave();
    state.callId = id;
    ui.callId.textContent = id;
    ui.callInput.value = id;
    document.title = `callbuffer · ${id}`;
    const url = new URL(window.location.href);
    url.searchParams.set("call", id);
    window.history.replaceState(null, "", url);
    ui.callView.hidden = false;
    ui.switchCall.hidden = false;
    showPicker(false);
    connect();
  }

  // Close the current call's socket and forget everything shown for it.
  function leave() {
    const ws = state.ws;
    state.ws = null; // handlers of the old socket check this and go quiet
    if (ws) ws.close(1000, "leaving");
    window.clearTimeout(state.retryTimer);
    state.retryTimer = null;
    state.callId = null;
    state.ended = false;
    state.connectedOnce = false;
    state.retryMs = BACKOFF_FIRST_MS;
    state.turns.clear();
    state.alerts.clear();
    ui.transcriptList.replaceChildren();
    ui.alertList.replaceChildren();
    ui.transcriptEmpty.hidden = false;
    ui.alertsEmpty.hidden = false;
    ui.alertCount.textContent = "";
    ui.callEnded.hidden = true;
    ui.jumpLatest.hidden = true;
    ui.overloadBanner.hidden = true;
    ui.errorBanner.hidden = true;
    setStatus("idle");
  }

  // ---------------------------------------------------------------- the event socket

  function eventsUrl(callId) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/v1/calls/${encodeURIComponent(callId)}/events`;
  }

  function connect() {
    state.retryTimer = null;
    if (!state.callId || state.ended) return;
    setStatus(state.connectedOnce ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(eventsUrl(state.callId));
    } catch (err) {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    let lastWasError = false; // a refusal is an `error` event, then close 1008
    ws.addEventListener("open", () => {
      if (ws !== state.ws) return;
      state.connectedOnce = true;
      state.retryMs = BACKOFF_FIRST_MS;
      setStatus("live");
    });
    ws.addEventListener("message", (message) => {
      if (ws !== state.ws || typeof message.data !== "string") return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (err) {
        return; // not an event; ignore rather than break the sidebar
      }
      lastWasError = Boolean(event && event.type === "error");
      handleEvent(event);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== state.ws) return;
      state.ws = null;
      if (state.ended) return;
      if (event.code === CLOSE_POLICY) refused(lastWasError);
      else scheduleReconnect();
    });
  }

  // Closed with 1008: signed out or not allowed (after an `error` event saying why), or too far behind
  // (no error: reconnecting gets the replay). Only the last is retried.
  async function refused(withError) {
    const callId = state.callId;
    setStatus(withError ? "refused" : "reconnecting");
    const verdict = await auth.recheck(); // "lost" and "denied" show the form or message and leave the call
    if (callId !== state.callId || state.ws || state.retryTimer || state.ended) return;
    if (verdict === "unknown" || (verdict === "ok" && !withError)) scheduleReconnect();
    else if (verdict === "ok") setStatus("refused"); // e.g. another agent's call: the banner says why
  }

  function scheduleReconnect() {
    if (state.retryTimer || !state.callId || state.ended) return;
    const delay = state.retryMs;
    state.retryMs = Math.min(state.retryMs * 2, BACKOFF_MAX_MS);
    setStatus("reconnecting", `(${(delay / 1000).toFixed(1)} s)`);
    state.retryTimer = window.setTimeout(connect, delay);
  }

  // Back online: do not wait out the backoff.
  window.addEventListener("online", () => {
    if (state.retryTimer) {
      window.clearTimeout(state.retryTimer);
      connect();
    }
  });

  function handleEvent(event) {
    if (!event || typeof event !== "object") return;
    switch (event.type) {
      case "transcript":
        withAutoScroll(() => showTranscript(event));
        break;
      case "alert":
        showAlert(event);
        break;
      case "overload": {
        const queued = Number.isInteger(event.queued) ? ` (${event.queued} queued · в очереди)` : "";
        showBanner(ui.overloadBanner, ui.overloadText, str(event.message) + queued);
        break;
      }
      case "error":
        showBanner(ui.errorBanner, ui.errorText, str(event.message) || "Server error · Ошибка сервера");
        break;
      case "end":
        endCall();
        break;
      default:
        break; // a newer server's event type: ignore
    }
  }

  function endCall() {
    state.ended = true;
    window.clearTimeout(state.retryTimer);
    state.retryTimer = null;
    setStatus("ended");
    withAutoScroll(() => {
      ui.callEnded.hidden = false;
    });
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000, "call ended");
  }

  // ---------------------------------------------------------------- transcript

  function isNearBottom() {
    const box = ui.transcriptScroll;
    return box.scrollHeight - box.scrollTop - box.clientHeight <= NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    ui.transcriptScroll.scrollTop = ui.transcriptScroll.scrollHeight;
    ui.jumpLatest.hidden = true;
  }

  // Run a change to the transcript; follow it to the bottom unless the user has scrolled up to read.
  function withAutoScroll(change) {
    const follow = isNearBottom();
    const changed = change();
    if (changed === false) return;
    if (follow) scrollToBottom();
    else ui.jumpLatest.hidden = false;
  }

  function showTranscript(event) {
    const speaker = speakerOf(event.speaker);
    const start = num(event.start);
    const final = event.final === true;
    const text = str(event.text);
    const key = `${speaker}|${timeKey(start)}`;
    let turn = state.turns.get(key);
    if (turn) {
      if (turn.final && !final) return false; // a late or replayed partial of a finished turn
      if (turn.final === final && turn.text === text) return false; // replayed after a reconnect
    } else {
      turn = createTurn(speaker, start, key);
    }
    if (final) dropSupersededPartials(speaker, num(event.end), key);
    turn.final = final;
    turn.text = text;
    turn.textEl.textContent = text;
    turn.el.classList.toggle("is-partial", !final);
    turn.el.dataset.final = String(final);
    return true;
  }

  function createTurn(speaker, start, key) {
    const li = h("li", `turn turn--${speaker}`);
    li.dataset.speaker = speaker;
    li.dataset.start = String(start);
    li.dataset.key = key;
    const meta = h("div", "turn-meta");
    const time = h("time", "turn-time", clock(start));
    time.dateTime = `PT${start.toFixed(1)}S`;
    meta.append(h("span", "turn-speaker", SPEAKERS[speaker]), time);
    const textEl = h("p", "turn-text");
    li.append(meta, textEl);
    // Keep turns in call-time order: new ones usually go last, replays may land earlier.
    let after = ui.transcriptList.lastElementChild;
    while (after && Number(after.dataset.start) > start) after = after.previousElementSibling;
    if (after) after.after(li);
    else ui.transcriptList.prepend(li);
    ui.transcriptEmpty.hidden = true;
    const turn = { el: li, textEl, speaker, start, final: false, text: "" };
    state.turns.set(key, turn);
    return turn;
  }

  // A final turn replaces the speaker's partials that began before it ended, even if the recogniser
  // moved the turn's start a little between the partial and the final.
  function dropSupersededPartials(speaker, end, keepKey) {
    for (const [key, turn] of state.turns) {
      if (key !== keepKey && turn.speaker === speaker && !turn.final && turn.start <= end) {
        turn.el.remove();
        state.turns.delete(key);
      }
    }
  }

  // ---------------------------------------------------------------- alerts

  function showAlert(event) {
    const speaker = speakerOf(event.speaker);
    const start = num(event.start);
    const key = `${str(event.category)}|${timeKey(start)}|${speaker}`;
    if (state.alerts.has(key)) return; // replayed after a reconnect
    state.alerts.add(key);

    const kind = event.kind === "forbidden" ? "forbidden" : "trigger";
    const card = h("li", `alert alert--${kind}`);
    card.dataset.key = key;
    card.dataset.kind = kind;
    card.dataset.category = str(event.category);
    card.dataset.start = String(start);

    const head = h("div", "alert-head");
    const kindEl = h("span", "alert-kind");
    kindEl.append(h("span", "alert-icon", KINDS[kind].icon), KINDS[kind].label);
    const time = h("time", "alert-time", clock(start));
    time.dateTime = `PT${start.toFixed(1)}S`;
    head.append(kindEl, time);

    const title = h("h3", "alert-title", str(event.title) || str(event.category));
    const category = h("p", "alert-category");
    category.append(`${SPEAKERS[speaker]} · `, h("code", null, str(event.category)));

    const quote = h("blockquote", "alert-text");
    appendHighlighted(quote, str(event.text), event.span);

    card.append(head, title, category, quote);

    const suggestions = Array.isArray(event.suggestions) ? event.suggestions.map(str).filter(Boolean) : [];
    if (suggestions.length) {
      const group = h("div", "alert-suggestions");
      group.setAttribute("role", "group");
      const label = h("p", "alert-say", kind === "forbidden" ? "Say instead · Скажите так:" : "You can say · Можно сказать:");
      label.id = `say-${state.alerts.size}`;
      group.setAttribute("aria-labelledby", label.id);
      group.append(label);
      for (const phrase of suggestions) group.append(suggestionButton(phrase, group));
      card.append(group);
    }

    // Newest (latest in the call) on top.
    let before = ui.alertList.firstElementChild;
    while (before && Number(before.dataset.start) > start) before = before.nextElementSibling;
    ui.alertList.insertBefore(card, before);
    ui.alertsEmpty.hidden = true;
    ui.alertCount.textContent = `(${state.alerts.size})`;
    markTurn(speaker, start, kind);
  }

  // `span` is a [start, end) range of characters (Unicode code points, as Python counts them).
  function appendHighlighted(container, text, span) {
    const chars = Array.from(text);
    const a = Array.isArray(span) ? Number(span[0]) : NaN;
    let b = Array.isArray(span) ? Number(span[1]) : NaN;
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b <= a || a >= chars.length) {
      container.append(text);
      return;
    }
    b = Math.min(b, chars.length);
    container.append(
      chars.slice(0, a).join(""),
      h("mark", "alert-span", chars.slice(a, b).join("")),
      chars.slice(b).join(""),
    );
  }

  // The turn that fired an alert gets an outline in the alert's colour.
  function markTurn(speaker, start, kind) {
    const turn = state.turns.get(`${speaker}|${timeKey(start)}`);
    if (turn) turn.el.classList.add(`is-flagged-${kind}`);
  }

  function suggestionButton(phrase, group) {
    const button = h("button", "suggestion");
    button.type = "button";
    button.title = "Copy · Скопировать";
    const flag = h("span", "suggestion-flag");
    flag.setAttribute("aria-hidden", "true");
    button.append(h("span", "suggestion-text", phrase), flag);
    button.addEventListener("click", async () => {
      const ok = await copyText(phrase);
      for (const other of group.querySelectorAll("button.suggestion")) {
        other.classList.remove("is-copied", "is-failed");
        delete other.dataset.copied;
        other.querySelector(".suggestion-flag").textContent = "";
      }
      button.classList.add(ok ? "is-copied" : "is-failed");
      button.dataset.copied = String(ok);
      flag.textContent = ok ? "✓ copied · скопировано" : "copy failed · не скопировано";
      announce(ok ? "Copied · Скопировано" : "Copy failed · Не удалось скопировать");
      window.clearTimeout(button.copiedTimer);
      button.copiedTimer = window.setTimeout(() => {
        button.classList.remove("is-copied", "is-failed");
        delete button.dataset.copied;
        flag.textContent = "";
      }, COPIED_MS);
    });
    return button;
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (err) {
        // Permission refused or document not focused: try the old way.
      }
    }
    return legacyCopy(text);
  }

  function legacyCopy(text) {
    const active = document.activeElement;
    const area = h("textarea", "clipboard-helper");
    area.value = text;
    area.setAttribute("readonly", "");
    area.setAttribute("aria-hidden", "true");
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (err) {
      ok = false;
    }
    area.remove();
    if (active && typeof active.focus === "function") active.focus();
    return ok;
  }

  // ---------------------------------------------------------------- wiring

  ui.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    join(ui.callInput.value);
  });
  ui.refreshCalls.addEventListener("click", loadCalls);
  ui.switchCall.addEventListener("click", () => {
    showPicker(ui.picker.hidden);
    if (!ui.picker.hidden) ui.callInput.focus();
  });
  ui.overloadDismiss.addEventListener("click", () => {
    ui.overloadBanner.hidden = true;
  });
  ui.errorDismiss.addEventListener("click", () => {
    ui.errorBanner.hidden = true;
  });
  ui.jumpLatest.addEventListener("click", scrollToBottom);
  ui.transcriptScroll.addEventListener("scroll", () => {
    if (isNearBottom()) ui.jumpLatest.hidden = true;
  });

  // Shown once signed in (again): the call in the address (?call=ID) or the picker.
  function enter() {
    const requested = new URLSearchParams(window.location.search).get("call");
    if (requested) {
      join(requested);
      if (!state.callId) showPicker(true); // invalid id: the error is shown above the list
    } else {
      showPicker(true);
    }
  }

  // Signed out or not allowed any more: close the socket and stop polling (the address keeps the call).
  function stop() {
    leave();
    showPicker(false);
    ui.callView.hidden = true;
    ui.switchCall.hidden = true;
    ui.callId.textContent = "—";
  }

  auth.start({
    roles: ["agent", "reviewer"],
    audience: { en: "agents and reviewers", ru: "операторов и проверяющих" },
    slot: document.getElementById("bar-sub"),
    enter,
    leave: stop,
  });
})();
