"""Decide what a piece of text is, using the format and the tenant's keys only.

This is the step before any store lookup: a code whose check digit or tag
fails is answered here and never costs a Redis call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from codegen.codes import ParsedCode, Profile, Rejected, parse_code
from codegen.exc import UnknownKey
from codegen.keys import KeyInfo, KeyStore

MALFORMED = "malformed"
MISTYPED = "mistyped"
COUNTERFEIT = "counterfeit"
REVOKED = "revoked"
VALID = "valid"


@dataclass(frozen=True)
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
    """Decode codes of one tenant, caching key state for ``max_age`` seconds.

    The cache keeps a check at one HMAC and no Redis call; a key revoked
    elsewhere takes effect here within ``max_age``.
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
        self._key_info: dict[int, tuple[float, KeyInfo | None]] = {}

    def _info(self, key_id: int) -> KeyInfo | None:
        now = self._clock()
        cached = self._key_info.get(key_id)
        if cached is None or now - cached[0] > self._max_age:
            try:
                info = self._keys.info(self.tenant, key_id)
            except UnknownKey:
                info = None
            cached = self._key_info[key_id] = (now, info)
        return cached[1]

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
                signer = self._keys.signer(self.tenant, first.key_id, first.profile)
                serials = signer.verify_many([items[i][1] for i in indexes])
            for i, serial in zip(indexes, serials, strict=True):
                found[i] = self._decoded(items[i][0], items[i][1], info, serial)
        return found  # type: ignore[return-value]

    def decode_parsed(self, text: str, parsed: ParsedCode) -> Decoded:
        info = self._info(parsed.key_id)
        serial = None
        if info is not None:
            signer = self._keys.signer(self.tenant, parsed.key_id, parsed.profile)
            serial = signer.verify(parsed)
        return self._decoded(text, parsed, info, serial)

    @staticmethod
    def _decoded(
        text: str, parsed: ParsedCode, info: KeyInfo | None, serial: int | None
    ) -> Decoded:
        if info is None or serial is None:
            return Decoded(text, COUNTERFEIT, parsed.digits, parsed.profile, parsed.key_id)
        verdict = VALID if info.active else REVOKED
        return Decoded(text, verdict, parsed.digits, parsed.profile, parsed.key_id, serial)
