"""A standby of the store: an embedded replica, its promotion, and WAIT for replicas.

Redis replicates asynchronously: a write acknowledged by the primary may not
have reached the replica when the primary dies, and a promotion loses it.
``ITEMSEAL_REPLICAS=N`` closes that window for claims: the API answers a claim
only after ``WAIT N`` says N replicas have it (``wait_for_replicas``), and 503
otherwise (the claim is then in the primary's outbox, credited by reconcile).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from codegen.exc import BackupError, ReplicaTimeout, StoreError
from codegen.store.backup import Progress, _quiet, _store_key_count, redact
from codegen.store.embedded import EmbeddedRedis
from codegen.store.wire import Link, is_error, pack

REPLICAS_ENV = "ITEMSEAL_REPLICAS"
REPLICAS_TIMEOUT_ENV = "ITEMSEAL_REPLICAS_TIMEOUT_MS"
REPLICA_CONF = "replica.conf"


# -- standby -----------------------------------------------------------------------------


def _primary_address(url: str) -> tuple[str, int, str | None, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise BackupError(
            f"--replica-of {redact(url)!r}: a standby replicates over TCP, give redis://HOST:PORT"
        )
    if parts.scheme == "rediss":
        raise BackupError("--replica-of: TLS to the primary is not supported; use a tunnel")
    return parts.hostname, parts.port or 6379, parts.username, parts.password


def _replica_lines(url: str) -> list[str]:
    host, port, user, password = _primary_address(url)
    lines = [f"replicaof {host} {port}", "replica-read-only yes"]
    if user:
        lines.append(f"masteruser {json.dumps(user)}")
    if password:
        lines.append(f"masterauth {json.dumps(password)}")
    return lines


def replica_conf(embedded: EmbeddedRedis) -> Path:
    return embedded.run_dir / REPLICA_CONF


def start_standby(
    embedded: EmbeddedRedis,
    primary_url: str,
    *,
    force: bool = False,
    timeout: float = 60,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Make the embedded store a replica of ``primary_url`` and wait for its first sync.

    A store that holds keys and is not already a replica is refused unless
    ``force``: the primary's data replaces it.
    """
    lines = _replica_lines(primary_url)
    conf = replica_conf(embedded)
    status = embedded.status()
    if not conf.exists() and not force:
        if status.running:
            with embedded.client() as client:
                existing = client.dbsize()
        else:
            existing = _store_key_count(embedded)
        if existing:
            raise BackupError(
                f"the store holds {existing} keys: a standby's data is replaced by the"
                " primary's; use --force if that is what you want"
            )
    embedded.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf.write_text("# written by `itemseal store start --replica-of`; removed by promote\n"
                    + "\n".join(lines) + "\n")  # fmt: skip
    conf.chmod(0o600)
    if embedded.status().running:  # apply now, no restart
        with embedded.client() as client:
            host, port, user, password = _primary_address(primary_url)
            if user:
                client.config_set("masteruser", user)
            if password:
                client.config_set("masterauth", password)
            client.execute_command("REPLICAOF", host, port)
    return wait_for_sync(embedded, timeout, progress)


def wait_for_sync(embedded: EmbeddedRedis, timeout: float, progress: Progress) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with embedded.client() as client:
        while True:
            info = client.info("replication")
            if info.get("master_link_status") == "up" and not info.get("master_sync_in_progress"):
                return info
            if time.monotonic() > deadline:
                raise BackupError(
                    f"the standby has no link to {info.get('master_host')}:"
                    f"{info.get('master_port')} after {timeout:.0f} s"
                    f" (link {info.get('master_link_status')}); see {embedded.log_path}"
                )
            progress(f"syncing from {info.get('master_host')}:{info.get('master_port')}")
            time.sleep(0.1)


@dataclass
class Promotion:
    was_replica: bool
    link_status: str
    seconds_since_primary: int | None
    offset: int


def promote(client: redis.Redis, embedded: EmbeddedRedis | None) -> Promotion:
    """REPLICAOF NO ONE: the standby becomes a primary and takes writes."""
    info = client.info("replication")
    was = info.get("role") == "slave"
    seconds = info.get("master_last_io_seconds_ago") if was else None
    if info.get("master_link_down_since_seconds") not in (None, -1):
        seconds = info.get("master_link_down_since_seconds")
    client.execute_command("REPLICAOF", "NO", "ONE")
    if embedded is not None:
        replica_conf(embedded).unlink(missing_ok=True)
    return Promotion(
        was_replica=was,
        link_status=str(info.get("master_link_status", "-")),
        seconds_since_primary=int(seconds) if seconds not in (None, -1) else None,
        offset=int(info.get("slave_repl_offset", info.get("master_repl_offset", 0))),
    )


# -- WAIT for replicas -------------------------------------------------------------------


async def wait_for_replicas(link: Link, replicas: int, timeout_ms: int) -> int:
    """``WAIT replicas timeout_ms`` on the link that made the writes; raise ReplicaTimeout
    if fewer acknowledge (WAIT waits for its own connection's writes: the API's one link
    per worker carries the claim and the credit). Returns the replicas that acked."""
    if replicas <= 0:
        return 0
    (acked,) = await link.call(pack(b"WAIT", b"%d" % replicas, b"%d" % timeout_ms))
    if is_error(acked):
        raise StoreError(f"WAIT failed: {acked}")
    if int(acked) < replicas:
        raise ReplicaTimeout(
            f"only {acked} of {replicas} replicas acknowledged the write within {timeout_ms} ms"
        )
    return int(acked)


def replica_ack_from_env(
    link: Link, env: Mapping[str, str] | None = None
) -> Callable[[], Awaitable[object]] | None:
    """The engine's step after a claim: WAIT for ``ITEMSEAL_REPLICAS`` replicas, or None."""
    env = os.environ if env is None else env
    try:
        replicas = int(env.get(REPLICAS_ENV) or 0)
        timeout_ms = int(env.get(REPLICAS_TIMEOUT_ENV) or 1000)
    except ValueError:
        raise StoreError(f"{REPLICAS_ENV} and {REPLICAS_TIMEOUT_ENV} take whole numbers") from None
    if replicas <= 0:
        return None
    if type(link).__name__ == "ClusterLink":
        raise StoreError(f"{REPLICAS_ENV} is not supported on a Redis Cluster")
    return lambda: wait_for_replicas(link, replicas, max(timeout_ms, 1))
