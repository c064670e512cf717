"""Backups of the store and their restore (the standby is ``standby.py``).

**Two snapshot formats**, both described by ``manifest.json`` beside them:

* ``rdb`` (``dump.rdb``): the server's own snapshot. ``BGSAVE`` forks, so the
  file is one consistent point in time and checks go on while it is written;
  it is copied out of the server's ``dir``. Used for the embedded store and
  for an external Redis on this machine whose ``dir`` can be read.
* ``keys`` (``keys.jsonl``): for a Redis whose files are out of reach (another
  host, a cluster). Every key is read over the wire with ``DUMP`` and
  ``PTTL``, all the keys of one ``{hash tag}`` in one Lua script (chunks of
  at most ``KEYS_PER_CALL`` keys, never splitting one card's keys), so what
  one itemseal script writes together (a claim and its outbox entry, a
  balance and its ledger) is snapshot together. Keys of different tags are
  read at different moments: a key written during the backup may be in it
  or not, one written before it started always is. Line 1 is a header
  ``{"format": "itemseal-keys/1", ...}``; each further line is one key:
  ``{"key": base64, "pttl": ms or -1, "dump": base64 DUMP payload}``. A
  ``DUMP`` payload only restores into the same or a newer Redis version.

The manifest (``itemseal-backup/1``): ``created_at`` (ISO-8601 UTC),
``kind``, ``source`` (password removed), ``redis_version``, ``keys``,
``keys_per_tenant`` (keys outside any tenant under ``(shared)``), ``files``
(name -> sha256 and bytes), ``beside`` (name -> the absolute path a file
outside Redis was copied from, and is restored to: the ledger archive). The
key counts of an ``rdb`` backup are read from the copied file by loading it
into a throwaway redis-server, which also proves the file loads. The master
key is never in a backup.

**Restore** goes into a stopped embedded store (or, for ``keys``, any empty
Redis by URL). An ``rdb`` file is loaded by a throwaway redis-server in the
store's data dir that then writes the append-only file (``CONFIG SET
appendonly yes``), because a redis-server started with ``appendonly yes``
ignores an RDB file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from codegen.exc import BackupError
from codegen.store.embedded import EmbeddedRedis, find_server_binary

FORMAT = "itemseal-backup/1"
KEYS_FORMAT = "itemseal-keys/1"
MANIFEST = "manifest.json"
RDB_FILE = "dump.rdb"
KEYS_FILE = "keys.jsonl"
SHARED = "(shared)"
KEYS_PER_CALL = 5000
_TENANT_OF_KEY = re.compile(rb"^is:\{([A-Za-z0-9][A-Za-z0-9_-]{0,31})(?:/[^}]*)?\}")
_DUMP_LUA = """
local out = {}
for _, k in ipairs(KEYS) do
  local v = redis.call('DUMP', k)
  if v then
    out[#out + 1] = k
    out[#out + 1] = redis.call('PTTL', k)
    out[#out + 1] = v
  end
end
return out
"""

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def master_key_note(home: Path, env: Mapping[str, str]) -> str:
    """Where the master key lives: it is never in a backup."""
    where = "ITEMSEAL_MASTER_KEY" if env.get("ITEMSEAL_MASTER_KEY") else str(home / "master.key")
    return (
        f"the master key is NOT in this backup: it is in {where}; back it up separately"
        " (without it no tenant key in the backup opens)"
    )


def redact(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def tenant_of(key: bytes) -> str:
    found = _TENANT_OF_KEY.match(key)
    return found.group(1).decode() if found else SHARED


def hash_tag(key: bytes) -> bytes:
    """The part of ``key`` Redis Cluster hashes (the ``{tag}`` if there is one)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _facts(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _is_cluster(client: Any) -> bool:
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def _info(client: Any, section: str) -> dict[str, Any]:
    info = client.info(section)
    if _is_cluster(client) and info and all(isinstance(v, dict) for v in info.values()):
        info = next(iter(info.values()))  # {node: info}: one node's is enough for a version
    return info


# -- backup ------------------------------------------------------------------------------


@dataclass
class BackupResult:
    path: Path
    manifest: dict[str, Any]


def backup(
    client: redis.Redis,
    out: Path,
    *,
    source: str,
    kind: str = "auto",
    binary: str | None = None,
    progress: Progress = _quiet,
    beside: Callable[[], Mapping[str, Path]] | None = None,
) -> BackupResult:
    """Snapshot the store into ``out`` (a new dir, or a ``.tar``/``.tar.gz`` file).

    ``kind``: ``rdb``, ``keys`` or ``auto`` (``rdb`` when the server's files are
    on this machine and readable, else ``keys``). Nothing appears under
    ``out`` until the backup is complete.

    ``beside``: the files the store's keys point to outside Redis (the ledger
    archive's Parquet files, ``points archive``) as name in the backup -> path.
    Asked for after the snapshot, so every file a snapshotted key names is
    there (such files are only ever added); copied in, listed in ``files``
    and, with where they came from, in ``beside`` (``restore_beside``).
    """
    out = Path(out).absolute()
    archive = out.name.endswith((".tar", ".tar.gz", ".tgz"))
    if out.exists() and not (out.is_dir() and not archive and not any(out.iterdir())):
        raise BackupError(f"{out} already exists: give a new folder or file")
    if not out.parent.is_dir():  # as every --out: a typo in the folder is an error, not a new tree
        raise BackupError(f"{out.parent} does not exist: make the folder first")
    rdb_path = _local_rdb(client) if kind in ("auto", "rdb") else None
    if kind == "rdb" and rdb_path is None:
        raise BackupError(
            "the server's snapshot file is not reachable from here (another host, CONFIG"
            " disabled, or a cluster): use --format keys"
        )
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        version = str(_info(client, "server").get("redis_version", "?"))
        if rdb_path is not None:
            _bgsave(client, progress)
            shutil.copyfile(rdb_path, work / RDB_FILE)
            files = {RDB_FILE: _facts(work / RDB_FILE)}
            progress("counting keys in the copy")
            counts = count_rdb(work / RDB_FILE, binary)
        else:
            counts = _dump_keys(client, work / KEYS_FILE, version, progress)
            files = {KEYS_FILE: _facts(work / KEYS_FILE)}
        origins: dict[str, str] = {}
        for name, path in (beside() if beside else {}).items():
            progress(f"copying {path}")
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, work / name)
            files[name] = _facts(work / name)
            origins[name] = str(Path(path).absolute())
        manifest = {
            "format": FORMAT,
            "created_at": _now_iso(),
            "kind": "rdb" if rdb_path is not None else "keys",
            "source": redact(source),
            "redis_version": version,
            "keys": sum(counts.values()),
            "keys_per_tenant": dict(sorted(counts.items())),
            "files": files,
            "beside": origins,
            "master_key": "not included: back up ITEMSEAL_HOME/master.key or ITEMSEAL_MASTER_KEY",
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for name in [*files, MANIFEST]:
            with open(work / name, "rb") as fh:
                os.fsync(fh.fileno())
        if archive:
            partial = work / ("archive" + "".join(out.suffixes))
            with tarfile.open(partial, "w:gz" if out.name.endswith("gz") else "w") as tar:
                for name in [MANIFEST, *files]:
                    tar.add(work / name, arcname=name)
            os.replace(partial, out)
        else:
            if out.exists():
                out.rmdir()  # empty (checked above)
            os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BackupResult(out, manifest)


def _local_rdb(client: Any) -> Path | None:
    """The server's RDB path if it is on this machine and readable, else None."""
    if _is_cluster(client):
        return None
    kw = client.connection_pool.connection_kwargs
    if not kw.get("path") and kw.get("host", "localhost") not in ("localhost", "127.0.0.1", "::1"):
        return None
    try:
        folder = client.config_get("dir").get("dir")
        name = client.config_get("dbfilename").get("dbfilename")
    except redis.ResponseError:  # CONFIG renamed or refused
        return None
    if not folder or not name:
        return None
    folder = folder.decode() if isinstance(folder, bytes) else folder
    name = name.decode() if isinstance(name, bytes) else name
    path = Path(folder) / name
    return path if os.access(folder, os.R_OK | os.X_OK) else None


def _bgsave(client: redis.Redis, progress: Progress, timeout: float = 3600) -> None:
    """Have the server write a fresh snapshot (BGSAVE SCHEDULE), and wait for it."""
    before = client.lastsave()
    while client.time()[0] <= int(before.timestamp()):  # LASTSAVE counts in seconds
        time.sleep(0.05)
    try:
        client.execute_command("BGSAVE", "SCHEDULE")
    except redis.ResponseError as exc:
        if "already in progress" not in str(exc):
            raise BackupError(f"BGSAVE refused: {exc}") from exc
    started = time.monotonic()
    while True:
        info = client.info("persistence")
        if not info.get("rdb_bgsave_in_progress") and client.lastsave() > before:
            if info.get("rdb_last_bgsave_status") != "ok":
                raise BackupError("BGSAVE failed: see the redis-server log")
            return
        if time.monotonic() - started > timeout:
            raise BackupError(f"BGSAVE did not finish within {timeout:.0f} s")
        keys = info.get("current_save_keys_processed")
        total = info.get("current_save_keys_total")
        done = f" {keys}/{total} keys" if total else ""
        progress(f"snapshot being written{done}, {time.monotonic() - started:.0f} s")
        time.sleep(0.05)


def _scan_keys(client: Any) -> Iterator[bytes]:
    if _is_cluster(client):
        from redis.cluster import PRIMARY

        for node in client.get_nodes():
            if node.server_type == PRIMARY:
                yield from node.redis_connection.scan_iter(count=1000)
        return
    yield from client.scan_iter(count=1000)


def _chunks(keys: list[bytes]) -> Iterator[list[bytes]]:
    """Split one tag's keys into calls, keeping the keys of one card (same last part) together."""
    keys.sort(key=lambda k: (k.rsplit(b":", 1)[-1], k))
    chunk: list[bytes] = []
    for key in keys:
        if len(chunk) >= KEYS_PER_CALL and key.rsplit(b":", 1)[-1] != chunk[-1].rsplit(b":", 1)[-1]:
            yield chunk
            chunk = []
        chunk.append(key)
    if chunk:
        yield chunk


def _dump_keys(client: Any, path: Path, version: str, progress: Progress) -> Counter:
    groups: dict[bytes, list[bytes]] = {}
    for key in _scan_keys(client):
        groups.setdefault(hash_tag(key), []).append(key)
    total = sum(len(keys) for keys in groups.values())
    counts: Counter = Counter()
    dump = client.register_script(_DUMP_LUA)
    done = 0
    with open(path, "w") as fh:
        fh.write(json.dumps({"format": KEYS_FORMAT, "redis_version": version}) + "\n")
        for keys in groups.values():
            for chunk in _chunks(keys):
                reply = dump(keys=chunk)
                for i in range(0, len(reply), 3):
                    key, pttl, payload = reply[i : i + 3]
                    fh.write(json.dumps({
                        "key": base64.b64encode(key).decode(),
                        "pttl": int(pttl),
                        "dump": base64.b64encode(payload).decode(),
                    }) + "\n")  # fmt: skip
                    counts[tenant_of(key)] += 1
                done += len(chunk)
                progress(f"dumped {done}/{total} keys")
    return counts


@contextlib.contextmanager
def throwaway_server(
    folder: Path, dbfilename: str, binary: str | None = None, timeout: float = 60
) -> Iterator[redis.Redis]:
    """A redis-server on ``folder/dbfilename`` with no persistence, on a short unix socket."""
    binary = binary or find_server_binary()
    sock_dir = Path(tempfile.mkdtemp(prefix="is-t-", dir="/tmp"))
    sock = sock_dir / "s.sock"
    args = [
        binary, "--port", "0", "--unixsocket", str(sock), "--dir", str(folder),
        "--dbfilename", dbfilename, "--appendonly", "no", "--save", "", "--daemonize", "no",
        "--logfile", str(sock_dir / "log"),
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=str(sock), socket_timeout=timeout)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log = (sock_dir / "log").read_text(errors="replace").strip().splitlines()[-2:]
                raise BackupError(f"redis-server could not load {dbfilename}: {' | '.join(log)}")
            try:
                if sock.exists() and client.ping():
                    break
            except redis.BusyLoadingError:
                pass
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise BackupError(f"redis-server did not load {dbfilename} within {timeout} s")
            time.sleep(0.02)
        yield client
    finally:
        client.close()
        if proc.poll() is None:
            with contextlib.suppress(redis.RedisError):
                client.shutdown(nosave=True)
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(sock_dir, ignore_errors=True)


def count_keys(client: Any) -> Counter:
    """Keys per tenant (``(shared)`` for the rest) of a live server."""
    return Counter(tenant_of(key) for key in _scan_keys(client))


def count_rdb(path: Path, binary: str | None = None) -> Counter:
    """Keys per tenant in an RDB file (it is loaded by a throwaway redis-server)."""
    with throwaway_server(path.parent, path.name, binary) as client:
        return count_keys(client)


# -- reading a backup --------------------------------------------------------------------


@dataclass
class Backup:
    """A backup opened for restore: its folder (extracted if it was an archive) and manifest."""

    folder: Path
    manifest: dict[str, Any]
    _cleanup: Path | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    def file(self) -> Path:
        return self.folder / (RDB_FILE if self.kind == "rdb" else KEYS_FILE)

    def close(self) -> None:
        if self._cleanup is not None:
            shutil.rmtree(self._cleanup, ignore_errors=True)


def open_backup(source: Path) -> Backup:
    """Open a backup folder, archive, or its manifest, and check every file's sha256."""
    source = Path(source).absolute()
    if not source.exists():
        raise BackupError(f"{source} does not exist: no backup there")
    cleanup = None
    if source.is_file() and source.name != MANIFEST:
        if not tarfile.is_tarfile(source):
            raise BackupError(f"{source} is not a backup (a folder with {MANIFEST} or a .tar)")
        cleanup = Path(tempfile.mkdtemp(prefix="itemseal-restore-"))
        with tarfile.open(source) as tar:
            tar.extractall(cleanup, filter="data")
        folder = cleanup
    else:
        folder = source.parent if source.is_file() else source
    try:
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except FileNotFoundError:
            raise BackupError(f"{folder} has no {MANIFEST}: not an itemseal backup") from None
        except ValueError as exc:
            raise BackupError(f"{folder / MANIFEST} is not valid JSON: {exc}") from None
        if manifest.get("format") != FORMAT or manifest.get("kind") not in ("rdb", "keys"):
            raise BackupError(f"{folder / MANIFEST} is not an {FORMAT} manifest")
        for name, facts in manifest.get("files", {}).items():
            path = folder / name
            if not path.is_file():
                raise BackupError(f"backup file {path} is missing")
            if sha256_of(path) != facts.get("sha256"):
                raise BackupError(
                    f"backup file {path} is damaged: its sha256 does not match the manifest"
                )
    except BaseException:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        raise
    return Backup(folder, manifest, cleanup)


# -- restore -----------------------------------------------------------------------------


@dataclass
class RestoreResult:
    keys: int
    moved_aside: Path | None
    beside: int = 0


def restore_beside(opened: Backup) -> int:
    """Put the backup's ``beside`` files back where they were; return how many were copied.

    A file already there with the same content is left alone; one with other
    content is an error (it is not overwritten: it may be newer than the backup).
    """
    copied = 0
    for name, origin in opened.manifest.get("beside", {}).items():
        target = Path(origin)
        want = opened.manifest["files"][name]["sha256"]
        if target.exists():
            if sha256_of(target) != want:
                raise BackupError(f"{target} exists and differs from the backup's copy:"
                                  " move it away to restore the backup's")
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(opened.folder / name, partial)
            os.replace(partial, target)
        except OSError as exc:
            raise BackupError(f"cannot restore {target}: {exc.strerror}") from None
        copied += 1
    return copied


def _store_key_count(embedded: EmbeddedRedis) -> int:
    """Keys in a stopped embedded store (0 without data files); starts it briefly if needed."""
    data = embedded.data_dir
    if not data.is_dir() or not any(p.is_file() and p.stat().st_size for p in data.rglob("*")):
        return 0
    with embedded.client() as client:
        count = client.dbsize()
    embedded.stop()
    return count


def restore_embedded(
    embedded: EmbeddedRedis,
    source: Path,
    *,
    force: bool = False,
    binary: str | None = None,
    progress: Progress = _quiet,
) -> RestoreResult:
    """Restore a backup into the embedded store, which must be stopped and empty unless ``force``.

    With ``force`` a running store is stopped and the old data folder is moved
    aside (``redis/data.before-restore-<time>``), never deleted. The store is
    left running with the restored data.
    """
    opened = open_backup(source)
    try:
        status = embedded.status()
        if status.running and not force:
            raise BackupError(
                f"the store is running (pid {status.pid}): stop it first (itemseal store stop)"
                " or restore with --force"
            )
        if status.running:
            embedded.stop()
        moved = None
        if not force and (existing := _store_key_count(embedded)):
            raise BackupError(
                f"the store at {embedded.data_dir} is not empty ({existing} keys):"
                " restore with --force to move its data aside"
            )
        if embedded.data_dir.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S")
            moved = embedded.run_dir / f"data.before-restore-{stamp}"
            os.replace(embedded.data_dir, moved)
            if not force:  # it held no keys: nothing worth keeping
                shutil.rmtree(moved, ignore_errors=True)
                moved = None
        embedded.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        embedded.data_dir.mkdir(mode=0o700)
        if opened.kind == "rdb":
            progress("loading the snapshot and writing the append-only file")
            shutil.copyfile(opened.file(), embedded.data_dir / RDB_FILE)
            with throwaway_server(embedded.data_dir, RDB_FILE, binary) as temp:
                _write_aof(temp)
            (embedded.data_dir / RDB_FILE).unlink()  # the store reads only its AOF
            with embedded.client() as client:
                keys = client.dbsize()
        else:
            with embedded.client() as client:
                keys = load_keys(client, opened.file(), progress=progress)
        expected = opened.manifest.get("keys")
        if expected is not None and keys < int(expected) - _expired_since(opened):
            raise BackupError(f"restored {keys} keys, the manifest lists {expected}")
        return RestoreResult(keys, moved, restore_beside(opened))
    finally:
        opened.close()


def _expired_since(opened: Backup) -> int:
    """Keys of a ``keys`` backup whose TTL may have run out since: not counted as missing."""
    if opened.kind != "keys":
        return 0
    with open(opened.file()) as fh:
        next(fh)
        return sum(1 for line in fh if json.loads(line)["pttl"] > 0)


def _write_aof(client: redis.Redis, timeout: float = 3600) -> None:
    """Turn the append-only file on (it is written from memory) and wait until it is."""
    client.config_set("appendfsync", "always")
    client.config_set("appendonly", "yes")
    deadline = time.monotonic() + timeout
    while True:
        info = client.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
            if info.get("aof_last_bgrewrite_status") != "ok":
                raise BackupError("writing the append-only file failed")
            break
        if time.monotonic() > deadline:
            raise BackupError(f"the append-only file was not written within {timeout:.0f} s")
        time.sleep(0.05)
    client.shutdown(nosave=True)  # flushes and fsyncs the AOF


def load_keys(
    client: Any, path: Path, *, replace: bool = False, progress: Progress = _quiet
) -> int:
    """RESTORE every key of a ``keys.jsonl`` file; return how many were restored."""
    restored = 0
    with open(path) as fh:
        header = json.loads(next(fh))
        if header.get("format") != KEYS_FORMAT:
            raise BackupError(f"{path} is not an {KEYS_FORMAT} file")
        pipe = client.pipeline(transaction=False)
        pending = 0
        for line in fh:
            item = json.loads(line)
            pttl = int(item["pttl"])
            if pttl == -2:
                continue
            args = ["RESTORE", base64.b64decode(item["key"]), max(pttl, 0),
                    base64.b64decode(item["dump"])]  # fmt: skip
            if replace:
                args.append("REPLACE")
            pipe.execute_command(*args)
            pending += 1
            if pending == 500:
                restored += _flush_restore(pipe)
                pending = 0
                progress(f"restored {restored} keys")
        restored += _flush_restore(pipe)
    return restored


def _flush_restore(pipe: Any) -> int:
    try:
        replies = pipe.execute(raise_on_error=True)
    except redis.ResponseError as exc:
        if "BUSYKEY" in str(exc):
            raise BackupError(
                f"the store already holds a key of the backup ({exc}): use --force"
            ) from None
        raise BackupError(f"RESTORE failed: {exc}") from None
    return len(replies)
