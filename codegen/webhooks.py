"""Where the server may POST on a manager's say-so: public addresses only, by default.

A manager sets the alert webhook, an operator the CRM bridge's webhook and
the SMS gateway's URL; the server then POSTs there. Pointed at loopback, a
private network or link-local (the cloud metadata address 169.254.169.254),
that is a request forgery into the server's own network. So a URL whose host
is, or resolves to, such an address is refused unless the operator allows it
for the whole deployment with ``ITEMSEAL_ALLOW_PRIVATE_WEBHOOKS=1`` (a CRM on
the same private network; the tests' local receivers).

The host is checked when the URL is set and again before each alert POST
(a name may resolve elsewhere later). A name that does not resolve now is
accepted when set (the POST will fail and be retried) and refused at POST.

Every POST itemseal makes (CRM events, alerts, the SMS gateway) goes through
``post`` on an ``http_client``: httpx, redirects never followed, the server's
``Retry-After`` read, and ``backoff_seconds`` (jittered) between tries.
"""

from __future__ import annotations

import email.utils
import ipaddress
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from codegen.exc import CodegenError

ALLOW_ENV = "ITEMSEAL_ALLOW_PRIVATE_WEBHOOKS"


class PrivateWebhook(CodegenError):
    """A webhook URL that points into a private, loopback or link-local network."""

    code = "invalid_setting"


def private_allowed() -> bool:
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_public_url(url: str, what: str = "the webhook URL", *, resolve_fail_ok: bool = True,
                     ) -> str:
    """Return ``url`` if its host is public (or private ones are allowed); else refuse."""
    if private_allowed():
        return url
    host = urlsplit(url).hostname or ""
    if not host:
        raise PrivateWebhook(f"{what} {url!r} has no host")
    try:
        addresses = [host] if _literal(host) else [
            info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        ]
    except (socket.gaierror, UnicodeError):
        if resolve_fail_ok:
            return url
        raise PrivateWebhook(f"{what} {url!r}: the host does not resolve") from None
    if any(_is_private(a) for a in addresses):
        raise PrivateWebhook(
            f"{what} {url!r} points to a loopback, private or link-local address; set"
            f" {ALLOW_ENV}=1 if that is intended"
        )
    return url


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------- posting


@dataclass(frozen=True)
class Delivery:
    """What a POST came to: the status (0: no answer), why it failed, when to try again."""

    status: int
    reason: str = ""
    retry_after: float | None = None  # seconds the server asked us to wait (Retry-After)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def http_client(timeout: float = 10.0) -> httpx.Client:
    """The client every outgoing POST uses: redirects are *never* followed.

    A 301/302 answer to a POST makes most clients re-send it as a GET without
    the body, get a 200, and call the delivery done: the event is lost. Here a
    3xx is a failure that names the new location, for the operator to fix.
    """
    return httpx.Client(timeout=timeout, follow_redirects=False,
                        headers={"User-Agent": "itemseal"})


def post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str],
         now: float | None = None) -> Delivery:
    """POST ``body``; never raises for what the network or the server does."""
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Delivery(0, f"{type(exc).__name__}: {exc}".rstrip(": "))
    status = response.status_code
    if 200 <= status < 300:
        return Delivery(status, body=response.content)
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        return Delivery(status, f"HTTP {status} redirect to {where} not followed: set the"
                                " final URL (a redirected POST loses its body)")
    wait = parse_retry_after(response.headers.get("retry-after"),
                             time.time() if now is None else now)
    return Delivery(status, f"HTTP {status}", wait)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def backoff_seconds(attempt: int, base: float, cap: float, retry_after: float | None,
                    rand: Callable[[], float]) -> float:
    """How long to wait before try ``attempt + 1``: the server's Retry-After if it gave one
    (up to ``cap``), else "full jitter" exponential backoff, ``rand() * min(cap, base * 2^n)``,
    so many bridges retrying a CRM that came back do not all knock at once."""
    if retry_after is not None:
        return min(retry_after, cap)
    return rand() * min(cap, base * 2 ** (attempt - 1))
