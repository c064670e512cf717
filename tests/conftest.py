"""Shared fixtures: a real redis-server per test session, clients, CLI environments.

Every pytest-xdist worker runs its own session, so each worker gets its own server.
Homes live in short dirs under /tmp because a unix socket path must fit in ~107 bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
from helpers.api import Api
from helpers.crm import Receiver, serve_receiver
from helpers.homes import discard_home, make_short_home
from hypothesis import settings
from redis.cluster import RedisCluster

from codegen.keys import KeyStore, MasterKey
from codegen.products import ProductStore
from codegen.store.embedded import EmbeddedRedis
from codegen.store.keyspace import TenantKeys
from codegen.tenants import TenantStore
from tests.helpers.master import TEST_MASTER
from verify_api.app import create_app

if TYPE_CHECKING:
    from helpers.cluster import LocalCluster

pytest_plugins = ["helpers.browser", "helpers.cluster", "helpers.keyguard"]

# No timing assertions: hypothesis's per-example deadline fails on a busy shared machine.
settings.register_profile("itemseal", deadline=None)
settings.load_profile("itemseal")


@pytest.fixture
def short_home() -> Iterator[Path]:
    """Return a fresh ITEMSEAL_HOME under /tmp; removed after the test."""
    home = make_short_home()
    yield home
    discard_home(home)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """Start one real redis-server for the session and stop it at the end."""
    home = make_short_home()
    server = EmbeddedRedis(home)
    try:
        server.start()
        yield server
    finally:
        discard_home(home)


@pytest.fixture(autouse=True)
def allow_private_webhooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's CRM, alert and SMS receivers listen on loopback, which the server
    refuses to post to unless the operator allows it (``codegen/webhooks.py``); tests of
    that refusal ``monkeypatch.delenv`` it."""
    monkeypatch.setenv("ITEMSEAL_ALLOW_PRIVATE_WEBHOOKS", "1")


STORES = ("single", "cluster")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a ``cluster``-marked module's store tests on the server and on the cluster."""
    if "redis_store" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "cluster"
    ):
        metafunc.parametrize("redis_store", STORES, indirect=True)


@pytest.fixture
def redis_store(request: pytest.FixtureRequest) -> EmbeddedRedis | LocalCluster:
    """The store under test: the session's redis-server, or (``cluster``) the cluster's.

    ITEMSEAL_TEST_STORE=cluster runs every test on the cluster.
    """
    kind = getattr(request, "param", os.environ.get("ITEMSEAL_TEST_STORE") or "single")
    return request.getfixturevalue("redis_cluster" if kind == "cluster" else "redis_server")


@pytest.fixture
def redis_client(redis_store: EmbeddedRedis | LocalCluster) -> Iterator[redis.Redis]:
    """Return a bytes client to the store under test, flushed before the test.

    On the cluster a ``RedisCluster``, flushed on every master.
    """
    if not isinstance(redis_store, EmbeddedRedis):  # the LocalCluster
        client = redis_store.client()
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
    else:
        client = redis.Redis.from_url(redis_store.url(), decode_responses=False)
        client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def itemseal_env(
    short_home: Path, redis_store: EmbeddedRedis | LocalCluster, redis_client: redis.Redis
) -> dict[str, str]:
    """Return the environment for a CLI subprocess: fresh home, flushed store under test."""
    return {
        "ITEMSEAL_HOME": str(short_home),
        "ITEMSEAL_REDIS_URL": redis_store.url(),
        "PATH": os.environ.get("PATH", ""),
        "ITEMSEAL_ALLOW_PRIVATE_WEBHOOKS": "1",  # the receivers are local (allow_private_...)
    }


@pytest.fixture
def master_key() -> MasterKey:
    """Return the suite's master key (random per test process, never written to disk)."""
    return TEST_MASTER


@pytest.fixture
def key_store_factory(redis_client: redis.Redis, master_key: MasterKey):
    """Return tenant_id -> KeyStore with that tenant created and holding its first key."""

    def make(tenant: str = "ACME", name: str = "Acme Cosmetics") -> KeyStore:
        store = KeyStore(redis_client, master_key)
        TenantStore(redis_client).create(tenant, name)
        store.rotate(tenant)
        return store

    return make


@pytest.fixture
def points_tenant(redis_client: redis.Redis):
    """Return (tenant_id="ACME", **settings) -> tenant_id: a tenant with settings, no keys."""

    def make(tenant: str = "ACME", **settings: str) -> str:
        TenantStore(redis_client).create(tenant, f"{tenant} brand")
        if settings:
            redis_client.hset(TenantKeys(tenant).meta, mapping=settings)
        return tenant

    return make


class ManualClock:
    """A clock tests move by hand: ``clock()`` is now, ``clock.advance(s)`` moves it."""

    def __init__(self, now: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def batch_factory(redis_client: redis.Redis, master_key: MasterKey):
    """Return a factory of registered batches; tenants are created on first use.

    ``make(tenant="ACME", count=1000, state="active", sku="SKU-1", profile=NUMERIC_24)``
    returns ``(batch, key_store)``; ``key_store.signer(tenant, batch.key_id,
    batch.profile).code(serial)`` gives the codes. No Parquet file is written.
    """
    from codegen.batches import BatchRegistry
    from codegen.codes import NUMERIC_24

    stores: dict[str, KeyStore] = {}

    def make(
        tenant: str = "ACME",
        count: int = 1000,
        state: str = "active",
        sku: str = "SKU-1",
        profile=NUMERIC_24,
    ):
        if tenant not in stores:
            stores[tenant] = KeyStore(redis_client, master_key)
            TenantStore(redis_client).create(tenant, f"{tenant} brand")
            stores[tenant].rotate(tenant)
        key_store = stores[tenant]
        registry = BatchRegistry(redis_client, tenant)
        first = registry.reserve(profile, count)
        batch = registry.register(
            registry.next_batch_id(),
            sku=sku,
            key_id=key_store.current(tenant).key_id,
            profile=profile.name,
            first_serial=first,
            count=count,
        )
        if state != "minted":
            registry.transition(batch.batch_id, "active")
        if state == "recalled":
            registry.transition(batch.batch_id, "recalled")
        return registry.get(batch.batch_id), key_store

    return make


@pytest.fixture
def api_world(batch_factory, redis_client, clock):
    """The app over an active batch of 500 codes of LIP-001 (10 points), no caches.

    Yields ``(api, code_of, batch)``: ``api`` checks every answer against the
    spec, ``code_of(i)`` is the code of the batch's ``i``-th serial.
    """
    batch, key_store = batch_factory("ACME", count=500, sku="LIP-001")
    ProductStore(redis_client).add("ACME", "LIP-001", name="Velvet lipstick", points=10)
    app = create_app(redis_client, key_store, clock=clock, key_cache_seconds=0, catalog_seconds=0)
    signer = key_store.signer("ACME", batch.key_id, batch.profile)
    yield Api(app), (lambda i: signer.code(batch.first_serial + i)), batch
    app.engine.link.close()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A CRM stand-in on a local port: ``(receiver, webhook URL)``."""
    with serve_receiver() as served:
        yield served
