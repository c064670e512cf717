"""Report counters equal a full recount after any sequence of member and points operations."""

from __future__ import annotations

import pytest
from conftest import ManualClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen.exc import ItemsealError
from codegen.tenants import TenantStore
from points_bridge import counters
from points_bridge.counters import Counts, recount
from points_bridge.ledger import Ledger
from points_bridge.members import TRANSITIONS, MemberStore
from points_bridge.settings import SettingsStore
from points_bridge.transfer import export, import_members
from tests.helpers.master import TEST_MASTER
from verify_api.admin import report_math
from verify_api.admin.reports import Reports

TENANT = "ACME"
PHONES = [f"+86138000000{i:02d}" for i in range(3)]
TIERS = ("silver", "gold", "diamond")

member = st.integers(0, len(PHONES) - 1)
OPS = st.one_of(
    st.tuples(st.just("join"), member),
    st.tuples(st.just("credit"), member, st.integers(0, 500), st.sampled_from(["LIP", "EYE", ""]),
              st.sampled_from(TIERS)),
    st.tuples(st.just("adjust"), member, st.integers(-300, 300).filter(bool)),
    st.tuples(st.just("redeem"), member, st.integers(1, 300)),
    st.tuples(st.just("status"), member, st.sampled_from(sorted(TRANSITIONS))),
    st.tuples(st.just("pin"), member, st.sampled_from([*TIERS, None])),
    st.tuples(st.just("expire"), member, st.integers(0, 400)),
    st.tuples(st.just("import"), st.lists(member, max_size=3), st.integers(0, 50)),
)


def nonzero(counts) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


class World:
    def __init__(self, client, tmp_path) -> None:
        client.flushall()
        self.client = client
        self.tmp_path = tmp_path
        self.clock = ManualClock()
        TenantStore(client).create(TENANT, "Acme")
        SettingsStore(client).update(TENANT, tiers="silver:0,gold:1000,diamond:5000",
                                     expiry_months="1")
        self.members = MemberStore(client, TENANT, clock=self.clock, master=TEST_MASTER)
        self.ledger = Ledger(client, TENANT, clock=self.clock)
        self.steps = 0

    def card(self, i: int) -> str | None:
        found = self.members.by_phone(PHONES[i])
        return found.card if found else None

    def apply(self, op: tuple) -> None:
        self.steps += 1
        name, *args = op
        if name == "join":
            self.members.join(PHONES[args[0]])
            return
        if name == "import":
            path = self.tmp_path / f"crm{self.steps}.csv"
            path.write_text("phone,points\n" + "".join(f"{PHONES[i]},{args[1] or ''}\n"
                                                       for i in args[0]))
            import_members(self.client, TENANT, path, master=TEST_MASTER)
            return
        card = self.card(args[0])
        if card is None:  # points go to a member: join first
            card = self.members.join(PHONES[args[0]])[0].card
        if name == "credit":
            points, sku, tier = args[1:]
            self.ledger.post(card, kind="credit", idem=f"claim:{self.steps}",
                             body={"n": self.steps}, delta=points, earned=points,
                             day="20260101", tier=tier, fields={"sku": sku} if sku else {},
                             lot_expires=int(self.clock()) + 86_400)
        elif name == "adjust":
            self.ledger.adjust(card, args[1], reason="test")
        elif name == "redeem":
            self.ledger.redeem(card, args[1])
        elif name == "status":
            self.members.change_status(card, args[1])
        elif name == "pin":
            self.members.pin_tier(card, args[1])
        elif name == "expire":
            self.clock.advance(args[1] * 600)
            self.ledger.expire_due(card)

    def walked_tables(self):
        """The reports as they were made before the counters: from full exports."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = []
        for what in ("members", "ledger"):
            sink = pa.BufferOutputStream()
            export(self.client, TENANT, what, "parquet", sink, master=TEST_MASTER)
            tables.append(pq.read_table(pa.BufferReader(sink.getvalue())).to_pylist())
        ladder = SettingsStore(self.client).get(TENANT).ladder.names
        return (report_math.members_by_tier(tables[0], ladder),
                report_math.points_by_product(tables[1]))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(OPS, max_size=25))
def test_counters_equal_a_full_recount(redis_client, tmp_path, ops):
    world = World(redis_client, tmp_path)
    for op in ops:
        try:
            world.apply(op)
        except ItemsealError:
            pass  # refused (inactive, insufficient, ...): nothing counted either
    counts = Counts(redis_client, TENANT)
    kept = nonzero(counts.read())
    assert kept == nonzero(recount(redis_client, TENANT))
    assert nonzero(counts.read()) == kept  # a recount of a counted store changes nothing
    reports = Reports(redis_client, TENANT, master=TEST_MASTER)
    tiers, points = world.walked_tables()
    assert reports.tiers().rows == tiers.rows
    assert [r for r in reports.points().rows if any(r[1:])] == [
        r for r in points.rows if any(r[1:])]


def test_a_store_from_before_the_counters_is_walked_until_recounted(redis_client, tmp_path):
    world = World(redis_client, tmp_path)
    world.apply(("join", 0))
    world.apply(("adjust", 0, 40))
    keys = world.members.keys
    for shard in range(counters.MEMBER_SHARDS):
        redis_client.delete(keys.counts(shard))
    redis_client.hdel(keys.settings, counters.COUNTED)  # what an older version left
    reports = Reports(redis_client, TENANT, master=TEST_MASTER)
    assert reports.tiers().rows[0][:2] == ("silver", 1)  # read member by member
    assert not Counts(redis_client, TENANT).complete()
    assert nonzero(recount(redis_client, TENANT)) == {"m|active|silver": 1, "p|adjusted": 40}
    assert Counts(redis_client, TENANT).complete()
    assert reports.points().rows == [("-", 0, 0, 40, 0)]


@pytest.mark.parametrize(("kind", "delta", "column"), [
    ("credit", 7, "p|issued|-"), ("redeem", -5, "p|redeemed"), ("adjust", -3, "p|adjusted"),
    ("expire", -2, "p|expired"), ("purchase", 9, None)])
def test_an_entry_counts_in_its_report_column(kind, delta, column):
    assert counters.entry_field(kind, None) == column
    if column:
        assert counters.tally([], [{"kind": kind, "delta": delta}])[column] == abs(delta) * (
            -1 if kind == "adjust" else 1)
