"""Regions from real channels: the phone's home province, declared regions only with a token.

The geocoder (phonenumbers) is the oracle for the phone's region and pycountry
for the ISO 3166-2 codes the regions are named by.
"""

from __future__ import annotations

import phonenumbers
import pycountry
import pytest
from helpers.channels_world import make_world
from helpers.cli_runner import run
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import geocoder

from points_bridge import regions
from points_bridge.members import MemberStore
from points_bridge.outreach.segments import Segment, matches
from tests.helpers.master import TEST_MASTER
from verify_api.admin.auth import TokenStore

SPAN = ("--from", "2026-01-01", "--to", "2026-01-01")


def test_every_province_code_is_an_iso_subdivision_of_china():
    for name, code in regions.CN_PROVINCES.items():
        subdivision = pycountry.subdivisions.get(code=code)
        assert subdivision is not None and subdivision.country_code == "CN", (name, code)
    assert len(set(regions.CN_PROVINCES.values())) == len(regions.CN_PROVINCES) == 34


def test_the_example_of_the_issue():
    assert regions.region_of_phone("+8613912345678") == "CN-JS"
    assert regions.region_name("CN-JS") == "江苏"
    assert regions.region_of_phone("+14155552671") == "US"
    assert regions.region_of_phone("") is None and regions.region_of_phone("139") is None


@given(st.sampled_from(["13", "15", "17", "18", "19"]), st.integers(0, 10**9 - 1))
def test_the_region_agrees_with_the_geocoder(head, rest):
    e164 = f"+86{head}{rest:09d}"
    number = phonenumbers.parse(e164)
    described = geocoder.description_for_number(number, "zh")
    found = regions.region_of_phone(e164)
    if found == "CN":
        assert not any(described.startswith(name) for name in regions.CN_PROVINCES)
    else:
        assert described.startswith(regions.region_name(found))
    assert found == regions._lookup(e164)  # the prefix cache never changes the answer


def test_sources_best_first():
    assert regions.resolve("CN-SH", trusted=True, phone="+8613912345678") == ("CN-SH", "declared")
    assert regions.resolve("CN-SH", trusted=False, phone="+8613912345678") == ("CN-JS", "phone")
    assert regions.resolve(None, trusted=False, member_region="CN-ZJ",
                           phone="+8613912345678") == ("CN-ZJ", "member")
    assert regions.resolve("CN-SH", trusted=False) == (None, "none")


def _rows(env, by):
    out = run(env, "report", "checks", "--tenant", "ACME", "--by", by, "--format", "csv",
              *SPAN).stdout
    return [line.split(",") for line in out.splitlines()[1:]]


def test_a_check_from_139_is_reported_under_jiangsu(api_world, itemseal_env, redis_client):
    api, code, _ = api_world
    assert api.verify({"code": code(1), "phone": "+86 139 1234 5678"}).json["claimed"]
    # A declared region without a token is the caller's word only: the phone wins.
    api.verify({"code": code(2), "phone": "13912345678", "region": "CN-SH"})
    # No phone, no token: nothing known.
    api.verify({"code": code(3), "region": "CN-SH"})
    token, _ = TokenStore(redis_client).create("ACME", "operator")
    auth = {"Authorization": f"Bearer {token}"}
    assert api.verify({"code": code(4), "phone": "13912345678", "region": "CN-BJ"},
                      headers=auth).status_code == 200
    bad = api.verify({"code": code(5), "region": "CN-BJ"},
                     headers={"Authorization": "Bearer ism.ACME.nope"})
    assert bad.status_code == 401 and bad.json["error"]["code"] == "unauthorized"
    rows = _rows(itemseal_env, "region")
    assert ["CN-JS", "江苏", "2"] in rows and ["CN-BJ", "北京", "1"] in rows
    assert ["-", "-", "1"] in rows and not any(r[0] == "CN-SH" for r in rows)
    sources = dict((r[0], r[1]) for r in _rows(itemseal_env, "source"))
    assert sources == {"phone": "2", "declared": "1", "none": "1"}
    # The claims carried their regions to the member, which segments read: where it
    # joined (its phone's province) and its last credited check (declared by the app).
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    member = members.find(phone="+8613912345678")
    fields = _fields(redis_client, members, member.card)
    assert fields["join_region"] == "CN-JS" and fields["join_region_source"] == "phone"
    assert fields["last_region"] == "CN-BJ"


def _fields(redis_client, members, card):
    return {k.decode(): v.decode()
            for k, v in redis_client.hgetall(members.keys.member(card)).items()}


def test_joins_and_segments_use_the_home_region(redis_client, points_tenant):
    members = MemberStore(redis_client, points_tenant(), master=TEST_MASTER)
    member, _ = members.join("13912345678")
    fields = _fields(redis_client, members, member.card)
    assert fields["join_region"] == "CN-JS" and fields["join_region_source"] == "phone"
    assert matches(Segment(regions=("cn-js",)), fields, now=0)


@pytest.mark.parametrize("channel", ["sms", "ivr"])
def test_sms_and_keypad_checks_record_the_phone_region(channel, batch_factory, redis_client,
                                                        clock, itemseal_env):
    world = make_world(batch_factory, redis_client, clock)
    if channel == "sms":
        assert world.sms(world.code(7), sender="+8613912345678").status_code == 200
    else:
        form = {"From": "+8613912345678", "To": "106570216001", "Digits": world.code(7)}
        world.twilio("/v1/ivr/inbound", **form)
    rows = _rows(itemseal_env, "region")
    assert ["CN-JS", "江苏", "1"] in rows, rows
