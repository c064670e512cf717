"""Finding the code in what was typed or scanned: verify_api/check/inputs.py."""

from __future__ import annotations

import string

from hypothesis import example, given
from hypothesis import strategies as st

from codegen.codes import normalize
from verify_api.check.inputs import GS, extract_code

codes = st.sampled_from([20, 24]).flatmap(
    lambda n: st.text(alphabet=string.digits, min_size=n, max_size=n)
)
gtins = st.text(alphabet=string.digits, min_size=14, max_size=14)
hosts = st.sampled_from(["id.example.com", "acme.example", "localhost:8080", "a.b.example.cn"])
tenants = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", fullmatch=True)


ai_looking = st.builds(
    lambda ai, data, tail: (ai + data + "21" + tail)[:24],
    st.sampled_from(["01", "11", "17", "00", "20", "10"]),
    st.text(alphabet=string.digits, min_size=2, max_size=18),
    st.text(alphabet=string.digits, min_size=24, max_size=24),
)


@given(st.one_of(codes, ai_looking))
@example("112345672199999999999999")
@example("012345678901234521999999")
def test_plain_digits_pass_through(code):
    assert extract_code(code) == code


@given(codes, st.sampled_from([" ", "-", "\u3000", "\uff0d"]))
@example("010000000000021000000000", " ")  # reads as 01 GTIN 21 SERIAL without the gaps
def test_typed_forms_are_left_to_normalize(code, sep):
    typed = sep.join(code[i : i + 4] for i in range(0, len(code), 4))
    assert normalize(extract_code(typed)) == code


@given(codes, hosts, tenants, st.sampled_from(["http", "https", "HTTPS"]))
def test_qr_url(code, host, tenant, scheme):
    assert extract_code(f"{scheme}://{host}/t/{tenant}/v/{code}") == code
    assert extract_code(f"{scheme}://{host}/app/t/{tenant}/v/{code}?utm=qr#top") == code


@given(codes, gtins, hosts)
@example("264927778992646277632364", "04006381333931", "id.example.com")
def test_gs1_digital_link(code, gtin, host):
    assert extract_code(f"https://{host}/01/{gtin}/21/{code}") == code
    assert extract_code(f"https://{host}/01/{gtin}/10/LOT42/21/{code}?17=261231") == code
    assert extract_code(f"https://{host}/gtin/{gtin}/ser/{code}") == code
    assert extract_code(f"https://{host}/some/prefix/01/{gtin}/21/{code}") == code


@given(
    codes, gtins, st.text(alphabet=string.ascii_uppercase + string.digits, min_size=1, max_size=8)
)
def test_gs1_element_strings(code, gtin, lot):
    assert extract_code(f"(01){gtin}(21){code}") == code
    assert extract_code(f"(01){gtin}(10){lot}(21){code}") == code
    assert extract_code(f"01{gtin}21{code}") == code
    assert extract_code(f"01{gtin}21{code}{GS}10{lot}") == code
    assert extract_code(f"01{gtin}10{lot}{GS}21{code}") == code
    assert extract_code(f"]C101{gtin}21{code}") == code  # a scanner's symbology prefix
    assert extract_code(f"01{gtin}17261231" + f"21{code}") == code  # fixed-length AI 17


@given(st.text(max_size=600))
def test_never_raises_and_returns_text(text):
    assert isinstance(extract_code(text), str)


@given(codes)
def test_a_url_without_a_code_is_left_alone(code):
    url = f"https://example.com/products/{code}"
    assert extract_code(url) == url
    assert extract_code("https://example.com/01/12345678901231/10/LOT") == (
        "https://example.com/01/12345678901231/10/LOT"
    )
    assert extract_code("(01)12345678901231(10)LOT") == "(01)12345678901231(10)LOT"
