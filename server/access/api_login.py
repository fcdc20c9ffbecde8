"""Page login: a name and password give a session cookie; ``/v1/auth/me`` says who the caller is.

API clients do not log in: they send a bearer token (:mod:`server.access.auth`). Sessions last
``SESSION_HOURS``; logging out revokes the session on the server, not just the cookie.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from server.access.auth import SESSION_COOKIE, auth_store, require
from server.access.store import SESSION_HOURS, Principal, Role

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/auth", tags=["auth"])
ANYONE = require(*Role)


class Login(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    name: str
    role: Role
    via: str


@router.post("/login")
async def login(body: Login, request: Request, response: Response) -> Me:
    """Check the name and password and set the session cookie (HttpOnly, SameSite=Strict)."""
    store = auth_store(request)
    principal = await asyncio.to_thread(store.check_password, body.name, body.password)
    if principal is None:
        logger.info("failed login for %r from %s", body.name, request.client and request.client.host)
        raise HTTPException(status_code=401, detail="wrong name or password")
    token = await asyncio.to_thread(store.start_session, principal.name)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return Me(name=principal.name, role=principal.role, via="session")


@router.post("/logout", status_code=204)
async def logout(request: Request, response: Response) -> None:
    """End the page session (it stops working at once) and clear the cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await asyncio.to_thread(auth_store(request).end_session, token)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me")
async def me(principal: Annotated[Principal, ANYONE]) -> Me:
    """Who the token or session belongs to, and their role."""
    return Me(name=principal.name, role=principal.role, via=principal.via)
