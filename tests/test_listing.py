"""The office lists' one sorting and paging helper (``verify_api/admin/listing.py``), pure."""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verify_api.admin.listing import ASC, DESC, Sorting, list_page, page_number

SORTING = Sorting({"n": lambda r: r[0], "s": lambda r: r[1]}, default="n", default_dir=DESC)
rows = st.lists(st.tuples(st.one_of(st.none(), st.integers(-5, 5)), st.text("ab", max_size=2)),
                max_size=40)
asked = st.one_of(st.none(), st.sampled_from(["n", "s", "x", "", "N"]), st.text(max_size=3))
directions = st.one_of(st.none(), st.sampled_from([ASC, DESC, "up", ""]))
pages = st.one_of(st.none(), st.integers(-3, 60).map(str), st.sampled_from(["x", "", "1e3"]))


@given(rows, asked, directions, st.integers(1, 7))
def test_the_pages_together_are_the_whole_list_in_order(items, sort, direction, size):
    params = {"sort": sort, "dir": direction}
    first = list_page(items, SORTING, params, size=size)
    shown = []
    for number in range(1, first.pages + 1):
        one = list_page(items, SORTING, {**params, "page": str(number)}, size=size)
        assert (one.page_no, one.pages, one.total) == (number, first.pages, len(items))
        assert len(one.rows) <= size and one.more == (number < first.pages)
        shown += one.rows
    assert Counter(shown) == Counter(items)  # nothing lost, nothing twice
    key = SORTING.keys[first.sort]
    present = [key(r) for r in shown if key(r) is not None]
    assert present == sorted(present, reverse=first.dir == DESC)
    assert all(key(r) is None for r in shown[len(present):])  # empty values last


@given(asked, directions)
def test_anything_unknown_is_the_default(sort, direction):
    page = list_page([], SORTING, {"sort": sort, "dir": direction})
    assert page.sort == (sort if sort in ("n", "s") else "n")
    assert page.dir == (direction if direction in (ASC, DESC) else DESC)
    assert (page.page_no, page.pages, page.rows) == (1, 1, [])


@given(rows, pages)
def test_a_page_past_the_end_or_not_a_number_is_still_a_page(items, raw):
    page = list_page(items, SORTING, {"page": raw}, size=5)
    assert 1 <= page.page_no <= page.pages
    if raw is not None and raw.isdigit() and 1 <= int(raw) <= page.pages:
        assert page.page_no == int(raw)
    assert page_number(raw) >= 1


def test_links_keep_the_filters_and_flip_the_current_column():
    page = list_page([(i, "a") for i in range(30)], SORTING,
                     {"sort": "n", "dir": "asc", "page": "2"}, size=10,
                     keep={"actor": "staff:mia", "q": ""})
    assert parse_qs(page.query(page=3)) == {"actor": ["staff:mia"], "sort": ["n"],
                                            "dir": ["asc"], "page": ["3"]}
    assert parse_qs(page.sort_query("n")) == {"actor": ["staff:mia"], "sort": ["n"],
                                              "dir": ["desc"], "page": ["1"]}
    assert parse_qs(page.sort_query("s"))["dir"] == ["asc"]
    assert (page.mark("n"), page.mark("s"), page.aria("n"), page.aria("s")) == (
        "▲", "", "ascending", "none")
    assert [r[0] for r in page.rows] == list(range(10, 20))


def test_a_default_must_be_a_column():
    with pytest.raises(ValueError):
        Sorting({"n": lambda r: r}, default="m")
    with pytest.raises(ValueError):
        list_page([], SORTING, {}, size=0)
