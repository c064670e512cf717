"""The suite's master key: one per test process.

A tenant's card key is sealed under the master key, so a test's app, its stores
and its helpers must share one; the ``master_key`` fixture returns this one.
"""

import base64
import os

from codegen.keys import MasterKey

TEST_MASTER = MasterKey(os.urandom(32))


def with_test_master(env: dict[str, str]) -> dict[str, str]:
    """A CLI environment that opens what the suite's app sealed (``ITEMSEAL_MASTER_KEY``)."""
    return {**env, "ITEMSEAL_MASTER_KEY": base64.b64encode(TEST_MASTER.secret).decode()}
