"""CLI commands for the store and the HTTP API (registered by ``cli.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from cli import Config

pass_config = click.pass_obj


@click.group()
def store() -> None:
    """Manage the embedded redis-server under ITEMSEAL_HOME.

    With ITEMSEAL_REDIS_URL set these commands only report: the store is
    external and itemseal starts or stops nothing.
    """


def _external(config: Config) -> bool:
    if config.redis_url:
        click.echo(f"external store {config.redis_url}: nothing to manage (ITEMSEAL_REDIS_URL)")
        return True
    return False


@store.command("start")
@pass_config
def store_start(config: Config) -> None:
    """Start the embedded redis-server, or reuse the one already running."""
    if not _external(config):
        url = config.embedded.start()
        status = config.embedded.status()
        click.echo(f"store running (pid {status.pid}) at {url}")


@store.command("stop")
@pass_config
def store_stop(config: Config) -> None:
    """Stop the embedded redis-server after it has written its append-only file."""
    if not _external(config):
        stopped = config.embedded.stop()
        click.echo("store stopped" if stopped else "store was not running")


@store.command("status")
@pass_config
def store_status(config: Config) -> None:
    """Say whether the embedded redis-server runs, with its pid and socket."""
    if _external(config):
        config.redis.ping()
        click.echo("external store answers PING")
        return
    status = config.embedded.status()
    state = f"running (pid {status.pid})" if status.running else "stopped"
    detail = f": {status.detail}" if status.detail and not status.running else ""
    click.echo(f"store {state} at {status.socket}{detail}")
    if not status.running:
        raise SystemExit(3)


COMMANDS = (store,)
