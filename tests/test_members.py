"""Members against a real redis-server: one phone one member, rebinds, status, profile."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from codegen.store.keyspace import PointsKeys
from points_bridge.cards import CARD_SPACE, CardNumbers, card_number, card_numbers, is_valid_card
from points_bridge.exc import (
    BadAttribute,
    BadInput,
    BadPhone,
    CardSpaceExhausted,
    MemberInactive,
    PhoneTaken,
    UnknownMember,
)
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.settings import SettingsStore
from tests.helpers.master import TEST_MASTER

PHONE = "+8613812345678"
OTHER = "+8613912345678"


@pytest.fixture
def members(redis_client, points_tenant) -> MemberStore:
    return MemberStore(redis_client, points_tenant(), master=TEST_MASTER)


def test_first_claim_creates_a_member_with_a_valid_card(members):
    member, created = members.ensure(PHONE)
    assert created and is_valid_card(member.card)
    assert (member.phone, member.status, member.balance, member.tier) == (
        PHONE, "active", 0, "silver"
    )
    again, created_again = members.ensure(PHONE)
    assert not created_again and again.card == member.card


def test_every_way_of_typing_a_phone_finds_one_member(members):
    member, _ = members.join("138 1234 5678")
    for typed in ("+86 138-1234-5678", "0086 138 1234 5678", "１３８１２３４５６７８"):
        assert members.find(phone=typed).card == member.card
    assert members.find(card=member.card[:4] + " " + member.card[4:]).card == member.card


def test_the_tenant_region_reads_local_numbers(redis_client, points_tenant):
    members = MemberStore(redis_client, points_tenant("USCO", region="US"), master=TEST_MASTER)
    member, _ = members.join("(201) 555-0123")
    assert member.phone == "+12015550123"


def test_unknown_and_bad_lookups_say_so(members):
    with pytest.raises(UnknownMember):
        members.find(phone=PHONE)
    with pytest.raises(UnknownMember):
        members.find(card="123456789012")
    with pytest.raises(BadPhone):
        members.find(phone="call me")


def test_concurrent_first_claims_by_one_phone_make_one_member(members):
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: members.ensure(PHONE), range(32)))
    assert len({m.card for m, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_a_crash_after_the_index_before_the_record_heals(redis_client, members):
    card = members._issue_card()
    redis_client.set(members.keys.phone(PHONE), card)  # the crashed creator got this far
    assert members.by_phone(PHONE) is None
    member, created = members.ensure(PHONE)
    assert created and member.card == card


def test_rebind_keeps_card_points_and_history(redis_client, members):
    member, _ = members.ensure(PHONE)
    Ledger(redis_client, members.tenant).adjust(member.card, 120, reason="welcome")
    moved = members.rebind(member.card, "139 1234 5678")
    assert (moved.card, moved.phone, moved.balance) == (member.card, OTHER, 120)
    assert members.find(phone=OTHER).card == member.card
    assert members.by_phone(PHONE) is None
    assert redis_client.get(members.keys.phone(PHONE)) is None, "old index removed"
    kinds = [e.kind for e in Ledger(redis_client, members.tenant).history(member.card)]
    assert kinds == ["adjust", "rebind"]
    # The old phone is free again: its next claim makes a new member.
    fresh, created = members.ensure(PHONE)
    assert created and fresh.card != member.card


def test_rebind_to_a_taken_phone_is_refused(members):
    first, _ = members.ensure(PHONE)
    second, _ = members.ensure(OTHER)
    with pytest.raises(PhoneTaken):
        members.rebind(first.card, OTHER)
    assert members.find(phone=PHONE).card == first.card
    assert members.get(first.card).rebind_to is None


def test_a_half_done_rebind_rolls_forward_on_lookup(redis_client, members):
    member, _ = members.ensure(PHONE)
    # Crash after marking the record and taking the new index, before moving the phone.
    members._update(member.card, set={"rebind_to": OTHER})
    redis_client.set(members.keys.phone(OTHER), member.card)
    found, created = members.ensure(OTHER)
    assert not created and found.card == member.card and found.phone == OTHER
    assert redis_client.get(members.keys.phone(PHONE)) is None


def test_a_stale_old_index_is_not_the_member(redis_client, members):
    member, _ = members.ensure(PHONE)
    members.rebind(member.card, OTHER)
    redis_client.set(members.keys.phone(PHONE), member.card)  # crash before the delete
    assert members.by_phone(PHONE) is None
    fresh, created = members.ensure(PHONE)
    assert created and fresh.card != member.card


@pytest.mark.parametrize(
    ("action", "start", "after"),
    [("freeze", "active", "frozen"), ("unfreeze", "frozen", "active"),
     ("cancel", "active", "cancelled"), ("cancel", "frozen", "cancelled")],
)
def test_status_transitions(members, action, start, after):
    member, _ = members.ensure(PHONE)
    if start == "frozen":
        members.change_status(member.card, "freeze")
    changed, note = members.change_status(member.card, action, reason="asked")
    assert changed.status == after and changed.reason == "asked" and after in note


def test_a_transition_from_the_wrong_status_is_refused(members):
    member, _ = members.ensure(PHONE)
    with pytest.raises(MemberInactive, match="is active: cannot unfreeze"):
        members.change_status(member.card, "unfreeze")
    with pytest.raises(MemberInactive):
        members.change_status(member.card, "restore")


@pytest.mark.parametrize(
    ("policy", "balance", "delta", "said"),
    [("keep", 80, 0, "balance of 80 points kept"), ("forfeit", 0, -80, "80 points forfeited")],
)
def test_restore_follows_the_tenant_policy(redis_client, members, policy, balance, delta, said):
    SettingsStore(redis_client).update(members.tenant, restore=policy)
    member, _ = members.ensure(PHONE)
    ledger = Ledger(redis_client, members.tenant)
    ledger.adjust(member.card, 80, reason="gift")
    members.change_status(member.card, "cancel")
    restored, note = members.change_status(member.card, "restore")
    assert restored.status == "active" and restored.balance == balance and said in note
    last = ledger.history(restored.card)[-1]
    assert (last.kind, last.fields["action"], last.delta, last.balance) == (
        "status", "restore", delta, balance
    )


def test_profile_birthday_and_declared_attributes(redis_client, members):
    SettingsStore(redis_client).declare_attributes(
        members.tenant, [("skin_type", "str"), ("kids", "int"), ("vip", "bool")]
    )
    member, _ = members.join(PHONE, birthday="1990-02-28", attributes={"kids": " 2 "})
    assert member.birthday == "1990-02-28" and member.attributes == {"kids": "2"}
    member = members.update_profile(member.card, birthday="05-01",
                                    attributes={"vip": "yes", "kids": ""})
    assert member.birthday == "--05-01" and member.attributes == {"vip": "true"}
    with pytest.raises(BadAttribute, match="not declared"):
        members.update_profile(member.card, attributes={"eye_colour": "green"})
    with pytest.raises(BadAttribute, match="not a whole number"):
        members.update_profile(member.card, attributes={"kids": "two"})
    with pytest.raises(BadInput):
        members.update_profile(member.card, birthday="1990-02-30")


def test_member_changes_reach_the_crm_stream(redis_client, members):
    member, _ = members.ensure(PHONE)
    members.change_status(member.card, "freeze", reason="lost card")
    stream = PointsKeys(members.tenant).events(int(member.card) % 16)
    types = [f[b"type"].decode() for _, f in redis_client.xrange(stream)]
    assert types == ["member.created", "ledger", "member.updated"]


def test_cards_enumerates_every_member(members):
    made = {members.ensure(f"+861381234{i:04d}")[0].card for i in range(20)}
    assert set(members.cards()) == made


def test_a_store_that_takes_cards_in_blocks_issues_each_once(redis_client, points_tenant):
    tenant = points_tenant()
    stores = [MemberStore(redis_client, tenant, card_block=4, master=TEST_MASTER) for _ in range(3)]
    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(lambda i: stores[i % 3].ensure(f"+861381234{i:04d}")[0].card,
                             range(30)))
    assert len(set(made)) == 30, "no card handed out twice"
    issued = set(MemberStore(redis_client, tenant, master=TEST_MASTER).cards())
    kept = {card_number(seq, s._card_secret()) for s in stores for seq in s._blocks}
    assert set(made) | kept == issued and not set(made) & kept, "none lost, racing blocks kept"
    one = MemberStore(redis_client, tenant, master=TEST_MASTER)
    before = int(redis_client.get(one.keys.card_counter))
    one.ensure("+8613912340000")
    assert int(redis_client.get(one.keys.card_counter)) == before + 1, "the default: one at a time"


@pytest.mark.parametrize("key_bytes", [16, 32, 100])
def test_cards_made_a_block_at_a_time_are_the_cards_made_one_at_a_time(key_bytes):
    key = bytes(range(key_bytes % 256))[:key_bytes].ljust(key_bytes, b"k")
    assert card_numbers(0, 500, key) == [card_number(seq, key) for seq in range(500)]
    last = CARD_SPACE - 3
    assert card_numbers(last, 3, key) == [card_number(seq, key) for seq in range(last, CARD_SPACE)]
    assert card_numbers(7, 0, key) == []
    with pytest.raises(CardSpaceExhausted):
        card_numbers(last, 4, key)


def test_cards_of_one_maker_stay_the_cards_made_one_at_a_time_once_its_rounds_are_remembered():
    """An import's blocks share one CardNumbers: its remembered rounds change no card."""
    key = b"k" * 32
    maker = CardNumbers(key)
    blocks = [(0, 2000), (2000, 2000), (10**6, 500), (CARD_SPACE - 3, 3), (4000, 2000)]
    made = [card for start, count in blocks for card in maker.block(start, count)]
    seqs = [seq for start, count in blocks for seq in range(start, start + count)]
    assert made == [card_number(seq, key) for seq in seqs]
    assert sum(f is not None for _, _, memo in maker._rounds if memo for f in memo) > 0
