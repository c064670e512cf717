"""The SMS channel through the HTTP app (falcon TestClient) on a real redis-server."""

from __future__ import annotations

import re
from dataclasses import replace
from xml.etree import ElementTree

import pytest
from falcon import testing
from helpers.channels_world import NUMBER, SECRET, make_world
from helpers.openapi_check import validate

from codegen.codes import NUMERIC_24
from codegen.keys import KeyStore
from codegen.tenants import TenantStore
from points_bridge.members import MemberStore
from verify_api.app import create_app
from verify_api.channels import templates
from verify_api.channels.feedback import FeedbackInbox


def literal(language: str, name: str) -> str:
    """The longest fixed piece of a default template: what every rendering of it contains."""
    pieces = re.split(r"\{[a-z_]+\}", templates.DEFAULTS[language][name])
    return max(pieces, key=len).strip(" .,。，")


@pytest.fixture(params=["zh", "en"])
def world(request, batch_factory, redis_client, clock):
    w = make_world(batch_factory, redis_client, clock, language=request.param)
    w.language = request.param
    yield w
    w.app.engine.link.close()


def reply(result) -> str:
    """The reply's text: Twilio's default answer is TwiML, one <Message>."""
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(result.text)
    assert root.tag == "Response" and [e.tag for e in root] == ["Message"], result.text
    return root[0].text or ""


def test_a_code_claims_then_repeats(world, redis_client, clock):
    code = world.code(1)
    spaced = " ".join(code[i : i + 4] for i in range(0, 24, 4))
    first = reply(world.sms(spaced, sid="SM1"))
    assert literal(world.language, "claimed") in first and "+10" in first and "Velvet" in first
    assert MemberStore(redis_client, "ACME").by_phone("+8613800138000").balance == 10
    clock.advance(60)
    fullwidth = code.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    again = reply(world.sms(fullwidth[:12] + "-" + fullwidth[12:], sid="SM2"))
    assert literal(world.language, "already_verified") in again and "2026-01-01" in again
    assert MemberStore(redis_client, "ACME").by_phone("+8613800138000").balance == 10


def test_every_result_in_the_tenant_language(world, batch_factory, redis_client):
    code = world.code(3)
    assert literal(world.language, "claimed") in reply(world.sms(code, sid="g"))
    world.sms("hello", sid="x")  # feedback: nothing to do with codes
    minted, ks = batch_factory("ACME", count=10, state="minted", sku="LIP-001")
    recalled, _ = batch_factory("ACME", count=10, state="recalled", sku="LIP-001")
    TenantStore(redis_client).create("OTHER", "Other")
    other = KeyStore(redis_client, world.key_store.master)
    other.rotate("OTHER")
    slip = code[:5] + str((int(code[5]) + 1) % 10) + code[6:]
    world.sms(world.code(4), sender="+8613900139000", sid="pre")
    bodies = {
        "not_activated": ks.signer("ACME", 0, minted.profile).code(minted.first_serial),
        "recalled": ks.signer("ACME", 0, recalled.profile).code(recalled.first_serial),
        "counterfeit": other.signer("OTHER", 0, NUMERIC_24).code(world.batch.first_serial + 3),
        "mistyped": slip,
        "malformed": "12345678",
        "already_verified": world.code(4),
    }
    for result, body in bodies.items():
        text = reply(world.sms(body, sid=f"r-{result}"))
        assert literal(world.language, result) in text, (result, text)
        assert templates.fits(text)
    ks.revoke("ACME", 0)
    text = reply(world.sms(world.code(5), sid="r-revoked"))
    assert literal(world.language, "revoked") in text


def test_join_and_balance_keywords(world, redis_client):
    assert literal(world.language, "not_member") in reply(world.sms("666", sid="b0"))
    joined = reply(world.sms("８８８", sid="j1"))  # full-width digits
    member = MemberStore(redis_client, "ACME").by_phone("+8613800138000")
    card = f"{member.card[:4]} {member.card[4:8]} {member.card[8:]}"
    assert literal(world.language, "join") in joined and card in joined
    assert literal(world.language, "join_exists") in reply(world.sms("888 ", sid="j2"))
    world.sms(world.code(7), sid="c7")
    balance = reply(world.sms("666", sid="b1"))
    assert literal(world.language, "balance") in balance and "10" in balance and card in balance
    assert member.tier in balance


def test_custom_keywords_and_template(world):
    world.channels.update("ACME", join_keyword="JOIN", balance_keyword="BAL",
                          templates_={"join": "Hi {card}!"})
    assert reply(world.sms("join", sid="1")).startswith("Hi ")
    assert literal(world.language, "balance") in reply(world.sms("bal", sid="2"))
    assert literal(world.language, "feedback") in reply(world.sms("888", sid="3"))


def test_feedback_goes_to_the_inbox(world, redis_client, clock):
    text = "The cap of my lipstick was broken"
    assert literal(world.language, "feedback") in reply(world.sms(text, sid="f1"))
    assert literal(world.language, "stop") in reply(world.sms("STOP", sid="f2"))
    [item] = FeedbackInbox(redis_client, "ACME").list()
    assert (item.phone, item.text, item.channel, item.at) == (
        "+8613800138000", text, "sms", int(clock()),
    )  # fmt: skip


def test_signature_failures(world):
    form = {"From": "+8613800138000", "To": NUMBER, "Body": "888", "MessageSid": "S"}
    assert world.twilio(sign=False, **form).status_code == 403
    bad = world.twilio(secret="another-secret-of-16+", **form)
    assert bad.status_code == 403 and bad.json["error"]["code"] == "bad_signature"
    validate("/v1/sms/twilio", "POST", 403, bad.json)
    assert world.twilio(**form).status_code == 200  # the right secret
    msg = [{"phone_number": "13800138000", "content": "888", "dest_code": NUMBER,
            "sequence_id": 1, "send_time": "2026-01-01 00:00:00"}]
    assert world.json("/v1/sms/aliyun", msg, sign=False).status_code == 403
    assert world.json("/v1/sms/aliyun", msg, secret="wrong-secret-0000000").status_code == 403
    tencent = {"mobile": "13800138000", "text": "888", "extend": NUMBER, "time": 1}
    assert world.json("/v1/sms/tencent", tencent, sign=False).status_code == 403


def test_a_changed_parameter_breaks_the_twilio_signature(world):
    from urllib.parse import urlencode

    from helpers.channels_world import HOST

    from verify_api.channels.signatures import twilio_signature

    form = [("From", "+8613800138000"), ("To", NUMBER), ("Body", "888")]
    signature = twilio_signature(SECRET, f"http://{HOST}/v1/sms/twilio", form)
    form[2] = ("Body", "666")
    result = world.client.simulate_post(
        "/v1/sms/twilio", body=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "X-Twilio-Signature": signature},
    )  # fmt: skip
    assert result.status_code == 403


def test_replayed_message_id_answers_the_first_reply_and_credits_once(world, redis_client):
    first = reply(world.sms(world.code(9), sid="SMdup"))
    for _ in range(3):
        assert reply(world.sms(world.code(9), sid="SMdup")) == first
    assert MemberStore(redis_client, "ACME").by_phone("+8613800138000").balance == 10
    assert literal(world.language, "already_verified") in reply(world.sms(world.code(9), sid="n"))
    world.sms("a complaint", sid="SMfb")
    world.sms("a complaint", sid="SMfb")
    assert len(FeedbackInbox(redis_client, "ACME").list()) == 1


def test_aliyun_array_and_sub_port(world, redis_client):
    msgs = [
        {"phone_number": "13800138000", "content": world.code(11), "dest_code": NUMBER + "42",
         "sequence_id": 1001, "send_time": "2026-01-01 00:00:00", "sign_name": "ACME"},
        {"phone_number": "13900139000", "content": "888", "dest_code": NUMBER + "42",
         "sequence_id": 1002, "send_time": "2026-01-01 00:00:01"},
    ]
    answer = world.json("/v1/sms/aliyun", msgs)
    assert answer.status_code == 200 and answer.json["code"] == 0
    validate("/v1/sms/aliyun", "POST", 200, answer.json)
    first, second = answer.json["replies"]
    assert "+10" in first["content"] and first["sequence_id"] == "1001"
    assert literal(world.language, "join") in second["content"]
    again = world.json("/v1/sms/aliyun", msgs[:1])
    assert again.json["replies"][0]["content"] == first["content"]  # a retry: same reply
    assert MemberStore(redis_client, "ACME").by_phone("+8613800138000").balance == 10


def test_tencent_retry_without_an_id(world, redis_client):
    msg = {"mobile": "13800138000", "nationcode": "86", "text": "where is my order?",
           "extend": NUMBER, "time": 1767225600, "sign": "ACME"}
    first = world.json("/v1/sms/tencent", msg)
    assert first.status_code == 200 and first.json["result"] == 0
    validate("/v1/sms/tencent", "POST", 200, first.json)
    assert world.json("/v1/sms/tencent", msg).json == first.json
    assert len(FeedbackInbox(redis_client, "ACME").list()) == 1
    later = world.json("/v1/sms/tencent", {**msg, "time": 1767225700})
    assert later.status_code == 200
    assert len(FeedbackInbox(redis_client, "ACME").list()) == 2


def test_twiml_by_default_and_text_on_request(world, redis_client, clock):
    answer = world.sms("<b>&", sid="x1")
    assert answer.headers["content-type"].startswith("application/xml")
    assert re.fullmatch(r'<\?xml[^>]*\?><Response><Message>[^<>]+</Message></Response>',
                        answer.text)
    world.channels.update("ACME", reply_format="text")
    app = create_app(redis_client, world.key_store, clock=clock, key_cache_seconds=0,
                     catalog_seconds=0)  # a worker that reads the setting afresh
    plain = replace(world, client=testing.TestClient(app), app=app).sms("<b>&", sid="x1")
    assert plain.headers["content-type"].startswith("text/plain")
    assert plain.text == reply(answer)  # the same message: the same reply, now as text
    app.engine.link.close()


def test_unknown_number_and_bad_bodies(world):
    assert world.sms("888", to="999999").status_code == 404
    assert world.json("/v1/sms/aliyun", {"nope": 1}).status_code == 422
    bad = world.client.simulate_post("/v1/sms/aliyun", body=b"[{",
                                     headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    missing = world.twilio(To=NUMBER, Body="888")
    assert missing.status_code == 422 and missing.json["error"]["field"] == "From"
