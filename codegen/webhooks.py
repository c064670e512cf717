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
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

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
