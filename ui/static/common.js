// callbuffer shared page helpers, loaded (deferred) before each page's own script: the agent sidebar, the QA
// review page and the trainer workspace. Everything is exposed on a single frozen `window.cb` object; the
// pages destructure what they use: small helpers, and `auth` (sign-in, the session, the user's role) with
// `authFetch` (fetch for the pages' API calls).
//
// Security: h() sets textContent, never HTML; so does everything here that shows a name or a message.
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


    // ---------------------------------------------------------------- sign-in and the session
    //
    // Every /v1 API needs a session (the HttpOnly cookie `callbuffer_session` from POST /v1/auth/login) and
    // a role the page is for. `auth.start({...})` asks GET /v1/auth/me and shows a login form, a "this page
    // is for …" message, or the page (calling `enter(me)`); `leave()` is called whenever the page stops
    // being shown (signed out, session expired). Until then the page's content is hidden by common.css
    // (body[data-auth] is "checking", "out", "denied" or "in"). Same-origin fetches and WebSockets carry
    // the cookie by themselves; `authFetch` notices a 401 (back to the form) and makes a 403 readable.

    const session = {
      page: null, // the options given to start()
      me: null, // {name, role, via} of the signed-in user
      state: "checking",
      view: null, // the DOM built by buildViews()
    };

    function allowed(me) {
      const role = str(me && me.role);
      return role === "admin" || session.page.roles.includes(role);
    }

    function who(me) {
      return `${str(me && me.name)} (${str(me && me.role)})`;
    }

    function labelled(labelText, input) {
      const label = h("label", "auth-label", labelText);
      label.htmlFor = input.id;
      return label;
    }

    function buildViews() {
      const header = document.querySelector("header.bar");

      const box = h("div", "session");
      box.id = "session";
      const user = h("span", "session-user");
      user.id = "session-user";
      const signOut = h("button", "link-button session-sign-out", "Sign out · Выйти");
      signOut.type = "button";
      signOut.id = "sign-out";
      box.append(user, signOut);
      (session.page.slot || header).append(box);

      const view = h("section", "auth-view");
      view.id = "auth-view";
      view.setAttribute("aria-labelledby", "auth-title");
      const card = h("div", "auth-card");
      const title = h("h1", "auth-title", "Sign in · Вход");
      title.id = "auth-title";
      const note = h("p", "auth-note muted");
      note.id = "auth-note";
      note.setAttribute("role", "status");

      const form = h("form", "auth-form");
      form.id = "login-form";
      form.noValidate = true;
      const field = (fieldName, type, autocomplete, maxLength) => {
        const input = h("input", "auth-input");
        Object.assign(input, { id: `login-${fieldName}`, name: fieldName, type, autocomplete, maxLength });
        input.required = true;
        return input;
      };
      const name = field("name", "text", "username", 64);
      name.spellcheck = false;
      const password = field("password", "password", "current-password", 1024);
      const submit = h("button", "auth-submit", "Sign in · Войти");
      submit.type = "submit";
      submit.id = "login-submit";
      const error = h("p", "auth-error");
      error.id = "login-error";
      error.setAttribute("role", "alert");
      error.hidden = true;
      form.append(
        labelled("Name · Имя", name),
        name,
        labelled("Password · Пароль", password),
        password,
        submit,
        error,
      );

      const denied = h("div", "auth-denied");
      denied.id = "auth-denied";
      denied.setAttribute("role", "alert");
      const deniedText = h("p", "auth-denied-text");
      deniedText.id = "auth-denied-text";
      const deniedRu = h("p", "auth-denied-ru muted");
      denied.append(deniedText, deniedRu);

      card.append(title, note, form, denied);
      view.append(card);
      header.after(view);

      form.addEventListener("submit", (event) => {
        event.preventDefault();
        signIn();
      });
      signOut.addEventListener("click", signOutNow);

      session.view = {
        box,
        user,
        signOut,
        view,
        title,
        note,
        form,
        name,
        password,
        submit,
        error,
        denied,
        deniedText,
        deniedRu,
      };
    }

    // Move to `next` ("checking" | "out" | "denied" | "in"), telling the page when it starts or stops
    // being shown. `note` is shown above the form (why the user is asked to sign in).
    function setState(next, note) {
      const v = session.view;
      const previous = session.state;
      session.state = next;
      document.body.dataset.auth = next;
      v.view.hidden = next === "in";
      v.form.hidden = next !== "out";
      v.denied.hidden = next !== "denied";
      v.box.hidden = !(next === "in" || next === "denied");
      v.title.textContent = next === "denied" ? "Not for this role · Нет доступа" : "Sign in · Вход";
      v.note.textContent = note || (next === "checking" ? "Checking sign-in… · Проверяем вход…" : "");
      v.note.hidden = !v.note.textContent;
      if (session.me) v.user.textContent = who(session.me);
      if (previous === "in" && next !== "in") session.page.leave();
      if (next === "out") {
        v.error.hidden = true;
        v.submit.disabled = false;
        v.password.value = "";
        (v.name.value ? v.password : v.name).focus();
      }
      if (next === "in" && previous !== "in") session.page.enter(session.me);
    }

    function admit(me) {
      session.me = { name: str(me && me.name), role: str(me && me.role), via: str(me && me.via) };
      if (allowed(session.me)) {
        setState("in");
        return;
      }
      const page = session.page.audience;
      session.view.deniedText.textContent = `Signed in as ${who(session.me)}: this page is for ${page.en}.`;
      session.view.deniedRu.textContent = `Эта страница для ${page.ru}. Выйдите и войдите под другим именем.`;
      setState("denied");
    }

    function signedOut(note) {
      session.me = null;
      session.view.user.textContent = "";
      setState("out", note);
    }

    async function me() {
      const response = await fetch("/v1/auth/me", { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.status === 401) return null;
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.json();
    }

    async function check() {
      setState("checking");
      try {
        const found = await me();
        if (found) admit(found);
        else signedOut("");
      } catch (err) {
        signedOut(`Could not check the sign-in · Не удалось проверить вход (${str(err && err.message)})`);
      }
    }

    async function signIn() {
      const v = session.view;
      const name = v.name.value.trim();
      const password = v.password.value;
      const fail = (text) => {
        v.error.textContent = text;
        v.error.hidden = false;
      };
      if (!name || !password) {
        fail("Enter your name and password · Введите имя и пароль");
        return;
      }
      v.submit.disabled = true;
      v.error.hidden = true;
      try {
        const response = await fetch("/v1/auth/login", {
          method: "POST",
          headers: { Accept: "application/json", "Content-Type": "application/json" },
          body: JSON.stringify({ name, password }),
        });
        if (response.ok) {
          v.password.value = "";
          admit(await response.json());
          return;
        }
        v.password.value = "";
        fail(
          response.status === 401
            ? "Wrong name or password · Неверное имя или пароль"
            : `Could not sign in · Не удалось войти (HTTP ${response.status})`,
        );
        v.password.focus();
      } catch (err) {
        fail(`The server cannot be reached · Сервер недоступен (${str(err && err.message)})`);
      } finally {
        v.submit.disabled = false;
      }
    }

    async function signOutNow() {
      const v = session.view;
      v.signOut.disabled = true;
      let note = "Signed out · Вы вышли";
      try {
        const response = await fetch("/v1/auth/logout", { method: "POST" });
        if (!response.ok && response.status !== 401) note = `Signed out here; the server said HTTP ${response.status}`;
      } catch (err) {
        note = `Signed out here; the server could not be reached (${str(err && err.message)})`;
      } finally {
        v.signOut.disabled = false;
      }
      signedOut(note);
    }

    // The session ended under the page (expired, revoked, signed out in another tab): back to the form.
    function lost() {
      if (session.state === "out" || session.state === "checking") return;
      signedOut("Your session has ended: sign in again · Сессия завершена, войдите снова");
    }

    // Is the session still good for this page? "ok", "lost" (the form is shown), "denied" (the message is
    // shown) or "unknown" (the server could not be asked). For sockets, which get no HTTP status.
    async function recheck() {
      if (session.state !== "in") return session.state === "denied" ? "denied" : "lost";
      let found;
      try {
        found = await me();
      } catch (_err) {
        return "unknown";
      }
      if (!found) {
        lost();
        return "lost";
      }
      if (allowed(found)) return "ok";
      admit(found);
      return "denied";
    }

    // fetch for the pages' API calls: a 401 shows the login form and a 403 says who is not allowed; both
    // throw an Error with `.status`. Any other response is returned as is.
    async function authFetch(path, init) {
      const response = await fetch(path, init);
      if (response.status === 401) {
        lost();
        const err = new Error("Signed out · Сессия завершена: sign in again");
        err.status = 401;
        throw err;
      }
      if (response.status === 403) {
        let detail = "";
        try {
          const body = await response.json();
          detail = typeof (body && body.detail) === "string" ? body.detail : "";
        } catch (_err) {
          detail = "";
        }
        const user = session.me ? ` for ${who(session.me)}` : "";
        const err = new Error(`Not allowed${user} · Нет доступа${detail ? `: ${detail}` : ""}`);
        err.status = 403;
        throw err;
      }
      return response;
    }

    // options: roles (besides admin) the page is for; audience {en, ru} (who it is for, in words);
    // slot (where the user's name and "Sign out" go; the header by default); enter(me) and leave().
    function start(options) {
      if (session.page) throw new Error("cb.auth.start() was already called");
      session.page = {
        roles: list(options.roles),
        audience: options.audience || { en: "other roles", ru: "других ролей" },
        slot: options.slot || null,
        enter: options.enter || (() => {}),
        leave: options.leave || (() => {}),
      };
      buildViews();
      check();
    }

    const auth = Object.freeze({ start, recheck });

    return { h, str, num, list, speakerOf, clock, when, auth, authFetch };
  })(),
);
