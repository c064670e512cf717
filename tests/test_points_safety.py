"""Issue 17, the points side, through HTTP and the CLI on a real redis-server.

Each test reproduces one finding: exact bounded integers (an adjustment of
10^14 moved the balance, rounded it, answered 500 and was not audited),
settings that bricked claims, reconcile that skipped a claim for good, a
frozen member's lost claim, limits no command could set, secrets on the
command line and webhooks into the server's own network.
"""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from helpers.aio import run as run_async
from test_admin_api import _audit, world  # noqa: F401 (the fixture)

from cli import main
from codegen.batches import BatchRegistry
from codegen.products import ProductStore
from codegen.store.keyspace import PointsKeys, TenantKeys
from points_bridge.credit import BlockingCrediter
from points_bridge.exc import Contended
from points_bridge.members import MemberStore
from points_bridge.reconcile import Reconciler
from points_bridge.transfer import export
from tests.helpers.master import TEST_MASTER
from verify_api.check.catalog import TenantPolicy
from verify_api.check.ratelimit import Limit

HUGE = 100_000_000_000_000  # the adjustment: 10^14
PHONE = "+8613812345678"
FIRST = 100_000_000  # numeric-24 serials start here
AT = 1_750_000_000


# -- 1. exact integer money ----------------------------------------------------------------
def test_a_huge_adjustment_is_refused_audited_and_moves_nothing(world, redis_client):  # noqa: F811
    card = world.cards["ACME"]
    before = MemberStore(redis_client, "ACME").get(card).balance
    refused = world.call("POST", "/members/{card}/adjust", role="support",
                         body={"points": HUGE, "reason": "attack"})
    assert refused.status_code == 422, refused.text
    assert MemberStore(redis_client, "ACME").get(card).balance == before
    entries = _audit(redis_client)
    assert [e.action for e in entries] == ["member.adjust.refused"]
    assert entries[0].after["points"] == HUGE and entries[0].after["refused"]["code"]
    bound = world.call("POST", "/members/{card}/adjust", role="support",
                       body={"points": 10**9, "reason": "the largest entry"})
    assert bound.status_code == 200 and bound.json["member"]["balance"] == before + 10**9
    assert [e.action for e in _audit(redis_client)][-1] == "member.adjust"
    assert world.call("POST", "/members/{card}/redeem", role="support",
                      body={"points": 10**9 + 1}).status_code == 422
    shown = world.call("GET", "/members/{card}", role="support")
    assert shown.status_code == 200 and shown.json["history"][-1]["delta"] == 10**9


def test_a_fifteen_digit_balance_is_forfeited_exactly(world, redis_client):  # noqa: F811
    """Lua's tostring wrote 123456789012345 as 1.2345678901234e+14 (14 digits)."""
    card = world.cards["ACME"]
    big = 123_456_789_012_345
    redis_client.hset(PointsKeys("ACME").member(card), "balance", big)
    world.call("PATCH", "/points", body={"restore": "forfeit"})
    world.call("POST", "/members/{card}/status", role="support", body={"action": "cancel"})
    world.call("POST", "/members/{card}/status", role="support", body={"action": "restore"})
    shown = world.call("GET", "/members/{card}", role="support")
    assert shown.status_code == 200, shown.text
    assert shown.json["history"][-1]["delta"] == -big and shown.json["balance"] == 0


def test_an_entry_past_the_balance_bound_is_refused_by_the_script(redis_client, points_tenant):
    from points_bridge.ledger import Ledger

    tenant = points_tenant()
    members = MemberStore(redis_client, tenant, master=TEST_MASTER)
    card = members.ensure(PHONE)[0].card
    redis_client.hset(PointsKeys(tenant).member(card), "balance", 10**15 - 1)
    ledger = Ledger(redis_client, tenant)
    assert ledger.adjust(card, 1, reason="to the bound").entry.balance == 10**15
    with pytest.raises(Exception, match="past 1000000000000000"):
        ledger.adjust(card, 1, reason="past the bound")
    assert members.get(card).balance == 10**15


def test_an_entry_an_older_version_damaged_still_reads(world, redis_client, tmp_path):  # noqa: F811
    card = world.cards["ACME"]
    redis_client.xadd(PointsKeys("ACME").ledger(card),
                      {"kind": "adjust", "delta": "1e+14", "balance": "1e+14", "at": "1"})
    assert world.call("GET", "/members/{card}", role="support").status_code == 200
    assert world.call("GET", "/reports/points").status_code == 200
    # the opening adjustment, the coupon's price and its redemption (the admin world), and this
    out = tmp_path / "l.csv"
    assert export(redis_client, "ACME", "ledger", "csv", out, master=TEST_MASTER) == 4


def test_every_entrance_bounds_points(world):  # noqa: F811
    assert world.call("POST", "/products", body={"sku": "BIG", "name": "x",
                                                 "points": 10**8}).status_code == 422
    assert world.call("PATCH", "/products/{sku}", body={"points": 10**8}).status_code == 422
    assert world.call("POST", "/campaigns", body={
        "campaign_id": "big", "starts_at": "2026-01-01", "ends_at": "2026-02-01",
        "bonus": 10**8}).status_code == 422
    assert world.call("POST", "/campaigns", body={
        "campaign_id": "far", "starts_at": "2026-01-01", "ends_at": "9999-12-31",
        "bonus": 5}).status_code == 422
    assert world.call("PATCH", "/points", body={"daily_cap": 10**10}).status_code == 422
    assert world.call("PUT", "/tiers", body={"tiers": [
        {"name": "a", "threshold": 0}, {"name": "b", "threshold": 10**16}]}).status_code == 422


@pytest.fixture
def run(itemseal_env):
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True, input: str | None = None, env=None):
        result = runner.invoke(main, list(args), env={**itemseal_env, **(env or {})},
                               input=input, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    invoke("tenant", "create", "ACME", "--name", "Acme", ok=False)  # or made by `tenant`
    return invoke


def test_the_cli_refuses_a_huge_adjustment_in_one_line_and_audits_it(run, redis_client):
    run("member", "join", "--tenant", "ACME", "--phone", PHONE)
    who = ("--tenant", "ACME", "--phone", PHONE)
    refused = run("member", "adjust", *who, "--points", str(HUGE), "--reason", "x", ok=False)
    assert refused.exit_code == 1 and refused.output.count("\n") == 1, refused.output
    assert "1000000000" in refused.output and "Traceback" not in refused.output
    assert run("member", "adjust", *who, "--points", "5", "--reason", "ok").output == (
        "adjust +5: balance 5\n")
    assert [e.action for e in _audit(redis_client)] == ["member.adjust.refused", "member.adjust"]
    assert "10000000," in run("product", "add", "--tenant", "ACME", "--sku", "X", "--name", "X",
                               "--points", str(10**8), ok=False).output


# -- 2. settings: one parser, bounds, a damaged one degrades ------------------------------
def test_settings_that_would_brick_claims_are_refused(world):  # noqa: F811
    expiry = world.call("PATCH", "/points", body={"expiry_months": 100000})
    assert expiry.status_code == 422 and "120" in expiry.json["error"]["message"]
    basis = world.call("PUT", "/tiers", body={"tiers": [{"name": "s", "threshold": 0}],
                                              "basis": "trailing:99999999999"})
    assert basis.status_code == 422
    assert world.call("PATCH", "/points", body={"expiry_months": 120}).status_code == 200


def test_a_stored_setting_that_no_longer_parses_is_its_default_with_a_warning(
    world, redis_client, caplog  # noqa: F811
):
    caplog.set_level(logging.WARNING)
    # Values no other test stores: each is warned once per process (settings._warn_once).
    redis_client.hset(TenantKeys("ACME").meta, mapping={
        "points_expiry_months": "100007", "points_tier_basis": "trailing:99999999997",
        "points_daily_cap": "-3", "verify_rate_ip": "5/0"})
    world.call("POST", "/batches/{batch_id}/activate", role="operator")
    engine = world.api.app.engine
    batch = BatchRegistry(redis_client, "ACME").get(world.batches["ACME"])
    code = engine._keys.signer("ACME", batch.key_id, batch.profile).code(batch.first_serial)
    answer = world.api.client.simulate_post("/v1/tenants/ACME/verify",
                                            json={"code": code, "phone": "13700000000"})
    assert answer.status_code == 200, answer.text
    assert answer.json["result"] == "genuine" and answer.json["points_awarded"] == 10
    assert world.call("GET", "/points").json["expiry_months"] == 0
    assert world.call("GET", "/tiers").json["basis"] == "lifetime"
    warned = caplog.text
    assert "points_expiry_months" in warned and "points_tier_basis" in warned
    assert "verify_rate_ip" in warned


# -- 3. reconcile: retry, dead letters, never past an unsettled claim ---------------------
@pytest.fixture
def tenant(redis_client, points_tenant) -> str:
    tenant = points_tenant()
    ProductStore(redis_client).add(tenant, "LIP-001", name="Lipstick", points=100)
    BatchRegistry(redis_client, tenant).register(
        "B000001", sku="LIP-001", key_id=0, profile="numeric-24", first_serial=FIRST,
        count=1000)
    return tenant


def owe(redis_client, tenant, serial, phone=PHONE) -> None:
    """The outbox entry the verify script appends with a claim."""
    redis_client.xadd(PointsKeys(tenant).claims(serial >> 20), {
        "serial": serial, "sku": "LIP-001", "phone": phone, "channel": "web", "at": AT})


class Flaky(BlockingCrediter):
    """The real crediter, failing ``fails`` times first with a passing error."""

    def __init__(self, client, fails: int) -> None:
        super().__init__(client, master=TEST_MASTER)
        self.fails = fails

    def credit_claim(self, *args, **kw):
        if self.fails:
            self.fails -= 1
            raise Contended("member changed 64 times")
        return super().credit_claim(*args, **kw)


def test_a_passing_failure_is_retried_with_backoff(redis_client, tenant):
    owe(redis_client, tenant, FIRST + 1)
    slept: list[float] = []
    report = Reconciler(redis_client, tenant, min_age=0, sleep=slept.append,
                        crediter=Flaky(redis_client, 2), master=TEST_MASTER).run()
    assert (report.credited, report.retries, report.failed) == (1, 2, [])
    assert slept == [0.05, 0.1]


def test_a_persisting_failure_never_moves_the_checkpoint_past_the_claim(redis_client, tenant):
    owe(redis_client, tenant, FIRST + 1)
    owe(redis_client, tenant, FIRST + 2)
    stuck = Reconciler(redis_client, tenant, min_age=0, sleep=lambda s: None, attempts=3,
                       crediter=Flaky(redis_client, 3), master=TEST_MASTER).run()
    assert stuck.credited == 0 and len(stuck.unsettled) == 1 and stuck.failed == []
    assert redis_client.get(PointsKeys(tenant).reconcile_checkpoint(FIRST >> 20)) is None
    after = Reconciler(redis_client, tenant, min_age=0, master=TEST_MASTER).run()
    assert (after.credited, after.points) == (2, 200)


def test_a_claim_that_cannot_be_credited_is_parked_listed_and_replayed(
    tenant, run, redis_client
):
    owe(redis_client, tenant, FIRST + 1, phone="not a phone")
    owe(redis_client, tenant, FIRST + 2)
    done = run("points", "reconcile", "--tenant", tenant, "--min-age", "0", ok=False)
    assert done.exit_code == 1 and "dead-lettered 1" in done.output
    listed = run("points", "dead", "--tenant", tenant).output.splitlines()
    assert len(listed) == 1 and f"\t{FIRST + 1}\t" in listed[0] and "BadPhone" in listed[0]
    dead_id = listed[0].split("\t")[0]
    again = run("points", "replay", "--tenant", tenant, dead_id, ok=False)
    assert again.exit_code == 1 and "still dead 1" in again.output
    assert len(run("points", "dead", "--tenant", tenant).output.splitlines()) == 1
    fixed = Reconciler(redis_client, tenant, master=TEST_MASTER)
    parked = fixed.dead()[0]
    redis_client.xdel(PointsKeys(tenant).claims_dead, parked.dead_id)
    fixed.park(parked.outbox_entry, {**parked.claim, "phone": PHONE}, "fixed by hand")
    replayed = run("points", "replay", "--tenant", tenant)
    assert "credited 1 (100 points)" in replayed.output
    assert run("points", "dead", "--tenant", tenant).output == ""
    assert MemberStore(redis_client, tenant).by_phone(PHONE).balance == 200
    assert "no dead letter" in run("points", "replay", "--tenant", tenant, "1-0",
                                   ok=False).output


def test_a_claim_under_a_stored_year_10360_expiry_is_credited(redis_client, tenant):
    """The issue: reconcile logged 'year 10360 is out of range' and skipped the claim."""
    redis_client.hset(TenantKeys(tenant).meta, "points_expiry_months", "100000")
    owe(redis_client, tenant, FIRST + 1)
    report = Reconciler(redis_client, tenant, min_age=0, master=TEST_MASTER).run()
    assert (report.credited, report.failed, report.unsettled) == (1, [], [])


def test_a_frozen_member_s_claim_is_credited_on_unfreeze_through_the_cli(
    tenant, run, redis_client
):
    run("member", "join", "--tenant", tenant, "--phone", PHONE)
    run("member", "freeze", "--tenant", tenant, "--phone", PHONE)
    owe(redis_client, tenant, FIRST + 1)
    report = Reconciler(redis_client, tenant, min_age=0, master=TEST_MASTER).run()
    assert report.pending == 1 and report.credited == 0
    note = run("member", "unfreeze", "--tenant", tenant, "--phone", PHONE).output
    assert "1 waiting claims credited (100 points)" in note
    assert MemberStore(redis_client, tenant).by_phone(PHONE).balance == 100


# -- 4. limits: one command, one route, one parser ---------------------------------------
def test_limits_are_set_by_the_cli_and_read_by_the_catalog(run, redis_client):
    run("tenant", "set", "ACME", "--rate-ip", "off", "--rate-phone", "30/120",
        "--rate-batch", "500/60", "--check-cap", "7")
    fields = {k.decode(): v.decode() for k, v in redis_client.hgetall(
        TenantKeys("ACME").meta).items()}
    policy = TenantPolicy.from_settings("ACME", fields)
    assert (policy.ip_limit, policy.phone_limit, policy.check_cap) == (
        None, Limit(30, 120), 7)
    for option, bad in (("--rate-ip", "5/0"), ("--rate-phone", "x"), ("--check-cap", "0"),
                        ("--rate-batch", "1/999999")):
        refused = run("tenant", "set", "ACME", option, bad, ok=False)
        assert refused.exit_code != 0 and refused.output.count("\n") == 1, refused.output
    assert fields["verify_rate_phone"] == "30/120"


def test_a_manager_sets_limits_through_the_api(world, redis_client):  # noqa: F811
    assert world.call("GET", "/limits").json == {
        "rate_ip": "300/60", "rate_phone": "20/60", "rate_batch": "20000/60", "check_cap": 5}
    changed = world.call("PATCH", "/limits", body={"rate_ip": "off", "check_cap": 9})
    assert changed.status_code == 200 and changed.json["rate_ip"] == "off"
    assert world.call("PATCH", "/limits", body={"rate_ip": "0/60"}).status_code == 422
    assert world.call("PATCH", "/limits", role="support",
                      body={"rate_ip": "off"}).status_code == 403
    policy = run_async(world.api.app.engine.catalog.policy("ACME"))
    assert policy.ip_limit is None and policy.check_cap == 9
    assert [e.action for e in _audit(redis_client)] == ["limits.update"]


# -- 5. secrets and webhooks -------------------------------------------------------------
def test_secrets_come_from_stdin_or_the_environment_and_are_long_enough(run, redis_client):
    assert "16" in run("bridge", "secret", "--tenant", "ACME", "--set", "short",
                       ok=False).output
    secret = "s" * 24
    assert run("bridge", "secret", "--tenant", "ACME", "--secret-stdin",
               input=secret + "\n").output == secret + "\n"
    assert run("bridge", "secret", "--tenant", "ACME", "--secret-env",
               env={"ITEMSEAL_CRM_SECRET": "e" * 20}).output == "e" * 20 + "\n"
    assert run("tenant", "set", "ACME", "--secret-stdin", input="g" * 16 + "\n").exit_code == 0
    assert "16" in run("tenant", "set", "ACME", "--secret-stdin", input="g" * 15 + "\n",
                       ok=False).output
    assert "16" in run("sender", "set", "--tenant", "ACME", "--secret-stdin",
                       input="Authorization: short\n", ok=False).output


def test_webhooks_into_the_server_s_network_are_refused_unless_allowed(
    run, redis_client, master_key, monkeypatch
):
    from verify_api.admin.alerts import Alerts

    monkeypatch.delenv("ITEMSEAL_ALLOW_PRIVATE_WEBHOOKS")
    alerts = Alerts(redis_client, "ACME", master=master_key)
    for url in ("http://127.0.0.1:9/h", "http://169.254.169.254/latest", "http://10.0.0.8/",
                "http://[::1]:80/", "http://localhost:9/"):
        with pytest.raises(Exception, match="ITEMSEAL_ALLOW_PRIVATE_WEBHOOKS"):
            alerts.configure({"webhook_url": url})
    env = {"ITEMSEAL_ALLOW_PRIVATE_WEBHOOKS": ""}
    refused = run("bridge", "run", "--tenant", "ACME", "--secret", "x" * 16, "--once",
                  "--webhook", "http://127.0.0.1:9/h", ok=False, env=env)
    assert "private" in refused.output and refused.output.count("\n") == 1
    assert "private" in run("sender", "set", "--tenant", "ACME", "--url",
                            "http://192.168.1.1/send", ok=False, env=env).output
    monkeypatch.setenv("ITEMSEAL_ALLOW_PRIVATE_WEBHOOKS", "1")
    assert alerts.configure({"webhook_url": "http://127.0.0.1:9/h"})["webhook_url"]

