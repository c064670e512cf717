"""The QR page does not count link previews, prefetches or prerenders as checks."""

from __future__ import annotations

import re

import pytest
from helpers.channels_world import make_world
from hypothesis import given
from hypothesis import strategies as st

from verify_api.channels.web import is_preview

PREVIEWERS = [
    "WhatsApp/2.23.20.0 A",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "TelegramBot (like TwitterBot)",
    "Twitterbot/1.0",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
]
PERSON = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
          " (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.40(0x18002831) NetType/WIFI")


@pytest.fixture
def world(batch_factory, redis_client, clock):
    w = make_world(batch_factory, redis_client, clock, language="en")
    yield w
    w.app.engine.link.close()


def result_of(page) -> str | None:
    found = re.search(r'data-result="([a-z_]+)"', page.text)
    return found.group(1) if found else None


def test_previews_and_prefetches_record_nothing(world):
    code = world.code(1)
    path = f"/t/ACME/v/{code}"
    asks = [{"User-Agent": agent} for agent in PREVIEWERS]
    asks += [{"Sec-Purpose": "prefetch"}, {"Sec-Purpose": "prefetch;prerender"},
             {"Purpose": "prefetch"}, {"X-Moz": "prefetch"}]
    for headers in asks:
        page = world.client.simulate_get(path, headers=headers)
        assert page.status_code == 200 and result_of(page) is None, headers
        assert 'id="check-form"' in page.text and f'action="{path}"' in page.text
        assert "csrf" not in page.text
    person = world.client.simulate_get(path, headers={"User-Agent": PERSON})
    assert result_of(person) == "genuine"  # the first check is the person's, not a bot's
    assert "first check" in person.text


@given(st.text(max_size=60))
def test_a_browser_without_a_preview_mark_is_a_person(text):
    agent = f"Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile Safari/537.36 {text}"
    if not re.search(r"(?i)bot|hit|whatsapp|preview|slack|spider|facebook|linkedin|"
                     r"pinterest|embedly|iframely|skype|viber|snapchat|line-parts|kakao|sogou|"
                     r"bytespider|mattermost|google|bing|yandex|baidu|applebot|yahoo|vkshare|"
                     r"facebot|wechatshare|micromessenger-preview|slurp", agent):
        assert not is_preview(agent, None, None)
    assert is_preview(agent, None, "prefetch")
