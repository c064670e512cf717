"""The printed text of a run of codes equals the scalar path, for any layout."""

from __future__ import annotations

import numpy as np
import pytest

from codegen.codes import NUMERIC_20, NUMERIC_24, Profile, group_digits
from codegen.render import TextLayout, render_run, string_array
from codegen.signing import CodeSigner

# Not a real profile: its last printed group is short (22 = 5 * 4 + 2 digits).
ODD = Profile("odd-22", wire_id=9, serial_digits=8, tag_digits=12, serial_base=0)


@pytest.mark.parametrize("profile", [NUMERIC_24, NUMERIC_20, ODD], ids=lambda p: p.name)
@pytest.mark.parametrize(
    "template",
    [
        "https://acme.example/t/ACME/v/{code}",
        "https://例え.jp/v?c={code}&again={code}",  # UTF-8 text, the code twice
        "https://acme.example/static",  # no code at all
    ],
)
def test_rendered_rows_equal_the_scalar_codes(profile, template):
    signer = CodeSigner(bytes(range(32)), 5, profile)
    layout = TextLayout(profile, template)
    n, first = 777, profile.serial_base + 4_321  # not aligned to a digest group
    code = np.empty((n, layout.code_width), np.uint8)
    url = np.empty((n, layout.url_width), np.uint8)
    layout.prefill(code, url)
    render_run(signer, first, code, url, layout)
    digits = [signer.code(first + i) for i in range(n)]
    assert string_array(code).to_pylist() == [group_digits(d) for d in digits]
    assert string_array(url).to_pylist() == [template.replace("{code}", d) for d in digits]


def test_rendering_twice_into_the_same_rows_overwrites_only_digits():
    signer = CodeSigner(bytes(32), 0, NUMERIC_24)
    layout = TextLayout(NUMERIC_24, "x{code}y")
    code = np.empty((10, layout.code_width), np.uint8)
    url = np.empty((10, layout.url_width), np.uint8)
    layout.prefill(code, url)
    render_run(signer, 10**8, code, url, layout)
    render_run(signer, 10**8 + 10, code, url, layout)
    assert string_array(url).to_pylist() == [f"x{signer.code(10**8 + 10 + i)}y" for i in range(10)]
