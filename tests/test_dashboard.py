"""The dashboard: escaping and cookie login (TestClient), and charts in a real Chromium."""

from __future__ import annotations

import asyncio
import io
import re

import pytest
from falcon import testing
from helpers.asgi_server import serving_app

from codegen.products import ProductStore
from verify_api.admin import dashboard
from verify_api.admin.auth import TokenStore
from verify_api.admin.report_math import Table
from verify_api.app import create_app
from verify_api.check.engine import CheckRequest


@pytest.fixture
def site(batch_factory, redis_client, clock):
    batch, key_store = batch_factory("ACME", count=100, sku="LIP-001")
    batch_factory("BETA", count=10)
    ProductStore(redis_client).add("ACME", "LIP-001", name="Lipstick", points=5)
    signer = key_store.signer("ACME", batch.key_id, batch.profile)
    seeding = create_app(redis_client, key_store, clock=clock, catalog_seconds=0)

    async def checks() -> None:
        for day in range(3):
            for i in range(day + 2):
                code = signer.code(batch.first_serial + i)
                request = CheckRequest(code, None, "web", f"CN-{day}")
                await seeding.engine.verify("ACME", request, "10.0.0.9")
            clock.advance(86400)
        await seeding.engine.link.aclose()

    asyncio.run(checks())
    app = create_app(redis_client, key_store, clock=clock, key_cache_seconds=0,
                     catalog_seconds=0)
    tokens = TokenStore(redis_client)
    made = {(t, r): tokens.create(t, r)[0] for t in ("ACME", "BETA")
            for r in ("manager", "support")}
    yield app, made
    app.engine.link.close()


def test_everything_from_data_is_escaped():
    evil = "<script>alert(1)</script>"
    table = Table("x", ("day", "checks", "genuine"), [("2026-01-01", 3, 3)])
    page = dashboard.page(evil, evil, ("a", "b"), evil, table,
                          Table("r", ("region", "checks"), [(evil, 1)]),
                          Table("c", ("region", "counterfeit", "checks", "share"), []),
                          Table("s", ("code", "sku", "checks", "phones", "regions",
                                      "first_region", "risk", "score"), [(evil,) * 8]))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<script>" not in dashboard.login_page(evil, evil)
    assert "<script>" not in dashboard.bar_chart([(evil, 1)], chart_id=evil, title=evil)


FORM = "application/x-www-form-urlencoded"


def _login_form(client) -> tuple[str, dict[str, str]]:
    """The login page's CSRF token and the cookie that must come back with it."""
    page = client.simulate_get("/admin/ACME")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return csrf, {"itemseal_admin_login": page.cookies["itemseal_admin_login"].value}


def test_login_opens_a_server_side_session_behind_csrf(site, redis_client):
    app, tokens = site
    client = testing.TestClient(app)
    manager = tokens[("ACME", "manager")]
    assert 'name="token"' in client.simulate_get("/admin/ACME").text
    csrf, cookies = _login_form(client)
    forged = client.simulate_post("/admin/ACME/login", body=f"token={manager}&csrf=guess",
                                  content_type=FORM, cookies=cookies)
    assert forged.status_code == 403 and "itemseal_admin" not in forged.cookies
    bad = client.simulate_post("/admin/ACME/login", body=f"token=nope&csrf={csrf}",
                               content_type=FORM, cookies=cookies)
    assert bad.status_code == 401 and 'role="alert"' in bad.text
    csrf, cookies = _login_form(client)
    ok = client.simulate_post("/admin/ACME/login", body=f"token={manager}&csrf={csrf}",
                              content_type=FORM, cookies=cookies)
    assert ok.status_code == 303 and ok.headers["location"] == "/admin/ACME"
    cookie = ok.cookies["itemseal_admin"]
    assert cookie.http_only and cookie.same_site == "Strict" and cookie.path == "/admin/ACME"
    assert cookie.value != manager and manager not in ok.headers.get("set-cookie", "")
    session = {"itemseal_admin": cookie.value}
    page = client.simulate_get("/admin/ACME", cookies=session)
    assert 'id="chart-checks"' in page.text and "CN-2" in page.text
    policy = page.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'") and "frame-ancestors 'none'" in policy
    other = client.simulate_get("/admin/BETA", cookies=session)  # a session is one tenant's
    assert 'name="token"' in other.text and 'id="chart-checks"' not in other.text
    csrf, cookies = _login_form(client)
    support = client.simulate_post(
        "/admin/ACME/login", body=f"token={tokens[('ACME', 'support')]}&csrf={csrf}",
        content_type=FORM, cookies=cookies)
    assert support.status_code == 403
    logout_csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    refused = client.simulate_post("/admin/ACME/logout", body="csrf=guess", content_type=FORM,
                                   cookies=session)
    assert refused.status_code == 403, "a logout form from another site is refused"
    out = client.simulate_post("/admin/ACME/logout", body=f"csrf={logout_csrf}",
                               content_type=FORM, cookies=session)
    assert out.status_code == 303
    after = client.simulate_get("/admin/ACME", cookies=session)
    assert 'name="token"' in after.text, "the session ended on the server, not just the cookie"


def test_revoking_the_token_ends_its_sessions(site, redis_client):
    app, tokens = site
    client = testing.TestClient(app)
    csrf, cookies = _login_form(client)
    ok = client.simulate_post("/admin/ACME/login", content_type=FORM, cookies=cookies,
                              body=f"token={tokens[('ACME', 'manager')]}&csrf={csrf}")
    session = {"itemseal_admin": ok.cookies["itemseal_admin"].value}
    assert 'id="chart-checks"' in client.simulate_get("/admin/ACME", cookies=session).text
    store = TokenStore(redis_client)
    token_id = next(t.token_id for t in store.list("ACME") if t.role == "manager")
    store.revoke("ACME", token_id)
    assert 'name="token"' in client.simulate_get("/admin/ACME", cookies=session).text


@pytest.fixture
def served(site):
    app, tokens = site
    with serving_app(app) as base:
        yield base, tokens


@pytest.fixture
def chromium(browser):
    """The session's Chromium (tests/helpers/browser.py), at a desktop size for the dashboard."""
    size = browser.get_window_size()
    browser.set_window_size(1200, 1600)
    yield browser
    browser.delete_all_cookies()
    browser.set_window_size(size["width"], size["height"])


@pytest.mark.browser
def test_charts_render_in_chromium(served, chromium):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    base, tokens = served
    chromium.get(f"{base}/admin/ACME")
    chromium.find_element(By.ID, "token").send_keys(tokens[("ACME", "manager")])
    chromium.find_element(By.ID, "login").click()
    WebDriverWait(chromium, 20).until(
        expected_conditions.presence_of_element_located((By.ID, "chart-checks")))
    assert chromium.get_cookie("itemseal_admin")["httpOnly"] is True
    assert chromium.execute_script("return document.cookie") == ""  # out of scripts' reach
    for chart_id in ("chart-checks", "chart-results"):
        chart = chromium.find_element(By.ID, chart_id)
        assert chart.size["width"] > 100 and chart.size["height"] > 50
        bars = chart.find_elements(By.TAG_NAME, "rect")
        assert any(bar.size["height"] > 0 and bar.size["width"] > 0 for bar in bars)
        shot = Image.open(io.BytesIO(chart.screenshot_as_png)).convert("RGB")
        colours = shot.getcolors(maxcolors=1 << 16) or []
        coloured = sum(n for n, (r, g, b) in colours if max(r, g, b) - min(r, g, b) > 60)
        assert coloured > 200, f"{chart_id}: no coloured bars drawn"
    table = chromium.find_element(By.ID, "regions").text
    assert "CN-0" in table and "CN-2" in table
