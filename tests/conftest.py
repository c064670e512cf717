"""Shared fixtures: a real redis-server per test session, clients, CLI environments.

Every pytest-xdist worker runs its own session, so each worker gets its own server.
Homes live in short dirs under /tmp because a unix socket path must fit in ~107 bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from codegen.keys import KeyStore, MasterKey
from codegen.tenants import TenantStore
from verify_api.embedded import EmbeddedRedis


def make_short_home() -> Path:
    """Return a new empty dir short enough to hold home/redis/redis.sock."""
    return Path(tempfile.mkdtemp(prefix="is-", dir="/tmp"))


@pytest.fixture
def short_home() -> Iterator[Path]:
    """Return a fresh ITEMSEAL_HOME under /tmp; removed after the test."""
    home = make_short_home()
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """Start one real redis-server for the session and stop it at the end."""
    home = make_short_home()
    server = EmbeddedRedis(home)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """Return a bytes client to the session server, flushed before the test."""
    client = redis.Redis.from_url(redis_server.url(), decode_responses=False)
    try:
        client.flushall()
        yield client
    finally:
        client.close()


@pytest.fixture
def itemseal_env(
    short_home: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> dict[str, str]:
    """Return the environment for a CLI subprocess: fresh home, flushed session server."""
    return {
        "ITEMSEAL_HOME": str(short_home),
        "ITEMSEAL_REDIS_URL": redis_server.url(),
        "PATH": os.environ.get("PATH", ""),
    }


@pytest.fixture
def master_key() -> MasterKey:
    """Return a fresh random master key (never written to disk)."""
    return MasterKey(os.urandom(32))


@pytest.fixture
def key_store_factory(redis_client: redis.Redis, master_key: MasterKey):
    """Return tenant_id -> KeyStore with that tenant created and holding its first key."""

    def make(tenant: str = "ACME", name: str = "Acme Cosmetics") -> KeyStore:
        store = KeyStore(redis_client, master_key)
        TenantStore(redis_client).create(tenant, name)
        store.rotate(tenant)
        return store

    return make
