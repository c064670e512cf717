"""Hypothesis fuzzing of what an SMS gateway can send: the body text and the webhook payloads.

Whatever arrives, the body is read as exactly one intent of the vocabulary (a
code is digits only), and a payload either parses or is refused with the
API's own request error (a 4xx), never anything else.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from points_bridge.outreach.draws import split_entry
from verify_api.channels import gateways, keywords
from verify_api.exc import RequestError

KINDS = {keywords.CODE, keywords.JOIN, keywords.BALANCE, keywords.STOP, keywords.FEEDBACK,
         keywords.REDEEM}
any_char = st.characters(codec="utf-8")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(any_char),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=6),
    max_leaves=20,
)
gateway_fields = st.sampled_from(
    ["phone_number", "content", "dest_code", "sequence_id", "send_time", "mobile", "text",
     "extend", "time", "nationcode", "sign"]
)
uplinks = st.dictionaries(gateway_fields, json_values, max_size=8)


@given(st.text(any_char, max_size=300))
def test_any_body_is_one_intent(body):
    intent = keywords.classify(body)
    assert intent.kind in KINDS
    if intent.kind == keywords.CODE:  # digits, or what the QR URL inside carried
        assert intent.text == intent.text.strip() and intent.text
    entry = split_entry(body)
    assert entry is None or all(isinstance(part, str) for part in entry)


@given(st.text("0123456789 -０１２３４５６７８９", max_size=40), st.sampled_from(["", ".", " "]))
def test_digits_however_typed_are_a_code_or_feedback(body, tail):
    intent = keywords.classify(body + tail)
    assert intent.kind in KINDS
    if intent.kind == keywords.CODE:
        assert intent.text.isdigit()


@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                 st.lists(uplinks, max_size=3).map(lambda v: json.dumps(v).encode()),
                 uplinks.map(lambda v: json.dumps(v).encode())))
def test_gateway_payloads_parse_or_are_refused_as_bad_requests(body):
    for parse in (gateways.parse_aliyun, gateways.parse_tencent):
        try:
            messages = parse(body)
        except RequestError:
            continue
        for message in messages:
            assert isinstance(message.sender, str) and isinstance(message.text, str)


@given(st.dictionaries(st.sampled_from(["From", "To", "Body", "MessageSid", "NumMedia", "x"]),
                       st.text(any_char, max_size=80), max_size=6))
def test_twilio_forms_parse_or_are_refused_as_bad_requests(form):
    try:
        message = gateways.parse_twilio(form)
    except RequestError:
        return
    assert message.sender == form["From"]
