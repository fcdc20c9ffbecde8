"""Users and tokens, for admins: list, add, revoke, issue another token.

The same as ``callbuffer users …`` on the CLI, which is how the first admin comes to exist.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from server.access.auth import auth_store, require
from server.access.store import Role, UnknownUserError, UserConflictError, UserError, UserRecord

router = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[require(Role.ADMIN)])


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Role
    password: str | None = Field(default=None, max_length=1024, description="allows a page login")
    team: str | None = Field(default=None, max_length=64, description="an agent's team, for trends")


class NewToken(BaseModel):
    label: str = Field(default="", max_length=200)


class User(BaseModel):
    name: str
    role: Role
    created_at: str
    revoked_at: str | None
    has_password: bool
    tokens: int
    team: str | None = None

    @classmethod
    def of(cls, record: UserRecord) -> User:
        return cls(**record.__dict__)


class Issued(BaseModel):
    user: User
    token: str = Field(description="shown once; only its hash is stored")


@router.get("")
async def list_users(request: Request) -> list[User]:
    return [User.of(u) for u in await asyncio.to_thread(auth_store(request).list_users)]


@router.post("", status_code=201)
async def add_user(body: NewUser, request: Request) -> Issued:
    """A new user with a first API token."""
    store = auth_store(request)
    try:
        record = await asyncio.to_thread(store.add_user, body.name, body.role, body.password, body.team)
        token = await asyncio.to_thread(store.issue_token, body.name, "first token")
    except UserError as exc:
        raise HTTPException(status_code=_status(exc), detail=str(exc)) from None
    return Issued(user=User.of(record), token=token)


@router.post("/{name}/tokens", status_code=201)
async def issue_token(name: str, body: NewToken, request: Request) -> Issued:
    store = auth_store(request)
    try:
        token = await asyncio.to_thread(store.issue_token, name, body.label)
        record = await asyncio.to_thread(store.get_user, name)
    except UserError as exc:
        raise HTTPException(status_code=_status(exc), detail=str(exc)) from None
    return Issued(user=User.of(record), token=token)


@router.delete("/{name}")
async def revoke_user(name: str, request: Request) -> User:
    """The user's tokens and sessions stop working at once; the user stays listed as revoked."""
    store = auth_store(request)
    try:
        await asyncio.to_thread(store.revoke_user, name)
        return User.of(await asyncio.to_thread(store.get_user, name))
    except UserError as exc:
        raise HTTPException(status_code=_status(exc), detail=str(exc)) from None


def _status(exc: UserError) -> int:
    if isinstance(exc, UnknownUserError):
        return 404
    return 409 if isinstance(exc, UserConflictError) else 422
