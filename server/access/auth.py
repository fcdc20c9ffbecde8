"""Who may call what: bearer tokens and page sessions, checked at the edge of every route.

A request carries its credential as ``Authorization: Bearer <token>`` (API clients, telephony, scripts),
or as the ``callbuffer_session`` cookie a page gets from ``POST /v1/auth/login``. A WebSocket may also
pass ``?access_token=<token>`` in its URL, for clients that cannot set headers (some telephony platforms,
browser code outside our pages). The cookie is HttpOnly and SameSite=Strict; on a WebSocket it is only
honoured when the Origin is the server's own, so another site cannot open a socket as the user.

HTTP routes use ``require(role, …)`` as a dependency: 401 without a valid credential, 403 with a role
that is not allowed. WebSocket routes call :func:`authorize_socket` after accepting the socket; a refusal
is an ``error`` event and close code 1008. ``admin`` passes every check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from server.access.store import AuthStore, Principal, Role
from server.live.protocol import CloseCode, ErrorMessage

logger = logging.getLogger(__name__)

SESSION_COOKIE = "callbuffer_session"
_bearer = HTTPBearer(auto_error=False, description="an API token from `callbuffer users add` or /v1/users")


class AuthError(Exception):
    """A request could not be authorised; `status` is 401 (who are you?) or 403 (not with that role)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def auth_store(connection: HTTPConnection) -> AuthStore:
    return connection.app.state.auth


def credential_of(connection: HTTPConnection) -> str | None:
    """The token a request or socket carries: bearer header, then (sockets) access_token, then cookie."""
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if connection.scope["type"] == "websocket" and (token := connection.query_params.get("access_token")):
        return token
    cookie = connection.cookies.get(SESSION_COOKIE)
    if cookie and (connection.scope["type"] != "websocket" or _same_origin(connection)):
        return cookie
    return None


def _same_origin(connection: HTTPConnection) -> bool:
    origin = connection.headers.get("origin")
    host = connection.headers.get("host")
    return origin is not None and host is not None and origin.split("://", 1)[-1] == host


async def authenticate(
    connection: HTTPConnection, roles: tuple[Role, ...], token: str | None = None
) -> Principal:
    """The principal behind `token` (or the connection's own credential), if it may act as one of `roles`."""
    token = token or credential_of(connection)
    if not token:
        raise AuthError(401, "authentication required: send 'Authorization: Bearer <token>' or log in")
    principal = await asyncio.to_thread(auth_store(connection).authenticate, token)
    if principal is None:
        raise AuthError(401, "the token or session is unknown, expired or revoked")
    if not principal.may(*roles):
        allowed = ", ".join(r.value for r in roles)
        raise AuthError(403, f"role '{principal.role.value}' may not do this (needs {allowed})")
    return principal


def require(*roles: Role):  # noqa: ANN201 - a FastAPI dependency
    """A dependency that lets a request through only for `roles` (and admin); gives the Principal."""

    async def dependency(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        try:
            principal = await authenticate(request, roles)
        except AuthError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            raise HTTPException(status_code=exc.status, detail=str(exc), headers=headers) from None
        request.state.principal = principal
        return principal

    return Depends(dependency)


async def authorize_socket(
    ws: WebSocket, roles: tuple[Role, ...], token: str | None = None
) -> Principal | None:
    """The principal of an accepted socket, or None after telling the client why and closing it (1008)."""
    try:
        return await authenticate(ws, roles, token)
    except AuthError as exc:
        await refuse_socket(ws, str(exc))
        return None


async def refuse_socket(ws: WebSocket, message: str, code: CloseCode = CloseCode.POLICY) -> None:
    """Tell an accepted socket why it is refused (an ``error`` event), then close it with `code`."""
    logger.info("refused a socket on %s: %s", ws.url.path, message)
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.send_text(ErrorMessage(message=message).to_json())
        await ws.close(code, reason=message[:120])
