"""``callbuffer users``: add, list and revoke users, and issue API tokens, on the server's own store.

This is how the first admin comes to exist (there is no default user or password); later admins may
use ``/v1/users`` instead. Tokens are printed once and stored only as hashes.
"""

from __future__ import annotations

import sys

import click

from server.access.store import AuthStore, Role, UserError
from server.cli.settings import settings_from
from server.storage.database import DatabaseError


def _store() -> AuthStore:
    settings = settings_from()
    try:
        return AuthStore(settings.database)
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def users() -> None:
    """Users, roles and API tokens (in CALLBUFFER_DATABASE_URL's database, else CALLBUFFER_DATA_DIR's)."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), required=True, help="What the user may do."
)
@click.option("--password-stdin", is_flag=True, help="Read the page-login password from stdin.")
@click.option("--no-password", is_flag=True, help="API tokens only, no page login (integrations, scripts).")
@click.option("--team", default=None, help="The agent's team, for trends by team.")
def add(name: str, role: str, password_stdin: bool, no_password: bool, team: str | None) -> None:
    """Add a user and print their first API token (shown once).

    People get a password for the pages: asked for on a terminal, or read with --password-stdin.
    A telephony integration (--role telephony) never has one."""
    password = _password(role, password_stdin, no_password)
    with _store() as store:
        try:
            store.add_user(name, role, password, team)
            token = store.issue_token(name, "first token")
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"added {name} ({role}{', page login' if password else ''})", err=True)
    click.echo("API token (shown once, keep it secret):", err=True)
    click.echo(token)


def _password(role: str, from_stdin: bool, none: bool) -> str | None:
    if none or role == Role.TELEPHONY:
        if from_stdin:
            raise click.UsageError("--password-stdin does not go with --no-password or --role telephony")
        return None
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("password for the pages", hide_input=True, confirmation_prompt=True)
    else:
        raise click.UsageError("no terminal to ask for a password: use --password-stdin or --no-password")
    if not password:
        raise click.UsageError("the password is empty")
    return password


@users.command("list")
def list_users() -> None:
    """Every user with their role, tokens, and whether they are revoked."""
    with _store() as store:
        records = store.list_users()
    if not records:
        click.echo(
            "no users yet: add the first admin with `callbuffer users add NAME --role admin`", err=True
        )
        return
    click.echo(f"{'name':<24} {'role':<10} {'login':<6} {'tokens':>6}  {'created':<25} {'revoked':<25} team")
    for u in records:
        login, revoked, team = "yes" if u.has_password else "no", u.revoked_at or "-", u.team or "-"
        name, role = f"{u.name:<24}", f"{u.role.value:<10}"
        click.echo(f"{name} {role} {login:<6} {u.tokens:>6}  {u.created_at:<25} {revoked:<25} {team}")


@users.command("team")
@click.argument("name")
@click.argument("team", required=False)
def team(name: str, team: str | None) -> None:
    """Put a user in TEAM (for trends by team); without TEAM, in no team."""
    with _store() as store:
        try:
            store.set_team(name, team or None)
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{name}: team {team or '(none)'}", err=True)


@users.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke a user: every token and page session of theirs stops working at once."""
    with _store() as store:
        try:
            store.revoke_user(name)
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked {name}", err=True)


@users.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for (shown in the list).")
def token(name: str, label: str) -> None:
    """Issue another API token for a user (e.g. one per telephony integration or script)."""
    with _store() as store:
        try:
            issued = store.issue_token(name, label)
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(issued)
