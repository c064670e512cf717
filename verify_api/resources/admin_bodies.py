"""Read admin request bodies and query strings: typed fields or a 422 naming the field.

Pure, like ``bodies.py``: nothing here raises anything but a ``RequestError``.
"""

from __future__ import annotations

from collections.abc import Mapping

from verify_api.exc import InvalidField
from verify_api.resources.bodies import load_object, string_field

MAX_ADMIN_BODY = 16 * 1024


class Fields:
    """Take typed fields out of a JSON object; ``done()`` refuses the ones left over."""

    def __init__(self, data: Mapping[str, object]) -> None:
        self._data = dict(data)
        self._taken: set[str] = set()

    @classmethod
    def parse(cls, body: bytes) -> Fields:
        return cls(load_object(body) if body.strip() else {})

    def has(self, name: str) -> bool:
        return name in self._data

    def str(self, name: str, *, required: bool = False, limit: int = 200) -> str | None:
        self._taken.add(name)
        return string_field(self._data, name, required=required, limit=limit)

    def int(self, name: str, *, required: bool = False, minimum: int | None = None) -> int | None:
        self._taken.add(name)
        value = self._data.get(name)
        if value is None:
            if required:
                raise InvalidField(name, f"{name!r} is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidField(name, f"{name!r} must be a whole number")
        if minimum is not None and value < minimum:
            raise InvalidField(name, f"{name!r} must be at least {minimum}")
        return value

    def text(self, name: str) -> str | None:
        """A setting given as a string or a number, as the stores take it (str)."""
        self._taken.add(name)
        value = self._data.get(name, ...)
        if value is ...:
            return None
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidField(name, f"{name!r} must be a string or a number")
        return str(value)

    def str_list(self, name: str) -> list[str] | None:
        self._taken.add(name)
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidField(name, f"{name!r} must be a list of strings")
        return value

    def list(self, name: str, *, required: bool = False) -> list:
        self._taken.add(name)
        value = self._data.get(name)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            raise InvalidField(name, f"{name!r} must be a list")
        return value

    def done(self) -> None:
        unknown = sorted(set(self._data) - self._taken)
        if unknown:
            raise InvalidField(unknown[0], f"unknown field {unknown[0]!r}")


def query_int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidField(name, f"{name!r} must be a whole number from {low} to {high}")
    return int(raw)
