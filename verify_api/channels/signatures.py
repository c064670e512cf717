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
from urllib.parse import urlsplit, urlunsplit


def twilio_signature(secret: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Sign a form post the way Twilio's ``RequestValidator.compute_signature`` does.

    Names sorted; a repeated name's distinct values sorted (a repeated pair counts once).
    """
    payload = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.digest(secret.encode(), payload.encode(), "sha1")
    return base64.b64encode(digest).decode()


def twilio_urls(url: str) -> tuple[str, str]:
    """The two URLs Twilio's ``RequestValidator.validate`` accepts a signature for.

    Twilio signs the URL as it was configured, which may or may not name the
    standard port (``https://host:443/...``), while the request we get may say
    either: like the library, try the URL without any port and with the
    scheme's standard port added when it has none.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a port: nothing to add or take away
        return url, url
    if port:
        without_port = urlunsplit(parts._replace(netloc=parts.netloc.split(":")[0]))
        with_port = url
    else:
        without_port = url
        port = 443 if parts.scheme == "https" else 80
        with_port = urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))
    return without_port, with_port


def itemseal_signature(secret: str, body: bytes) -> str:
    return hmac.digest(secret.encode(), body, "sha256").hex()


def valid(expected: str, given: str | None) -> bool:
    """Compare a signature in constant time; a missing one never matches."""
    return given is not None and hmac.compare_digest(expected.encode(), given.strip().encode())
