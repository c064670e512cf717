"""SMS and voice gateways as they really call, with their own libraries and documents as oracles.

* Twilio: ``twilio.request_validator.RequestValidator`` signs the posts (and says
  which it accepts); ``twilio.twiml`` builds the replies we must answer with.
* Aliyun and Tencent Cloud: payloads shaped exactly as their documentation shows
  (Aliyun 上行短信 HTTP batch push; Tencent 回复短信 callback), posted unsigned to
  the tenant's secret callback URL, answered in the shape each documents.
"""

from __future__ import annotations

from urllib.parse import urlencode
from xml.etree import ElementTree

import orjson
import pytest
from falcon import testing
from helpers.channels_world import HOST, NUMBER, SECRET, make_world
from helpers.cli_runner import run
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Gather, VoiceResponse

from codegen.config import Config
from codegen.store.keyspace import SMS_CALLBACK_TOKENS, TenantKeys
from points_bridge.members import MemberStore
from points_bridge.sms.outbound import Outbox
from verify_api.app import create_app
from verify_api.channels.config import ChannelStore
from verify_api.channels.feedback import FeedbackInbox
from verify_api.exc import SettingError

SMS_PATH = "/v1/sms/twilio"


@pytest.fixture(params=["zh", "en"])
def world(request, batch_factory, redis_client, clock):
    w = make_world(batch_factory, redis_client, clock, language=request.param)
    w.language = request.param
    yield w
    w.app.engine.link.close()


def canonical(xml: str) -> str:
    return ElementTree.canonicalize(xml, strip_text=True)


def sms_form(body: str, sid: str = "SM1", sender: str = "+8613800138000") -> dict[str, str]:
    return {"From": sender, "To": NUMBER, "Body": body, "MessageSid": sid, "AccountSid": "AC1",
            "NumMedia": "0"}


def post_form(client, form: dict, signature: str, *, path: str = SMS_PATH, **kw):
    return client.simulate_post(path, body=urlencode(form), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature,
        **kw.pop("headers", {})}, **kw)


# ------------------------------------------------------------------ Twilio


def test_a_signature_twilio_accepts_with_or_without_port_443_is_accepted(world):
    validator = RequestValidator(SECRET)
    for i, signed_for in enumerate([f"https://{HOST}:443{SMS_PATH}", f"https://{HOST}{SMS_PATH}"]):
        form = sms_form("888", sid=f"SM-port-{i}")
        signature = validator.compute_signature(signed_for, form)
        for host in (HOST, f"{HOST}:443"):  # what the request's Host says
            assert validator.validate(f"https://{host}{SMS_PATH}", form, signature)  # the oracle
            answer = post_form(world.client, form, signature, protocol="https", host=host)
            assert answer.status_code == 200, (signed_for, host, answer.text)
    form = sms_form("888", sid="SM-port-bad")
    signature = validator.compute_signature(f"https://{HOST}:8443{SMS_PATH}", form)
    assert not validator.validate(f"https://{HOST}{SMS_PATH}", form, signature)
    assert post_form(world.client, form, signature, protocol="https").status_code == 403


def test_forwarded_headers_count_only_from_a_trusted_proxy(world, redis_client, clock):
    """A signature made for another host is refused unless a configured proxy says so."""
    validator = RequestValidator(SECRET)
    form = sms_form("888", sid="SM-fwd")
    elsewhere = "https://shop.example" + SMS_PATH
    signature = validator.compute_signature(elsewhere, form)
    spoof = {"X-Forwarded-Host": "shop.example", "X-Forwarded-Proto": "https",
             "Forwarded": 'for=203.0.113.9;proto=https;host="shop.example"'}
    refused = post_form(world.client, form, signature, headers=spoof, remote_addr="198.51.100.7")
    assert refused.status_code == 403
    behind = create_app(redis_client, world.key_store, clock=clock, key_cache_seconds=0,
                        catalog_seconds=0, trusted_proxies="10.0.0.0/8")
    client = testing.TestClient(behind)
    untrusted = post_form(client, form, signature, headers=spoof, remote_addr="198.51.100.7")
    assert untrusted.status_code == 403
    trusted = post_form(client, form, signature, headers={
        "X-Forwarded-Host": "shop.example", "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "203.0.113.9"}, remote_addr="10.1.2.3")
    assert trusted.status_code == 200, trusted.text
    rfc7239 = post_form(client, sms_form("888", sid="SM-fwd2"), validator.compute_signature(
        elsewhere, sms_form("888", sid="SM-fwd2")),
        headers={"Forwarded": 'for="203.0.113.9:5555";proto=https;host=shop.example'},
        remote_addr="10.1.2.3")
    assert rfc7239.status_code == 200, rfc7239.text
    behind.engine.link.close()


def test_the_default_sms_reply_is_the_twiml_twilio_builds(world):
    validator = RequestValidator(SECRET)
    for i, body in enumerate(["888", world.code(7), "<b> & \"q\"", "你好"]):
        form = sms_form(body, sid=f"SM-twiml-{i}")
        answer = post_form(world.client, form,
                           validator.compute_signature(f"http://{HOST}{SMS_PATH}", form))
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/xml")
        text = ElementTree.fromstring(answer.text)[0].text
        expected = MessagingResponse()
        expected.message(text)
        assert canonical(answer.text) == canonical(expected.to_xml()), answer.text


def test_the_keypad_speaks_chinese_with_a_chinese_voice_and_asks_to_key_again(world):
    validator = RequestValidator(SECRET)
    voice, language = {"zh": ("Polly.Zhiyu", "zh-CN"), "en": ("Polly.Joanna", "en-US")}[
        world.language]
    call = {"From": "+8613800138000", "To": NUMBER, "CallSid": "CA1", "AccountSid": "AC1"}
    prompt = post_form(world.client, call, validator.compute_signature(
        f"http://{HOST}/v1/ivr/inbound", call), path="/v1/ivr/inbound")
    said = ElementTree.fromstring(prompt.text).find("Gather/Say").text
    expected = VoiceResponse()
    gather = Gather(input="dtmf", finish_on_key="#", timeout=10, method="POST",
                    action="/v1/ivr/inbound")
    gather.say(said, voice=voice, language=language)
    expected.append(gather)
    assert canonical(prompt.text) == canonical(expected.to_xml())
    code = world.code(9)
    slip = code[:5] + str((int(code[5]) + 1) % 10) + code[6:]
    keyed = {**call, "Digits": slip + "#"}
    answer = post_form(world.client, keyed, validator.compute_signature(
        f"http://{HOST}/v1/ivr/inbound", keyed), path="/v1/ivr/inbound")
    spoken = ElementTree.fromstring(answer.text)[0]
    assert (spoken.tag, spoken.get("voice"), spoken.get("language")) == ("Say", voice, language)
    assert "send" not in spoken.text.lower() and "发送" not in spoken.text
    assert "key" in spoken.text.lower() or "输入" in spoken.text
    assert ElementTree.fromstring(answer.text)[1].tag == "Gather"  # asked again


# ------------------------------------------------------------------ Aliyun and Tencent


def aliyun_push(content: str, seq: int = 1234567890, phone: str = "13800138000") -> list[dict]:
    """An uplink push exactly as Aliyun's document shows it (上行短信, HTTP 批量推送)."""
    return [{"phone_number": phone, "send_time": "2017-09-01 00:00:00", "content": content,
             "sign_name": "签名", "dest_code": "1234", "sequence_id": seq}]


def tencent_reply(text: str, extend: str = "", mobile: str = "13900139000") -> dict:
    """A reply callback exactly as Tencent Cloud's document shows it (回复短信)."""
    return {"extend": extend, "mobile": mobile, "nationcode": "86", "sign": "短信签名",
            "text": text, "time": 1457336869}


def post_json(client, path: str, data: object, charset: str = "", **kw):
    content_type = "application/json" + (f"; charset={charset}" if charset else "")
    body = orjson.dumps(data) if not charset else orjson.dumps(data).decode().encode(charset)
    return client.simulate_post(path, body=body, headers={"Content-Type": content_type}, **kw)


def test_aliyun_and_tencent_call_the_tenants_secret_url_unsigned(world, redis_client):
    token = world.channels.new_callback_token("ACME")
    aliyun = post_json(world.client, f"/v1/sms/aliyun/{token}", aliyun_push(world.code(11)))
    assert aliyun.status_code == 200 and aliyun.json["code"] == 0 and "msg" in aliyun.json
    assert MemberStore(redis_client, "ACME").by_phone("+8613800138000").balance == 10
    for extend in ("", "01"):  # the extension code is not the number: no "no tenant has 01"
        tencent = post_json(world.client, f"/v1/sms/tencent/{token}",
                            tencent_reply("888", extend=extend))
        assert tencent.status_code == 200 and tencent.json == {"result": 0, "errmsg": "OK"}
    assert MemberStore(redis_client, "ACME").by_phone("+8613900139000") is not None
    assert sum(Outbox(redis_client, "ACME").pending().values()) >= 3  # replies go by the sender
    for path in (f"/v1/sms/aliyun/{token}x", "/v1/sms/tencent/sct_nope"):
        refused = post_json(world.client, path, tencent_reply("888"))
        assert refused.status_code == 403 and refused.json["error"]["code"] == "bad_signature"
    again = world.channels.new_callback_token("ACME")
    store = ChannelStore(redis_client, world.key_store.master)
    assert store.tenant_for_token(token) is None  # a new token retires the old one
    assert store.tenant_for_token(again) == "ACME"
    assert post_json(world.client, f"/v1/sms/tencent/{again}",
                     tencent_reply("666")).status_code == 200


def test_the_allow_list_and_gbk_bodies(world, redis_client):
    token = world.channels.new_callback_token("ACME")
    world.channels.update("ACME", sms_allow_ips="203.0.113.0/24, 2001:db8::/32")
    path = f"/v1/sms/tencent/{token}"
    assert post_json(world.client, path, tencent_reply("你好"),
                     remote_addr="198.51.100.1").status_code == 403
    gbk = post_json(world.client, path, tencent_reply("你好，请问"), charset="gbk",
                    remote_addr="203.0.113.5")
    assert gbk.status_code == 200, gbk.text
    utf16 = post_json(world.client, f"/v1/sms/aliyun/{token}", aliyun_push("质量很好"),
                      charset="utf-16", remote_addr="203.0.113.5")
    assert utf16.status_code == 200, utf16.text
    texts = {item.text for item in FeedbackInbox(redis_client, "ACME").list()}
    assert {"你好，请问", "质量很好"} <= texts
    with pytest.raises(SettingError, match="not-an-address"):
        world.channels.update("ACME", sms_allow_ips="not-an-address")


def test_a_gbk_form_from_a_gateway_is_decoded(world, redis_client):
    form = sms_form("你好，谢谢", sid="SM-gbk")
    signature = RequestValidator(SECRET).compute_signature(f"http://{HOST}{SMS_PATH}", form)
    answer = world.client.simulate_post(SMS_PATH, body=urlencode(form, encoding="gbk"), headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=GBK",
        "X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.text
    assert "你好，谢谢" in {item.text for item in FeedbackInbox(redis_client, "ACME").list()}


def test_the_cli_shows_the_callback_urls_once(itemseal_env, redis_client):
    env = {**itemseal_env}
    run(env, "tenant", "create", "ACME", "--name", "Acme Cosmetics",
        "--verify-url", "https://v.acme.example/t/{tenant}/v/{code}")
    shown = run(env, "tenant", "set", "ACME", "--sms-callback-token", "new",
                "--sms-allow-ips", "203.0.113.0/24").stdout
    aliyun = next(line.split()[-1] for line in shown.splitlines() if "/v1/sms/aliyun/" in line)
    tencent = next(line.split()[-1] for line in shown.splitlines() if "/v1/sms/tencent/" in line)
    assert aliyun.startswith("https://v.acme.example/v1/sms/aliyun/sct_")
    token = aliyun.rsplit("/", 1)[1]
    assert tencent.endswith(token)
    stored = str(redis_client.hgetall(TenantKeys("ACME").meta)) + str(
        redis_client.hgetall(SMS_CALLBACK_TOKENS))
    assert "ACME" in stored and token not in stored  # only its digest is kept
    config = Config(env)
    app = create_app(config.redis, config.key_store, key_cache_seconds=0, catalog_seconds=0)
    client = testing.TestClient(app)
    assert post_json(client, f"/v1/sms/tencent/{token}", tencent_reply("hello"),
                     remote_addr="203.0.113.7").status_code == 200
    assert post_json(client, f"/v1/sms/tencent/{token}", tencent_reply("hello"),
                     remote_addr="127.0.0.1").status_code == 403
    bad = run(env, "tenant", "set", "ACME", "--sms-allow-ips", "10.0.0.300", ok=False)
    assert bad.returncode != 0 and "10.0.0.300" in bad.stderr and "Traceback" not in bad.stderr
    app.engine.link.close()
