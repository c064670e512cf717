"""CSRF tokens for the verify page's claim form: signed, bound, short-lived.

Pure. The token is ``<issued>.<mac>``, the mac an HMAC over tenant, code,
the issue time and a random nonce that also sits in a ``SameSite=Strict``
cookie. Another site can neither read the page's token nor set our cookie,
so it cannot make a visitor's browser post a claim; a token for one code
does not claim another; an old one expires after ``MAX_AGE``.
"""

from __future__ import annotations

import hmac

from codegen.keys import MasterKey

MAX_AGE = 3600
COOKIE = "itemseal_form"


def secret_from(master: MasterKey) -> bytes:
    """The deployment's CSRF key, derived from the master key (never stored)."""
    return hmac.digest(master.secret, b"itemseal/web-csrf", "sha256")


def _mac(secret: bytes, tenant: str, code: str, nonce: str, issued: int) -> str:
    message = "\x00".join((tenant, code, nonce, str(issued))).encode()
    return hmac.digest(secret, message, "sha256").hex()[:40]


def make_token(secret: bytes, tenant: str, code: str, nonce: str, now: int) -> str:
    return f"{now}.{_mac(secret, tenant, code, nonce, now)}"


def check_token(
    secret: bytes, tenant: str, code: str, nonce: str | None, token: str | None, now: int
) -> bool:
    """True if ``token`` was issued for this tenant, code and cookie nonce, and is fresh."""
    if not token or not nonce:
        return False
    issued_text, _, mac = token.partition(".")
    if not issued_text.isdigit():
        return False
    issued = int(issued_text)
    if not 0 <= now - issued <= MAX_AGE:
        return False
    return hmac.compare_digest(mac.encode(), _mac(secret, tenant, code, nonce, issued).encode())
