"""kill -9 of redis-server during a stream of purchases over HTTP loses none acknowledged,
and retrying every purchase afterwards posts each exactly once.

Same kit as tests/test_crash_safety.py: an own redis-server and an own ``itemseal serve``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests
from helpers.crashkit import checked_ledgers, own_world, phone_of
from helpers.homes import make_short_home
from helpers.serving import serving

from points_bridge.members import MemberStore
from points_bridge.shops import ShopStore
from tests.helpers.master import TEST_MASTER
from verify_api.admin.auth import TokenStore

MEMBERS = 20
LINES = [{"sku": f"SKU-{n}", "qty": 1, "amount": 1_000 + n} for n in range(8)]
POINTS = sum(line["amount"] for line in LINES) // 100


@pytest.fixture
def world():
    world = own_world(make_short_home(), count=10)
    yield world
    world.close()


class PurchaseStream:
    def __init__(self, base: str, token: str, threads: int = 4) -> None:
        self.url = f"{base}/v1/tenants/ACME/purchases"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.acked: dict[str, dict] = {}
        self.errors: Counter = Counter()
        self.sent = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.workers = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def body(self, i: int) -> dict:
        return {"member": phone_of(i, MEMBERS), "shop": "S1", "lines": LINES,
                "idempotency_key": f"k-{i}"}

    def start(self) -> PurchaseStream:
        for worker in self.workers:
            worker.start()
        return self

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            with self.lock:
                i = self.sent
                self.sent += 1
            try:
                answer = session.post(self.url, json=self.body(i), headers=self.headers,
                                      timeout=10)
            except requests.RequestException as exc:
                with self.lock:
                    self.errors[type(exc).__name__] += 1
                session = requests.Session()
                continue
            with self.lock:
                if answer.status_code in (200, 201):
                    self.acked[f"k-{i}"] = answer.json()
                else:
                    self.errors[f"{answer.status_code} "
                                f"{answer.json().get('error', {}).get('code', '')}"] += 1

    def wait_for(self, acked: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < acked:
            assert time.monotonic() < deadline, f"only {len(self.acked)} acked: {self.errors}"
            time.sleep(0.05)

    def finish(self) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(30)


def posted_purchases(world) -> dict[str, tuple[str, int]]:
    """key -> (purchase id, points) over every ledger; asserts balances are ledger sums."""
    found: dict[str, tuple[str, int]] = {}
    for card, entry in checked_ledgers(world):
        if entry.kind == "purchase":
            key = entry.idem.removeprefix("purchase:")
            assert key not in found, f"purchase {key} posted twice"
            found[key] = (f"{card}-{entry.entry_id}", entry.delta)
    return found


@pytest.mark.slow
def test_kill_9_of_redis_loses_no_acknowledged_purchase(world, tmp_path):
    ShopStore(world.client, "ACME").add("S1", name="Shop one")
    members = MemberStore(world.client, "ACME", master=TEST_MASTER)
    for i in range(MEMBERS):
        members.join(phone_of(i, MEMBERS))
    token, _ = TokenStore(world.client).create("ACME", "cashier", "till")
    with serving(world.env(), tmp_path / "serve.log") as (base, _):
        stream = PurchaseStream(base, token).start()
        stream.wait_for(150)
        world.kill_store()
        deadline = time.monotonic() + 30
        while not stream.errors:
            assert time.monotonic() < deadline, "the API did not notice the store is gone"
            time.sleep(0.05)
        time.sleep(0.5)
        world.restart_store()
        stream.wait_for(len(stream.acked) + 150)
        stream.finish()
        assert {kind.split()[0] for kind in stream.errors} <= {"503", "ConnectionError"}, \
            stream.errors
        posted = posted_purchases(world)
        for key, answer in stream.acked.items():
            assert key in posted, f"acknowledged purchase {key} is lost"
            assert posted[key] == (answer["purchase_id"], POINTS)
        # The till retries everything it sent: each purchase ends up posted exactly once.
        session = requests.Session()
        for i in range(stream.sent):
            again = session.post(stream.url, json=stream.body(i), headers=stream.headers,
                                 timeout=10)
            assert again.status_code in (200, 201), again.text
    posted = posted_purchases(world)
    assert set(posted) == {f"k-{i}" for i in range(stream.sent)}
    assert len(stream.acked) >= 300
