"""Every Lua script call in the suite must pass KEYS that share one hash tag.

Loaded with ``pytest_plugins``: for the whole session it wraps the two ways
itemseal calls a script (redis-py's ``Script`` and ``ScriptSet.evalsha``, the
packed EVALSHA of the hot paths), fails the call at once if its keys (two or
more) do not share one ``{hash tag}``, and records which scripts were seen with which
tags (``SEEN``), for ``test_hash_tags.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from importlib import resources

import pytest
from redis.commands.core import Script

from codegen.store.wire import ScriptSet

PACKAGES = ("codegen", "verify_api", "points_bridge")
SEEN: dict[str, set[str]] = {}  # script name -> hash tags its calls used


def script_names() -> dict[str, str]:
    """sha1 of every shipped ``.lua`` file -> ``package/name``."""
    names = {}
    for package in PACKAGES:
        for entry in resources.files(package).joinpath("lua").iterdir():
            if entry.name.endswith(".lua"):
                sha = hashlib.sha1(entry.read_bytes()).hexdigest()
                names[sha] = f"{package}/{entry.name.removesuffix('.lua')}"
    return names


def hash_tag(key: str | bytes) -> str | None:
    """The part of ``key`` Redis Cluster hashes, if the key has a ``{tag}``."""
    text = key.decode() if isinstance(key, bytes) else str(key)
    start = text.find("{")
    end = text.find("}", start + 1)
    if start < 0 or end <= start + 1:
        return None
    return text[start + 1 : end]


def check_keys(name: str, keys: Sequence[str | bytes]) -> None:
    """Refuse a call whose keys may hash to two slots; one key is one slot, tagged or not."""
    tags = {hash_tag(key) for key in keys}
    assert keys, f"script {name} was called without KEYS"
    assert len(keys) == 1 or (None not in tags and len(tags) == 1), (
        f"script {name} was called with keys in more than one hash tag: {list(keys)}"
    )
    SEEN.setdefault(name, set()).update(str(tag) for tag in tags)


@pytest.fixture(scope="session", autouse=True)
def script_key_guard() -> Iterator[None]:
    names = script_names()
    script_call = Script.__call__
    evalsha = ScriptSet.evalsha

    def guarded_call(self, keys=None, args=None, client=None):
        check_keys(names.get(self.sha, self.sha), list(keys or []))
        return script_call(self, keys=keys, args=args, client=client)

    def guarded_evalsha(self, name, keys, args):
        packed = evalsha(self, name, keys, args)
        sha = packed.split(b"\r\n")[4].decode()
        check_keys(names.get(sha, name), list(keys))
        return packed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Script, "__call__", guarded_call)
        patch.setattr(ScriptSet, "evalsha", guarded_evalsha)
        yield
