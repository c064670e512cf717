"""Pure channel logic: keywords, templates and segments, gateway formats, signatures, CSRF."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verify_api.channels import csrf, keywords, signatures, templates
from verify_api.channels.gateways import parse_aliyun, parse_tencent, parse_twilio
from verify_api.exc import InvalidField, InvalidJson

FULL = str.maketrans("0123456789", "０１２３４５６７８９")


@given(st.text("0123456789", min_size=20, max_size=24), st.sampled_from([" ", "-", ""]),
       st.booleans())
def test_a_code_is_a_code_however_typed(digits, sep, fullwidth):
    typed = sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    typed = typed.translate(FULL) if fullwidth else typed
    assert keywords.classify(f" {typed}。") == keywords.Intent(keywords.CODE, digits)


@pytest.mark.parametrize("body, kind", [
    ("888", "join"), ("８８８", "join"), (" 888 ", "join"), ("666", "balance"), ("666!", "balance"),
    ("STOP", "stop"), ("退订", "stop"), ("td", "stop"), ("hello", "feedback"),
    ("1234", "feedback"), ("https://acme.example/t/ACME/v/123456789012", "code"),
])  # fmt: skip
def test_keywords(body, kind):
    assert keywords.classify(body).kind == kind


def test_custom_keywords_and_their_checks():
    assert keywords.classify("join", join="JOIN").kind == "join"
    assert keywords.classify("888", join="JOIN").kind == "feedback"
    for bad in ("", "two words", "stop", "123456789"):
        with pytest.raises(ValueError):
            keywords.check_keyword(bad)


@pytest.mark.parametrize("language", templates.LANGUAGES)
@pytest.mark.parametrize("name", templates.NAMES)
def test_every_default_template_fits_one_segment_at_worst_case(language, name):
    template = templates.DEFAULTS[language][name]
    assert templates.used_fields(template) <= templates.FIELDS[name]
    worst = templates.worst_case_fields(template, language)
    used, limit = templates.segment_units(templates.fill(template, worst))
    assert limit == (templates.UCS2_LIMIT if language == "zh" else templates.GSM_LIMIT)
    room = limit - used
    assert room >= (0 if "product" not in templates.FIELDS[name] else 20), room
    templates.check_template(name, template)


@given(st.sampled_from(templates.LANGUAGES), st.sampled_from(templates.NAMES), st.text(max_size=80))
def test_render_always_fits_and_keeps_what_fits(language, name, product):
    template = templates.DEFAULTS[language][name]
    fields = templates.worst_case_fields(template, language, product)
    text = templates.render(template, fields)
    assert templates.fits(text)
    if templates.fits(templates.fill(template, fields)):
        assert text == templates.fill(template, fields)


def test_segment_units():
    assert templates.segment_units("a" * 160) == (160, 160)
    assert templates.segment_units("€" * 80) == (160, 160)  # extension: two septets each
    assert templates.segment_units("中" * 70) == (70, 70)
    assert templates.segment_units("😀") == (2, 70)  # a surrogate pair
    long_name = "Velvet lipstick " * 10
    text = templates.render(templates.DEFAULTS["en"]["claimed"], {"product": long_name})
    assert templates.fits(text) and "Velvet lipstick" in text and "..." in text


def test_check_template_refuses_bad_ones():
    with pytest.raises(ValueError, match="unknown template"):
        templates.check_template("nope", "x")
    with pytest.raises(ValueError, match="cannot use"):
        templates.check_template("join", "{balance}")
    with pytest.raises(ValueError, match="one SMS holds 70"):
        templates.check_template("join", "欢迎" * 30 + "{card}")
    with pytest.raises(ValueError, match="plain"):
        templates.check_template("join", "{card!r}")


def test_twilio_form_tolerates_extra_fields():
    msg = parse_twilio({"From": "+8613800138000", "To": "+106570216001", "Body": "888",
                        "MessageSid": "SM1", "AccountSid": "AC", "NumSegments": "1"})
    assert (msg.sender, msg.to, msg.text, msg.dedup_id) == (
        "+8613800138000", "+106570216001", "888", "twilio:SM1")
    with pytest.raises(InvalidField):
        parse_twilio({"To": "1", "Body": "x"})


def test_aliyun_and_tencent_formats():
    [a] = parse_aliyun(b'[{"phone_number":"13800138000","content":"666","dest_code":"01",'
                       b'"sequence_id":7,"send_time":"2026-01-01 00:00:00","sign_name":"x"}]')
    assert (a.sender, a.to, a.text, a.message_id) == ("13800138000", "01", "666", "7")
    [t] = parse_tencent(b'{"mobile":"13800138000","nationcode":"86","text":"hi","extend":"5",'
                        b'"time":1767225600,"sign":"x"}')
    assert (t.sender, t.to, t.text, t.message_id) == ("+8613800138000", "5", "hi", None)
    same = parse_tencent(b'{"mobile":"13800138000","nationcode":"86","text":"hi","extend":"5",'
                         b'"time":1767225600}')[0]
    assert same.dedup_id == t.dedup_id
    later = parse_tencent(b'{"mobile":"13800138000","text":"hi","time":1767225601}')[0]
    assert later.dedup_id != t.dedup_id
    for bad in (b"{", b"[]", b"[1]", b'[{"content": "x"}]', b'{"mobile": 5.5}'):
        with pytest.raises((InvalidField, InvalidJson)):
            parse_aliyun(bad) if bad.startswith(b"[") else parse_tencent(bad)


def test_twilio_signature_scheme():
    url = "https://example.com/v1/sms/twilio"
    params = [("To", "1"), ("Body", "a b"), ("From", "2")]
    expected = base64.b64encode(
        hmac.digest(b"token", (url + "Bodya bFrom2To1").encode(), hashlib.sha1)
    ).decode()
    assert signatures.twilio_signature("token", url, params) == expected
    assert signatures.valid(expected, expected) and not signatures.valid(expected, None)
    assert not signatures.valid(expected, signatures.twilio_signature("token", url + "?", params))


def test_itemseal_signature_is_hex_hmac_sha256():
    body = b'[{"a":1}]'
    assert signatures.itemseal_signature("k", body) == hmac.new(b"k", body, "sha256").hexdigest()


def test_csrf_tokens_bind_tenant_code_nonce_and_time():
    key = b"k" * 32
    token = csrf.make_token(key, "ACME", "123", "n1", 1000)
    assert csrf.check_token(key, "ACME", "123", "n1", token, 1000 + csrf.MAX_AGE)
    for args in [("ACME", "124", "n1", token, 1001), ("ACME", "123", "n2", token, 1001),
                 ("OTHER", "123", "n1", token, 1001), ("ACME", "123", None, token, 1001),
                 ("ACME", "123", "n1", token, 1001 + csrf.MAX_AGE), ("ACME", "123", "n1", "x", 1),
                 ("ACME", "123", "n1", token, 999)]:
        assert not csrf.check_token(key, *args), args
