"""The staff back office over HTTP (falcon's TestClient) on a real redis-server.

Staff accounts (``verify_api/admin/staff.py``), their CLI, sessions, CSRF,
the role of every page, tenant isolation on every office route, the member
journey with its audit, form errors, languages and escaping. The browser
walk is ``test_office_browser.py``.
"""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pyotp
import pytest
from falcon import testing
from helpers.cli_runner import run
from helpers.office import CSRF, NONCE, PASSWORD, Office

from codegen.products import ProductStore
from codegen.store.audit import AuditLog
from codegen.store.keyspace import TenantKeys
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.purchase_rules import Line
from points_bridge.purchases import PurchaseDesk, PurchaseRequest
from points_bridge.rewards import Reward, RewardStore
from points_bridge.settings import SettingsStore
from points_bridge.shops import ShopStore
from tests.helpers.master import TEST_MASTER, with_test_master
from verify_api.admin import login_limit, office_text, staff
from verify_api.admin.staff import LoginRefused, StaffStore
from verify_api.app import create_app, openapi_spec
from verify_api.channels.feedback import FeedbackInbox
from verify_api.exc import InvalidField

PHONE = "13812345678"
OFFICE_ROUTES = sorted(
    (method.upper(), path)
    for path, ops in openapi_spec()["paths"].items()
    if path.startswith("/office/{tenant}")
    for method in ops
)


@pytest.fixture
def world(batch_factory, redis_client, clock):
    """ACME and BETA, each with a batch, a product, a member, a feedback message and staff."""
    key_store = None
    cards = {}
    for tenant in ("ACME", "BETA"):
        _, key_store = batch_factory(tenant, count=50, sku="LIP-001", state="minted")
        ProductStore(redis_client).add(tenant, "LIP-001", name=f"{tenant} lipstick", points=10)
        member, _ = MemberStore(redis_client, tenant, master=TEST_MASTER).join(PHONE)
        cards[tenant] = member.card
        Ledger(redis_client, tenant).adjust(member.card, 100, reason="opening")
        FeedbackInbox(redis_client, tenant).add(PHONE, "where to buy?", "sms", int(clock()))
        people = StaffStore(redis_client, tenant, master=key_store.master, clock=clock)
        for name, role in (("mia", "manager"), ("sam", "support"), ("olga", "operator")):
            people.add(f"{name}{tenant.lower() if tenant == 'BETA' else ''}", role, PASSWORD)
    app = create_app(redis_client, key_store, clock=clock, key_cache_seconds=0,
                     catalog_seconds=0)
    yield app, cards, key_store
    app.engine.link.close()


def office(app, tenant="ACME", username="mia", **kw) -> Office:
    visit = Office(app, tenant)
    assert visit.login(username, **kw).status_code == 303
    return visit


# -- staff accounts ---------------------------------------------------------------------------
def test_staff_passwords_are_argon2_hashes_and_the_rules_hold(redis_client, points_tenant, clock):
    points_tenant("ACME")
    people = StaffStore(redis_client, "ACME", clock=clock)
    found = people.add("li.wei", "support", PASSWORD)
    assert (found.role, found.disabled, found.totp) == ("support", False, False)
    stored = redis_client.hget(TenantKeys("ACME").staff_member("li.wei"), "hash").decode()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with pytest.raises(staff.StaffExists):
        people.add("li.wei", "manager", PASSWORD)
    with pytest.raises(InvalidField):
        people.add("short", "support", "too short")
    with pytest.raises(InvalidField):
        people.add("bad name!", "support", PASSWORD)
    with pytest.raises(InvalidField):
        people.add("x", "king", PASSWORD)
    assert people.authenticate("li.wei", PASSWORD).username == "li.wei"
    for who, password in (("li.wei", "wrong password!"), ("nobody", PASSWORD)):
        with pytest.raises(LoginRefused, match="wrong username or password"):
            people.authenticate(who, password)
    assert [s.username for s in people.list()] == ["li.wei"]


def test_lock_out_after_repeated_failures_and_a_managers_reset(redis_client, points_tenant,
                                                               clock):
    points_tenant("ACME")
    people = StaffStore(redis_client, "ACME", clock=clock)
    people.add("sam", "support", PASSWORD)
    for _ in range(staff.MAX_FAILURES):
        with pytest.raises(LoginRefused):
            people.authenticate("sam", "not the password")
    with pytest.raises(LoginRefused, match="locked"):
        people.authenticate("sam", PASSWORD)  # even the right password, while locked
    clock.advance(staff.LOCK_SECONDS + 1)
    assert people.authenticate("sam", PASSWORD).failures == 0
    for _ in range(staff.MAX_FAILURES):
        with pytest.raises(LoginRefused):
            people.authenticate("sam", "not the password")
    people.reset("sam", "a brand new password")
    assert people.authenticate("sam", "a brand new password").must_change
    with pytest.raises(LoginRefused):
        people.change_password("sam", "wrong", "another new password")
    assert not people.change_password("sam", "a brand new password",
                                      "another new password").must_change
    people.set_disabled("sam", True)
    with pytest.raises(LoginRefused):
        people.authenticate("sam", "another new password")
    people.set_disabled("sam", False)
    assert people.authenticate("sam", "another new password").username == "sam"


def test_totp_second_factor_once_per_code(redis_client, key_store_factory, clock):
    key_store = key_store_factory("ACME")
    people = StaffStore(redis_client, "ACME", master=key_store.master, clock=clock)
    people.add("mia", "manager", PASSWORD)
    found, uri = people.enable_totp("mia")
    assert found.totp and uri.startswith("otpauth://totp/")
    secret = pyotp.parse_uri(uri).secret
    stored = b"".join(redis_client.hvals(TenantKeys("ACME").staff_member("mia")))
    assert secret.encode() not in stored
    with pytest.raises(LoginRefused) as missing:
        people.authenticate("mia", PASSWORD)
    assert missing.value.field == "totp"
    code = pyotp.TOTP(secret).at(clock())
    assert people.authenticate("mia", PASSWORD, code).username == "mia"
    with pytest.raises(LoginRefused, match="used already"):
        people.authenticate("mia", PASSWORD, code)
    clock.advance(30)
    assert people.authenticate("mia", PASSWORD, pyotp.TOTP(secret).at(clock()))
    people.disable_totp("mia")
    assert people.authenticate("mia", PASSWORD).username == "mia"


def test_staff_cli(itemseal_env, redis_client):
    env = itemseal_env
    run(env, "tenant", "create", "ACME", "--name", "Acme")
    added = run(env, "staff", "add", "--tenant", "ACME", "liwei", "--role", "support",
                "--password-stdin", stdin=PASSWORD + "\n")
    assert "liwei (support) added" in added.stdout
    again = run(env, "staff", "add", "--tenant", "ACME", "liwei", "--role", "support",
                "--password-stdin", stdin=PASSWORD + "\n", ok=False)
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
    weak = run(env, "staff", "add", "-t", "ACME", "x", "--role", "support", "--password-stdin",
               stdin="short\n", ok=False)
    assert weak.returncode == 1 and "10 to 256 characters" in weak.stderr
    run(env, "staff", "disable", "--tenant", "ACME", "liwei")
    listed = run(env, "staff", "list", "--tenant", "ACME", "--json").stdout
    assert '"disabled": "yes"' in listed and PASSWORD not in listed
    run(env, "staff", "enable", "--tenant", "ACME", "liwei")
    run(env, "staff", "reset", "--tenant", "ACME", "liwei", "--password-stdin",
        stdin="a brand new password\n")
    uri = run(env, "staff", "totp", "--tenant", "ACME", "liwei").stdout.strip()
    assert uri.startswith("otpauth://totp/")
    table = run(env, "staff", "list", "--tenant", "ACME").stdout.splitlines()
    assert table[0].split("\t")[:5] == ["username", "role", "disabled", "locked", "totp"]
    assert table[1].split("\t")[:5] == ["liwei", "support", "no", "no", "yes"]
    actions = [e.action for e in AuditLog(redis_client, "ACME").entries()]
    assert actions == ["staff.totp.on", "staff.reset", "staff.enable", "staff.disable",
                       "staff.add"]
    assert "--password-stdin" in run(env, "staff", "add", "--help").stdout


# -- log-in, sessions, CSRF -------------------------------------------------------------------
def test_login_sets_a_strict_session_and_logout_revokes_it(world):
    app, _, _ = world
    visit = Office(app, "ACME")
    page = visit.get("/office/ACME/login")
    assert page.status_code == 200 and 'name="username"' in page.text
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert "script-src" not in csp and "default-src 'none'" in csp
    bad = visit.login("mia", "wrong password!")
    assert bad.status_code == 401 and 'id="err-password"' in bad.text
    assert 'value="mia"' in bad.text  # what was typed is kept
    ok = visit.login("mia")
    assert ok.status_code == 303 and ok.headers["location"] == "/office/ACME"
    cookie = ok.cookies["itemseal_office"]
    assert cookie.http_only and cookie.same_site == "Strict" and cookie.path == "/office"
    assert cookie.value.startswith("ios.ACME.")
    home = visit.get("/office/ACME")
    assert home.status_code == 200 and 'id="chart-checks"' in home.text  # the dashboard
    session_id = visit.cookies["itemseal_office"]
    assert visit.post("/office/ACME/logout").status_code == 303
    again = visit.client.simulate_get("/office/ACME", cookies={"itemseal_office": session_id})
    assert again.status_code == 303 and again.headers["location"].startswith(
        "/office/ACME/login")


def test_login_form_needs_its_nonce_and_redirects_only_inside_the_tenant(world):
    app, _, _ = world
    visit = Office(app, "ACME")
    forged = visit.post("/office/ACME/login", {"username": "mia", "password": PASSWORD},
                        csrf=False)
    assert forged.status_code == 403 and "itemseal_office" not in visit.cookies
    form = visit.get("/office/ACME/login")
    nonce = NONCE.search(form.text).group(1)
    done = visit.post("/office/ACME/login", {"username": "mia", "password": PASSWORD,
                                             "nonce": nonce, "next": "https://evil.example/"},
                      csrf=False)
    assert done.headers["location"] == "/office/ACME"
    assert Office(app, "ACME").get("/office/ACME/members").headers["location"] == (
        "/office/ACME/login?next=%2Foffice%2FACME%2Fmembers")


def test_every_form_needs_the_sessions_csrf_token(world, redis_client):
    app, cards, _ = world
    visit = office(app, username="sam")
    card = cards["ACME"]
    refused = visit.post(f"/office/ACME/members/{card}/adjust",
                         {"points": "5", "reason": "x", "csrf": "forged"})
    assert refused.status_code == 403
    assert MemberStore(redis_client, "ACME").get(card).balance == 100
    html = visit.get(f"/office/ACME/members/{card}").text
    forms = html.count("<form method=\"post\"")
    assert forms >= 5 and html.count('name="csrf"') >= forms


def test_a_disabled_account_loses_its_session_at_once(world, redis_client, clock):
    app, _, key_store = world
    visit = office(app, username="sam")
    StaffStore(redis_client, "ACME", master=key_store.master, clock=clock).set_disabled(
        "sam", True)
    assert visit.get("/office/ACME/members").status_code == 303


def test_sessions_expire(world, clock):
    app, _, _ = world
    visit = office(app, username="sam")
    clock.advance(11 * 3600)
    assert visit.get("/office/ACME/members").status_code == 303


def test_a_reset_password_must_be_changed_first(world, redis_client, clock):
    app, _, key_store = world
    StaffStore(redis_client, "ACME", master=key_store.master, clock=clock).reset(
        "sam", "temporary password")
    visit = Office(app, "ACME")
    done = visit.login("sam", "temporary password")
    assert done.headers["location"] == "/office/ACME/password"
    visit.csrf = CSRF.search(visit.get("/office/ACME/password").text).group(1)
    differ = visit.post("/office/ACME/password", {"old_password": "temporary password",
                                                  "new_password": "my own password",
                                                  "repeat": "my own passwort"})
    assert differ.status_code == 422 and 'id="err-repeat"' in differ.text
    changed = visit.post("/office/ACME/password", {"old_password": "temporary password",
                                                   "new_password": "my own password",
                                                   "repeat": "my own password"})
    assert changed.status_code == 200 and 'id="note"' in changed.text
    assert Office(app, "ACME").login("sam", "my own password").headers["location"] == (
        "/office/ACME")


def test_ones_own_second_factor(world):
    app, _, _ = world
    sam = office(app, username="sam")
    wrong = sam.post("/office/ACME/totp", {"turn": "on", "password": "not it at all"})
    assert wrong.status_code == 401 and 'id="err-password"' in wrong.text
    on = sam.post("/office/ACME/totp", {"turn": "on", "password": PASSWORD})
    uri = re.search(r"<code>([^<]+)</code>", on.text).group(1).replace("&amp;", "&")
    secret = pyotp.parse_uri(uri).secret
    assert Office(app, "ACME").login("sam").status_code == 401  # the code is needed now
    code = pyotp.TOTP(secret).at(1_767_225_600.0)
    assert Office(app, "ACME").login("sam", totp=code).status_code == 303


def _fail_logins(app, count: int, **origin) -> None:
    for i in range(count):
        refused = Office(app, "ACME", **origin).login(f"guess{i}", "not the password")
        assert refused.status_code == 401, (i, refused.status_code)


def test_one_address_cannot_try_many_usernames(world, redis_client, clock):
    app, _, _ = world
    _fail_logins(app, login_limit.MAX_FAILURES, remote_addr="198.51.100.7")
    for _ in range(2):  # even the right password, until the window ends
        limited = Office(app, "ACME", remote_addr="198.51.100.7").login("mia")
        assert limited.status_code == 429 and 'id="err-form"' in limited.text
        assert 1 <= int(limited.headers["retry-after"]) <= login_limit.WINDOW_SECONDS
        assert 'value="mia"' in limited.text and "itemseal_office" not in limited.cookies
        assert "default-src 'none'" in limited.headers["content-security-policy"]
    assert Office(app, "ACME", remote_addr="198.51.100.8").login("mia").status_code == 303
    assert Office(app, "BETA", remote_addr="198.51.100.7").login("miabeta").status_code == 303
    entries = [e for e in AuditLog(redis_client, "ACME").entries() if e.action ==
               "staff.login.limited"]  # once per address and window, however many refusals
    assert [(e.actor, e.target, e.after["username"]) for e in entries] == [
        ("ip:198.51.100.7", "office/login", "mia")]
    assert StaffStore(redis_client, "ACME").get("mia").failures == 0  # no account touched
    clock.advance(login_limit.WINDOW_SECONDS)
    assert Office(app, "ACME", remote_addr="198.51.100.7").login("mia").status_code == 303


def test_the_forwarded_address_counts_only_from_a_trusted_proxy(world, redis_client, clock):
    _, _, key_store = world
    app = create_app(redis_client, key_store, clock=clock, key_cache_seconds=0,
                     catalog_seconds=0, trusted_proxies="10.0.0.0/8")
    try:
        proxy = {"remote_addr": "10.0.0.5"}
        _fail_logins(app, login_limit.MAX_FAILURES, **proxy,
                     headers={"X-Forwarded-For": "203.0.113.7"})
        assert Office(app, "ACME", **proxy, headers={"X-Forwarded-For": "203.0.113.7"}).login(
            "mia").status_code == 429
        assert Office(app, "ACME", **proxy, headers={"X-Forwarded-For": "203.0.113.8"}).login(
            "mia").status_code == 303  # another client behind the same proxy
        assert Office(app, "ACME", remote_addr="10.0.0.5").login("mia").status_code == 303
        for i in range(login_limit.MAX_FAILURES):  # not a proxy: its header proves nothing
            forged = {"X-Forwarded-For": f"192.0.2.{i}"}
            assert Office(app, "ACME", remote_addr="198.51.100.9", headers=forged).login(
                f"guess{i}", "not the password").status_code == 401
        assert Office(app, "ACME", remote_addr="198.51.100.9", headers={
            "X-Forwarded-For": "192.0.2.200"}).login("mia").status_code == 429
        actors = {e.actor for e in AuditLog(redis_client, "ACME").entries()
                  if e.action == "staff.login.limited"}
        assert actors == {"ip:203.0.113.7", "ip:198.51.100.9"}
    finally:
        app.engine.link.close()


# -- roles and isolation ----------------------------------------------------------------------
@pytest.mark.parametrize("username, path, status", [
    ("sam", "/office/ACME/rules", 403),
    ("sam", "/office/ACME/reports", 403),
    ("sam", "/office/ACME/audit", 403),
    ("sam", "/office/ACME/staff", 403),
    ("sam", "/office/ACME/members", 200),
    ("sam", "/office/ACME/feedback", 200),
    ("olga", "/office/ACME/members", 403),
    ("olga", "/office/ACME/batches", 200),
    ("mia", "/office/ACME/rules", 200),
    ("mia", "/office/ACME/reports/tiers", 200),
    ("mia", "/office/ACME/sms", 200),
])
def test_each_page_asks_for_the_admin_apis_action(world, username, path, status):
    app, _, _ = world
    assert office(app, username=username).get(path).status_code == status


def test_the_manager_reads_members_but_only_support_changes_them(world, redis_client):
    app, cards, _ = world
    card = cards["ACME"]
    manager = office(app)
    assert manager.get(f"/office/ACME/members/{card}").status_code == 200
    assert manager.post(f"/office/ACME/members/{card}/adjust",
                        {"points": "5", "reason": "x"}).status_code == 403
    assert manager.post("/office/ACME/feedback/1-0", {"text": "hi"}).status_code == 403
    assert MemberStore(redis_client, "ACME").get(card).balance == 100


def test_the_member_page_shows_purchases_refunds_and_stored_value(world, redis_client, clock):
    app, cards, _ = world
    card = cards["ACME"]
    ShopStore(redis_client, "ACME").add("JN-01", name="Jinan", region="Shandong")
    desk = PurchaseDesk(redis_client, "ACME", clock=clock)
    desk.topup(card, 5_000, payment_ref="WX-7", idempotency_key="top-1")
    bought = desk.record(PurchaseRequest(card, "JN-01", (Line("LIP-001", 2, 12_800),
                                                         Line("LIP-002", 1, 3_000)),
                                         idempotency_key="till-1"))
    desk.refund(bought.purchase_id, [2])
    for who in ("mia", "sam"):
        page = office(app, username=who).get(f"/office/ACME/members/{card}")
        assert page.status_code == 200 and 'id="purchases"' in page.text
        assert 'id="stored-value">50.00<' in page.text
        refund, row = re.findall(rf"<tr><td>{bought.purchase_id}</td>.*?</tr>", page.text)
        assert "<td>refund</td><td>JN-01</td>" in refund and ">-30.00<" in refund
        assert "<td>purchase</td><td>JN-01</td>" in row and ">158.00<" in row
        assert "LIP-002×1" in row and "LIP-001×" not in row
    assert "No purchases." in office(app, "BETA", "miabeta").get(
        f"/office/BETA/members/{cards['BETA']}").text


def _ledger_rows(text: str) -> dict[str, list[str]]:
    """The member page's ledger rows by kind, each as its text (tags stripped, unescaped)."""
    body = re.search(r'<table id="ledger">(.*?)</table>', text, re.S).group(1)
    rows: dict[str, list[str]] = {}
    for row in re.findall(r"<tr>(<td>.*?)</tr>", body, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        words = html.unescape(re.sub(r"<[^>]+>", " ", cells[-1]))
        rows.setdefault(html.unescape(cells[1]), []).append(" ".join(words.split()))
    return rows


def test_the_ledger_details_read_as_words_not_json(world, redis_client, clock):
    from codegen.store.keyspace import PointsKeys
    from points_bridge.campaigns import CampaignStore
    from points_bridge.credit import BlockingCrediter
    from points_bridge.rules import Campaign, multiplier_bp

    app, cards, _ = world
    card = cards["ACME"]
    now = datetime.fromtimestamp(clock(), UTC)
    CampaignStore(redis_client, "ACME").add(Campaign("spring", now.replace(day=1),
                                                     now.replace(month=2), multiplier_bp("2"),
                                                     5))
    ShopStore(redis_client, "ACME").add("JN-01", name="Jinan", region="Shandong")
    PurchaseDesk(redis_client, "ACME", clock=clock).record(PurchaseRequest(
        card, "JN-01", (Line("LIP-001", 2, 12_800), Line("CRM-002", 1, 3_050)),
        idempotency_key="till-1"))
    BlockingCrediter(redis_client, master=TEST_MASTER).credit_claim(
        "ACME", PHONE, 7, "LIP-001", "sms", "SD", int(clock()))
    redis_client.xadd(PointsKeys("ACME").ledger(card), {  # garbled: an old or repaired entry
        "kind": "credit", "delta": "0", "balance": "0", "at": str(int(clock())),
        "rules": '[{"kind": "base"', "lines": "[1, 2]", "odd": "<b>bold</b>"})
    page = office(app, username="sam").get(f"/office/ACME/members/{card}")
    assert page.status_code == 200
    rows = _ledger_rows(page.text)
    (purchase,) = rows["purchase"]
    assert "Items: LIP-001 × 2 — 128.00, CRM-002 × 1 — 30.50" in purchase
    assert "Rules: base LIP-001 +128, campaign multiplier spring +128, base CRM-002 +30," \
           " campaign multiplier spring +30, campaign bonus spring +5" in purchase
    assert "Total: 158.50" in purchase and "Shop: JN-01" in purchase
    assert "{" not in purchase and '"' not in purchase and "card" not in purchase
    garbled, claim = rows["credit"]  # newest first
    assert "Rules: base +10, campaign multiplier spring +10, campaign bonus spring +5" in claim
    assert "Serial: 7" in claim and "Product: LIP-001" in claim and "Channel: sms" in claim
    assert "{" not in claim
    assert 'Rules: [{"kind": "base"' in garbled and "Items: [1, 2]" in garbled
    assert "odd: <b>bold</b>" in garbled and "<b>bold</b>" not in page.text  # escaped
    assert "opening" in rows["adjust"][0]
    chinese = office(app, username="sam", lang="zh").get(f"/office/ACME/members/{card}")
    claim_zh = _ledger_rows(chinese.text)["credit"][1]
    assert "积分规则: 基础积分 +10, 活动加倍 spring +10, 活动奖励 spring +5" in claim_zh


def _office_path(path: str, cards: dict, tenant: str) -> str:
    values = {"tenant": tenant, "card": cards[tenant], "change": "adjust", "name": "checks",
              "feedback_id": "1-0", "key": "o0123456789abcdef", "username": "mia",
              "batch_id": "B000001", "sku": "LIP-001", "campaign_id": "spring",
              "part": "tiers", "job_id": "x0123456789abcdef", "item": "mug"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


@pytest.mark.parametrize("method, path", OFFICE_ROUTES, ids=lambda x: x)
def test_another_tenants_staff_gets_404_on_every_office_route(world, redis_client, method,
                                                              path):
    app, cards, _ = world
    beta = office(app, "BETA", "miabeta")
    before = redis_client.dbsize()
    target = _office_path(path, cards, "ACME")
    if target.endswith("/login"):
        pytest.skip("the log-in page is public: it makes a session of its own tenant only")
    answer = beta.get(target) if method == "GET" else beta.post(target, {"points": "5",
                                                                          "reason": "x"})
    assert answer.status_code == 404, (method, target, answer.status_code)
    assert "ACME lipstick" not in answer.text and cards["ACME"] not in answer.text
    if method == "GET":  # the lists' order and page, and a report's breakdown, change nothing
        again = beta.get(target, sort="phone", dir="asc", page="2", by="shop")
        assert again.status_code == 404 and cards["ACME"] not in again.text
    assert redis_client.dbsize() == before


def test_a_card_of_another_tenant_is_not_found_in_ones_own_office(world):
    app, cards, _ = world
    sam = office(app, username="sam")
    assert cards["BETA"] != cards["ACME"]  # each tenant's card numbers have their own secret
    assert sam.get(f"/office/ACME/members/{cards['BETA']}").status_code == 404


def test_a_beta_login_cannot_be_used_for_acme(world):
    app, _, _ = world
    visit = Office(app, "ACME")
    assert visit.login("miabeta").status_code == 401  # BETA's staff are not ACME's


# -- the journeys -----------------------------------------------------------------------------
def test_support_finds_adjusts_freezes_and_it_is_all_audited(world, redis_client):
    app, cards, _ = world
    card = cards["ACME"]
    sam = office(app, username="sam")
    found = sam.get("/office/ACME/members", q="138 1234 5678")
    assert found.status_code == 303 and found.headers["location"] == f"/office/ACME/members/{card}"
    missing = sam.post(f"/office/ACME/members/{card}/adjust", {"points": "25", "reason": ""})
    assert missing.status_code == 422 and 'id="err-adjust"' in missing.text
    assert 'value="25"' in missing.text  # kept
    done = sam.post(f"/office/ACME/members/{card}/adjust",
                    {"points": "25", "reason": "birthday goodwill"})
    assert done.status_code == 200 and 'id="balance">125<' in done.text
    assert "birthday goodwill" in done.text  # in the ledger
    assert "where to buy?" in done.text  # the member's own feedback
    frozen = sam.post(f"/office/ACME/members/{card}/status", {"action": "freeze",
                                                               "reason": "lost card"})
    assert 'id="status">frozen<' in frozen.text
    again = sam.post(f"/office/ACME/members/{card}/status", {"action": "freeze"})
    assert again.status_code in (409, 422) and 'id="err-status"' in again.text
    sam.post(f"/office/ACME/members/{card}/status", {"action": "unfreeze"})
    assert MemberStore(redis_client, "ACME").get(card).status == "active"
    entries = AuditLog(redis_client, "ACME").entries()
    assert [(e.actor, e.action) for e in entries[:3]] == [
        ("staff:sam", "member.unfreeze"), ("staff:sam", "member.freeze"),
        ("staff:sam", "member.adjust")]
    assert entries[2].after["entry"]["delta"] == 25
    assert AuditLog(redis_client, "BETA").entries() == []
    audit = office(app).get("/office/ACME/audit")
    assert "staff:sam" in audit.text and "member.adjust" in audit.text


def test_members_list_filters_sorts_and_adds(world, redis_client):
    app, _, _ = world
    sam = office(app, username="sam")
    for i in range(30):
        MemberStore(redis_client, "ACME", master=TEST_MASTER).join(f"139000000{i:02d}")
    first = sam.get("/office/ACME/members", sort="phone", dir="asc")
    assert first.status_code == 200 and "31 members · Page 1 of 2" in first.text
    assert "+8613812345678" in first.text
    second = sam.get("/office/ACME/members", sort="phone", dir="asc", page="2")
    assert second.text.count('<tr><td><a href="/office/ACME/members/') == 6
    bad = sam.post("/office/ACME/members", {"phone": "12", "birthday": "1990-02-30"})
    assert bad.status_code == 422 and 'value="12"' in bad.text
    added = sam.post("/office/ACME/members", {"phone": "13700000001", "birthday": "05-06"})
    assert added.status_code == 303
    assert MemberStore(redis_client, "ACME").find(phone="13700000001").birthday == "--05-06"
    assert AuditLog(redis_client, "ACME").entries()[0].action == "member.add"
    frozen = sam.get("/office/ACME/members", status="frozen")
    assert "No members match." in frozen.text


def _cells(table: str, index: int):
    """A reader of one column of the page's table ``table`` (tags stripped)."""
    def read(text: str) -> list[str]:
        body = re.search(rf'<table id="{table}">(.*?)</table>', text, re.S).group(1)
        rows = re.findall(r"<tr[^>]*>(<td.*?)</tr>", body, re.S)
        return [html.unescape(re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>(.*?)</td>", row,
                                                                  re.S)[index])).strip()
                for row in rows if "colspan" not in row]
    return read


def _feedback_phones(text: str) -> list[str]:
    return re.findall(r'<div class="card" id="fb-[^"]+">\s*<div><b>([^<]+)</b>', text)


def _walk(visit: Office, path: str, read, **params) -> tuple[list[str], list[str]]:
    """Every row of a list, page after page by its "next" links; and page 1's rows."""
    page = visit.get(path, **params)
    assert page.status_code == 200, page.status_code
    first = found = read(page.text)
    while (link := re.search(r'id="next" href="([^"]+)"', page.text)) is not None:
        target, _, query = html.unescape(link.group(1)).partition("?")
        kept = dict(parse_qsl(query))
        assert {k: kept.get(k) for k in params} == params  # the order and filters go along
        page = visit.get(target, **kept)
        found = found + read(page.text)
    return found, first


def _seed_products(redis_client, world_):
    store = ProductStore(redis_client)
    for i in range(30):
        store.add("ACME", f"P-{i:02d}", name=f"p{i}", points=100 + (i * 7) % 31)
    return {p.sku: p.points for p in store.list("ACME")}


def _seed_campaigns(redis_client, world_):
    from points_bridge.campaigns import CampaignStore
    from points_bridge.rules import Campaign, multiplier_bp

    store = CampaignStore(redis_client, "ACME")
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    for i in range(30):
        store.add(Campaign(f"c{i:02d}", start, end, multiplier_bp("1"), 1 + (i * 7) % 31))
    return {c.campaign.campaign_id: c.campaign.bonus for c in store.list().values()}


def _seed_rewards(redis_client, world_):
    store = RewardStore(redis_client, "ACME")
    for i in range(30):
        store.add(Reward(f"r{i:02d}", "gift", f"R{i}", 10 + i), (i * 7) % 31)
    return {r.item: left for r, left in store.list()}


def _seed_staff(redis_client, world_):
    from argon2 import PasswordHasher

    store = StaffStore(redis_client, "ACME", master=world_[2].master,
                       hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    for i in range(30):
        store.add(f"u{(i * 7) % 31:02d}", "support", PASSWORD)
    return {s.username: s.username for s in store.list()}


def _seed_batches(redis_client, world_, batch_factory):
    for i in range(30):
        batch_factory("ACME", count=1, sku=f"S-{29 - i:02d}", state="minted")
    from codegen.batches import BatchRegistry
    return {b.batch_id: b.sku for b in BatchRegistry(redis_client, "ACME").list()}


def _seed_audit(redis_client, world_):
    log = AuditLog(redis_client, "ACME")
    for i in range(60):
        log.record(f"actor{(i * 7) % 61:02d}", "test.entry", f"t/{i}")
    return {e.actor: e.actor for e in log.entries(1000)}


def _seed_feedback(redis_client, world_):
    inbox = FeedbackInbox(redis_client, "ACME")
    for i in range(30):
        inbox.add(f"1390000{(i * 7) % 31:04d}", "hello", "sms", 1_767_225_600 + i)
    return {f.phone: f.phone for f in inbox.list(1000)}


SORT_CASES = {  # list: (path, reader of the row's identity, seeding, the column sorted by)
    "products": ("products", _cells("products", 0), _seed_products, "points"),
    "campaigns": ("campaigns", _cells("campaigns", 0), _seed_campaigns, "bonus"),
    "rewards": ("rewards", _cells("rewards", 0), _seed_rewards, "stock"),
    "staff": ("staff", _cells("staff", 0), _seed_staff, "username"),
    "batches": ("batches", _cells("batches", 0), _seed_batches, "sku"),
    "audit": ("audit", _cells("audit", 1), _seed_audit, "actor"),
    "feedback": ("feedback", _feedback_phones, _seed_feedback, "phone"),
}


@pytest.mark.parametrize("name", SORT_CASES)
def test_each_list_sorts_by_a_column_across_its_pages(world, redis_client, batch_factory,
                                                      name):
    app, _, _ = world
    path, read, seed, column = SORT_CASES[name]
    if name == "batches":
        values = seed(redis_client, world, batch_factory)
    else:
        values = seed(redis_client, world)
    mia = office(app, username="sam" if name == "feedback" else "mia")
    url = f"/office/ACME/{path}"
    ascending, first_asc = _walk(mia, url, read, sort=column, dir="asc")
    descending, first_desc = _walk(mia, url, read, sort=column, dir="desc")
    expected = sorted(values, key=lambda k: (values[k], k))
    assert [values[k] for k in ascending] == sorted(values.values())
    assert [values[k] for k in descending] == sorted(values.values(), reverse=True)
    assert sorted(ascending) == sorted(expected)  # every row once, over several pages
    assert len(first_asc) < len(ascending) and first_asc != first_desc
    page = mia.get(url, sort=column, dir="desc")
    marked = re.search(rf'id="sort-{column}" href="([^"]*)"[^>]*>[^<]*'
                       r'<span class="sorted">▼</span>', page.text)
    assert marked and "dir=asc" in marked.group(1)  # marked, and its link flips the order
    for odd in ({"sort": "'; DROP", "dir": "sideways"}, {"sort": column, "page": "999"},
                {"page": "-1"}, {"sort": ""}):
        assert mia.get(url, **odd).status_code == 200, odd  # the default, not an error


def test_members_sort_by_balance_across_pages(world, redis_client):
    app, _, _ = world
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    ledger = Ledger(redis_client, "ACME")
    for i in range(30):
        joined, _ = members.join(f"139000000{i:02d}")
        ledger.adjust(joined.card, 1 + (i * 7) % 31, reason="seed")
    sam = office(app, username="sam")
    balances, first = _walk(sam, "/office/ACME/members", _cells("members", 5), sort="balance",
                            dir="asc", status="active")
    assert [int(b) for b in balances] == sorted(int(b) for b in balances)
    assert len(balances) == 31 and len(first) == 25
    down, _ = _walk(sam, "/office/ACME/members", _cells("members", 5), sort="balance",
                    dir="desc", status="active")
    assert [int(b) for b in down] == sorted((int(b) for b in balances), reverse=True)
    assert sam.get("/office/ACME/members", sort="nope", dir="x").status_code == 200


def _seed_members(redis_client, world_):
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    for i in range(30):
        members.join(f"1390000{(i * 7) % 31:04d}")


POST_CASES = {  # list: (who, a form of the list (its action's path), what it sends, its answer)
    "products": ("mia", r"/office/ACME/products/P-\d+", {"points": "100"}, 200),
    "campaigns": ("mia", r"/office/ACME/campaigns/c\d+/end", {}, 200),
    "rewards": ("mia", r"/office/ACME/rewards/r\d+", {"add_stock": "1"}, 200),
    "staff": ("mia", r"/office/ACME/staff/u\d+/role", {"role": "operator"}, 200),
    "batches": ("olga", r"/office/ACME/batches/B\d+/activate", {}, 200),
    "feedback": ("sam", r"/office/ACME/feedback/[\d-]+", {"text": "Thank you!"}, 200),
    "members": ("sam", r"/office/ACME/members", {"phone": "12"}, 422),  # refused: the list again
}


@pytest.mark.parametrize("name", POST_CASES)
def test_a_form_on_a_sorted_list_answers_in_the_same_order_and_page(world, redis_client,
                                                                   batch_factory, name):
    app, _, _ = world
    who, action, fields, status = POST_CASES[name]
    if name == "members":
        path, read, column = "members", _cells("members", 1), "phone"
        _seed_members(redis_client, world)
    else:
        path, read, seed, column = SORT_CASES[name]
        if name == "batches":
            seed(redis_client, world, batch_factory)
        else:
            seed(redis_client, world)
    visit = office(app, username=who)
    url = f"/office/ACME/{path}"
    page = visit.get(url, sort=column, dir="desc", page="2")
    found = re.search(rf'action="({action}\?[^"]*)"', page.text)
    assert found, name
    target = html.unescape(found.group(1))
    assert dict(parse_qsl(target.partition("?")[2])) == {"sort": column, "dir": "desc",
                                                          "page": "2"}
    answer = visit.post(target, fields)
    assert answer.status_code == status, answer.text[:500]
    shown = read(answer.text)
    assert shown == read(visit.get(url, sort=column, dir="desc", page="2").text)
    assert shown != read(visit.get(url, page="2").text)  # not the list's default order
    assert re.search(rf'id="sort-{column}"[^>]*>[^<]*<span class="sorted">▼</span>',
                     answer.text)
    assert re.search(r'id="page-of">Page 2 of', answer.text)
    odd = visit.get(url, sort='"><script>alert(1)</script>', dir="<b>", page="2")
    assert "<script>" not in odd.text and "%3Cscript" not in odd.text
    assert "%3Cb%3E" not in odd.text and "dir=%3C" not in odd.text


def test_members_export_in_the_background(world, redis_client):
    app, cards, _ = world
    sam = office(app, username="sam")
    started = sam.post("/office/ACME/exports")
    assert started.status_code == 303
    job_id = started.headers["location"].rsplit("/", 1)[1]
    app.office.jobs[job_id].join(30)
    page = sam.get(f"/office/ACME/exports/{job_id}")
    assert page.status_code == 200 and 'id="download"' in page.text and "<progress" in page.text
    got = sam.get(f"/office/ACME/exports/{job_id}", download="1")
    assert got.headers["content-type"].startswith("text/csv")
    lines = got.text.splitlines()
    assert lines[0].startswith("card,phone,status") and cards["ACME"] in lines[1]
    assert len(lines) == 2 and cards["BETA"] not in got.text
    assert sam.get("/office/ACME/exports/x0000000000000000").status_code == 404
    assert office(app, username="olga").post("/office/ACME/exports").status_code == 403


def test_feedback_is_answered_and_text_is_escaped(world, redis_client, clock):
    app, _, _ = world
    inbox = FeedbackInbox(redis_client, "ACME")
    evil = inbox.add(PHONE, "<script>alert(1)</script>", "sms", int(clock()))
    sam = office(app, username="sam")
    page = sam.get("/office/ACME/feedback")
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    empty = sam.post(f"/office/ACME/feedback/{evil}", {"text": "  "})
    assert empty.status_code == 422
    done = sam.post(f"/office/ACME/feedback/{evil}", {"text": "we never run scripts"})
    assert done.status_code == 200 and inbox.get(evil).answer == "we never run scripts"
    assert AuditLog(redis_client, "ACME").entries()[0].actor == "staff:sam"


def test_segment_preview_and_a_campaign_in_the_background(world, redis_client):
    app, _, _ = world
    mia = office(app)
    shown = mia.get("/office/ACME/sms", preview="1", tiers="", text="hello {balance}")
    assert 'id="preview-count">1<' in shown.text
    wrong = mia.get("/office/ACME/sms", preview="1", points_min="lots")
    assert wrong.status_code == 422 and 'id="err-points_min"' in wrong.text
    sent = mia.post("/office/ACME/sms", {"text": "hello {balance}", "status": "active"})
    assert sent.status_code == 303
    key = sent.headers["location"].rsplit("/", 1)[1]
    app.office.jobs[key].join(30)
    status = mia.get(f"/office/ACME/sms/{key}")
    assert status.status_code == 200 and 'id="targeted">1<' in status.text
    assert AuditLog(redis_client, "ACME").entries()[0].action == "sms_campaign.send"


def test_reports_render_and_download_as_csv(world):
    app, _, _ = world
    mia = office(app)
    for name in ("checks", "regions", "counterfeits", "suspicious", "tiers", "points", "sales"):
        page = mia.get(f"/office/ACME/reports/{name}")
        assert page.status_code == 200 and f'id="table-{name}"' in page.text, name
    csv_file = mia.get("/office/ACME/reports/tiers", format="csv")
    assert csv_file.headers["content-type"].startswith("text/csv")
    assert csv_file.text.splitlines()[0] == "tier,members,active,frozen,cancelled"
    assert mia.get("/office/ACME/reports/nope").status_code == 404


def test_the_sales_report_sums_purchases_by_day(world, redis_client, clock):
    app, _, _ = world
    for tenant, amount in (("ACME", 12_800), ("BETA", 99_900)):
        ShopStore(redis_client, tenant).add("JN-01", name="Jinan", region="Shandong")
        PurchaseDesk(redis_client, tenant, clock=clock).record(PurchaseRequest(
            PHONE, "JN-01", (Line("LIP-001", 2, amount),), idempotency_key="till-1"))
    mia = office(app)
    page = mia.get("/office/ACME/reports/sales")
    assert page.status_code == 200 and 'id="table-sales"' in page.text
    assert 'id="chart-sales"' in page.text and "12800" in page.text and "99900" not in page.text
    csv_file = mia.get("/office/ACME/reports/sales", format="csv")
    header, row = csv_file.text.splitlines()
    assert header == "day,purchases,refunds,qty,amount_fen,points"
    assert row.startswith("2026-01-01,1,0,2,12800,")
    assert office(app, username="sam").get("/office/ACME/reports/sales").status_code == 403


def test_the_sales_report_breaks_down_as_the_cli_does(world, redis_client, clock,
                                                     itemseal_env):
    app, cards, _ = world
    shops = ShopStore(redis_client, "ACME")
    for shop, city in (("JN-01", "Jinan"), ("QD-02", "Qingdao")):
        shops.add(shop, name=city, region="Shandong")
    desk = PurchaseDesk(redis_client, "ACME", clock=clock)
    SettingsStore(redis_client).update("ACME", tiers="silver:0,gold:1000")
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    other, _ = members.join("13900000077")
    members.pin_tier(other.card, "gold", "a VIP")
    bought = desk.record(PurchaseRequest(cards["ACME"], "JN-01", (
        Line("LIP-001", 2, 12_800), Line("CRM-002", 1, 5_000)), idempotency_key="till-1"))
    clock.advance(86_400)
    desk.record(PurchaseRequest(other.card, "QD-02", (Line("LIP-001", 1, 6_400),),
                                idempotency_key="till-2"))
    desk.refund(bought.purchase_id, [2])
    mia = office(app)
    span = {"from": "2026-01-01", "to": "2026-01-03"}
    for by in ("day", "shop", "product", "tier", "shop,product"):
        page = mia.get("/office/ACME/reports/sales", by=by, **span)
        assert page.status_code == 200 and 'id="chart-sales"' in page.text, by
        assert f'<option value="{by}" selected>' in page.text
        got = mia.get("/office/ACME/reports/sales", by=by, format="csv", **span)
        assert f"sales-by-{by.replace(',', '-')}" in got.headers["content-disposition"]
        printed = run(with_test_master(itemseal_env), "report", "sales", "-t", "ACME",
                      "--from", span["from"], "--to", span["to"], "--by", by,
                      "--format", "csv").stdout
        office_rows = list(csv.reader(io.StringIO(got.text)))
        assert office_rows == list(csv.reader(io.StringIO(printed))), by
        assert office_rows[0][:len(by.split(","))] == by.split(",") and len(office_rows) > 2
    by_shop = dict((r[0], r[4]) for r in csv.reader(io.StringIO(mia.get(
        "/office/ACME/reports/sales", by="shop", format="csv", **span).text)))
    assert by_shop == {"shop": "amount_fen", "JN-01": "12800", "QD-02": "6400"}
    assert "Sales by shop" in mia.get("/office/ACME/reports/sales", by="shop", **span).text
    assert mia.get("/office/ACME/reports/sales", by="colour").status_code == 422
    assert mia.get("/office/ACME/reports/tiers", by="colour").status_code == 200


def test_staff_page_manages_accounts(world, redis_client):
    app, _, _ = world
    mia = office(app)
    taken = mia.post("/office/ACME/staff", {"username": "sam", "role": "support",
                                            "password": PASSWORD})
    assert taken.status_code == 409 and 'value="sam"' in taken.text
    added = mia.post("/office/ACME/staff", {"username": "new.one", "role": "operator",
                                            "password": PASSWORD})
    assert added.status_code == 200 and 'id="staff-new.one"' in added.text
    mia.post("/office/ACME/staff/new.one/disable")
    assert Office(app, "ACME").login("new.one").status_code == 401
    assert mia.post("/office/ACME/staff/mia/disable").status_code == 422
    actions = [e.action for e in AuditLog(redis_client, "ACME").entries()[:2]]
    assert actions == ["staff.disable", "staff.add"]


def test_rules_page_saves_and_shows_field_errors(world, redis_client):
    app, _, _ = world
    mia = office(app)
    bad = mia.post("/office/ACME/rules", {"daily_cap": "lots"})
    assert bad.status_code == 422 and 'value="lots"' in bad.text
    done = mia.post("/office/ACME/rules", {"daily_cap": "300"})
    assert done.status_code == 200 and 'value="300"' in done.text
    assert AuditLog(redis_client, "ACME").entries()[0].action == "points.update"
    wrong = mia.post("/office/ACME/rules/tiers", {"tiers": "silver:10, gold:5"})
    assert wrong.status_code == 422 and 'value="silver:10, gold:5"' in wrong.text
    tiers = mia.post("/office/ACME/rules/tiers", {"tiers": "silver:0, gold:500"})
    assert tiers.status_code == 200 and "gold" in tiers.text
    named = mia.post("/office/ACME/rules/attributes", {"attributes": "name:str, region:str"})
    assert named.status_code == 200
    assert 'name="a.name"' in office(app, username="sam").get("/office/ACME/members").text
    assert [e.action for e in AuditLog(redis_client, "ACME").entries()[:2]] == [
        "points.attributes", "tiers.update"]


def test_batches_activate_and_recall_by_role(world):
    app, _, _ = world
    olga = office(app, username="olga")
    assert olga.post("/office/ACME/batches/B000001/recall").status_code == 403
    done = olga.post("/office/ACME/batches/B000001/activate")
    assert done.status_code == 200 and "B000001: active" in done.text
    assert office(app).post("/office/ACME/batches/B000001/recall").status_code == 200


def test_rewards_page_lists_adds_restocks_and_pauses(world, redis_client):
    app, _, _ = world
    RewardStore(redis_client, "BETA").add(Reward("vase", "gift", "BETA vase", 90), 3)
    mia = office(app)
    page = mia.get("/office/ACME/rewards")
    assert page.status_code == 200 and 'href="/office/ACME/rewards"' in page.text
    assert "Nothing yet." in page.text and "BETA vase" not in page.text
    bad = mia.post("/office/ACME/rewards", {"item": "mug", "name": "Mug", "points": "0",
                                            "stock": "10", "name_en": "A mug"})
    assert bad.status_code == 422 and 'id="err-points"' in bad.text
    assert 'value="mug"' in bad.text and 'value="A mug"' in bad.text
    wrong = mia.post("/office/ACME/rewards", {"item": "mug", "name": "Mug", "points": "500",
                                              "stock": "10", "ends_at": "soon"})
    assert wrong.status_code == 422 and 'id="err-ends_at"' in wrong.text
    added = mia.post("/office/ACME/rewards", {"item": "mug", "name": "Mug", "points": "500",
                                              "stock": "10", "ends_at": "2026-06-01"})
    assert added.status_code == 200 and 'id="reward-mug"' in added.text
    assert "2026-06-01T00:00:00" in added.text
    taken = mia.post("/office/ACME/rewards", {"item": "mug", "name": "Mug", "points": "5",
                                              "stock": "1"})
    assert taken.status_code == 409 and 'id="err-item"' in taken.text
    more = mia.post("/office/ACME/rewards/mug", {"add_stock": "5"})
    assert more.status_code == 200 and 'id="stock-mug">15<' in more.text
    paused = mia.post("/office/ACME/rewards/mug", {"status": "paused"})
    assert 'id="resume-mug"' in paused.text
    store = RewardStore(redis_client, "ACME")
    assert (store.get("mug").status, store.stock("mug")) == ("paused", 15)
    assert mia.post("/office/ACME/rewards/mug", {"add_stock": "x"}).status_code == 422
    entries = AuditLog(redis_client, "ACME").entries()
    assert [(e.actor, e.action) for e in entries[:3]] == [("staff:mia", "reward.set")] * 2 + [
        ("staff:mia", "reward.add")]
    sam = office(app, username="sam")
    read = sam.get("/office/ACME/rewards")
    assert read.status_code == 200 and 'id="reward-mug"' in read.text
    assert 'id="add-reward"' not in read.text and 'id="resume-mug"' not in read.text
    assert sam.post("/office/ACME/rewards/mug", {"add_stock": "5"}).status_code == 403
    assert sam.post("/office/ACME/rewards", {"item": "cup"}).status_code == 403
    olga = office(app, username="olga")
    assert olga.get("/office/ACME/rewards").status_code == 403
    assert 'href="/office/ACME/rewards"' not in olga.get("/office/ACME").text
    assert RewardStore(redis_client, "BETA").stock("vase") == 3


def test_products_campaigns_and_care(world, redis_client):
    app, _, _ = world
    mia = office(app)
    bad = mia.post("/office/ACME/products", {"sku": "NEW-1", "name": "New", "points": "x"})
    assert bad.status_code == 422 and 'value="NEW-1"' in bad.text
    added = mia.post("/office/ACME/products", {"sku": "NEW-1", "name": "New", "points": "7"})
    assert added.status_code == 200 and 'id="product-NEW-1"' in added.text
    mia.post("/office/ACME/products/LIP-001", {"name": "Velvet", "points": "12"})
    assert ProductStore(redis_client).get("ACME", "LIP-001").points == 12
    assert ProductStore(redis_client).get("BETA", "LIP-001").points == 10
    wrong = mia.post("/office/ACME/campaigns", {"campaign_id": "spring", "starts_at": "soon",
                                                "ends_at": "2026-04-01"})
    assert wrong.status_code == 422 and 'id="err-starts_at"' in wrong.text
    done = mia.post("/office/ACME/campaigns", {"campaign_id": "spring",
                                               "starts_at": "2026-03-01",
                                               "ends_at": "2026-04-01", "multiplier": "2"})
    assert done.status_code == 200 and "spring added" in done.text
    assert "spring ended" in mia.post("/office/ACME/campaigns/spring/end").text
    care = mia.get("/office/ACME/care")
    assert care.status_code == 200 and 'name="birthday.text"' in care.text
    saved = mia.post("/office/ACME/care", {
        "birthday.on": "1", "birthday.text": "Happy birthday, {card}!",
        "reminder.days": "60", "reminder.text": "Come back", "tier.text": "Up: {tier}",
        "expiry.days": "0x", "expiry.text": "Soon"})
    assert saved.status_code == 422 and 'value="0x"' in saved.text
    saved = mia.post("/office/ACME/care", {
        "birthday.on": "1", "birthday.text": "Happy birthday, {card}!",
        "reminder.days": "60", "reminder.text": "Come back", "tier.text": "Up: {tier}",
        "expiry.days": "30", "expiry.text": "Soon"})
    assert saved.status_code == 200
    actions = [e.action for e in AuditLog(redis_client, "ACME").entries()]
    assert actions[:5] == ["care.set", "campaign.end", "campaign.add", "product.update",
                           "product.add"]
    assert office(app, username="sam").post("/office/ACME/products",
                                            {"sku": "X", "name": "x",
                                             "points": "1"}).status_code == 403


def test_spoiled_codes_are_voided_from_an_uploaded_file(world, redis_client):
    from codegen.batches import BatchRegistry

    app, _, key_store = world
    batch = BatchRegistry(redis_client, "ACME").get("B000001")
    signer = key_store.signer("ACME", batch.key_id, batch.profile)
    codes = [signer.code(batch.first_serial + i) for i in range(3)]
    mia = office(app)
    boundary = "itemsealboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n"
            f"{mia.csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"codes\";"
            f" filename=\"spoiled.txt\"\r\nContent-Type: text/plain\r\n\r\n"
            + "\n".join([*codes, "not a code"]) + f"\r\n--{boundary}--\r\n")
    done = mia.client.simulate_post(
        "/office/ACME/batches/B000001/void", body=body, cookies=mia.cookies,
        content_type=f"multipart/form-data; boundary={boundary}")
    assert done.status_code == 200 and "3 voided" in done.text and 'id="voided"' in done.text
    entry = AuditLog(redis_client, "ACME").entries()[0]
    assert (entry.actor, entry.action, entry.after["voided"]) == ("staff:mia", "batch.void", 3)
    olga = office(app, username="olga")
    assert olga.post("/office/ACME/batches/B000001/void", {"codes": codes[0]}).status_code == 403


# -- languages --------------------------------------------------------------------------------
def test_every_phrase_of_the_templates_has_its_chinese():
    folder = Path(__file__).parents[1] / "verify_api" / "resources" / "office_templates"
    used = set()
    for template in folder.glob("*.html"):
        used |= set(re.findall(r'\bt\("([^"]+)"\)', template.read_text(encoding="utf-8")))
    assert used and not sorted(used - set(office_text.ZH))


def test_a_chinese_session(world):
    app, _, _ = world
    sam = office(app, username="sam", lang="zh")
    page = sam.get("/office/ACME/members")
    assert "会员" in page.text and 'lang="zh-CN"' in page.text
    sam.post("/office/ACME/lang", {"lang": "en"})
    assert "No members match." in sam.get("/office/ACME/members", status="cancelled").text


def test_entrance_goes_to_the_tenants_login(world):
    app, _, _ = world
    client = testing.TestClient(app)
    assert client.simulate_get("/office").status_code == 200
    slash = client.simulate_get("/office/")
    assert slash.status_code == 303 and slash.headers["location"] == "/office"
    go = client.simulate_get("/office", params={"tenant": "ACME"})
    assert go.status_code == 303 and go.headers["location"] == "/office/ACME/login"
    assert client.simulate_get("/office", params={"tenant": "NOPE"}).status_code == 404
    assert client.simulate_get("/office/NOPE/login").status_code == 404
