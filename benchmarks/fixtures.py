"""What every benchmark needs around the code it measures: a seeded tenant, a port, the machine.

The seeding goes through the real stores (TenantStore, ProductStore,
KeyStore, BatchRegistry), without writing a printer file: a benchmark of
verification should not spend its minutes minting.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import redis

from codegen.batches import BatchRegistry
from codegen.codes import NUMERIC_24
from codegen.keys import KeyStore, MasterKey
from codegen.products import ProductStore
from codegen.store.keyspace import TenantKeys
from codegen.tenants import TenantStore


def seed_active_batch(
    client: redis.Redis,
    master: MasterKey,
    tenant: str,
    sku: str,
    count: int,
    *,
    points: int = 10,
    limits: Mapping[str, str] | None = None,
) -> tuple[KeyStore, int]:
    """Create ``tenant`` with ``sku`` worth ``points`` and an active batch of ``count``
    codes under key 0; return the key store and the batch's first serial.

    ``limits`` are tenant-record fields such as ``verify_rate_ip`` (``"0"``: off).
    """
    TenantStore(client).create(tenant, f"{tenant} Cosmetics")
    if limits:
        client.hset(TenantKeys(tenant).meta, mapping=dict(limits))
    ProductStore(client).add(tenant, sku, name="Face cream", points=points)
    key_store = KeyStore(client, master)
    key_store.rotate(tenant)
    registry = BatchRegistry(client, tenant)
    first = registry.reserve(NUMERIC_24, count)
    batch = registry.register(
        registry.next_batch_id(), sku=sku, key_id=0, profile=NUMERIC_24.name,
        first_serial=first, count=count,
    )  # fmt: skip
    registry.transition(batch.batch_id, "active")
    return key_store, first


def answers_200(proc: subprocess.Popen, url: str, timeout: float = 30.0) -> bool:
    """Wait until ``url`` answers 200 while ``proc`` (the server just started) runs.

    False if the server exited or ``timeout`` passed: the caller stops it its
    own way (a peer's gunicorn gracefully, itemseal with a kill) and says why.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine(**versions: str) -> dict[str, object]:
    """CPU model, cores, Python, platform and load, plus any library ``versions`` given."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        **versions,
    }


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants now (a gunicorn master and its workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        found.append(current := todo.pop())
        todo += children.get(current, [])
    return found


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone: its time is lost to the figure, not counted twice
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_ticks() -> list[int]:
    """The machine's CPU time so far in clock ticks: user, nice, system, idle, iowait, irq,
    softirq, steal, ... (``/proc/stat``)."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def _ticks_since(start: list[int]) -> list[int]:
    return [b - a for a, b in zip(start, _cpu_ticks(), strict=False)]


class StealMeter:
    """The share of the machine's CPU time the hypervisor gave to others since this was made.

    These machines are shared: a neighbour's burst shows up as steal (``/proc/stat``) and
    skews every figure of the run, the tails most; a run with more than a few percent is not
    a quiet machine's. None where ``/proc/stat`` has no steal column.
    """

    def __init__(self) -> None:
        self._start = _cpu_ticks()

    def share(self) -> float | None:
        spent = _ticks_since(self._start)
        if len(spent) < 8:
            return None
        return round(spent[7] / max(sum(spent[:8]), 1), 4)  # user .. steal


class CpuMeter:
    """Where a load's CPU went, per request: each named group of processes, and the rest.

    ``rest`` is the machine's busy time that no group used (the load generator,
    the kernel's work for the sockets, anything else running). Linux /proc only;
    a clock tick is 10 ms, so a load of a few seconds is needed for a figure.
    """

    def __init__(self, groups: Mapping[str, list[int]]) -> None:
        self._groups = dict(groups)
        self._start = {name: _cpu_seconds(pids) for name, pids in self._groups.items()}
        self._ticks = _cpu_ticks()

    def idle_share(self) -> float:
        """The machine's idle share (idle and iowait, of all its CPU time) since the meter was made.

        A closed-loop load that leaves CPU idle is bound by its latency (each
        connection waits for its answer), not by CPU: there, less work per
        request does not buy more requests.
        """
        spent = _ticks_since(self._ticks)
        return round((spent[3] + spent[4]) / max(sum(spent[:8]), 1), 4)

    def per_request(self, requests: float) -> dict[str, float]:
        """Microseconds of CPU per request since the meter was made."""
        used = {name: _cpu_seconds(pids) - self._start[name] for name, pids in self._groups.items()}
        spent = _ticks_since(self._ticks)
        # user .. steal less idle and iowait: guest time is already in user, as for the shares
        busy = (sum(spent[:8]) - spent[3] - spent[4]) / os.sysconf("SC_CLK_TCK")
        used["rest"] = busy - sum(used.values())
        return {name: round(seconds / max(requests, 1) * 1e6, 1) for name, seconds in used.items()}


class CommandMeter:
    """Where a load's Redis time went, per request and command: ``INFO commandstats``'
    counts and microseconds since the meter was made.

    redis-server times a command a script calls like any other, and the script's
    EVALSHA includes that time as well: so the figures of one load do not add up to
    its Redis time, but they tell, next to a peer's, which commands a request pays for.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._start = _command_stats(client)

    def per_request(self, requests: float, top: int = 12) -> dict[str, dict[str, float]]:
        """``{command: {"calls": per request, "usec": per request}}``, the costliest first; a
        command too rare to show at two decimals a request (the meter's own INFO) is left out."""
        now = _command_stats(self._client)
        spent = {name: (calls - self._start.get(name, (0, 0))[0],
                        usec - self._start.get(name, (0, 0))[1])
                 for name, (calls, usec) in now.items()}
        n = max(requests, 1)
        figures = {name: {"calls": round(calls / n, 2), "usec": round(usec / n, 2)}
                   for name, (calls, usec) in spent.items()}
        seen = [item for item in figures.items() if item[1]["calls"] or item[1]["usec"]]
        return dict(sorted(seen, key=lambda item: -item[1]["usec"])[:top])


def _command_stats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """``{command: (calls, usec)}`` from ``INFO commandstats`` (redis-py parses each line)."""
    return {name.removeprefix("cmdstat_"): (int(stat["calls"]), int(stat["usec"]))
            for name, stat in client.info("commandstats").items()}


def fsync_latency(directory: Path, seconds: float = 1.0, size: int = 256) -> dict[str, float]:
    """Milliseconds an appended ``size``-byte record takes to reach the disk (``fdatasync``),
    p50 and p99 over ``seconds``, in a file of ``directory``.

    What ``appendfsync always`` waits for on every write a store loop makes, on
    the store's own file system: an append grows the file, so each sync writes
    the data and the inode. On this shared virtual disk it took ~0.15 ms idle
    and stalled for tens of milliseconds under load (redis-server's latency
    monitor), so it is measured in the same run, next to the figures it moves.
    """
    record = b"x" * size
    waits: list[float] = []
    fd, name = tempfile.mkstemp(prefix="fsync-probe-", dir=directory)
    try:
        end = time.perf_counter() + seconds
        while (start := time.perf_counter()) < end:
            os.write(fd, record)
            os.fdatasync(fd)
            waits.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(name)
    waits.sort()
    return {
        "p50": round(waits[len(waits) // 2] * 1e3, 3),
        "p99": round(waits[int(len(waits) * 0.99)] * 1e3, 3),
        "syncs": len(waits),
    }
