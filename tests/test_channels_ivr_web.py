"""The keypad (TwiML) and the verify page (HTML) through the HTTP app on a real redis-server."""

from __future__ import annotations

import re
from html import unescape

import pytest
from helpers.channels_world import NUMBER, make_world

from codegen.codes import NUMERIC_24
from codegen.keys import KeyStore
from codegen.products import ProductStore
from codegen.tenants import TenantStore
from points_bridge.members import MemberStore
from verify_api.channels import templates


@pytest.fixture(params=["zh", "en"])
def world(request, batch_factory, redis_client, clock):
    w = make_world(batch_factory, redis_client, clock, language=request.param)
    w.language = request.param
    yield w
    w.app.engine.link.close()


def ivr(world, digits: str | None = None, caller: str = "+8613800138000"):
    form = {"From": caller, "To": NUMBER, "CallSid": "CA1"}
    if digits is not None:
        form["Digits"] = digits
    result = world.twilio(path="/v1/ivr/inbound", **form)
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("application/xml")
    return result.text


def test_ivr_prompts_speaks_and_asks_again(world, redis_client):
    voice = {"zh": "zh-CN", "en": "en-US"}[world.language]
    first = ivr(world)
    assert '<Gather input="dtmf" finishOnKey="#"' in first and f'language="{voice}"' in first
    assert templates.DEFAULTS[world.language]["ivr_prompt"] in first
    code = world.code(2)
    spoken = ivr(world, code + "#")
    assert "+10" in spoken and "<Hangup/>" in spoken and "<Gather" not in spoken
    assert MemberStore(redis_client, "ACME").by_phone("+8613800138000").balance == 10
    slip = code[:3] + str((int(code[3]) + 1) % 10) + code[4:]
    again = ivr(world, slip)
    assert "<Gather" in again and templates.DEFAULTS[world.language]["ivr_mistyped"] in again
    repeat = ivr(world, code, caller="+8613900139000")
    assert "<Hangup/>" in repeat and "2026-01-01" in repeat


def test_ivr_needs_the_signature(world):
    form = {"From": "+8613800138000", "To": NUMBER, "Digits": world.code(1)}
    assert world.twilio(path="/v1/ivr/inbound", sign=False, **form).status_code == 403


def page(world, code: str, tenant: str = "ACME"):
    result = world.client.simulate_get(f"/t/{tenant}/v/{code}")
    assert result.headers["content-type"].startswith("text/html")
    assert "<script" not in result.text
    return result


def result_of(html: str) -> str:
    return re.search(r'data-result="([a-z_]+)"', html).group(1)


def claim(world, code: str, phone: str, cookies: dict, token: str | None):
    body = f"phone={phone}&csrf={token or ''}"
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return world.client.simulate_post(
        f"/t/ACME/v/{code}", body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )  # fmt: skip


def form_token(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_page_check_then_claim_then_already_verified(world, redis_client, clock):
    code = world.code(3)
    first = page(world, code)
    assert first.status_code == 200 and result_of(first.text) == "genuine"
    assert f'lang="{"zh-CN" if world.language == "zh" else "en"}"' in first.text
    assert "Velvet lipstick" in first.text and "Apply to clean lips." in first.text
    assert "matte lipstick" in first.text and 'id="claim-form"' in first.text
    cookies = {c.name: c.value for c in first.cookies.values()}
    assert first.cookies["itemseal_form"].same_site == "Strict"
    token = form_token(first.text)
    assert claim(world, code, "13800138000", cookies, None).status_code == 403
    assert claim(world, code, "13800138000", {}, token).status_code == 403  # no cookie
    assert claim(world, world.code(4), "13800138000", cookies, token).status_code == 403
    bad_phone = claim(world, code, "12", cookies, token)
    assert bad_phone.status_code == 422 and 'id="error"' in bad_phone.text
    clock.advance(30)
    claimed = claim(world, code, "138 0013 8000", cookies, token)
    assert claimed.status_code == 200 and 'id="points"' in claimed.text
    assert "+10" in unescape(claimed.text) or "积分+10" in claimed.text
    assert MemberStore(redis_client, "ACME").by_phone("+8613800138000").balance == 10
    again = page(world, code)
    assert result_of(again.text) == "already_verified" and "2026-01-01" in again.text
    fresh = {c.name: c.value for c in again.cookies.values()}
    second = claim(world, code, "13900139000", fresh, form_token(again.text))
    assert 'class="note error" id="points"' in second.text  # someone else's points: none
    clock.advance(3601)
    assert claim(world, code, "13900139000", cookies, token).status_code == 403  # expired


@pytest.mark.parametrize("result", ["mistyped", "malformed", "counterfeit"])
def test_page_of_a_bad_code(world, redis_client, result):
    code = world.code(5)
    TenantStore(redis_client).create("OTHER", "Other")
    forger = KeyStore(redis_client, world.key_store.master)
    forger.rotate("OTHER")
    text = {
        "mistyped": code[:3] + str((int(code[3]) + 1) % 10) + code[4:],
        "malformed": "hello",
        "counterfeit": forger.signer("OTHER", 0, NUMERIC_24).code(world.batch.first_serial + 5),
    }[result]
    shown = page(world, text)
    assert result_of(shown.text) == result
    assert 'id="claim-form"' not in shown.text
    assert ('id="reenter-form"' in shown.text) == (result != "counterfeit")


def test_reentry_redirects_and_unknown_tenant(world):
    moved = world.client.simulate_get("/t/ACME/v", params={"code": "1234 5678"})
    assert moved.status_code == 303 and moved.headers["location"].endswith("/t/ACME/v/12345678")
    assert page(world, "123", tenant="NOPE").status_code == 404


def test_everything_on_the_page_is_escaped(world, redis_client):
    ProductStore(redis_client).update("ACME", "LIP-001", name="<script>alert(1)</script>",
                                      usage='"><img src=x onerror=alert(1)>')
    shown = page(world, world.code(6))
    assert "<img" not in shown.text and "&lt;script&gt;" in shown.text
    assert "default-src 'none'" in shown.headers["content-security-policy"]
