"""Signing in on the pages (ui/static/common.js `auth`) in a real headless Chromium against `live_server`.

Every page asks GET /v1/auth/me first: a visitor who is not signed in gets the login form and none of the
page; the right password opens the page in place; "Sign out" ends the session on the server; a user whose
role the page is not for gets a message and no API call; a session that ends under an open page (a 401
from an API call, or the sidebar's socket refused with 1008) brings the form back instead of retrying.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_PASSWORD

expect = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed").expect

UNAUTHORIZED = r"status of 401"  # Chromium logs every 401 answer (GET /v1/auth/me, a wrong password)
FORBIDDEN = r"status of 403"

# page path -> (the test user it is for, an element of its content, how it says it has loaded)
PAGES = {
    "/agent": ("agent", "#picker", ("#call-list-note", re.compile("No active calls"))),
    "/review": ("reviewer", ".layout", ("#call-list-note", re.compile("No audited calls"))),
    "/trainer": ("trainer", ".layout", ("#category-count", re.compile(r"\d"))),
}


@pytest.fixture
def api_requests() -> Any:
    """api_requests(page) -> the list that collects the paths of the page's /v1 requests from now on."""

    def _watch(page: Any) -> list[str]:
        seen: list[str] = []
        page.on(
            "request",
            lambda request: (
                "/v1/" in request.url and seen.append(request.url.split("//", 1)[1].split("/", 1)[1])
            ),
        )
        return seen

    return _watch


def open_page(new_page, server, path: str) -> Any:
    page = new_page()
    page.goto(server.url + path)
    return page


def sign_in(page, name: str, password: str) -> None:
    page.locator("#login-name").fill(name)
    page.locator("#login-password").fill(password)
    page.get_by_role("button", name=re.compile("Sign in")).click()


def expect_login_form(page, content: str) -> None:
    """The form shows, and neither the page's content nor the signed-in user does."""
    expect(page.locator("body")).to_have_attribute("data-auth", "out")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#login-name")).to_be_visible()
    expect(page.locator("#login-password")).to_have_attribute("type", "password")
    expect(page.locator(content)).to_be_hidden()
    expect(page.locator("#session")).to_be_hidden()


def session_cookie(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "callbuffer_session")


@pytest.mark.parametrize("path", list(PAGES))
def test_wrong_password_then_the_right_one(path, new_page, live_server, problems, api_requests):
    """Not signed in: the page shows only the login form. A wrong password says so and shows nothing of
    the page; the right one opens the page in place (no reload) with the user and role in the header."""
    problems.allow(UNAUTHORIZED)
    user_key, content, (loaded, loaded_text) = PAGES[path]
    user = live_server.users[user_key]
    page = open_page(new_page, live_server, path)
    requests = api_requests(page)
    expect_login_form(page, content)
    page.evaluate("() => { window.__sameDocument = true; }")

    sign_in(page, user.name, "not the password")
    expect(page.locator("#login-error")).to_be_visible()
    expect(page.locator("#login-error")).to_contain_text("Wrong name or password")
    expect_login_form(page, content)
    expect(page.locator("#login-password")).to_have_value("")
    assert requests == ["v1/auth/login"]

    sign_in(page, user.name, user.password)
    expect(page.locator("body")).to_have_attribute("data-auth", "in")
    expect(page.locator("#login-form")).to_be_hidden()
    expect(page.locator(content)).to_be_visible()
    expect(page.locator(loaded)).to_have_text(loaded_text, timeout=30000)
    expect(page.locator("#session-user")).to_have_text(f"{user.name} ({user.role})")
    expect(page.get_by_role("button", name=re.compile("Sign out"))).to_be_visible()
    assert page.evaluate("() => window.__sameDocument === true")


def test_sign_out_ends_the_session(new_page, context, live_server, login, problems):
    """Signed in, the page shows; "Sign out" brings the form back, the API then answers 401 (to the
    browser and to the old cookie), and signing in again, as someone else, opens the page in place."""
    problems.allow(UNAUTHORIZED)
    login(live_server, "reviewer")
    old_cookie = session_cookie(context)
    page = open_page(new_page, live_server, "/review")
    expect(page.locator("#call-list-note")).to_have_text(re.compile("No audited calls"))
    expect(page.locator("#session-user")).to_have_text("rita (reviewer)")

    page.get_by_role("button", name=re.compile("Sign out")).click()
    expect_login_form(page, ".layout")
    expect(page.locator("#auth-note")).to_contain_text("Signed out")
    assert context.request.get(f"{live_server.url}/v1/auth/me").status == 401
    assert context.request.get(f"{live_server.url}/v1/audited-calls").status == 401
    revoked = httpx.get(f"{live_server.url}/v1/auth/me", cookies={"callbuffer_session": old_cookie})
    assert revoked.status_code == 401

    sign_in(page, live_server.users["admin"].name, TEST_PASSWORD)
    expect(page.locator("#session-user")).to_have_text("root (admin)")
    expect(page.locator(".layout")).to_be_visible()
    expect(page.locator("#call-list-note")).to_have_text(re.compile("No audited calls"))


@pytest.mark.parametrize(
    ("path", "user", "message"),
    [
        ("/trainer", "reviewer", "Signed in as rita (reviewer): this page is for trainers."),
        ("/review", "agent", "Signed in as anna (agent): this page is for reviewers."),
        ("/agent", "trainer", "Signed in as tom (trainer): this page is for agents and reviewers."),
    ],
)
def test_a_role_the_page_is_not_for(path, user, message, new_page, live_server, login, api_requests):
    """Signed in with another page's role: a clear message and "Sign out", none of the page, and no API
    call that would be refused (a 403 would be a console error, which fails the test)."""
    login(live_server, user)
    page = new_page()
    requests = api_requests(page)
    page.goto(live_server.url + path)
    expect(page.locator("body")).to_have_attribute("data-auth", "denied")
    expect(page.locator("#auth-denied-text")).to_have_text(message)
    expect(page.locator("#auth-denied")).to_be_visible()
    expect(page.locator("#login-form")).to_be_hidden()
    expect(page.locator(PAGES[path][1])).to_be_hidden()
    expect(page.get_by_role("button", name=re.compile("Sign out"))).to_be_visible()
    page.wait_for_timeout(500)  # nothing else is asked
    assert requests == ["v1/auth/me"]


def test_html_typed_as_the_name_stays_text(new_page, live_server, problems):
    """Markup typed into the name field is sent as text and never becomes an element or runs."""
    problems.allow(UNAUTHORIZED)
    page = open_page(new_page, live_server, "/agent")
    expect_login_form(page, "#picker")
    markup = '<img src=x onerror="window.__pwned = 1"><b id="bold">rita</b>'
    sign_in(page, markup, "whatever")
    expect(page.locator("#login-error")).to_contain_text("Wrong name or password")
    expect(page.locator("#login-name")).to_have_value(markup)
    page.wait_for_timeout(300)
    assert page.locator("img").count() == 0
    assert page.locator("#bold").count() == 0
    assert page.evaluate("() => window.__pwned === undefined")
    expect(page.locator("#login-error")).not_to_contain_text("<")


def test_an_expired_session_brings_the_form_back(new_page, context, live_server, login, problems):
    """The session ended while the page was open (here: logged out from elsewhere): the next API call's
    401 shows the form, saying why; signing in again shows the page as it was."""
    problems.allow(UNAUTHORIZED)
    login(live_server, "reviewer")
    page = open_page(new_page, live_server, "/review")
    expect(page.locator("#call-list-note")).to_have_text(re.compile("No audited calls"))
    assert context.request.post(f"{live_server.url}/v1/auth/logout").status == 204

    page.locator("#refresh-list").click()
    expect_login_form(page, ".layout")
    expect(page.locator("#auth-note")).to_contain_text("session has ended")
    sign_in(page, "rita", TEST_PASSWORD)
    expect(page.locator(".layout")).to_be_visible()
    expect(page.locator("#call-list-note")).to_have_text(re.compile("No audited calls"))
    expect(page.locator("#error-banner")).to_be_hidden()


def test_sidebar_socket_refused_after_sign_out_is_not_retried(
    new_page, context, live_server, login, problems
):
    """The agent's session ended during a call: the sidebar's reconnect is refused (error event, close
    1008), so it shows the login form instead of retrying; signing in again rejoins the call."""
    problems.allow(UNAUTHORIZED)
    login(live_server, "agent")
    live_server.publish(
        "lost-1",
        {
            "type": "transcript",
            "speaker": "customer",
            "text": "Алло",
            "start": 0.0,
            "end": 1.0,
            "final": True,
        },
    )
    page = new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(f"{live_server.url}/agent?call=lost-1")
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    expect(page.locator("#transcript-list .turn-text")).to_have_text(["Алло"])

    assert context.request.post(f"{live_server.url}/v1/auth/logout").status == 204
    live_server.drop_sidebars("lost-1")  # as a server restart would: the page reconnects, and is refused
    expect_login_form(page, "#call-view")
    expect(page.locator("#auth-note")).to_contain_text("session has ended")
    page.wait_for_timeout(2000)  # several backoff periods
    assert len(sockets) == 2, sockets  # the first socket and the refused reconnect, no more

    sign_in(page, "anna", TEST_PASSWORD)
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    expect(page.locator("#call-id")).to_have_text("lost-1")
    expect(page.locator("#transcript-list .turn-text")).to_have_text(["Алло"])


def test_another_agents_call_is_refused_once(new_page, live_server, login):
    """A call started for another agent: the sidebar shows the server's refusal and does not reconnect."""
    live_server.engine.store.create_call("oleg-1", ["agent", "customer"], None, "pcm16", 8000, "oleg")
    login(live_server, "agent")
    page = new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(f"{live_server.url}/agent?call=oleg-1")
    expect(page.locator("#status")).to_have_attribute("data-state", "refused")
    expect(page.locator("#error-text")).to_contain_text("belongs to another agent")
    expect(page.locator("body")).to_have_attribute("data-auth", "in")
    time.sleep(2)  # several backoff periods
    expect(page.locator("#status")).to_have_attribute("data-state", "refused")
    assert len(sockets) == 1, sockets


def test_a_refused_api_call_names_the_user(new_page, live_server, login, problems):
    """A 403 from an API call (authFetch) becomes a message naming the user and the server's reason."""
    problems.allow(FORBIDDEN)
    login(live_server, "agent")
    page = open_page(new_page, live_server, "/agent")
    expect(page.locator("body")).to_have_attribute("data-auth", "in")
    message = page.evaluate(
        """async () => {
            try {
                await window.cb.authFetch("/v1/packs");
                return "no error";
            } catch (err) {
                return `${err.status} ${err.message}`;
            }
        }"""
    )
    assert message.startswith("403 Not allowed for anna (agent)"), message
    assert "may not do this" in message
    expect(page.locator("body")).to_have_attribute("data-auth", "in")
