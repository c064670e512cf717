"""Homes (``ITEMSEAL_HOME``) for tests: short, because a unix socket path fits in ~107 bytes."""

from __future__ import annotations

import tempfile
from pathlib import Path


def make_short_home() -> Path:
    """Return a new empty dir short enough to hold home/redis/redis.sock."""
    return Path(tempfile.mkdtemp(prefix="is-", dir="/tmp"))
