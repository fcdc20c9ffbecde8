"""Users, their roles, and their credentials in the server's database (:mod:`server.storage`).

Nothing secret is stored in the clear: an API token or a page session is 32 random bytes, kept as its
SHA-256 (a token is long enough that a fast hash is safe; the plain token is shown once, when issued);
a password is kept as a salted scrypt hash. Revoking a user revokes every token and session of theirs at
once. There is no default user and no default password: the first admin is made with
``callbuffer users add NAME --role admin`` on the server's machine.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from server.storage.database import DatabaseError, Row
from server.storage.tables import TableStore

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "cb_"
SESSION_HOURS = 12
MIN_PASSWORD = 8
USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"  # also the `agent` of a call's start
_NAME = re.compile(USER_NAME_PATTERN)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class Role(StrEnum):
    """What a user may do. ``admin`` may do everything; ``telephony`` is an integration (Twilio,
    FreeSWITCH, a softphone connector) that streams calls in and can do nothing else."""

    AGENT = "agent"
    REVIEWER = "reviewer"
    TRAINER = "trainer"
    ADMIN = "admin"
    TELEPHONY = "telephony"


class AuthStoreError(DatabaseError):
    """The users table could not be read or written."""


class UserError(ValueError):
    """A user cannot be added or changed as asked (the message says why)."""


class UnknownUserError(UserError):
    """No user has that name."""


class UserConflictError(UserError):
    """The name is taken, or the user is already revoked."""


@dataclass(frozen=True)
class Principal:
    """Who a request is from."""

    name: str
    role: Role
    via: str  # "token" or "session"

    def may(self, *roles: Role) -> bool:
        return self.role is Role.ADMIN or self.role in roles


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: Role
    created_at: str
    revoked_at: str | None
    has_password: bool
    tokens: int  # API tokens not revoked
    team: str | None = None  # the team an agent belongs to, for trends by team (server.stats)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('agent', 'reviewer', 'trainer', 'admin', 'telephony')),
    password_hash TEXT,                 -- scrypt$<salt hex>$<hash hex>, NULL: no page login
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,
    team          TEXT                  -- optional: the team of an agent, for trends
);
CREATE TABLE IF NOT EXISTS credentials (
    token_hash   TEXT PRIMARY KEY,      -- SHA-256 hex of the token
    user_name    TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('token', 'session')),
    label        TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    expires_at   TEXT,                  -- NULL means until revoked
    revoked_at   TEXT
);
CREATE INDEX IF NOT EXISTS credentials_user ON credentials (user_name)
"""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return hmac.compare_digest(candidate.hex(), digest)


class AuthStore(TableStore):
    """Users and credentials; every method is one short transaction."""

    name = "users"
    schema = _SCHEMA
    schema_version = 2  # 2: users.team
    migrations = {1: ("ALTER TABLE users ADD COLUMN team TEXT",)}  # from before users had teams
    error = AuthStoreError

    # -- users ----------------------------------------------------------------------------------------
    def add_user(
        self, name: str, role: Role | str, password: str | None = None, team: str | None = None
    ) -> UserRecord:
        """A new user. `password` (at least MIN_PASSWORD characters) allows a page login; without one
        the user only has API tokens. `team` (same characters as a name) groups agents in trends. A
        revoked name cannot be reused (its history stays attributable)."""
        if not _NAME.match(name):
            raise UserError(f"bad user name {name!r}: letters, digits and . _ @ - only, up to 64")
        if team is not None and not _NAME.match(team):
            raise UserError(f"bad team name {team!r}: letters, digits and . _ @ - only, up to 64")
        try:
            role = Role(role)
        except ValueError:
            raise UserError(f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}") from None
        if password is not None and len(password) < MIN_PASSWORD:
            raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
        if role is Role.TELEPHONY and password is not None:
            raise UserError("a telephony integration has tokens only, no password")
        hashed = hash_password(password) if password is not None else None
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise UserConflictError(f"user {name!r} already exists")
            conn.execute(
                "INSERT INTO users (name, role, password_hash, created_at, team) VALUES (?, ?, ?, ?, ?)",
                (name, role.value, hashed, _iso(_now()), team),
            )
        logger.info("user %s added with role %s", name, role.value)
        return self.get_user(name)

    def set_team(self, name: str, team: str | None) -> UserRecord:
        """Put the user in `team` (None: no team), for trends by team."""
        if team is not None and not _NAME.match(team):
            raise UserError(f"bad team name {team!r}: letters, digits and . _ @ - only, up to 64")
        with self._write() as conn:
            if not conn.execute("UPDATE users SET team = ? WHERE name = ?", (team, name)).rowcount:
                raise UnknownUserError(f"no user {name!r}")
        logger.info("user %s is now in team %s", name, team or "(none)")
        return self.get_user(name)

    def get_user(self, name: str) -> UserRecord:
        rows = self._read(_USER_SELECT + " WHERE u.name = ? GROUP BY u.name", (name,))
        if not rows:
            raise UnknownUserError(f"no user {name!r}")
        return _user(rows[0])

    def list_users(self) -> list[UserRecord]:
        return [_user(r) for r in self._read(_USER_SELECT + " GROUP BY u.name ORDER BY u.name")]

    def has_admin(self) -> bool:
        return bool(self._read("SELECT 1 FROM users WHERE role = 'admin' AND revoked_at IS NULL"))

    def revoke_user(self, name: str) -> None:
        """The user can no longer log in, and every token and session of theirs stops working."""
        now = _iso(_now())
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE users SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now, name)
            ).rowcount
            if not changed:
                if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                    raise UserConflictError(f"user {name!r} is already revoked")
                raise UnknownUserError(f"no user {name!r}")
            conn.execute(
                "UPDATE credentials SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL",
                (now, name),
            )
        logger.info("user %s revoked", name)

    # -- credentials ----------------------------------------------------------------------------------
    def issue_token(self, name: str, label: str = "") -> str:
        """A new API token for the user; the plain token is returned once and never stored."""
        return self._issue(name, "token", label, None)

    def check_password(self, name: str, password: str) -> Principal | None:
        """The user if the name and password are right and the user is not revoked (constant work
        either way, so a wrong name cannot be told from a wrong password by timing)."""
        rows = self._read(
            "SELECT role, password_hash FROM users WHERE name = ? AND revoked_at IS NULL", (name,)
        )
        stored = rows[0]["password_hash"] if rows else None
        if verify_password(password, stored or _DUMMY_HASH) and stored:
            return Principal(name, Role(rows[0]["role"]), "session")
        return None

    def start_session(self, name: str) -> str:
        """A page session for a logged-in user, valid for SESSION_HOURS (ended ones are cleared out)."""
        with self._write() as conn:
            conn.execute(
                "DELETE FROM credentials WHERE kind = 'session'"
                " AND (expires_at <= ? OR revoked_at IS NOT NULL)",
                (_iso(_now()),),
            )
        return self._issue(name, "session", "page login", _now() + timedelta(hours=SESSION_HOURS))

    def end_session(self, token: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE credentials SET revoked_at = ? WHERE token_hash = ? AND kind = 'session'",
                (_iso(_now()), _token_hash(token)),
            )

    def authenticate(self, token: str) -> Principal | None:
        """Who holds `token` (an API token or a session), or None if it is unknown, revoked or expired."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        rows = self._read(
            "SELECT c.kind, c.expires_at, u.name, u.role FROM credentials c JOIN users u "
            "ON u.name = c.user_name WHERE c.token_hash = ? AND c.revoked_at IS NULL "
            "AND u.revoked_at IS NULL",
            (_token_hash(token),),
        )
        if not rows:
            return None
        row = rows[0]
        if row["expires_at"] is not None and row["expires_at"] <= _iso(_now()):
            return None
        return Principal(row["name"], Role(row["role"]), row["kind"])

    def _issue(self, name: str, kind: str, label: str, expires: datetime | None) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._write() as conn:
            row = conn.execute("SELECT revoked_at FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UnknownUserError(f"no user {name!r}")
            if row["revoked_at"] is not None:
                raise UserConflictError(f"user {name!r} is revoked")
            conn.execute(
                "INSERT INTO credentials (token_hash, user_name, kind, label, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (_token_hash(token), name, kind, label[:200], _iso(_now()), expires and _iso(expires)),
            )
        return token


_USER_SELECT = (
    "SELECT u.name, u.role, u.created_at, u.revoked_at, u.team, u.password_hash IS NOT NULL AS has_password, "
    "COUNT(c.token_hash) AS tokens FROM users u LEFT JOIN credentials c ON c.user_name = u.name "
    "AND c.kind = 'token' AND c.revoked_at IS NULL"
)
_DUMMY_HASH = "scrypt$00$00"  # checked against when the user has no password: the same scrypt work


def _user(row: Row) -> UserRecord:
    return UserRecord(
        name=row["name"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        has_password=bool(row["has_password"]),
        tokens=int(row["tokens"]),
        team=row["team"],
    )
