"""Printable text of a run of codes as fixed-width ASCII rows, no Python object per code.

A printer file carries each code twice: grouped for the eye (``2649 2777 8992
6462 7763 2364``) and inside the URL of the QR code. Both are fixed width
within a batch, so a run of codes is an (n, width) byte matrix: the constant
bytes (spaces, the URL around the digits) are laid down once per buffer by
``TextLayout.prefill``, and ``TextLayout.fill`` writes only the digits, one
4-digit group at a time through a lookup table of 10,000 four-byte strings.
Arrow takes such a matrix as a string column without copying it
(``string_array``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from codegen.codes import GROUP, Profile, group_values, permute_serials
from codegen.gs1 import COMPACT_DIGITS, COMPACT_SLOT, COMPACT_WIDTH, compact_filler, fill_compact
from codegen.signing import CodeSigner

CODE_SLOT = "{code}"
# ASCII of every 4-digit group, zero padded, as one little-endian uint32 each.
_ASCII4 = np.frombuffer(b"".join(b"%04d" % v for v in range(10**GROUP)), dtype="<u4")


_SLOTS = re.compile(f"({re.escape(CODE_SLOT)}|{re.escape(COMPACT_SLOT)})")


def url_parts(template: str) -> tuple[bytes, ...]:
    """Split a resolved URL template at each slot (plain text, not str.format)."""
    return tuple(part.encode() for part in _SLOTS.split(template)[0::2])


def url_slots(template: str) -> tuple[str, ...]:
    """The slots between the parts: ``{code}`` (digits) or ``gs1.COMPACT_SLOT``."""
    return tuple(_SLOTS.split(template)[1::2])


@dataclass(frozen=True)
class TextLayout:
    """Where the digits go in the code text and in the URL of one batch."""

    profile: Profile
    url_template: str

    def __post_init__(self) -> None:
        if COMPACT_SLOT in url_slots(self.url_template) and self.profile.length != COMPACT_DIGITS:
            raise ValueError(f"a compact GS1 serial needs {COMPACT_DIGITS}-digit codes")

    @property
    def groups(self) -> int:
        return -(-self.profile.length // GROUP)

    @property
    def code_width(self) -> int:
        return self.profile.length + self.groups - 1

    @property
    def url_width(self) -> int:
        widths = [self._slot_width(slot) for slot in url_slots(self.url_template)]
        return sum(map(len, url_parts(self.url_template))) + sum(widths)

    def _slot_width(self, slot: str) -> int:
        return COMPACT_WIDTH if slot == COMPACT_SLOT else self.profile.length

    def _digit_offsets(self) -> tuple[list[int], list[int], list[int]]:
        """Byte offsets where the digits start: code text, URL; where compact serials do."""
        code = [j * (GROUP + 1) for j in range(self.groups)]
        url, compact, at = [], [], 0
        slots = url_slots(self.url_template)
        for part, slot in zip(url_parts(self.url_template)[:-1], slots, strict=True):
            at += len(part)
            (compact if slot == COMPACT_SLOT else url).append(at)
            at += self._slot_width(slot)
        return code, url, compact

    def prefill(self, code_rows: np.ndarray, url_rows: np.ndarray) -> None:
        """Write the constant bytes of every row (digits become zeros)."""
        zeros = b"0" * self.profile.length
        text = b" ".join(zeros[i : i + GROUP] for i in range(0, len(zeros), GROUP))
        code_rows[:] = np.frombuffer(text, dtype=np.uint8)
        slots = url_slots(self.url_template)
        fillers = [compact_filler() if slot == COMPACT_SLOT else zeros for slot in slots]
        parts = url_parts(self.url_template)
        text = b"".join(p + f for p, f in zip(parts, [*fillers, b""], strict=True))
        url_rows[:] = np.frombuffer(text, dtype=np.uint8)

    def fill(self, code_rows: np.ndarray, url_rows: np.ndarray, groups: list[np.ndarray]) -> None:
        """Write the digits of the codes whose group values are ``groups``."""
        code_at, url_at, compact_at = self._digit_offsets()
        for start in compact_at:
            fill_compact(url_rows, start, groups)
        for j, value in enumerate(groups):
            width = min(GROUP, self.profile.length - j * GROUP)
            if width == GROUP:
                text = _ASCII4[value]
                _put_u32(code_rows, code_at[j], text)
                for start in url_at:
                    _put_u32(url_rows, start + j * GROUP, text)
            else:  # a short last group: its bytes one by one
                for k in range(width):
                    digit = (value // 10 ** (width - 1 - k)) % 10 + ord("0")
                    code_rows[:, code_at[j] + k] = digit
                    for start in url_at:
                        url_rows[:, start + j * GROUP + k] = digit


def _put_u32(rows: np.ndarray, offset: int, values: np.ndarray) -> None:
    """Store one uint32 per row at byte ``offset`` of a C-contiguous (n, width) matrix."""
    column = np.ndarray(
        (rows.shape[0],), dtype="<u4", buffer=rows, offset=offset, strides=(rows.shape[1],)
    )
    column[:] = values


def render_run(
    signer: CodeSigner,
    first_serial: int,
    code_rows: np.ndarray,
    url_rows: np.ndarray,
    layout: TextLayout,
) -> None:
    """Render the codes of ``len(code_rows)`` serials from ``first_serial`` into the rows."""
    n = code_rows.shape[0]
    serials = np.arange(first_serial, first_serial + n, dtype=np.uint64)
    permuted = permute_serials(serials, signer.round_keys, signer.profile)
    groups = group_values(permuted, signer.key_id, signer.tags(first_serial, n), signer.profile)
    layout.fill(code_rows, url_rows, groups)


def string_array(rows: np.ndarray, data: pa.Buffer | None = None) -> pa.StringArray:
    """Wrap an (n, width) ASCII matrix as an Arrow string column, sharing its memory.

    ``data`` may give the matrix's memory as an Arrow buffer already (a slice
    of a shared-memory slot); the offsets are fixed width, so np.arange.
    """
    n, width = rows.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), data or pa.py_buffer(rows))
