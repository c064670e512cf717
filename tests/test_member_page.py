"""The member's own page: sign in by an SMS code from the outbound queue, look, redeem.

Served by uvicorn (``helpers/asgi_server.py``) over a real redis-server; the
browser test drives headless Chromium and leaves screenshots in
``/tmp/rewards-shots/`` for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from falcon import testing
from helpers.asgi_server import serving_app

from codegen.store.keyspace import PointsKeys
from points_bridge.ledger import Ledger
from points_bridge.members import MemberStore
from points_bridge.rewards import Reward, RewardStore
from points_bridge.sms import signin
from points_bridge.sms.outbound import Outbox
from tests.helpers.master import TEST_MASTER
from verify_api.app import create_app
from verify_api.channels import member_page

PHONE = "13912345678"
SHOTS = Path("/tmp/rewards-shots")


@pytest.fixture
def page_world(batch_factory, redis_client, clock):
    _, key_store = batch_factory("ACME", count=10)
    member, _ = MemberStore(redis_client, "ACME", master=TEST_MASTER).join(PHONE)
    Ledger(redis_client, "ACME", clock=clock).adjust(member.card, 100, reason="welcome")
    store = RewardStore(redis_client, "ACME", key_store=key_store, clock=clock)
    store.add(Reward("c20", "coupon", "20元优惠券", 40, name_en="20 yuan off"), 5)
    store.add(Reward("mug", "gift", "马克杯", 30, name_en="Mug"), 3)
    store.add(Reward("tv", "gift", "电视机", 1000, name_en="Television"), 1)
    app = create_app(redis_client, key_store, clock=clock, key_cache_seconds=0,
                     catalog_seconds=0)
    yield app, member.card
    app.engine.link.close()


def _sent_codes(redis_client) -> list[str]:
    """The sign-in codes waiting in the transactional outbound queue, oldest first."""
    keys = PointsKeys("ACME")
    ids = [i.decode() for i in redis_client.lrange(keys.outbound_queue(True), 0, -1)]
    texts = [Outbox(redis_client, "ACME").get(i).text for i in ids]
    return [re.search(r"\d{6}", t).group(0) for t in texts]


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _post(client, path, cookies, **form):
    result = client.simulate_post(path, body="&".join(f"{k}={v}" for k, v in form.items()),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"},
                                  cookies=cookies)
    cookies.update({name: c.value for name, c in result.cookies.items()})
    return result


def test_sign_in_codes_expire_are_single_use_and_limited(page_world, redis_client, clock):
    app, card = page_world
    client = testing.TestClient(app)
    jar: dict[str, str] = {}
    first = client.simulate_get("/m/ACME")
    jar.update({name: c.value for name, c in first.cookies.items()})
    token = _csrf(first.text)
    sent = _post(client, "/m/ACME/code", jar, phone=PHONE, csrf=token)
    assert sent.status_code == 200 and 'id="code-form"' in sent.text
    (code,) = _sent_codes(redis_client)
    again = _post(client, "/m/ACME/code", jar, phone=PHONE, csrf=token)
    assert again.status_code == 429  # one code a minute
    wrong = _post(client, "/m/ACME/login", jar, phone=PHONE, code="000000" if code != "000000"
                  else "111111", csrf=token)
    assert wrong.status_code == 401
    ok = _post(client, "/m/ACME/login", jar, phone=PHONE, code=code, csrf=token)
    assert ok.status_code == 303 and member_page.SESSION_COOKIE in ok.cookies
    reused = _post(client, "/m/ACME/login", jar, phone=PHONE, code=code, csrf=token)
    assert reused.status_code == 401  # single use
    home = client.simulate_get("/m/ACME?lang=en", cookies=jar)
    assert 'id="balance">100<' in home.text
    refused = _post(client, "/m/ACME/redeem", jar, item="tv", key="k1", csrf=_csrf(home.text),
                    lang="en")  # no button for it, posted anyway
    assert refused.status_code == 409 and "900 more points needed" in refused.text
    # Expiry: a new code, the clock past its life.
    clock.advance(signin.RESEND_SECONDS + 1)
    _post(client, "/m/ACME/code", jar, phone=PHONE, csrf=token)
    late = _sent_codes(redis_client)[-1]
    clock.advance(signin.CODE_SECONDS + 1)
    fresh = _csrf(client.simulate_get("/m/ACME", cookies=jar).text)
    assert _post(client, "/m/ACME/login", jar, phone=PHONE, code=late,
                 csrf=fresh).status_code == 401
    # A phone that is no member gets the same answer and no SMS.
    before = len(_sent_codes(redis_client))
    stranger = _post(client, "/m/ACME/code", jar, phone="13700000000", csrf=token)
    assert 'id="sent"' in stranger.text and len(_sent_codes(redis_client)) == before
    # Forged CSRF
    assert _post(client, "/m/ACME/code", {}, phone=PHONE, csrf="1.x").status_code == 403


def test_wrong_codes_void_the_code(page_world, redis_client):
    app, _ = page_world
    logins = signin.Signin(redis_client, "ACME")
    logins.send(PHONE, "1.2.3.4")
    (code,) = _sent_codes(redis_client)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(signin.MAX_TRIES):
        with pytest.raises(signin.SigninRefused):
            logins.check(PHONE, wrong)
    with pytest.raises(signin.SigninRefused):
        logins.check(PHONE, code)  # voided by the wrong tries


@pytest.mark.browser
def test_the_member_page_in_a_browser(page_world, browser, redis_client):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    app, card = page_world
    SHOTS.mkdir(parents=True, exist_ok=True)
    with serving_app(app) as base:
        browser.delete_all_cookies()
        browser.get(base + "/m/ACME?lang=en")
        browser.find_element(By.ID, "phone").send_keys("139 1234 5678")
        browser.save_screenshot(str(SHOTS / "1-signin-en.png"))
        browser.find_element(By.CSS_SELECTOR, "#phone-form button").click()
        WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "code-form"))
        (code,) = _sent_codes(redis_client)
        browser.find_element(By.ID, "code").send_keys(code)
        browser.save_screenshot(str(SHOTS / "2-code-en.png"))
        browser.find_element(By.CSS_SELECTOR, "#code-form button").click()
        balance = WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "balance"))
        assert balance.text == "100"
        assert "Television" in browser.find_element(By.ID, "rewards").text
        assert not browser.find_elements(By.ID, "redeem-tv")  # not affordable: no button
        browser.save_screenshot(str(SHOTS / "3-home-en.png"))
        browser.find_element(By.ID, "redeem-c20").click()
        note = WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "note")).text
        assert "Redeemed: 20 yuan off" in note and "coupon code" in note
        assert browser.find_element(By.ID, "balance").text == "60"
        assert "valid" in browser.find_element(By.ID, "coupons").text
        browser.save_screenshot(str(SHOTS / "4-redeemed-en.png"))
        browser.get(base + "/m/ACME?lang=zh")
        assert "当前积分" in browser.find_element(By.ID, "summary").text
        browser.save_screenshot(str(SHOTS / "5-home-zh.png"))
    member = MemberStore(redis_client, "ACME").get(card)
    assert member.balance == 60
    assert [r.item for r in RewardStore(redis_client, "ACME").redemptions(card)] == ["c20"]
