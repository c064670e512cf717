"""Decide what a piece of text is, using the format and the tenant's keys only.

This is the step before any store lookup: a code whose check digit or tag
fails is answered here and never costs a Redis call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from codegen.codes import ParsedCode, Profile, Rejected, parse_code
from codegen.keys import KeyInfo, KeyStore, key_info, key_ring
from codegen.signing import CodeSigner

MALFORMED = "malformed"
MISTYPED = "mistyped"
COUNTERFEIT = "counterfeit"
REVOKED = "revoked"
VALID = "valid"


@dataclass(slots=True)  # not frozen: made on every check (ARCHITECTURE.md)
class Decoded:
    """The format-and-key verdict on one code; ``serial`` is set when the tag holds."""

    text: str
    verdict: str
    digits: str | None = None
    profile: Profile | None = None
    key_id: int | None = None
    serial: int | None = None

    @property
    def authentic(self) -> bool:
        """The tag holds: only then may the store be asked about the code."""
        return self.verdict in (VALID, REVOKED)


class CodeChecker:
    """Decode codes of one tenant, caching its key ring for ``max_age`` seconds.

    The cache keeps a check at one HMAC and no Redis call; a key revoked
    elsewhere takes effect here within ``max_age``. The API refreshes the
    ring over its asyncio link (``stale``, then ``load``); synchronous
    callers (the CLI's ``check``) let ``decode`` read it through the key store.
    """

    def __init__(
        self,
        key_store: KeyStore,
        tenant: str,
        *,
        max_age: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = key_store
        self.tenant = tenant
        self._max_age = max_age
        self._clock = clock
        self._ring: dict[int, dict] = {}
        self._loaded_at: float | None = None
        # (key id, profile) -> (key info, signer): what a check needs of its key, made once
        # per ring load rather than per check (a dataclass and a dict lookup chain each time)
        self._known: dict[tuple[int, Profile], tuple[KeyInfo, CodeSigner]] = {}

    def stale(self) -> bool:
        """Tell whether the ring must be read again before the next decode."""
        return self._loaded_at is None or self._clock() - self._loaded_at > self._max_age

    def load(self, raw: Mapping[bytes, bytes]) -> None:
        """Keep the ring read from ``TenantKeys.keys`` (a raw ``HGETALL``)."""
        self._ring, self._loaded_at = key_ring(raw), self._clock()
        self._known = {}

    def _record(self, key_id: int) -> dict | None:
        if self.stale():
            self.load(self._keys.raw_ring(self.tenant))
        return self._ring.get(key_id)

    def _info(self, key_id: int) -> KeyInfo | None:
        record = self._record(key_id)
        return None if record is None else key_info(record)

    def _signer(self, key_id: int, profile: Profile) -> CodeSigner:
        return self._keys.signer_for(self.tenant, self._ring[key_id], profile)

    def decode(self, text: str) -> Decoded:
        parsed = parse_code(text)
        if isinstance(parsed, Rejected):
            return Decoded(text, parsed.verdict.value)
        return self.decode_parsed(text, parsed)

    def decode_many(self, items: list[tuple[str, ParsedCode]]) -> list[Decoded]:
        """``decode_parsed`` of many codes; the codes of one key are verified together."""
        by_key: dict[tuple[int, str], list[int]] = {}
        for i, (_, parsed) in enumerate(items):
            by_key.setdefault((parsed.key_id, parsed.profile.name), []).append(i)
        found: list[Decoded | None] = [None] * len(items)
        for indexes in by_key.values():
            first = items[indexes[0]][1]
            info = self._info(first.key_id)
            serials: list[int | None] = [None] * len(indexes)
            if info is not None:
                signer = self._signer(first.key_id, first.profile)
                serials = signer.verify_many([items[i][1] for i in indexes])
            for i, serial in zip(indexes, serials, strict=True):
                found[i] = self._decoded(items[i][0], items[i][1], info, serial)
        return found  # type: ignore[return-value]

    def decode_parsed(self, text: str, parsed: ParsedCode) -> Decoded:
        known = self._known.get((parsed.key_id, parsed.profile)) if not self.stale() else None
        if known is None:
            info = self._info(parsed.key_id)
            if info is None:
                return self._decoded(text, parsed, None, None)
            known = self._known[parsed.key_id, parsed.profile] = (
                info, self._signer(parsed.key_id, parsed.profile))
        info, signer = known
        return self._decoded(text, parsed, info, signer.verify(parsed))

    @staticmethod
    def _decoded(
        text: str, parsed: ParsedCode, info: KeyInfo | None, serial: int | None
    ) -> Decoded:
        if info is None or serial is None:
            return Decoded(text, COUNTERFEIT, parsed.digits, parsed.profile, parsed.key_id)
        verdict = VALID if info.active else REVOKED
        return Decoded(text, verdict, parsed.digits, parsed.profile, parsed.key_id, serial)
