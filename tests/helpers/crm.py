"""A CRM stand-in on a local port: the webhook the points bridge delivers to."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator

from helpers.httpkit import serve_posts


class Receiver:
    """A CRM stand-in: answers each POST with the next scripted status, then 200."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.poison: dict[str, int] = {}  # event type -> status for every attempt
        self.received: list[tuple[dict, bytes]] = []
        self.accepted: list[tuple[dict, bytes]] = []
        self.lock = threading.Lock()

    def answer(self, headers: dict, body: bytes) -> int:
        with self.lock:
            self.received.append((headers, body))
            kind = json.loads(body)["data"].get("kind", "")
            status = self.poison.get(kind) or (self.script.pop(0) if self.script else 200)
            if status == 200:
                self.accepted.append((headers, body))
            return status

    def delivered(self) -> dict[str, dict]:
        """Events answered 200, by idempotency key (repeats collapse, as in a CRM)."""
        return {h["Idempotency-Key"]: json.loads(b) for h, b in self.accepted}


@contextlib.contextmanager
def serve_receiver() -> Iterator[tuple[Receiver, str]]:
    """Run a Receiver on a free local port; yield it and its URL."""
    crm = Receiver()
    with serve_posts(lambda h, body: (crm.answer(h, body), b""), "/hooks/itemseal") as url:
        yield crm, url
