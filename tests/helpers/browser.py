"""The ``browser`` fixture: one headless Chromium per session, driven by selenium.

Chromium comes from Debian (``scripts/ensure-debs.sh``, run by ``make
test``), never from selenium-manager: the driver path is given, so nothing is
downloaded. Without Chromium the browser tests skip, loudly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = os.environ.get("ITEMSEAL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ITEMSEAL_CHROMEDRIVER", "/usr/bin/chromedriver")
MISSING = (
    "BROWSER TESTS SKIPPED: chromium and chromedriver are not installed"
    f" ({CHROMIUM}, {CHROMEDRIVER}); run `scripts/ensure-debs.sh chromium chromium-driver`"
    " as root, or apt-get install chromium chromium-driver"
)


def chromium_present() -> bool:
    return all(os.access(p, os.X_OK) or shutil.which(p) for p in (CHROMIUM, CHROMEDRIVER))


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not chromium_present():
        pytest.skip(MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=412,915"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
