"""Browser fixtures shared by the UI tests: a headless Debian Chromium driven by Playwright, a fresh
context per test, `login(server, user)`, which signs that context in as a test user (every page needs
one), and `new_page()`, which opens a page that fails the test on any JS error, console error (a CSP
refusal included) or browser dialog unless the test allowed it with `problems.allow(regex)`.

Every test here is skipped when Chromium is not installed at CHROMIUM; a test module skips itself when
python playwright is not installed (it imports `expect` with pytest.importorskip).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
LAPTOP = {"width": 1366, "height": 768}
HERE = Path(__file__).resolve().parent

try:
    from playwright import sync_api
except ImportError:  # the test modules skip themselves
    sync_api = None
else:
    sync_api.expect.set_options(timeout=5000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).is_file():
        return
    skip = pytest.mark.skip(reason=f"Debian chromium is not installed at {CHROMIUM}")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context_options() -> dict[str, Any]:
    """Options of each test's browser context; a test module overrides this fixture to change them."""
    return {"viewport": LAPTOP, "locale": "ru-RU", "timezone_id": "UTC"}


@pytest.fixture
def context(browser, context_options) -> Iterator[Any]:
    context = browser.new_context(**context_options)
    context.set_default_timeout(5000)
    yield context
    context.close()


class Problems:
    """JS errors, console errors and dialogs seen on the pages; `allow(regex)` expects a console error."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [p for p in self.seen if not any(a.search(p) for a in self.allowed)]


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def new_page(context, problems) -> Iterator[Callable[[], Any]]:
    """new_page() -> a blank page of `context` whose problems are recorded; any that the test did not allow
    fails it at teardown."""

    def _new() -> Any:
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.seen.append(f"page error: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and problems.seen.append(f"console: {msg.text}"))
        page.on(
            "dialog", lambda dialog: (problems.seen.append(f"dialog: {dialog.message}"), dialog.dismiss())
        )
        return page

    yield _new
    assert problems.unexpected() == []


@pytest.fixture
def login(context) -> Callable[..., Any]:
    """login(server, user="agent") -> the test user (a key of tests.conftest.TEST_USERS), once this test's
    browser context is signed in as them through the real POST /v1/auth/login.

    The context's request client shares its cookie jar with the context's pages, so every page opened
    afterwards carries the session cookie (to its fetches and same-origin WebSockets too).
    """

    def _login(server: Any, user: str = "agent") -> Any:
        account = server.users[user]
        assert account.password, f"{user} has no password: it cannot sign in on a page"
        response = context.request.post(
            f"{server.url}/v1/auth/login", data={"name": account.name, "password": account.password}
        )
        assert response.status == 200, response.text()
        assert response.json()["role"] == account.role
        return account

    return _login


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """wait_until(page, js_expression, timeout=10): poll a page until the expression is true.

    Playwright's own wait_for_function polls with `eval` inside the page, which the pages' CSP (no
    'unsafe-eval') refuses once the first check fails; page.evaluate is not subject to it.
    """
    import time

    def _wait(page: Any, expression: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not page.evaluate(f"() => Boolean({expression})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {expression}")
            page.wait_for_timeout(50)

    return _wait
