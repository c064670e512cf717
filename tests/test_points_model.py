"""Random sequences of points operations against a real redis-server (issue 17, "Done when").

Claims (credited at once by the real crediter, or cut off before their credit
as a crash would), claims with a phone that never parses, repeats,
adjustments (some far out of bounds), redemptions, freezes, unfreezes and
reconciles, in any order. After every step:

* every member's balance equals the sum of its ledger, and its earned points
  the sum of its credits; no balance is negative;
* every claimed code is credited to its pinned member, waits for its frozen
  member, is parked in the dead-letter stream, or is still owed in its outbox
  past the reconcile checkpoint; and right after a reconcile none is owed.
"""

from __future__ import annotations

import time

import pytest
from conftest import ManualClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen.batches import BatchRegistry
from codegen.exc import ItemsealError
from codegen.products import ProductStore
from codegen.store.keyspace import CREDIT_BUCKET_SERIALS, PointsKeys, shard_of
from codegen.tenants import TenantStore
from points_bridge.credit import BlockingCrediter, claim_idem, pending_field
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.reconcile import Reconciler
from tests.helpers.master import TEST_MASTER

pytestmark = pytest.mark.slow

TENANT = "ACME"
PHONES = ("+8613800000001", "+8613800000002", "+8613800000003")
BAD_PHONE = "not a phone"
FIRST = 100_000_000
KEYS = PointsKeys(TENANT)

phone = st.integers(0, len(PHONES) - 1)
OPS = st.one_of(
    st.tuples(st.just("claim"), phone, st.booleans()),  # (phone, cut off before credit)
    st.tuples(st.just("bad_claim")),
    st.tuples(st.just("repeat"), st.integers(0, 50)),
    st.tuples(st.just("adjust"), phone,
              st.integers(-10**9, 10**9).filter(bool) | st.sampled_from([10**14, -(10**14)])),
    st.tuples(st.just("redeem"), phone, st.integers(1, 400)),
    st.tuples(st.sampled_from(["freeze", "unfreeze"]), phone),
    st.tuples(st.just("reconcile")),
)


class World:
    """The tenant, the real stores and what was claimed (serial -> outbox entry, phone)."""

    def __init__(self, client) -> None:
        client.flushall()
        self.client = client
        # Outbox ids come from the server's clock; reconcile compares them with this one.
        self.clock = ManualClock(time.time() + 60)
        TenantStore(client).create(TENANT, "Acme")
        ProductStore(client).add(TENANT, "LIP-001", name="Lip", points=100)
        BatchRegistry(client, TENANT).register("B000001", sku="LIP-001", key_id=0,
                                               profile="numeric-24", first_serial=FIRST,
                                               count=1000)
        self.crediter = BlockingCrediter(client, clock=self.clock, master=TEST_MASTER)
        self.members = MemberStore(client, TENANT, clock=self.clock, master=TEST_MASTER)
        self.ledger = Ledger(client, TENANT, clock=self.clock)
        self.claims: dict[int, tuple[str, str]] = {}

    def claim(self, phone: str, cut_off: bool) -> None:
        """What the verify script does (claim + outbox entry), then the request's credit."""
        serial = FIRST + len(self.claims)
        self.clock.advance(1)
        entry = self.client.xadd(KEYS.claims(serial >> 20), {
            "serial": serial, "sku": "LIP-001", "phone": phone, "channel": "web",
            "at": int(self.clock())}).decode()
        self.claims[serial] = (entry, phone)
        if not cut_off:
            self.credit(serial)

    def credit(self, serial: int) -> None:
        entry, phone = self.claims[serial]
        try:
            self.crediter.credit_claim(TENANT, phone, serial, "LIP-001", "web", None,
                                       int(self.clock()))
        except ItemsealError:
            return  # the request answers points_pending; the outbox keeps the claim
        self.crediter.forget_claim(TENANT, serial, entry)

    def card(self, index: int) -> str | None:
        member = self.members.by_phone(PHONES[index])
        return member.card if member else None

    def apply(self, op: tuple) -> None:
        kind = op[0]
        if kind == "claim":
            self.claim(PHONES[op[1]], op[2])
        elif kind == "bad_claim":
            self.claim(BAD_PHONE, True)
        elif kind == "repeat":
            serials = sorted(s for s, (_, p) in self.claims.items() if p != BAD_PHONE)
            if serials:
                self.credit(serials[op[1] % len(serials)])
        elif kind == "reconcile":
            report = Reconciler(self.client, TENANT, min_age=0, clock=self.clock,
                                sleep=lambda s: None, master=TEST_MASTER).run()
            assert report.unsettled == []
            assert self.owed() == set(), "a reconcile leaves nothing owed"
        elif (card := self.card(op[1])) is not None:
            self.member_op(kind, card, op)

    def member_op(self, kind: str, card: str, op: tuple) -> None:
        before = self.members.get(card)
        try:
            if kind == "adjust":
                self.ledger.adjust(card, op[2], reason="model")
                assert abs(op[2]) <= 10**9, "an adjustment past 10^9 is refused"
            elif kind == "redeem":
                self.ledger.redeem(card, op[2])
            else:
                self.members.change_status(card, kind)
        except ItemsealError:
            after = self.members.get(card)
            assert after.balance == before.balance, "a refused operation moves nothing"

    # -- the invariants ----------------------------------------------------------------
    def owed(self) -> set[int]:
        """Serials still in an outbox past the segment's checkpoint."""
        outbox, checkpoint = KEYS.claims(FIRST >> 20), KEYS.reconcile_checkpoint(FIRST >> 20)
        last = (self.client.get(checkpoint) or b"").decode()
        return {int(f[b"serial"]) for _, f in
                self.client.xrange(outbox, f"({last}" if last else "-", "+")}

    def check(self) -> None:
        for card in self.members.cards():
            member = self.members.get(card)
            if member is None:
                continue
            history = self.ledger.history(card)
            assert member.balance == sum(e.delta for e in history) >= 0
            assert member.earned == sum(e.delta for e in history if e.kind == "credit")
        dead = {d.serial for d in Reconciler(self.client, TENANT, master=TEST_MASTER).dead()}
        owed = self.owed()
        for serial, (_, phone) in self.claims.items():
            if phone == BAD_PHONE:
                assert serial in dead or serial in owed
                continue
            bucket = KEYS.credit_pin(serial)
            pinned = self.client.hget(bucket, str(serial % CREDIT_BUCKET_SERIALS))
            settled = False
            if pinned is not None:
                card = pinned.decode()
                settled = bool(
                    self.client.hexists(KEYS.idem(card), claim_idem(serial))
                    or self.client.hexists(KEYS.pending(shard_of(card)),
                                           pending_field(card, serial))
                )
            assert settled or serial in dead or serial in owed, serial


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(OPS, min_size=1, max_size=25))
def test_balances_equal_their_ledgers_and_no_claim_is_lost(redis_client, ops):
    world = World(redis_client)
    for op in ops:
        world.apply(op)
        world.check()
    world.apply(("reconcile",))
    world.check()
