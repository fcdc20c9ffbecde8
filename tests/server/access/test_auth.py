"""Access control on a real server: every route of the OpenAPI schema and every WebSocket route refuses a
request with no token and one with a wrong role; tokens, page sessions, revocation, and agents' own calls.

The role table below is the specification: a route that is not in it fails the walk, so a new endpoint
cannot ship without someone deciding who may use it.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3

import httpx
import pytest
from fastapi.routing import APIWebSocketRoute
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from server.live.protocol import StartMessage

PUBLIC = {("/healthz", "get"), ("/metrics", "get"), ("/v1/auth/login", "post"), ("/v1/auth/logout", "post")}
# (path pattern, roles allowed besides admin); first match wins
ROLE_TABLE = [
    (r"^/v1/calls", {"agent", "reviewer"}),
    (r"^/v1/flags/export$", {"reviewer", "trainer"}),
    (r"^/v1/(audits|audited-calls|flags)", {"reviewer"}),
    (r"^/v1/packs", {"trainer"}),
    (r"^/v1/search$", {"reviewer", "trainer"}),
    (r"^/v1/stats", {"agent", "reviewer", "trainer"}),  # an agent: only their own numbers
    (r"^/v1/users", set()),
    (r"^/v1/auth/me$", {"agent", "reviewer", "trainer", "telephony"}),
]
WS_ROLES = {
    "/v1/calls/{call_id}/stream": {"telephony"},
    "/v1/calls/{call_id}/events": {"agent", "reviewer"},
    "/v1/twilio": {"telephony"},
    "/v1/freeswitch": {"telephony"},
}
NON_ADMIN = ["agent", "reviewer", "trainer", "telephony"]
START = StartMessage(encoding="pcm16", sample_rate=8000, channels=1, roles=["agent"], language="ru")


def _allowed(path: str) -> set[str]:
    for pattern, roles in ROLE_TABLE:
        if re.search(pattern, path):
            return roles
    raise AssertionError(f"{path} is not in the role table: decide who may use it")


def _operations(server) -> list[tuple[str, str, str]]:
    """(method, path template, a concrete URL) for every operation of the app's OpenAPI schema."""
    schema = server.http("admin").get(f"{server.url}/openapi.json").json()
    operations = []
    for path, methods in schema["paths"].items():
        concrete = re.sub(r"\{(version|flag_id)\}", "999", path)
        concrete = re.sub(r"\{[^}]+\}", "nope-x", concrete)
        operations += [(method, path, concrete) for method in methods]
    return operations


def test_every_http_route_refuses_no_token_and_a_wrong_role(live_server):
    """Tried on each operation: no credential, a made-up token, every role the table does not allow
    (403), every role it allows and admin (neither 401 nor 403)."""
    operations = _operations(live_server)
    assert len(operations) >= 25
    for method, path, url in operations:
        if (path, method) in PUBLIC:
            continue

        def call(client, method=method, url=url):  # noqa: ANN001, ANN202
            return client.request(method.upper(), f"{live_server.url}{url}")

        anonymous = call(httpx)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        forged = httpx.request(
            method.upper(), f"{live_server.url}{url}", headers={"Authorization": "Bearer cb_x"}
        )
        assert forged.status_code == 401, (method, path)
        allowed = _allowed(path)
        for role in NON_ADMIN:
            status = call(live_server.http(role)).status_code
            if role in allowed:
                assert status not in (401, 403), (method, path, role, status)
            else:
                assert status == 403, (method, path, role, status)
        assert call(live_server.http("admin")).status_code not in (401, 403), (method, path)


def test_the_schema_documents_bearer_auth(live_server):
    schema = live_server.http("admin").get(f"{live_server.url}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    secured = {(p, m) for p, ms in schema["paths"].items() for m, op in ms.items() if op.get("security")}
    everything = {(p, m) for p, ms in schema["paths"].items() for m in ms}
    assert everything - secured == PUBLIC


def _refusal(url: str, headers: dict | None = None, first: list[str] = ()) -> tuple[int, str]:
    """Open a socket, send `first` frames, and return the close code and the error event's message."""
    with connect(url, additional_headers=headers) as ws:
        for text in first:
            with contextlib.suppress(ConnectionClosed):  # a header token is refused before they are read
                ws.send(text)
        message = ""
        try:
            while True:
                event = json.loads(ws.recv(timeout=30))
                if event["type"] == "error":
                    message = event["message"]
        except ConnectionClosed:
            pass
    return ws.close_code, message


def _websocket_paths(routes: list) -> set[str]:
    """Every WebSocket route of the app, in included routers too (FastAPI >= 0.165 keeps them there)."""
    paths = set()
    for route in routes:
        if isinstance(route, APIWebSocketRoute):
            paths.add(route.path)
        elif (router := getattr(route, "original_router", None)) is not None:
            paths |= _websocket_paths(router.routes)
    return paths


def _ws_url(server, path: str) -> str:
    return f"{server.ws}{path.replace('{call_id}', 'ws-auth')}"


def _twilio_start(token: str | None = None) -> list[str]:
    params = {"token": token} if token else {}
    start = {
        "callSid": "CAauth",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        "customParameters": params,
    }
    return [json.dumps({"event": "connected"}), json.dumps({"event": "start", "start": start})]


def test_every_websocket_route_refuses_no_token_and_a_wrong_role(live_server):
    """Each socket route, tried with no credential, a made-up token and each role it does not allow:
    an error event naming the problem, then close 1008; nothing is stored."""
    assert _websocket_paths(live_server.app.routes) == set(WS_ROLES)
    for path, allowed in WS_ROLES.items():
        url = _ws_url(live_server, path)
        # Twilio and mod_audio_fork speak first (the token may ride in their first messages)
        first = (
            _twilio_start() if "twilio" in path else ['{"uuid": "ws-auth"}'] if "freeswitch" in path else []
        )
        code, message = _refusal(url, None, first)
        assert code == 1008 and "authentication required" in message, path
        code, message = _refusal(url, {"Authorization": "Bearer cb_forged"}, first)
        assert code == 1008 and "unknown, expired or revoked" in message, path
        for role in set(NON_ADMIN) - allowed:
            code, message = _refusal(url, live_server.headers(role), first)
            assert code == 1008 and f"role '{role}'" in message, (path, role)
    assert live_server.engine.store.get_call("ws-auth") is None
    assert live_server.engine.store.get_call("CAauth") is None


def test_twilio_token_in_custom_parameters(live_server):
    """Twilio cannot send headers: a wrong token in customParameters is refused, the right one is let in."""
    code, message = _refusal(f"{live_server.ws}/v1/twilio", None, _twilio_start("cb_wrong"))
    assert code == 1008 and "revoked" in message
    with connect(f"{live_server.ws}/v1/twilio") as ws:
        for text in _twilio_start(live_server.token("telephony")):
            ws.send(text)
        ws.send(json.dumps({"event": "stop"}))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=60)
    assert live_server.engine.store.get_call("CAauth").status == "completed"


def _stream(server, call_id: str, start: StartMessage, user: str = "telephony") -> list[dict]:
    with connect(f"{server.ws}/v1/calls/{call_id}/stream", additional_headers=server.headers(user)) as ws:
        ws.send(start.to_json())
        ws.send(b"\0\0" * 1600)
        ws.send('{"type": "stop"}')
        events = []
        try:
            while True:
                events.append(json.loads(ws.recv(timeout=60)))
        except ConnectionClosed:
            pass
    return events


def test_an_agent_sees_only_their_own_calls(live_server, listen):
    """A call that names anna is hers: oleg's sidebar is refused, and cut off if it joined before the
    call started; he neither lists nor reads it; reviewers see everything; unnamed calls are open."""
    early = listen(live_server, "anna-1", user="other_agent")
    assert _stream(live_server, "anna-1", START.model_copy(update={"agent": "anna"}))[-1] == {"type": "end"}
    assert early.wait(30) == [{"type": "error", "message": "call 'anna-1' belongs to another agent"}]
    _stream(live_server, "open-1", START)
    code, message = _refusal(f"{live_server.ws}/v1/calls/anna-1/events", live_server.headers("other_agent"))
    assert code == 1008 and "another agent" in message
    assert listen(live_server, "anna-1", user="agent").wait()[-1] == {"type": "end"}
    assert listen(live_server, "anna-1", user="reviewer").wait()[-1] == {"type": "end"}
    assert listen(live_server, "open-1", user="other_agent").wait()[-1] == {"type": "end"}

    def listed(user: str) -> set[str]:
        return {
            c["call_id"] for c in live_server.http(user).get(f"{live_server.url}/v1/calls").json()["calls"]
        }

    assert listed("agent") == listed("reviewer") == {"anna-1", "open-1"}
    assert listed("other_agent") == {"open-1"}
    assert live_server.http("other_agent").get(f"{live_server.url}/v1/calls/anna-1").status_code == 403
    assert live_server.http("agent").get(f"{live_server.url}/v1/calls/anna-1").json()["agent"] == "anna"


def test_login_session_logout_and_revocation(live_server):
    """A page login gives a cookie that works for the API and for a same-origin socket (not a foreign
    one); logout ends it on the server; revoking a user stops their tokens at once."""
    url, anna = live_server.url, live_server.users["agent"]
    wrong = httpx.post(f"{url}/v1/auth/login", json={"name": "anna", "password": "not it at all"})
    assert wrong.status_code == 401 and "cookie" not in {k.lower() for k in wrong.headers}
    unknown = httpx.post(f"{url}/v1/auth/login", json={"name": "nobody", "password": "whatever1"})
    assert unknown.status_code == 401 and unknown.json() == wrong.json()
    pbx = httpx.post(f"{url}/v1/auth/login", json={"name": "pbx", "password": "anything-at-all"})
    assert pbx.status_code == 401  # an integration has no page login
    with httpx.Client(base_url=url) as browser:
        login = browser.post("/v1/auth/login", json={"name": anna.name, "password": anna.password})
        assert login.json() == {"name": "anna", "role": "agent", "via": "session"}
        cookie = login.cookies["callbuffer_session"]
        assert "httponly" in login.headers["set-cookie"].lower()
        assert "samesite=strict" in login.headers["set-cookie"].lower()
        assert browser.get("/v1/auth/me").json()["name"] == "anna"
        assert browser.get("/v1/calls").status_code == 200
        assert browser.get("/v1/packs").status_code == 403
        session = {"Cookie": f"callbuffer_session={cookie}"}
        host = url.removeprefix("http://")
        events = f"{live_server.ws}/v1/calls/c-1/events"
        same_origin = {**session, "Origin": f"http://{host}"}
        with connect(events, additional_headers=same_origin) as ws, pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)  # accepted: waits for the call to start
        code, message = _refusal(events, {**session, "Origin": "http://evil.example"})
        assert code == 1008 and "authentication required" in message
        assert browser.post("/v1/auth/logout").status_code == 204
        assert httpx.get(f"{url}/v1/auth/me", cookies={"callbuffer_session": cookie}).status_code == 401
    admin = live_server.http("admin")
    issued = admin.post(f"{url}/v1/users", json={"name": "temp", "role": "reviewer"}).json()
    temp = {"Authorization": f"Bearer {issued['token']}"}
    assert httpx.get(f"{url}/v1/audited-calls", headers=temp).status_code == 200
    assert admin.post(f"{url}/v1/users", json={"name": "temp", "role": "agent"}).status_code == 409
    assert admin.post(f"{url}/v1/users", json={"name": "<b>", "role": "agent"}).status_code == 422
    assert admin.delete(f"{url}/v1/users/temp").json()["revoked_at"]
    assert httpx.get(f"{url}/v1/audited-calls", headers=temp).status_code == 401
    assert admin.delete(f"{url}/v1/users/temp").status_code == 409
    assert admin.delete(f"{url}/v1/users/ghost").status_code == 404
    assert {"root", "anna", "temp"} <= {u["name"] for u in admin.get(f"{url}/v1/users").json()}


def test_tokens_and_passwords_are_stored_hashed(live_server):
    with sqlite3.connect(live_server.settings.db_path) as db:
        stored = " ".join(str(v) for row in db.execute("SELECT * FROM credentials") for v in row)
        stored += " ".join(str(v) for row in db.execute("SELECT * FROM users") for v in row)
    for user in live_server.users.values():
        assert user.token not in stored
        assert user.password is None or user.password not in stored
    assert "scrypt$" in stored


def test_an_open_sidebar_stops_when_its_user_is_revoked(live_server, monkeypatch):
    """Revoking a user closes their open sidebars too (checked again every RECHECK_S, shortened here)."""
    import server.live.api

    monkeypatch.setattr(server.live.api, "RECHECK_S", 0.2)
    admin = live_server.http("admin")
    token = admin.post(f"{live_server.url}/v1/users", json={"name": "gone", "role": "agent"}).json()["token"]
    with connect(
        f"{live_server.ws}/v1/calls/r-1/events", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)  # still welcome
        admin.delete(f"{live_server.url}/v1/users/gone")
        event = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert event == {"type": "error", "message": "the token or session is unknown, expired or revoked"}
    assert ws.close_code == 1008
