"""The configuration every entry point shares: home folder, store, master key, key store.

``cli.py``, the gunicorn workers (``verify_api/wsgi.py``) and the tests all
build the same ``Config`` from the environment, so the variables are read in
one place and mean the same thing everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

import redis

from codegen.keys import KeyStore, MasterKey, load_master_key
from codegen.store.embedded import EmbeddedRedis, connect
from codegen.tenants import TenantStore

HOME_ENV = "ITEMSEAL_HOME"
REDIS_URL_ENV = "ITEMSEAL_REDIS_URL"
REDIS_SERVER_ENV = "ITEMSEAL_REDIS_SERVER"


class Config:
    """What every command needs, built lazily so ``--help`` touches nothing."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.home = Path(self.env.get(HOME_ENV) or ".itemseal").absolute()
        self.redis_url = self.env.get(REDIS_URL_ENV) or None

    @property
    def embedded(self) -> EmbeddedRedis:
        return EmbeddedRedis(self.home, binary=self.env.get(REDIS_SERVER_ENV))

    @cached_property
    def redis(self) -> redis.Redis:
        return connect(self.home, self.redis_url)

    def close(self) -> None:
        """Close the store client if a command opened one (``cli.main`` calls this at its end).

        A process's exit would close it anyway; a command run in-process (the
        tests' ``CliRunner``, a notebook) would otherwise leave the socket to the
        garbage collector, which warns about it wherever it happens to run.
        """
        client = self.__dict__.pop("redis", None)
        if client is not None:
            client.close()

    def master_key(self, *, create: bool = False) -> MasterKey:
        return load_master_key(self.home, self.env, create=create)

    @cached_property
    def key_store(self) -> KeyStore:
        return KeyStore(self.redis, self.master_key())

    @cached_property
    def tenants(self) -> TenantStore:
        return TenantStore(self.redis)
