"""CLI commands for office staff accounts (``itemseal staff``): people, not machines.

Machines keep their bearer tokens (``itemseal token``); a person logs in to
the office at ``/office/TENANT/`` with the username and password made here.
"""

from __future__ import annotations

import sys
import time

import click

from codegen.commands.options import (
    Config,
    echo_json,
    echo_rows,
    iso_time,
    json_option,
    pass_config,
    tenant_option,
)
from codegen.store.audit import AuditLog
from verify_api.admin.roles import ROLES
from verify_api.admin.staff import MIN_PASSWORD, StaffStore


def _password(stdin: bool) -> str:
    """The password from the first line of standard input, or typed twice at a prompt."""
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _store(config: Config, tenant: str, *, sealed: bool = False) -> StaffStore:
    """``sealed``: the TOTP commands need the master key (it seals the secret)."""
    return StaffStore(config.redis, tenant, master=config.master_key() if sealed else None)


password_stdin = click.option(
    "--password-stdin", is_flag=True,
    help=f"Read the password ({MIN_PASSWORD}+ characters) from the first line of standard"
         " input instead of prompting (never on the command line: it would show in `ps`).")


@click.group()
def staff() -> None:
    """Office staff accounts: add, list, disable, enable, reset, totp."""


@staff.command("add")
@tenant_option
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the person may do.")
@password_stdin
@pass_config
def staff_add(config: Config, tenant: str, username: str, role: str,
              password_stdin: bool) -> None:
    """Add a staff member who logs in to the office at /office/TENANT/.

    \b
    Example:
      printf '%s\\n' "$PW" | itemseal staff add -t ACME liwei --role support --password-stdin
    """
    found = _store(config, tenant).add(username, role, _password(password_stdin))
    AuditLog(config.redis, tenant).record("cli", "staff.add", f"staff/{username}",
                                          None, {"role": found.role})
    click.echo(f"staff member {username} ({role}) added; log in at /office/{tenant}/login")


@staff.command("list")
@tenant_option
@json_option
@pass_config
def staff_list(config: Config, tenant: str, as_json: bool) -> None:
    """List the staff: username, role, disabled, locked, TOTP, created (never the password).

    \b
    Example:
      itemseal staff list --tenant ACME
    """
    store = _store(config, tenant)
    now = time.time()
    header = ("username", "role", "disabled", "locked", "totp", "created_at")
    rows = [(s.username, s.role, "yes" if s.disabled else "no",
             "yes" if s.locked(now) else "no", "yes" if s.totp else "no",
             iso_time(s.created_at)) for s in store.list()]
    if as_json:
        echo_json({"staff": [dict(zip(header, row, strict=True)) for row in rows]})
    else:
        echo_rows(header, rows)


def _toggle(disabled: bool):
    verb = "disable" if disabled else "enable"

    @tenant_option
    @click.argument("username")
    @pass_config
    def command(config: Config, tenant: str, username: str) -> None:
        _store(config, tenant).set_disabled(username, disabled)
        AuditLog(config.redis, tenant).record("cli", f"staff.{verb}", f"staff/{username}",
                                              None, {"disabled": disabled})
        click.echo(f"staff member {username} {verb}d")

    command.__doc__ = (
        f"{verb.capitalize()} a staff member's log-in"
        + (" (their open sessions end at the next request)." if disabled else ".")
        + f"\n\n    \b\n    Example:\n      itemseal staff {verb} --tenant ACME liwei\n"
    )
    return staff.command(verb)(command)


staff_disable = _toggle(True)
staff_enable = _toggle(False)


@staff.command("reset")
@tenant_option
@click.argument("username")
@password_stdin
@click.option("--drop-totp", is_flag=True, help="Also remove the TOTP second factor.")
@pass_config
def staff_reset(config: Config, tenant: str, username: str, password_stdin: bool,
                drop_totp: bool) -> None:
    """Give a staff member a new password (to change at the next log-in) and unlock them.

    \b
    Example:
      printf '%s\\n' "$PASSWORD" | itemseal staff reset --tenant ACME liwei --password-stdin
    """
    _store(config, tenant).reset(username, _password(password_stdin), drop_totp=drop_totp)
    AuditLog(config.redis, tenant).record("cli", "staff.reset", f"staff/{username}",
                                          None, {"drop_totp": drop_totp})
    click.echo(f"staff member {username}: password reset; to be changed at the next log-in")


@staff.command("totp")
@tenant_option
@click.argument("username")
@click.option("--off", is_flag=True, help="Remove the second factor instead.")
@pass_config
def staff_totp(config: Config, tenant: str, username: str, off: bool) -> None:
    """Set up (or with --off remove) a staff member's TOTP second factor.

    Prints the otpauth:// URI once: add it to an authenticator app.

    \b
    Example:
      itemseal staff totp --tenant ACME liwei
    """
    store = _store(config, tenant, sealed=True)
    if off:
        store.disable_totp(username)
        AuditLog(config.redis, tenant).record("cli", "staff.totp.off", f"staff/{username}")
        click.echo(f"staff member {username}: TOTP removed")
        return
    _, uri = store.enable_totp(username)
    AuditLog(config.redis, tenant).record("cli", "staff.totp.on", f"staff/{username}")
    click.echo("shown once; add it to the authenticator app:", err=True)
    click.echo(uri)


COMMANDS = (staff,)
