"""End to end: a minted and activated batch, checked and claimed by SMS, keypad and web page.

Everything real: the `itemseal` commands mint the batch and set the channels
(in this process, through click's runner), `itemseal serve` (gunicorn, two
workers, a real process) answers over HTTP, and the web page is driven in a
headless Chromium.
"""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from helpers.cli_runner import run
from helpers.serving import serving

from points_bridge.members import MemberStore
from tests.helpers.master import TEST_MASTER
from verify_api.channels.signatures import itemseal_signature, twilio_signature

NUMBER = "106570216001"
SECRET = "e2e-gateway-secret-0001"


@pytest.fixture
def minted(itemseal_env, tmp_path) -> tuple[dict, list[dict]]:
    env = itemseal_env
    run(env, "tenant", "create", "ACME", "--name", "Acme Cosmetics")
    run(env, "product", "add", "--tenant", "ACME", "--sku", "LIP-001", "--name", "Velvet lipstick",
        "--points", "10", "--description", "A matte lipstick.", "--usage", "Apply to clean lips.")
    out = tmp_path / "b.csv"
    run(env, "mint", "--tenant", "ACME", "--sku", "LIP-001", "--count", "20", "--format", "csv",
        "--out", str(out))
    listed = run(env, "batch", "list", "--tenant", "ACME", "--json").stdout
    batch = json.loads(listed)["batches"][0]["batch_id"]
    run(env, "batch", "activate", "--tenant", "ACME", batch)
    run(env, "tenant", "set", "ACME", "--sms-number", NUMBER, "--gateway-secret", SECRET,
        "--language", "en")
    with Path(out).open() as fh:
        return env, list(csv.DictReader(fh))


def twilio_post(base: str, path: str, form: dict) -> requests.Response:
    signature = twilio_signature(SECRET, base + path, list(form.items()))
    return requests.post(base + path, data=form, headers={"X-Twilio-Signature": signature},
                         timeout=30)


@pytest.mark.slow
def test_sms_keypad_and_retries_over_http(minted, redis_client, tmp_path):
    env, rows = minted
    members = MemberStore(redis_client, "ACME", master=TEST_MASTER)
    with serving(env, tmp_path / "serve.log") as (base, _):
        sms = {"From": "+8613800138000", "To": NUMBER, "Body": rows[0]["code"],
               "MessageSid": "SM-e2e-1", "AccountSid": "AC1"}
        first = twilio_post(base, "/v1/sms/twilio", sms)
        assert first.status_code == 200 and "+10 points" in first.text, first.text
        assert members.by_phone("+8613800138000").balance == 10

        retry = {**sms, "Body": rows[1]["code"], "MessageSid": "SM-e2e-2"}
        with ThreadPoolExecutor(8) as pool:  # a gateway retrying while the first is in flight
            answers = list(pool.map(lambda _: twilio_post(base, "/v1/sms/twilio", retry),
                                    range(8)))
        assert {a.status_code for a in answers} == {200}
        assert len({a.text for a in answers}) == 1 and "+10 points" in answers[0].text
        assert members.by_phone("+8613800138000").balance == 20  # credited once

        unsigned = requests.post(base + "/v1/sms/twilio", data=sms, timeout=30)
        assert unsigned.status_code == 403

        body = (b'[{"phone_number":"13900139000","content":"888","dest_code":"' + NUMBER.encode()
                + b'01","sequence_id":1,"send_time":"2026-01-01 00:00:00"}]')
        joined = requests.post(base + "/v1/sms/aliyun", data=body, timeout=30, headers={
            "Content-Type": "application/json",
            "X-Itemseal-Signature": itemseal_signature(SECRET, body)})
        assert joined.json()["code"] == 0 and "Welcome" in joined.json()["replies"][0]["content"]

        call = {"From": "+8613700137000", "To": NUMBER, "CallSid": "CA1"}
        assert "<Gather" in twilio_post(base, "/v1/ivr/inbound", call).text
        spoken = twilio_post(base, "/v1/ivr/inbound", {**call, "Digits": rows[2]["code"] + "#"})
        assert "+10 points" in spoken.text and "<Hangup/>" in spoken.text
        assert members.by_phone("+8613700137000").balance == 10


@pytest.mark.slow
@pytest.mark.browser
def test_the_qr_page_in_a_browser(minted, browser, redis_client, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    env, rows = minted
    path = urlsplit(rows[3]["url"]).path  # the URL in the printer file
    assert path == f"/t/ACME/v/{rows[3]['code'].replace(' ', '')}"
    with serving(env, tmp_path / "serve.log") as (base, _):
        browser.delete_all_cookies()
        browser.get(base + path)
        result = browser.find_element(By.ID, "result")
        assert result.get_attribute("data-result") == "genuine"
        assert "Genuine product" in result.text and "Velvet lipstick" in result.text
        assert "27, 127, 59" in result.value_of_css_property("border-left-color")
        assert "Apply to clean lips." in browser.find_element(By.ID, "usage").text
        browser.find_element(By.ID, "phone").send_keys("13800138000")
        browser.find_element(By.CSS_SELECTOR, "#claim-form button").click()
        points = WebDriverWait(browser, 10).until(  # the claim's page, once it has loaded
            lambda b: b.find_element(By.ID, "points")).text
        assert "+10 points credited" in points and "balance: 10 points" in points
        assert MemberStore(redis_client, "ACME").by_phone("+8613800138000").balance == 10

        browser.get(base + path)
        again = browser.find_element(By.ID, "result")
        assert again.get_attribute("data-result") == "already_verified"
        assert "checked 2 times before" in again.text
