"""``itemseal store backup|restore|verify|promote`` and ``store start --replica-of``.

The library is ``codegen/store/backup.py``; ``register(store)`` adds these to the
``store`` group of ``verify_api/commands/`` (and wraps its ``start``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from codegen.commands.options import Config, pass_config
from codegen.exc import BackupError, CodegenError
from codegen.store import backup as lib
from codegen.store import standby
from codegen.words import plural
from points_bridge.integrity import verify_store
from points_bridge.ledger_archive import backup_files


class _ProgressLine:
    """One line on standard error, rewritten in place; only when it is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._last = 0.0
        self._shown = False

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.1:
            return
        self._last = now
        self._shown = True
        sys.stderr.write(f"\r\033[K{text}")
        sys.stderr.flush()

    def done(self) -> None:
        if self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _source(config: Config) -> str:
    return config.redis_url or f"embedded store {config.embedded.run_dir}"


@click.command("backup")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="A new folder, or a .tar / .tar.gz file, for the snapshot and its manifest.json.",
)
@click.option(
    "--format",
    "kind",
    type=click.Choice(["auto", "rdb", "keys"]),
    default="auto",
    show_default=True,
    help="rdb: the server's BGSAVE file (its dir must be readable here); keys: DUMP of"
    " every key over the wire; auto: rdb when possible.",
)
@pass_config
def store_backup(config: Config, out: Path, kind: str) -> None:
    """Snapshot the store while checks go on, with a manifest (time, version, keys, sha256).

    The ledger archive's files (`points archive`) are copied in too, and
    `store restore` puts them back where they were. The master key is never
    in a backup: back up ITEMSEAL_HOME/master.key (or ITEMSEAL_MASTER_KEY)
    separately, somewhere else.

    \b
    Example:
      itemseal store backup --out /backups/itemseal-$(date +%Y%m%dT%H%M)
    """
    progress = _ProgressLine()
    try:
        result = lib.backup(
            config.redis,
            out,
            source=_source(config),
            kind=kind,
            binary=config.env.get("ITEMSEAL_REDIS_SERVER"),
            progress=progress,
            beside=lambda: backup_files(config.redis),
        )
    finally:
        progress.done()
    m = result.manifest
    tenants = ", ".join(f"{t} {n}" for t, n in m["keys_per_tenant"].items()) or "none"
    click.echo(f"backup written to {result.path} ({m['kind']}, {m['keys']} keys: {tenants})")
    if m["beside"]:
        click.echo(f"with {plural(len(m['beside']), 'ledger archive file')} (points archive)")
    click.echo(lib.master_key_note(config.home, config.env))


@click.command("restore")
@click.argument("source", metavar="FROM", type=click.Path(path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Stop a running store and move its data aside (redis/data.before-restore-*).",
)
@pass_config
def store_restore(config: Config, source: Path, force: bool) -> None:
    """Restore a backup (folder or .tar) into the stopped, empty embedded store.

    Then run `itemseal store verify`. With ITEMSEAL_REDIS_URL set, only a
    `--format keys` backup can be restored, into that Redis.
    """
    progress = _ProgressLine()
    try:
        if config.redis_url:
            keys = _restore_external(config, source, force, progress)
            click.echo(f"restored {keys} keys into {lib.redact(config.redis_url)}")
            return
        result = lib.restore_embedded(
            config.embedded,
            source,
            force=force,
            binary=config.env.get("ITEMSEAL_REDIS_SERVER"),
            progress=progress,
        )
    finally:
        progress.done()
    click.echo(f"restored {result.keys} keys; store running at {config.embedded.url()}")
    if result.beside:
        click.echo(f"restored {plural(result.beside, 'ledger archive file')} where they were")
    if result.moved_aside:
        click.echo(f"the data it held before is in {result.moved_aside}")
    click.echo("next: itemseal store verify (it needs the master key the backup was made with)")


def _restore_external(config: Config, source: Path, force: bool, progress) -> int:
    opened = lib.open_backup(source)
    try:
        if opened.kind != "keys":
            raise BackupError(
                "an rdb backup restores into the embedded store only; for an external Redis,"
                " copy its dump.rdb into the stopped server's dir, or back up with --format keys"
            )
        existing = config.redis.dbsize()
        if existing and not force:
            raise BackupError(
                f"{lib.redact(config.redis_url)} is not empty ({existing} keys): use --force"
                " to overwrite the keys the backup holds"
            )
        keys = lib.load_keys(config.redis, opened.file(), replace=force, progress=progress)
        lib.restore_beside(opened)
        return keys
    finally:
        opened.close()


@click.command("verify")
@click.option(
    "--backup",
    "backup_path",
    type=click.Path(path_type=Path),
    help="Compare the keys per tenant with this backup's manifest.",
)
@click.option(
    "--sample",
    type=click.IntRange(0),
    default=200,
    show_default=True,
    help="Members per tenant whose balance is checked against their ledger.",
)
@pass_config
def store_verify(config: Config, backup_path: Path | None, sample: int) -> None:
    """Check the store: keys per tenant, tenant keys open, balances equal ledgers.

    Exits 1 with one line per problem on standard error.
    """
    expected = None
    if backup_path is not None:
        opened = lib.open_backup(backup_path)
        expected = opened.manifest.get("keys_per_tenant", {})
        opened.close()
    try:
        master: object = config.master_key()
    except CodegenError as exc:
        master = exc
    report = verify_store(config.redis, master, sample=sample, expected=expected)
    for tenant, count in report.keys_per_tenant.items():
        click.echo(f"{tenant}: {count} keys")
    click.echo(
        f"{report.tenants} tenants, {report.tenant_keys_opened} tenant keys opened,"
        f" {report.members_checked} members' balances checked against their ledgers"
    )
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    if report.problems:
        raise SystemExit(1)
    click.echo("store verified")


@click.command("promote")
@pass_config
def store_promote(config: Config) -> None:
    """Make the standby a primary (REPLICAOF NO ONE); point itemseal at it next.

    Replication is asynchronous: what the old primary acknowledged after the
    standby last heard from it is lost, unless ITEMSEAL_REPLICAS held each
    claim until a replica had it.
    """
    embedded = None if config.redis_url else config.embedded
    done = standby.promote(config.redis, embedded)
    if not done.was_replica:
        click.echo("the store was already a primary: nothing to promote")
        return
    since = (
        f"; it last heard from the primary {done.seconds_since_primary} s ago"
        if done.seconds_since_primary is not None
        else ""
    )
    click.echo(f"promoted: now a primary at replication offset {done.offset}{since}")
    click.echo(
        "writes the old primary acknowledged after that are not here (asynchronous"
        " replication; ITEMSEAL_REPLICAS=1 makes claims wait for a replica)"
    )


def _wrap_start(original: click.Command) -> click.Command:
    @click.command("start")
    @click.option(
        "--replica-of",
        "replica_of",
        metavar="URL",
        help="Start as a standby replicating redis://[user:pass@]HOST:PORT (REPLICAOF).",
    )
    @click.option(
        "--force", is_flag=True, help="With --replica-of: replace data the store already holds."
    )
    @click.pass_context
    def store_start(ctx: click.Context, replica_of: str | None, force: bool) -> None:
        """Start the embedded redis-server, or reuse the one already running.

        With --replica-of it is a standby of that primary (kept across restarts
        until `itemseal store promote`).
        """
        if replica_of is None:
            ctx.invoke(original)
            return
        config: Config = ctx.obj
        if config.redis_url:
            raise BackupError(
                "ITEMSEAL_REDIS_URL is set: the standby is the embedded store, unset it"
            )
        progress = _ProgressLine()
        try:
            info = standby.start_standby(config.embedded, replica_of, force=force,
                                         progress=progress)
        finally:
            progress.done()
        status = config.embedded.status()
        click.echo(
            f"standby running (pid {status.pid}) at {config.embedded.url()}, replicating"
            f" {info.get('master_host')}:{info.get('master_port')}"
            f" (offset {info.get('slave_repl_offset')})"
        )
        click.echo("take over with: itemseal store promote")

    return store_start


def register(group: click.Group) -> None:
    """Add the backup commands to ``group`` (the ``store`` group) and wrap its ``start``."""
    group.add_command(_wrap_start(group.commands["start"]))
    for command in (store_backup, store_restore, store_verify, store_promote):
        group.add_command(command)
