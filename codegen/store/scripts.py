"""Lua scripts: read once from their ``.lua`` files, called by SHA.

redis-py's ``Script`` sends EVALSHA and reloads the script by itself after a
``NoScriptError`` (a restarted or failed-over server).
"""

from __future__ import annotations

import functools
from importlib import resources

import redis
from redis.commands.core import Script


@functools.cache
def script_source(package: str, name: str) -> str:
    return resources.files(package).joinpath("lua", f"{name}.lua").read_text()


def register(client: redis.Redis, package: str, name: str) -> Script:
    return client.register_script(script_source(package, name))
