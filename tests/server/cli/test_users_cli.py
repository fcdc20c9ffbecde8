"""`callbuffer users add/list/revoke/token` against a running server's store: what the CLI adds works on
the server at once, what it revokes stops at once, and bad input gets a clean error."""

from __future__ import annotations

import os
import subprocess

import httpx


def _users(server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CALLBUFFER_DATA_DIR": str(server.settings.data_dir)}
    return subprocess.run(
        ["callbuffer", "users", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def test_users_made_on_the_cli_work_on_the_running_server(live_server):
    added = _users(
        live_server, "add", "vera", "--role", "trainer", "--password-stdin", stdin="long enough pw\n"
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("cb_") and "\n" not in token  # stdout is the token alone, for scripts
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{live_server.url}/v1/packs", headers=headers).status_code == 200
    login = httpx.post(
        f"{live_server.url}/v1/auth/login", json={"name": "vera", "password": "long enough pw"}
    )
    assert login.json()["role"] == "trainer"

    second = _users(live_server, "token", "vera", "--label", "ci script")
    assert second.returncode == 0 and second.stdout.strip() != token
    listing = _users(live_server, "list").stdout
    vera = next(line for line in listing.splitlines() if line.startswith("vera "))
    assert vera.split()[1:4] == ["trainer", "yes", "2"]

    assert _users(live_server, "revoke", "vera").returncode == 0
    assert httpx.get(f"{live_server.url}/v1/packs", headers=headers).status_code == 401
    again = _users(live_server, "revoke", "vera")
    assert again.returncode == 1 and "already revoked" in again.stderr and "Traceback" not in again.stderr


def test_cli_refuses_bad_input_cleanly(live_server):
    """A taken name, an unknown role, a short password, no terminal to ask on, a password for an
    integration, a token for nobody: each a one-line error, exit code != 0, nothing added."""
    cases = [
        (("add", "anna", "--role", "agent", "--no-password"), None, "already exists"),
        (("add", "x1", "--role", "boss", "--no-password"), None, "'boss' is not one of"),
        (("add", "x2", "--role", "agent", "--password-stdin"), "short\n", "at least 8"),
        (("add", "x3", "--role", "agent"), "", "no terminal"),
        (("add", "x4", "--role", "telephony", "--password-stdin"), "long enough pw\n", "does not go with"),
        (("add", "<x5>", "--role", "agent", "--no-password"), None, "bad user name"),
        (("token", "ghost"), None, "no user 'ghost'"),
    ]
    for args, stdin, words in cases:
        done = _users(live_server, *args, stdin=stdin)
        assert done.returncode != 0 and words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    names = {line.split()[0] for line in _users(live_server, "list").stdout.splitlines()[1:]}
    assert not names & {"x1", "x2", "x3", "x4", "<x5>"}


def test_an_empty_store_says_how_to_make_the_first_admin(tmp_path):
    env = {**os.environ, "CALLBUFFER_DATA_DIR": str(tmp_path / "fresh")}
    done = subprocess.run(
        ["callbuffer", "users", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0 and "callbuffer users add NAME --role admin" in done.stderr
