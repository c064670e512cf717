"""Keyword draws ("cj#answer"): members text a keyword and an answer; a seeded pick.

A tenant opens a draw with a keyword, the right answer and how many win.
A member enters by texting ``<keyword>#<answer>`` (``#`` or the full-width
``＃``); one entry per phone, the first counts, and the reply never tells
whether the answer was right (so nobody can try answers by SMS).

Closing picks the winners with ``pick``: the correct entrants sorted, then
``random.Random(seed).sample``. The seed (random unless given) and a SHA-256
of the entrant list go into the audit log, so anyone can run ``pick`` again
on the same entries and seed and get the same winners
(``itemseal draw show`` prints both). Winners are told through the outbound
queue (kind ``draw``: opt-outs and quiet hours apply).
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from codegen.times import iso
from points_bridge.exc import BadInput, DrawClosed, UnknownDraw
from points_bridge.scoped import TenantScoped
from points_bridge.sms.outbound import DRAW, Outbox

OPEN, CLOSED = "open", "closed"


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().casefold()


def split_entry(text: str) -> tuple[str, str] | None:
    """``"CJ#blue"`` -> ("cj", "blue"); None when the text is no draw entry."""
    folded = fold(text)
    keyword, sep, answer = folded.partition("#")
    if not sep or not keyword or not answer.strip() or " " in keyword:
        return None
    return keyword, answer.strip()


def pick(entrants: Sequence[str], seed: str, winners: int) -> list[str]:
    """The winners among ``entrants`` for ``seed``: the same inputs give the same list."""
    pool = sorted(set(entrants))
    return random.Random(seed).sample(pool, min(winners, len(pool)))


def entrants_digest(entrants: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(set(entrants))).encode()).hexdigest()


@dataclass(frozen=True)
class Draw:
    keyword: str
    answer: str
    winners: int
    prize: str
    status: str
    opened_at: int
    seed: str = ""
    picked: tuple[str, ...] = ()
    entries: int = 0

    def to_json(self) -> dict:
        return {"keyword": self.keyword, "answer": self.answer, "winners": self.winners,
                "prize": self.prize, "status": self.status, "opened_at": iso(self.opened_at),
                "seed": self.seed, "picked": list(self.picked), "entries": self.entries}


class Draws(TenantScoped):
    """Open, enter and close one tenant's draws."""

    def _key(self, keyword: str) -> str:
        return self.keys.draw(keyword)

    def open(self, keyword: str, answer: str, winners: int = 1, prize: str = "") -> Draw:
        keyword, answer = fold(keyword), fold(answer)
        if not keyword or len(keyword) > 16 or any(c in keyword for c in " #"):
            raise BadInput("keyword", keyword, "1-16 characters, no blanks or '#'")
        if not answer:
            raise BadInput("answer", answer, "give the right answer")
        if winners < 1:
            raise BadInput("winners", winners, "at least 1")
        fields = {"answer": answer, "winners": str(winners), "prize": prize[:300],
                  "status": OPEN, "opened_at": str(int(self._clock()))}
        if not self._redis.hsetnx(self._key(keyword), "status", OPEN):
            raise BadInput("keyword", keyword, "a draw with this keyword exists")
        self._redis.hset(self._key(keyword), mapping=fields)
        self._redis.sadd(self.keys.draws, keyword)
        return self.get(keyword)

    def get(self, keyword: str) -> Draw:
        keyword = fold(keyword)
        raw = self._redis.hgetall(self._key(keyword))
        if not raw:
            raise UnknownDraw(self.tenant, keyword)
        f = {k.decode(): v.decode() for k, v in raw.items()}
        return Draw(keyword, f.get("answer", ""), int(f.get("winners", 1)), f.get("prize", ""),
                    f["status"], int(f.get("opened_at", 0)), f.get("seed", ""),
                    tuple(json.loads(f.get("picked", "[]"))),
                    self._redis.hlen(self.keys.draw_entries(keyword)))

    def list(self) -> list[Draw]:
        return [self.get(k.decode()) for k in sorted(self._redis.smembers(self.keys.draws))]

    def get_status(self, text: str) -> str | None:
        """The status of the draw an SMS text names; None if it names none."""
        parsed = split_entry(text)
        if parsed is None:
            return None
        status = self._redis.hget(self._key(parsed[0]), "status")
        return status.decode() if status is not None else None

    def enter(self, phone: str, text: str) -> str | None:
        """Record an SMS entry; return ``entered``/``closed``, or None if no draw matches."""
        status = self.get_status(text)
        if status is None:
            return None
        if status != OPEN:
            return "closed"
        keyword, answer = split_entry(text)  # type: ignore[misc]
        right = self._redis.hget(self._key(keyword), "answer").decode()
        self._redis.hsetnx(self.keys.draw_entries(keyword), phone, int(answer == right))
        return "entered"

    def close(self, keyword: str, seed: str | None = None) -> tuple[Draw, dict]:
        """Pick and notify the winners; return the draw and the audit record of the pick."""
        draw = self.get(keyword)
        if draw.status != OPEN:
            raise DrawClosed(draw.keyword)
        entries = self._redis.hgetall(self.keys.draw_entries(draw.keyword))
        right = sorted(k.decode() for k, v in entries.items() if v == b"1")
        seed = seed or secrets.token_hex(16)
        winners = pick(right, seed, draw.winners)
        if not self._redis.hsetnx(self._key(draw.keyword), "seed", seed):
            raise DrawClosed(draw.keyword)  # another close got there first
        self._redis.hset(self._key(draw.keyword),
                         mapping={"status": CLOSED, "picked": json.dumps(winners)})
        outbox = Outbox(self._redis, self.tenant, clock=self._clock)
        text = draw.prize or "Congratulations, you won the draw!"
        for phone in winners:
            outbox.enqueue(f"d.{draw.keyword}.{phone}", phone, text, DRAW,
                           scope=f"draw:{draw.keyword}")
        record = {"seed": seed, "entrants": len(entries), "eligible": len(right),
                  "entrants_sha256": entrants_digest(right), "winners": winners}
        return self.get(draw.keyword), record
