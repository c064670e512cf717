"""The suite's master key, the same in every test process.

A tenant's card key is sealed under the master key, so a test's app, its stores
and its helpers must share one; the ``master_key`` fixture returns this one.
It is fixed rather than random so that what the keyed fingerprints and
sketches do (``check/fingerprints.py``) is the same on every run: a test that
needs two phones in different sketch bits gets them every time, or never.
"""

import base64
import hashlib

from codegen.keys import MasterKey

TEST_MASTER = MasterKey(hashlib.sha256(b"itemseal test suite master key").digest())


def with_test_master(env: dict[str, str]) -> dict[str, str]:
    """A CLI environment that opens what the suite's app sealed (``ITEMSEAL_MASTER_KEY``)."""
    return {**env, "ITEMSEAL_MASTER_KEY": base64.b64encode(TEST_MASTER.secret).decode()}
