"""Reconcile against a real redis-server, and a process killed between claim and credit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from codegen.batches import BatchRegistry
from codegen.products import ProductStore
from codegen.store.keyspace import PointsKeys
from points_bridge.credit import BlockingCrediter
from points_bridge.members import MemberStore
from points_bridge.reconcile import Reconciler
from tests.helpers.master import TEST_MASTER

pytestmark = pytest.mark.cluster  # and on a 3-master Redis Cluster (conftest.py)

PHONE = "+8613812345678"
FIRST = 100_000_000  # numeric-24 serials start here
AT = 1_750_000_000

# The claim step as the verify script does it: mark the code and append the outbox
# entry atomically; then credit. The process waits between the steps, where it is killed.
CLAIMER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from codegen.keys import MasterKey
    from codegen.store.embedded import connect
    from codegen.store.keyspace import TenantKeys
    from points_bridge.credit import BlockingCrediter
    url, tenant, serial, credit_first = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    client = connect(Path("."), url)  # a redis+cluster:// URL gives a cluster client
    crediter = BlockingCrediter(client, master=MasterKey(bytes.fromhex(sys.argv[5])))
    keys = TenantKeys(tenant)
    if credit_first == "yes":
        crediter.credit_claim(tenant, "{phone}", serial, "LIP-001", "sms", "SD", {at})
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.scan_bucket(serial), str(serial % 256), b"claimed")
    pipe.xadd(keys.segment_tag(serial >> 20) + ":claims", {{
        "serial": serial, "batch": "B000001", "sku": "LIP-001", "phone": "{phone}",
        "channel": "sms", "region": "SD", "at": {at}}})
    pipe.execute()
    print("claimed", flush=True)
    sys.stdin.readline()  # killed here: SIGKILL, no cleanup, no credit
    crediter.credit_claim(tenant, "{phone}", serial, "LIP-001", "sms", "SD", {at})
    """
).format(phone=PHONE, at=AT)


@pytest.fixture
def tenant(redis_client, points_tenant) -> str:
    tenant = points_tenant()
    ProductStore(redis_client).add(tenant, "LIP-001", name="Lipstick", points=100)
    registry = BatchRegistry(redis_client, tenant)
    registry.register("B000001", sku="LIP-001", key_id=0, profile="numeric-24",
                      first_serial=FIRST, count=3_000_000)
    return tenant


def claim_and_die(redis_store, tenant: str, serial: int, *, credit_first: bool) -> None:
    """Run the claimer until it has claimed, then SIGKILL it before it credits."""
    with subprocess.Popen(
        [sys.executable, "-c", CLAIMER, redis_store.url(), tenant, str(serial),
         "yes" if credit_first else "no", TEST_MASTER.secret.hex()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    ) as proc:
        try:
            assert proc.stdout.readline().strip() == "claimed"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def balance(redis_client, tenant) -> int:
    return MemberStore(redis_client, tenant).find(phone=PHONE).balance


def test_a_kill_between_claim_and_credit_is_credited_once_by_reconcile(
    redis_store, redis_client, tenant
):
    claim_and_die(redis_store, tenant, FIRST + 5, credit_first=False)
    with pytest.raises(Exception, match="no member"):
        balance(redis_client, tenant)  # claimed, not credited
    report = Reconciler(redis_client, tenant, min_age=0, master=TEST_MASTER).run()
    assert (report.credited, report.duplicates, report.points) == (1, 0, 100)
    assert balance(redis_client, tenant) == 100
    reconciler = Reconciler(redis_client, tenant, min_age=0, master=TEST_MASTER)
    assert reconciler.run().seen == 0, "checkpoint moved"
    crediter = BlockingCrediter(redis_client, master=TEST_MASTER)
    late = crediter.credit_claim(tenant, PHONE, FIRST + 5, "LIP-001", "sms", "SD", AT)
    assert late.duplicate and balance(redis_client, tenant) == 100


def test_a_kill_after_the_credit_does_not_credit_twice(redis_store, redis_client, tenant):
    claim_and_die(redis_store, tenant, FIRST + 6, credit_first=True)
    assert balance(redis_client, tenant) == 100
    report = Reconciler(redis_client, tenant, min_age=0, master=TEST_MASTER).run()
    assert (report.credited, report.duplicates) == (0, 1)
    assert balance(redis_client, tenant) == 100


def test_reconcile_covers_every_segment_and_trims_what_it_credited(redis_client, tenant):
    keys = PointsKeys(tenant)
    serials = [FIRST + 1, FIRST + 2_500_000]  # two different segments
    for serial in serials:
        keys_seg = keys.claims(serial >> 20)
        redis_client.xadd(keys_seg, {"serial": serial, "sku": "LIP-001", "phone": PHONE,
                                     "channel": "web", "region": "", "at": AT})
    redis_client.xadd(keys.claims(FIRST >> 20), {"serial": FIRST + 3, "sku": "LIP-001",
                                                 "phone": "not a phone", "at": AT})
    report = Reconciler(redis_client, tenant, min_age=0, master=TEST_MASTER).run()
    assert report.segments == 4 and report.credited == 2 and len(report.failed) == 1
    assert "BadPhone" in report.failed[0][1]
    assert balance(redis_client, tenant) == 200
    assert redis_client.xlen(keys.claims(FIRST >> 20)) == 1, "trimmed up to the checkpoint"


def test_fresh_claims_are_left_to_the_request_that_made_them(redis_client, tenant):
    keys = PointsKeys(tenant)
    redis_client.xadd(keys.claims(FIRST >> 20), {"serial": FIRST, "sku": "LIP-001",
                                                 "phone": PHONE, "at": AT})
    assert Reconciler(redis_client, tenant, min_age=3600, master=TEST_MASTER).run().seen == 0
    assert Reconciler(redis_client, tenant, min_age=0, master=TEST_MASTER).run().credited == 1
