"""CLI commands for the store and the HTTP API (registered by ``cli.py``)."""

from __future__ import annotations

import os
import shutil
import socket
import sys

import click
from gunicorn.util import parse_address

from codegen.commands.options import Config, pass_config
from codegen.exc import ItemsealError
from codegen.store.embedded import check_url
from verify_api.commands import backup as backup_commands
from verify_api.proxies import TRUSTED_PROXIES_ENV, parse_networks
from verify_api.resources.channels import GS1_TENANTS_ENV, gs1_tenant_map


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
        click.echo(f"store running (pid {status.pid}, nice {status.nice}) at {url}")


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
    """Say whether the embedded redis-server runs, with its pid, nice value and socket."""
    if _external(config):
        config.redis.ping()
        click.echo("external store answers PING")
        return
    status = config.embedded.status()
    state = f"running (pid {status.pid}, nice {status.nice})" if status.running else "stopped"
    detail = f": {status.detail}" if status.detail and not status.running else ""
    click.echo(f"store {state} at {status.socket}{detail}")
    if not status.running:
        raise SystemExit(3)


backup_commands.register(store)  # backup, restore, verify, promote, start --replica-of

WORKER_CLASS = "verify_api.gunicorn_conf.ItemsealWorker"  # uvicorn's, proxy headers left to us


@click.command()
@click.option(
    "--bind",
    "-b",
    multiple=True,
    default=("127.0.0.1:8080",),
    show_default=True,
    help="HOST:PORT or unix:PATH to listen on; repeat for several.",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="Worker processes (one per core is a good start).",
)
@click.option(
    "--timeout",
    type=click.IntRange(1),
    default=30,
    show_default=True,
    help="Seconds before a silent worker is restarted.",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request to standard error.",
)
@click.option(
    "--trusted-proxies",
    metavar="CIDRS",
    default=None,
    help="Reverse proxies whose Forwarded / X-Forwarded-* headers are believed (client address,"
    " scheme, host), comma-separated CIDRs such as 127.0.0.1,10.0.0.0/8 [default:"
    " $ITEMSEAL_TRUSTED_PROXIES, else none].",
)
@click.option(
    "--gs1-tenant",
    "gs1_tenants",
    metavar="TENANT|HOST=TENANT,...",
    default=None,
    help="The tenant that answers GS1 Digital Link paths (/01/{gtin}/21/{serial}): one tenant,"
    " or HOST=TENANT pairs by the request's host [default: $ITEMSEAL_GS1_TENANTS].",
)
@pass_config
def serve(
    config: Config,
    bind: tuple[str, ...],
    workers: int,
    timeout: int,
    access_log: bool,
    trusted_proxies: str | None,
    gs1_tenants: str | None,
) -> None:
    """Serve the verification HTTP API: falcon's ASGI app under gunicorn, uvicorn workers.

    Starts (or reuses) the embedded store unless ITEMSEAL_REDIS_URL is set,
    checks that the master key opens, then becomes the gunicorn master. Each
    worker is uvicorn's (uvloop, httptools): consumer checks are coroutines
    on its event loop with one pipelined Redis link, admin routes run in its
    thread pool. Workers connect to the store's unix socket or URL. The API is described
    at /openapi.json; /healthz and /metrics (all workers summed) are for
    operators. On TCP each worker listens on its own socket (SO_REUSEPORT),
    so clients spread over the workers; a port another server already
    listens on is refused. Stop it with Ctrl-C or SIGTERM.

    Behind a reverse proxy, name it with --trusted-proxies: rate limits then
    count per real client, and the scheme and host are the proxy's.

    \b
    Example:
      itemseal serve --bind 0.0.0.0:8080 --workers 2
      itemseal serve --trusted-proxies 127.0.0.1 --gs1-tenant ACME
      curl -s localhost:8080/v1/tenants/ACME/verify -d '{"code": "2649 2777 8992 6462 7763 2364"}'
    """
    for address in bind:
        _parse_bind(address)
    proxies = trusted_proxies
    if proxies is None:
        proxies = config.env.get(TRUSTED_PROXIES_ENV, "")
    try:
        parse_networks(proxies)
        gs1_map = config.env.get(GS1_TENANTS_ENV, "") if gs1_tenants is None else gs1_tenants
        gs1_tenant_map(gs1_map)
    except ItemsealError as exc:
        raise click.BadParameter(str(exc)) from None
    if config.redis_url:
        check_url(config.redis_url)
    # A listening socket per worker, so the kernel spreads connections over the workers
    # evenly; on one shared socket whichever worker wakes first takes a burst of
    # keep-alive clients and stays the busier one for as long as they stay connected.
    reuse_port = hasattr(socket, "SO_REUSEPORT") and not any(
        b.startswith(("unix:", "fd://")) for b in bind
    )
    if reuse_port:
        for address in bind:
            _refuse_if_taken(address)  # SO_REUSEPORT would share a port already in use
    url = config.redis_url or config.embedded.start()
    config.master_key()  # fail here, with one line, rather than in every worker
    metrics_dir = config.home / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # old samples would add up with new ones
    metrics_dir.mkdir(parents=True)
    env = {**os.environ, "ITEMSEAL_REDIS_URL": url, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    env["ITEMSEAL_HOME"] = str(config.home)
    env[TRUSTED_PROXIES_ENV] = proxies
    env[GS1_TENANTS_ENV] = gs1_map
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:verify_api.gunicorn_conf"]
    for address in bind:
        argv += ["--bind", address]
    argv += ["--workers", str(workers), "--worker-class", WORKER_CLASS, "--timeout", str(timeout)]
    argv += ["--no-control-socket"]  # a fixed path under ~/.gunicorn: servers would collide
    if reuse_port:
        argv += ["--reuse-port"]
    if access_log:
        argv += ["--access-logfile", "-"]
    argv.append("verify_api.asgi:application")
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)  # gunicorn takes over this process (and its signals)


def _parse_bind(address: str) -> tuple[str, int] | str:
    """gunicorn's reading of a --bind address, refused as a usage error instead of a traceback."""
    try:
        return parse_address(address)
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).rstrip(".")
        raise click.BadParameter(f"{address!r}: {reason}; write HOST:PORT or unix:PATH",
                                 param_hint="--bind") from None


def _refuse_if_taken(address: str) -> None:
    """Fail like a plain bind would if another server already listens on ``address``."""
    host, port = _parse_bind(address)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.BadParameter(f"{address}: {exc.strerror}", param_hint="--bind") from None
    for family, kind, proto, _, sockaddr in infos[:1]:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                raise click.ClickException(f"cannot listen on {address}: {exc.strerror}") from None


COMMANDS = (store, serve)
