"""Authenticate gateway posts: Twilio's scheme for forms, ours for JSON.

Pure, and the only place these signatures are compared (constant time).

* **Twilio** (``X-Twilio-Signature``): base64 of HMAC-SHA1, keyed by the
  gateway secret (Twilio's auth token), over the full URL the gateway posted
  to followed by every form parameter's name and value, sorted by name.
* **itemseal** (``X-Itemseal-Signature``): hex HMAC-SHA256 of the raw body,
  keyed by the same secret; the scheme our CRM bridge signs with too.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable


def twilio_signature(secret: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Sign a form post the way Twilio does (repeated names: values sorted too)."""
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.digest(secret.encode(), payload.encode(), "sha1")
    return base64.b64encode(digest).decode()


def itemseal_signature(secret: str, body: bytes) -> str:
    return hmac.digest(secret.encode(), body, "sha256").hex()


def valid(expected: str, given: str | None) -> bool:
    """Compare a signature in constant time; a missing one never matches."""
    return given is not None and hmac.compare_digest(expected.encode(), given.strip().encode())
