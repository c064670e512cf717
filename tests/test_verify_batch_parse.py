"""parse_many is parse_code, a thousand at a time."""

from __future__ import annotations

import os
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from codegen.codes import NUMERIC_20, NUMERIC_24, parse_code
from codegen.signing import CodeSigner
from verify_api.check.batch_parse import parse_many

SIGNERS = [CodeSigner(os.urandom(32), k, p) for k in (0, 7) for p in (NUMERIC_24, NUMERIC_20)]


def genuine(draw) -> str:
    signer = draw(st.sampled_from(SIGNERS))
    serial = draw(st.integers(signer.profile.serial_base, signer.profile.serial_space - 1))
    return signer.code(serial)


@st.composite
def texts(draw) -> str:
    code = genuine(draw)
    how = draw(st.sampled_from(["plain", "slip", "spaced", "fullwidth", "junk", "short"]))
    if how == "slip":
        i = draw(st.integers(0, len(code) - 1))
        return code[:i] + str((int(code[i]) + draw(st.integers(1, 9))) % 10) + code[i + 1 :]
    if how == "spaced":
        return " - ".join(code[i : i + 4] for i in range(0, len(code), 4))
    if how == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) for c in code)
    if how == "junk":
        return draw(st.text(alphabet=string.printable + "\u3000\uff11", max_size=30))
    if how == "short":
        return code[: draw(st.integers(0, len(code) - 1))]
    return code


@settings(max_examples=200)
@given(st.lists(texts(), max_size=40))
def test_parse_many_equals_parse_code(batch):
    assert parse_many(batch) == [parse_code(text) for text in batch]
