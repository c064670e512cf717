"""Hostile input: whatever text or bytes arrive, parsers answer from the vocabulary or refuse.

The code parsers (``extract_code``, ``parse_code``, ``parse_many``,
``CodeChecker``) never raise and only say ``malformed``, ``mistyped``,
``counterfeit``, ``valid`` or ``revoked``, and ``valid`` only for text whose
digits are the very code of the serial it names. The body parsers raise
nothing but ``RequestError``. Through the app, no input gives a 5xx.
"""

from __future__ import annotations

import string
from urllib.parse import quote

import orjson
import pytest
from helpers.api import Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen.checker import COUNTERFEIT, REVOKED, VALID, CodeChecker
from codegen.codes import NUMERIC_20, NUMERIC_24, ParsedCode, Rejected, parse_code
from codegen.store.keyspace import TenantKeys
from verify_api.app import create_app
from verify_api.check import answers
from verify_api.check.batch_parse import parse_many
from verify_api.check.inputs import extract_code
from verify_api.exc import RequestError
from verify_api.resources.bodies import MAX_BATCH_CODES, MAX_CODE_CHARS, parse_batch, parse_verify

FIXTURE = HealthCheck.function_scoped_fixture  # the key store is only read
VERDICTS = {"malformed", "mistyped", COUNTERFEIT, VALID, REVOKED}
SEPARATORS = [" ", "-", "\u3000", "\uff0d", "\u2014", "\t", "\u00a0", "\n", "/", "."]
ODD_DIGITS = ["\uff11", "\u00b2", "\u0663", "\u1369", "\u24ea", "\U0001d7ce", "\u2155"]

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
any_char = st.one_of(st.characters(), surrogates, st.sampled_from(SEPARATORS + ODD_DIGITS))


@pytest.fixture
def signers(key_store_factory):
    """ACME's keys on the session server: key 0 and 1, key 1 revoked (2 does not exist)."""
    store = key_store_factory("ACME")
    store.rotate("ACME")
    store.revoke("ACME", 1)
    return store, "ACME"


@st.composite
def mangled_codes(draw, store_and_tenant) -> str:
    """A real code, then typed, slipped, wrapped, cut, padded or mixed with junk."""
    store, tenant = store_and_tenant
    profile = draw(st.sampled_from([NUMERIC_24, NUMERIC_20]))
    key_id = draw(st.sampled_from([0, 1, 2]))  # key 2 does not exist
    signer = store.signer(tenant, min(key_id, 1), profile)
    code = signer.code(draw(st.integers(profile.serial_base, profile.serial_space - 1)))
    chars = list(code)
    for _ in range(draw(st.integers(0, 4))):
        how = draw(st.sampled_from(["slip", "insert", "delete", "swap", "odd"]))
        at = draw(st.integers(0, max(len(chars) - 1, 0)))
        if how == "slip" and chars:
            chars[at] = draw(st.sampled_from(string.digits))
        elif how == "insert":
            chars.insert(at, draw(any_char))
        elif how == "delete" and chars:
            del chars[at]
        elif how == "swap" and at + 1 < len(chars):
            chars[at], chars[at + 1] = chars[at + 1], chars[at]
        elif how == "odd" and chars:
            chars[at] = draw(st.sampled_from(ODD_DIGITS))
    text = "".join(chars)
    wrap = draw(st.sampled_from(["none", "qr", "dl", "gs1", "gs1-raw", "symbology"]))
    if wrap == "qr":
        text = f"https://acme.example/t/{tenant}/v/{text}"
    elif wrap == "dl":
        text = f"https://id.example/01/04006381333931/21/{text}?x=1"
    elif wrap == "gs1":
        text = f"(01)04006381333931(21){text}"
    elif wrap == "gs1-raw":
        text = f"0104006381333931\x1d21{text}"
    elif wrap == "symbology":
        text = f"]C1{text}"
    return text


def assert_decoded_well(store, tenant: str, text: str) -> None:
    code = extract_code(text)
    assert isinstance(code, str)
    parsed = parse_code(code)
    assert isinstance(parsed, ParsedCode | Rejected)
    assert parse_many([code]) == [parsed]
    decoded = CodeChecker(store, tenant).decode(code)
    assert decoded.verdict in VERDICTS
    if decoded.authentic:  # then the digits are exactly the code of that serial
        signer = store.signer(tenant, decoded.key_id, decoded.profile)
        assert signer.code(decoded.serial) == decoded.digits


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, FIXTURE])
@given(st.text(any_char, max_size=600))
def test_any_text_is_decoded_from_the_vocabulary(signers, text):
    assert_decoded_well(*signers, text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, FIXTURE])
@given(st.data())
def test_mangled_codes_are_decoded_from_the_vocabulary(signers, data):
    assert_decoded_well(*signers, data.draw(mangled_codes(signers)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(any_char, max_size=40), max_size=50))
def test_parse_many_never_disagrees_with_parse_code(texts):
    assert parse_many(texts) == [parse_code(text) for text in texts]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
json_text = st.text(st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from(
    SEPARATORS + ODD_DIGITS)))
bodies = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(
        st.sampled_from(["code", "phone", "channel", "region", "codes", "x"]), json_values
    ).map(orjson.dumps),
    json_values.map(orjson.dumps),
)


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(bodies)
def test_body_parsers_raise_only_request_errors(body):
    for parse in (parse_verify, parse_batch):
        try:
            parsed = parse(body)
        except RequestError:
            continue
        codes = parsed.codes if parse is parse_batch else [parsed.code]
        assert 1 <= len(codes) <= MAX_BATCH_CODES
        assert all(isinstance(c, str) and len(c) <= MAX_CODE_CHARS for c in codes)


def test_a_region_with_a_trailing_newline_is_refused():
    with pytest.raises(RequestError):
        parse_verify(orjson.dumps({"code": "1", "region": "CN\n"}))


@pytest.fixture
def api(batch_factory, redis_client):
    batch, key_store = batch_factory("ACME", count=50)
    redis_client.hset(TenantKeys("ACME").meta, mapping={"verify_rate_ip": "0"})
    app = create_app(redis_client, key_store, key_cache_seconds=0, catalog_seconds=0)
    signer = key_store.signer("ACME", batch.key_id, batch.profile)
    yield Api(app), [signer.code(batch.first_serial + i) for i in range(50)]
    app.engine.link.close()


@pytest.mark.slow
@settings(
    max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(st.data())
def test_the_app_never_answers_5xx(api, data):
    client, codes = api
    code = data.draw(st.one_of(st.sampled_from(codes), json_text.filter(lambda t: len(t) < 80)))
    body = data.draw(
        st.one_of(
            bodies,
            st.fixed_dictionaries(
                {"code": st.just(code)},
                optional={"phone": json_text, "channel": st.text(),
                          "region": st.text(max_size=20)},
            ).map(orjson.dumps),
        )
    )  # fmt: skip
    answer = client.verify(body)
    assert answer.status_code < 500, answer.text
    if answer.status_code == 200:
        assert answer.json["result"] in answers.RESULTS
    batch = client.batch({"codes": [code, *codes[:3]]})
    assert batch.status_code < 500, batch.text
    path = f"/v1/tenants/ACME/codes/{quote(code, safe='') or 'x'}"
    lookup = client.request("GET", "/v1/tenants/{tenant}/codes/{code}", path)
    assert lookup.status_code < 500, lookup.text
