"""Homes (``ITEMSEAL_HOME``) for tests: short, because a unix socket path fits in ~107 bytes."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

from codegen.store.embedded import EmbeddedRedis, _pid_state


def make_short_home() -> Path:
    """Return a new empty dir short enough to hold home/redis/redis.sock."""
    return Path(tempfile.mkdtemp(prefix="is-", dir="/tmp"))


def discard_home(home: Path) -> None:
    """Stop the redis-server a test left running in ``home`` (SIGKILL if it will not stop), then
    remove the folder.

    Removing the folder alone left a server behind whenever a test's own stop
    failed under load or a CLI call started the embedded store on its own: a
    server whose folder is gone cannot write its append-only file on the way
    out, so it ignores SIGTERM and outlives the suite.
    """
    store = EmbeddedRedis(home)
    pid = store.status().pid if store.run_dir.is_dir() else None
    if pid and _pid_state(pid, store.data_dir) == "ours":
        try:
            store.stop()
        except Exception:  # noqa: BLE001 - hung, foreign-looking or slow: it goes all the same
            pass
        if _pid_state(pid, store.data_dir) == "ours":
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(home, ignore_errors=True)
