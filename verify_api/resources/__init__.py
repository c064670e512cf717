"""Thin falcon resources: parse, call the engine, set the response. No Redis here."""

from __future__ import annotations

import falcon

from verify_api.exc import BodyTooLarge


def read_body(req: falcon.Request, limit: int) -> bytes:
    """Return the request body, refusing one longer than ``limit`` bytes (413)."""
    length = req.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"the body is {length} bytes; the limit is {limit}")
    body = req.bounded_stream.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(f"the body is over the limit of {limit} bytes")
    return body
