"""GS1 Digital Link for GTIN products (codegen/gs1.py), against independent GS1 readers.

Oracles: ``biip`` parses every link and element string as GS1 does; ``python-stdnum``
computes GTIN (``stdnum.ean``) and Damm (``stdnum.damm``) check digits and splits
element strings (``stdnum.gs1_128``). None of them shares code with itemseal.
"""

from __future__ import annotations

import re
import string
from urllib.parse import quote, urlsplit

import biip
import numpy as np
import pyarrow.parquet as pq
import pytest
from falcon import testing
from helpers.aio import Blocking
from hypothesis import example, given
from hypothesis import strategies as st
from stdnum import damm as std_damm
from stdnum import ean as std_ean
from stdnum import gs1_128 as std_gs1_128

from codegen import gs1
from codegen.batches import BatchRegistry
from codegen.codes import NUMERIC_20, NUMERIC_24, damm_check_digit, parse_code
from codegen.exc import ItemsealError
from codegen.mint import Minter
from codegen.products import ProductStore
from codegen.render import CODE_SLOT, TextLayout, render_run, string_array
from codegen.signing import CodeSigner
from codegen.store.wire import link_for
from codegen.tenants import TenantStore
from schemas.batch import read_facts
from verify_api.app import create_app
from verify_api.channels.keywords import CODE, classify
from verify_api.check import answers
from verify_api.check.engine import CheckRequest, VerifyEngine
from verify_api.check.inputs import extract_code

GTIN13, GTIN14 = "4006381333931", "04006381333931"
OTHER_GTIN14 = "00012345600012"  # a valid GTIN of another product
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

codes24 = st.text(alphabet=string.digits, min_size=24, max_size=24)
codes20 = st.text(alphabet=string.digits, min_size=20, max_size=20)
lots = st.text(alphabet=CSET82, min_size=1, max_size=20)
bodies = st.sampled_from([7, 11, 12, 13]).flatmap(
    lambda n: st.text(alphabet=string.digits, min_size=n, max_size=n)
)
gtins = bodies.map(lambda body: body + str(gs1.gtin_check_digit(body)))
bases = st.sampled_from(
    [
        "https://id.example.com",
        "http://acme.example",
        "http://localhost:8080",
        "https://r.example/gs1",
    ]
)


# ------------------------------------------------------------------ check digits


@given(bodies)
def test_gtin_check_digit_agrees_with_stdnum(body):
    assert gs1.gtin_check_digit(body) == int(std_ean.calc_check_digit(body))


@given(
    st.sampled_from([8, 12, 13, 14]).flatmap(
        lambda n: st.text(alphabet=string.digits, min_size=n, max_size=n)
    )
)
@example(GTIN13)
@example("4006381333932")
def test_normalize_gtin_accepts_what_stdnum_calls_valid(text):
    if std_ean.is_valid(text):
        assert gs1.normalize_gtin(text) == text.zfill(14)
    else:
        with pytest.raises(gs1.Gs1Error):
            gs1.normalize_gtin(text)


@given(st.text(alphabet=string.digits, min_size=1, max_size=30))
def test_the_codes_damm_digit_is_stdnum_damm(body):
    assert damm_check_digit(body) == int(std_damm.calc_check_digit(body))
    assert std_damm.is_valid(body + str(damm_check_digit(body)))


def test_minted_codes_pass_stdnum_damm():
    for profile in (NUMERIC_24, NUMERIC_20):
        signer = CodeSigner(bytes(range(32)), 3, profile)
        for serial in range(profile.serial_base, profile.serial_base + 200):
            assert std_damm.is_valid(signer.code(serial))


# --------------------------------------------------------------- compact serial


@given(codes24)
@example("0" * 24)
@example("9" * 24)
@example("000000000000999999999999")
def test_compact_serial_round_trip(code):
    serial = gs1.compact_serial(code)
    assert len(serial) == gs1.COMPACT_WIDTH == 17 <= gs1.MAX_SERIAL
    assert serial[0] == gs1.MARKER and set(serial[1:]) <= set(gs1.ALPHABET)
    assert set(serial) <= set(CSET82) and quote(serial, safe="") == serial  # no %-encoding
    assert gs1.decode_compact(serial) == code
    assert gs1.decode_compact(serial.lower()) == code  # the SMS channel case-folds
    assert gs1.code_of_serial(serial) == code


@given(st.text(max_size=20))
@example("U" + "Z" * 16)  # both halves >= 10**12: never written
@example("U" + "0" * 8 + "Z" * 8)
@example("U" + "0" * 15)  # one character short
@example("X" + "0" * 16)  # not the marker
def test_decode_compact_rejects_what_it_did_not_write(text):
    code = gs1.decode_compact(text)
    if code is not None:
        canonical = text.upper().translate(str.maketrans("ILO", "110"))
        assert gs1.compact_serial(code) == canonical


def test_compact_serials_differ_from_plain_ones():
    assert gs1.serial_for("1" * 20) == "1" * 20  # numeric-20 fits AI 21: plain digits
    assert gs1.code_of_serial("1" * 20) == "1" * 20
    with pytest.raises(gs1.Gs1Error):
        gs1.code_of_serial("1" * 24)  # 24 plain digits break GS1's 20
    with pytest.raises(gs1.Gs1Error):
        gs1.code_of_serial("U" + "Z" * 16)
    with pytest.raises(gs1.Gs1Error):
        gs1.compact_serial("1" * 20)


@pytest.mark.parametrize("n, first", [(777, 10**8 + 4_321), (5, 10**9 - 5)])
def test_vectorised_compact_equals_the_scalar_one(n, first):
    signer = CodeSigner(bytes(range(32)), 5, NUMERIC_24)
    template = (
        f"http://x.example/01/{GTIN14}/21/{gs1.COMPACT_SLOT}?c={CODE_SLOT}&s={gs1.COMPACT_SLOT}"
    )
    layout = TextLayout(NUMERIC_24, template)
    code = np.empty((n, layout.code_width), np.uint8)
    url = np.empty((n, layout.url_width), np.uint8)
    layout.prefill(code, url)
    render_run(signer, first, code, url, layout)
    expected = []
    for i in range(n):
        digits = signer.code(first + i)
        serial = gs1.compact_serial(digits)
        expected.append(f"http://x.example/01/{GTIN14}/21/{serial}?c={digits}&s={serial}")
    assert string_array(url).to_pylist() == expected


def test_a_compact_slot_needs_24_digit_codes():
    with pytest.raises(ValueError, match="24-digit"):
        TextLayout(NUMERIC_20, f"https://x.example/21/{gs1.COMPACT_SLOT}")


# ------------------------------------------------------------------ Digital Link


@given(st.one_of(codes24, codes20), gtins, st.one_of(st.none(), lots), bases)
@example("264927778992646277632364", GTIN13, None, "https://id.example.com")
@example("0" * 24, "00000000", "A/B%?&", "http://acme.example")
def test_digital_link_round_trip_and_biip_reads_it(code, gtin, lot, base):
    link = gs1.digital_link(base, gtin, code, lot)
    assert link.startswith(base + "/01/")
    serial = gs1.serial_for(code)
    assert len(serial) <= gs1.MAX_SERIAL and (serial == code) == (len(code) <= 20)
    assert gs1.parse_digital_link(link) == (gtin.zfill(14), code, lot)
    assert gs1.parse_digital_link(link.split("/", 3)[3]) == (gtin.zfill(14), code, lot)

    parsed = biip.parse(link).gs1_digital_link_uri
    assert parsed is not None
    ais = {e.ai.ai: e.value for e in parsed.element_strings}
    assert ais == {"01": gtin.zfill(14), "21": serial, **({"10": lot} if lot else {})}
    message = parsed.as_gs1_message()
    forms = [message.value, "]C1" + message.value]
    if not set("()") & set(lot or ""):  # brackets in a value make the bracketed form ambiguous
        forms.append(message.as_hri())
    for element_string in forms:
        assert gs1.parse_element_string(element_string) == (gtin.zfill(14), code, lot)
        assert extract_code(element_string) == code
    assert extract_code(link) == code
    assert extract_code(link + "?17=261231") == code


def test_digital_link_short_names_and_refusals():
    serial = gs1.compact_serial("1" * 24)
    assert gs1.parse_digital_link(f"https://h/gtin/{GTIN13}/lot/L1/ser/{serial}") == (
        GTIN14,
        "1" * 24,
        "L1",
    )
    for bad in (
        f"https://h/01/{GTIN13[:-1]}2/21/{serial}",  # GTIN check digit wrong
        f"https://h/01/{GTIN14}/21/{'1' * 24}",  # 24 plain digits: not GS1
        f"https://h/01/{GTIN14}/21/U{'Z' * 16}",  # not a compact serial we wrote
        f"https://h/01/{GTIN14}/10/L1",  # no serial
        f"https://h/01/{GTIN14}/21/{serial}/10/L1",  # qualifiers out of GS1's order
        f"https://h/t/ACME/v/{'1' * 24}",  # itemseal's own URL
    ):
        with pytest.raises(gs1.Gs1Error):
            gs1.parse_digital_link(bad)
    with pytest.raises(gs1.Gs1Error):
        gs1.digital_link("https://h", GTIN14, "1" * 24, lot="with space")


# ------------------------------------------------- element strings with AI 41x


@given(
    st.text(alphabet=string.digits, min_size=12, max_size=12),
    st.one_of(codes20, codes24.map(gs1.compact_serial)),
    st.sampled_from(["", gs1.GS]),
)
@example("123456789012", "U7PQET65GJSWJC4BC", "")
def test_ai_414_is_16_characters_as_biip_and_stdnum_read_it(gln_body, serial, sep):
    gln = gln_body + str(gs1.gtin_check_digit(gln_body))
    text = f"01{GTIN14}414{gln}{sep}21{serial}"
    read = {e.ai.ai: e.value for e in biip.parse(text).gs1_message.element_strings}
    assert read == {"01": GTIN14, "414": gln, "21": serial}
    assert std_gs1_128.info(text.replace(gs1.GS, "")) == read
    code = gs1.code_of_serial(serial)
    assert extract_code(text) == code
    assert gs1.parse_element_string(text) == (GTIN14, code, None)


# ------------------------------------------------- a minted batch, end to end


@pytest.fixture
def minter(redis_client, key_store_factory) -> Minter:
    keys = key_store_factory("ACME")
    TenantStore(redis_client).update("ACME", verify_url="http://acme.example/t/{tenant}/v/{code}")
    ProductStore(redis_client).add("ACME", "GT-1", name="Night cream", points=5, gtin=GTIN13)
    return Minter(redis_client, keys, chunk_rows=512, row_group_rows=1024)


@pytest.fixture
def engine(redis_client, minter):
    engine = Blocking(VerifyEngine(
        link_for(redis_client), minter.key_store,
        key_cache_seconds=0, catalog_seconds=0,
    ))  # fmt: skip
    yield engine
    engine.link.close()


def test_every_url_of_a_minted_gtin_batch_is_a_digital_link_of_its_code(minter, tmp_path):
    out = tmp_path / "gt.parquet"
    result = minter.mint("ACME", "GT-1", 2_000, out, workers=1)
    facts = read_facts(pq.read_schema(out).metadata)
    assert facts["url_template"] == f"http://acme.example/01/{GTIN14}/21/{gs1.COMPACT_SLOT}"
    rows = pq.read_table(out, columns=["code", "url"]).to_pydict()
    for text, url in zip(rows["code"], rows["url"], strict=True):
        code = text.replace(" ", "")
        assert url.startswith("http://acme.example/01/")  # the tenant's scheme is kept
        parsed = biip.parse(url)
        assert parsed.gs1_digital_link_uri_error is None
        ais = {e.ai.ai: e.value for e in parsed.gs1_digital_link_uri.element_strings}
        assert ais == {"01": GTIN14, "21": gs1.compact_serial(code)}
        assert gs1.decode_compact(ais["21"]) == code
        assert gs1.parse_digital_link(url) == (GTIN14, code, None)
    assert len(set(rows["url"])) == 2_000
    again = minter.export("ACME", result.batch.batch_id, tmp_path / "again.csv", workers=0)
    assert again.path.read_text().count(f"/01/{GTIN14}/21/{gs1.MARKER}") == 2_000


def test_a_numeric_20_batch_keeps_plain_serials(minter, tmp_path):
    out = tmp_path / "short.parquet"
    minter.mint("ACME", "GT-1", 100, out, profile=NUMERIC_20, workers=0)
    rows = pq.read_table(out, columns=["code", "url"]).to_pydict()
    for text, url in zip(rows["code"], rows["url"], strict=True):
        ais = {e.ai.ai: e.value for e in biip.parse(url).gs1_digital_link_uri.element_strings}
        assert ais["21"] == text.replace(" ", "")


def test_a_gs1_readers_element_string_of_a_minted_link_verifies_genuine(
    minter, engine, redis_client, tmp_path
):
    result = minter.mint("ACME", "GT-1", 50, tmp_path / "gt.parquet", workers=0)
    BatchRegistry(redis_client, "ACME").transition(result.batch.batch_id, "active")
    urls = pq.read_table(result.path, columns=["url"]).column("url").to_pylist()
    seen = []
    for i, url in enumerate(urls[:6]):
        message = biip.parse(url).gs1_digital_link_uri.as_gs1_message()
        form = [message.value, message.as_hri(), "]C1" + message.value, url,
                url.upper().replace("HTTP://", "http://"), url.lower()][i]  # fmt: skip
        answer = engine.verify("ACME", CheckRequest(form, None, "api", None), "203.0.113.7")
        seen.append(answer.result)
        assert answer.sku == "GT-1"
    assert seen == [answers.GENUINE] * 6


def test_a_case_folded_link_sent_by_sms_is_still_the_code():
    code = "264927778992646277632364"
    link = gs1.digital_link("https://id.example.com", GTIN13, code)
    intent = classify(link)
    assert (intent.kind, intent.text) == (CODE, code)
    assert parse_code(intent.text).digits == code


def test_a_link_with_another_products_gtin_is_counterfeit(minter, engine, redis_client, tmp_path):
    result = minter.mint("ACME", "GT-1", 10, tmp_path / "gt.parquet", workers=0)
    BatchRegistry(redis_client, "ACME").transition(result.batch.batch_id, "active")
    url = pq.read_table(result.path, columns=["url"]).column("url")[0].as_py()
    code = gs1.parse_digital_link(url).code
    wrong = gs1.digital_link("http://acme.example", OTHER_GTIN14, code)
    answer = engine.verify("ACME", CheckRequest(wrong, None, "api", None), "203.0.113.7")
    assert answer.result == answers.COUNTERFEIT


def _result(page) -> str | None:
    found = re.search(r'data-result="([a-z_]+)"', page.text)
    return found.group(1) if found else None


def test_itemseal_serves_gs1_paths_and_checks_the_gtin(minter, redis_client, tmp_path):
    """The printed URL's path answers with the QR page; another product's GTIN is counterfeit.

    The element string a GS1 reader (``biip``) makes of a minted link verifies
    ``genuine`` through the HTTP API too.
    """
    result = minter.mint("ACME", "GT-1", 10, tmp_path / "gt.parquet", workers=0)
    BatchRegistry(redis_client, "ACME").transition(result.batch.batch_id, "active")
    urls = pq.read_table(result.path, columns=["url"]).column("url").to_pylist()
    app = create_app(redis_client, minter.key_store, key_cache_seconds=0, catalog_seconds=0,
                     gs1_tenants="ACME")
    client = testing.TestClient(app)
    first = client.simulate_get(urlsplit(urls[0]).path)
    assert first.status_code == 200 and _result(first) == "genuine", first.text
    assert "Night cream" in first.text
    assert _result(client.simulate_get(urlsplit(urls[0]).path)) == "already_verified"
    code = gs1.parse_digital_link(urls[1]).code
    with_lot = urlsplit(gs1.digital_link("http://acme.example", GTIN13, code, lot="L-7")).path
    assert _result(client.simulate_get(with_lot)) == "genuine"
    # another product's GTIN around a genuine serial: counterfeit, and nothing recorded
    code = gs1.parse_digital_link(urls[2]).code
    wrong = urlsplit(gs1.digital_link("http://acme.example", OTHER_GTIN14, code)).path
    assert _result(client.simulate_get(wrong)) == "counterfeit"
    assert _result(client.simulate_get(wrong.replace(OTHER_GTIN14, "0400638133393x"))) \
        == "counterfeit"
    assert _result(client.simulate_get(urlsplit(urls[2]).path)) == "genuine"
    # a GS1 reader's element string of a minted link, posted to the API
    message = biip.parse(urls[3]).gs1_digital_link_uri.as_gs1_message()
    for text in (message.value, message.as_hri()):
        answer = client.simulate_post("/v1/tenants/ACME/verify", json={"code": text})
        assert answer.status_code == 200, answer.text
        assert answer.json["result"] in ("genuine", "already_verified")
    unknown_gtin = message.value.replace(GTIN14, OTHER_GTIN14)
    answer = client.simulate_post("/v1/tenants/ACME/verify", json={"code": unknown_gtin})
    assert answer.json["result"] == "counterfeit"
    app.engine.link.close()


def test_the_gs1_tenant_is_the_deployments_or_the_hosts(minter, redis_client, tmp_path):
    result = minter.mint("ACME", "GT-1", 3, tmp_path / "gt.parquet", workers=0)
    BatchRegistry(redis_client, "ACME").transition(result.batch.batch_id, "active")
    path = urlsplit(pq.read_table(result.path, columns=["url"]).column("url")[0].as_py()).path
    none = create_app(redis_client, minter.key_store)
    assert testing.TestClient(none).simulate_get(path).status_code == 404  # not configured
    by_host = create_app(redis_client, minter.key_store, gs1_tenants="id.beta.example=BETA,"
                         "acme.example=ACME")
    client = testing.TestClient(by_host)
    assert _result(client.simulate_get(path, host="acme.example")) == "genuine"
    assert client.simulate_get(path, host="elsewhere.example").status_code == 404
    for bad in ("ACME,BETA", "h.example=no/slash", "bad!"):
        with pytest.raises(ItemsealError):
            create_app(redis_client, minter.key_store, gs1_tenants=bad)
    for app in (none, by_host):
        app.engine.link.close()
