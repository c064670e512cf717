"""One page of an office list: sorted by one column, then cut into pages, pure.

Every office list (members, audit log, feedback, batches, staff, products,
campaigns, rewards) answers the same ``?sort=COL&dir=asc|desc&page=N``, so
the rules live here once: the whole list the page shows is sorted first
and cut into pages after, so page 2 continues page 1 whatever the column;
an unknown column or direction is the list's default, not an error (an old
bookmark or a hand-edited link must still open the page); a page past the
end is the last page. ``ListPage`` also writes the header and pager links,
each keeping the list's filters, so no page builds its own query strings;
the forms of a list post to their action with ``query()`` too, because the
answer to a post is the list again and must come back in the order and on
the page the staff member was looking at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

T = TypeVar("T")
ASC, DESC = "asc", "desc"
PAGE_SIZE = 25
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class Sorting(Generic[T]):
    """A list's sortable columns (name -> the value a row sorts by) and its default order."""

    keys: Mapping[str, Callable[[T], Any]]
    default: str
    default_dir: str = ASC

    def __post_init__(self) -> None:
        if self.default not in self.keys or self.default_dir not in (ASC, DESC):
            raise ValueError(f"default {self.default!r} {self.default_dir!r} is not a column")

    def choose(self, sort: object, direction: object) -> tuple[str, str]:
        """The column and direction asked for, or the default for anything else."""
        column = sort if isinstance(sort, str) and sort in self.keys else self.default
        if direction in (ASC, DESC):
            return column, str(direction)
        return column, self.default_dir

    def order(self, items: Iterable[T], column: str, direction: str) -> list[T]:
        """Sorted by ``column``, empty values (None) last either way; ties keep their order."""
        key = self.keys[column]
        rows = list(items)
        present = [r for r in rows if key(r) is not None]
        missing = [r for r in rows if key(r) is None]
        present.sort(key=key, reverse=direction == DESC)
        return present + missing


@dataclass(frozen=True)
class ListPage(Generic[T]):
    """The rows of one page and what its links need: the order, the page, the filters kept."""

    rows: list[T]
    sort: str
    dir: str
    page_no: int
    pages: int
    total: int
    keep: Mapping[str, str] = field(default_factory=dict)

    @property
    def more(self) -> bool:
        return self.page_no < self.pages

    def query(self, **changes: object) -> str:
        """This page's query string with ``changes``; empty values are left out.

        Built from the column and direction ``Sorting.choose`` accepted, never from the
        raw request, so a form's action cannot carry what the list does not know.
        """
        values: dict[str, object] = {**self.keep, "sort": self.sort, "dir": self.dir,
                                     "page": self.page_no, **changes}
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    def sort_query(self, column: str) -> str:
        """A header's link: the other direction of the current column, else this column
        ascending; always from page 1 (the rows of page N change with the order)."""
        if column == self.sort:
            return self.query(dir=ASC if self.dir == DESC else DESC, page=1)
        return self.query(sort=column, dir=ASC, page=1)

    def mark(self, column: str) -> str:
        """The arrow after the current column's name: ▲ ascending, ▼ descending."""
        if column != self.sort:
            return ""
        return "▲" if self.dir == ASC else "▼"

    def aria(self, column: str) -> str:
        """``aria-sort`` of a header cell (WAI-ARIA), for screen readers."""
        if column != self.sort:
            return "none"
        return "ascending" if self.dir == ASC else "descending"


def page_number(raw: object) -> int:
    """``?page=``: a whole number from 1, else 1 (a bad page opens the first, like a bad sort)."""
    if isinstance(raw, str) and raw.isdigit():
        return min(max(int(raw), 1), MAX_PAGE)
    return 1


def list_page(items: Iterable[T], sorting: Sorting[T], params: Mapping[str, object], *,
              size: int = PAGE_SIZE, keep: Mapping[str, str] | None = None) -> ListPage[T]:
    """Sort every item by ``params``' ``sort``/``dir``, then return its ``page``.

    ``params`` is the request's query (falcon's ``req.params``); ``keep`` are the
    list's filters, carried by every link the page writes.
    """
    if size < 1:
        raise ValueError("a page holds at least one row")
    column, direction = sorting.choose(params.get("sort"), params.get("dir"))
    ordered = sorting.order(items, column, direction)
    pages = max(1, -(-len(ordered) // size))
    number = min(page_number(params.get("page")), pages)
    return ListPage(ordered[(number - 1) * size: number * size], column, direction, number,
                    pages, len(ordered), {k: v for k, v in (keep or {}).items() if v})
