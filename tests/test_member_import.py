"""The batched members import writes what the one-member calls write, and nothing twice."""

from __future__ import annotations

import json

import pytest

from codegen.store.keyspace import MEMBER_SHARDS
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.settings import SettingsStore
from points_bridge.transfer import import_members
from tests.helpers.master import TEST_MASTER

CLOCK = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture
def tenant(redis_client, points_tenant) -> str:
    tenant = points_tenant()
    settings = SettingsStore(redis_client)
    settings.declare_attributes(tenant, [("skin_type", "str")])
    settings.update(tenant, expiry_months="12")
    return tenant


def _events(client, tenant: str) -> list[dict]:
    keys = MemberStore(client, tenant).keys
    found = []
    for shard in range(MEMBER_SHARDS):
        for _, raw in client.xrange(keys.events(shard)):
            f = {k.decode(): v.decode() for k, v in raw.items()}
            found.append({"type": f["type"], "card": f["card"], **json.loads(f["data"])})
    return sorted(found, key=lambda e: (e["card"], e["type"]))


def _state(client, tenant: str, card: str) -> dict:
    keys = MemberStore(client, tenant).keys
    record = {k.decode(): v.decode() for k, v in client.hgetall(keys.member(card)).items()}
    entries = [{k.decode(): v.decode() for k, v in raw.items()}
               for _, raw in client.xrange(keys.ledger(card))]
    idem = {k.decode(): v.decode().split()[0] for k, v in client.hgetall(keys.idem(card)).items()}
    lots = [v.decode() for v in client.lrange(keys.lots(card), 0, -1)]
    return {"record": record, "entries": entries, "idem": idem, "lots": lots}


def test_a_batch_writes_what_the_one_member_calls_write(redis_client, tenant, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("phone,birthday,points,skin_type\n13812345678,1990-05-01,100,dry\n")
    report = import_members(redis_client, tenant, path, master=TEST_MASTER)
    assert (report.created, report.errors) == (1, [])
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    batched = members.find(phone="13812345678")

    other = "OTHER"
    from codegen.tenants import TenantStore

    TenantStore(redis_client).create(other, "Other")
    settings = SettingsStore(redis_client)
    settings.declare_attributes(other, [("skin_type", "str")])
    settings.update(other, expiry_months="12")
    one_by_one = MemberStore(redis_client, other, master=TEST_MASTER)
    member, _ = one_by_one.join("13812345678", birthday="1990-05-01",
                                attributes={"skin_type": "dry"}, source="import")
    Ledger(redis_client, other).adjust(member.card, 100, reason="import: opening balance",
                                       idem="import:opening-balance", expiry=(12, settings.get(
                                           other).timezone))

    def comparable(client, t, card):
        state = _state(client, t, card)
        for e in state["entries"]:
            e.pop("at")
        state["record"].pop("created_at")
        state["record"].pop("card")
        state["lots"] = [lot.split()[1] for lot in state["lots"]]
        return state

    assert comparable(redis_client, tenant, batched.card) == comparable(
        redis_client, other, member.card)
    strip = [{k: v for k, v in e.items() if k not in ("card", "created_at", "at", "entry")}
             for e in _events(redis_client, tenant)]
    assert strip == [{k: v for k, v in e.items() if k not in ("card", "created_at", "at", "entry")}
                     for e in _events(redis_client, other)]


def test_a_rerun_writes_nothing(redis_client, tenant, tmp_path):
    path = tmp_path / "crm.csv"
    rows = "".join(f"1381234{i:04d},1990-05-01,{10 + i},dry\n" for i in range(50))
    path.write_text("phone,birthday,points,skin_type\n" + rows)
    assert import_members(redis_client, tenant, path, master=TEST_MASTER).created == 50
    before = len(_events(redis_client, tenant))
    again = import_members(redis_client, tenant, path, master=TEST_MASTER)
    assert (again.created, again.updated, again.errors) == (0, 50, [])
    assert len(_events(redis_client, tenant)) == before == 100


def test_a_phone_twice_in_one_file_is_one_member(redis_client, tenant, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("phone,points,skin_type\n13812345678,100,dry\n+8613812345678,100,oily\n")
    report = import_members(redis_client, tenant, path, master=TEST_MASTER)
    assert (report.created, report.updated, report.errors) == (1, 1, [])
    member = MemberStore(redis_client, tenant).find(phone="13812345678")
    assert (member.balance, member.attributes) == (100, {"skin_type": "oily"})


def test_a_card_twice_in_one_file_is_refused_on_its_second_line(redis_client, tenant, tmp_path):
    card = MemberStore(redis_client, tenant, master=TEST_MASTER).issue_cards(1)[0]
    path = tmp_path / "crm.csv"
    path.write_text(f"phone,card\n13812345678,{card}\n13912345678,{card}\n")
    report = import_members(redis_client, tenant, path, master=TEST_MASTER)
    assert report.created == 1
    assert report.errors == [("line 3", f"card={card!r}: already held by another member:"
                              " the row is refused")]
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    assert members.find(phone="13812345678").card == card
    assert redis_client.get(members.keys.phone("+8613912345678")) is None


def test_batches_report_progress_to_the_end(redis_client, tenant, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("phone\n" + "".join(f"1381234{i:04d}\n" for i in range(30)))
    seen: list[tuple[int, int]] = []
    import_members(redis_client, tenant, path, progress=lambda d, t: seen.append((d, t)),
                   master=TEST_MASTER)
    assert seen[-1] == (30, 30)
