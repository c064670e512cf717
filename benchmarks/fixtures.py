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
