"""A tenant's channel settings: SMS number, gateway secret, language, keywords, templates.

They are fields of the tenant record (``TenantKeys.meta``), beside the
policy settings: ``sms_number``, ``gateway_secret`` (sealed), ``language``
(``zh``/``en``, default ``zh``), ``reply_format`` (``twiml``, the default, or ``text``),
``join_keyword``, ``balance_keyword``, ``tpl.<name>`` template overrides and
``sms_log_days`` (how long the inbound SMS log keeps a message, default 180).

Gateways tell us only the number (or sub-port) a message was sent to, so a
global index maps numbers to tenants (``keyspace.CHANNEL_NUMBERS``). Aliyun and
Tencent send only an *extension code* (``dest_code``, ``extend``: often empty
or ``01``) and sign nothing, so each tenant has its own callback URL instead:
``/v1/sms/{aliyun|tencent}/{token}``, the token random, shown once, stored only
as its SHA-256 (index ``keyspace.SMS_CALLBACK_TOKENS``), and optionally an
allow-list of the gateway's source addresses (``sms_allow_ips``, CIDRs). A sub-port is the
tenant's number with digits appended (``106570216001`` + ``42``): the lookup
asks for every prefix of the destination in one HMGET and takes the longest
registered one.

The gateway secret is sealed with AES-GCM under the master key, like the
tenant keys (``codegen/keys.py``), with the tenant and purpose as associated
data; it is opened only to check a signature and never printed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import redis

from codegen.exc import CodegenError, WeakSecret
from codegen.keys import MasterKey, check_secret
from codegen.store.keyspace import CHANNEL_NUMBERS, SMS_CALLBACK_TOKENS, TenantKeys
from codegen.store.scripts import register
from codegen.store.wire import Link, call, hash_pairs, pack
from codegen.tenants import Tenant, TenantStore, check_tenant_id, tenant_from_record
from verify_api import proxies
from verify_api.channels import keywords, templates
from verify_api.exc import NumberTaken, SettingError

TEXT, TWIML = "text", "twiml"
REPLY_FORMATS = (TEXT, TWIML)
TEMPLATE_PREFIX = "tpl."
SECRET_FIELD = "gateway_secret"
TOKEN_FIELD = "sms_callback_token_sha256"
ALLOW_IPS_FIELD = "sms_allow_ips"
TOKEN_PREFIX = "sct_"
_NUMBER = re.compile(r"^[0-9]{3,20}$")
MIN_PREFIX = 3
DEFAULT_SMS_LOG_DAYS = 180
MAX_SMS_LOG_DAYS = 3650
MAX_CACHED = 10_000


def _log_days(raw: str | None) -> int:
    """The inbound SMS log's retention in days (``sms_log_days``; a bad value: the default)."""
    if raw and raw.isdigit() and 1 <= int(raw) <= MAX_SMS_LOG_DAYS:
        return int(raw)
    return DEFAULT_SMS_LOG_DAYS


def number_digits(text: str) -> str:
    """The digits of a number as gateways send it (``+86 1065-7021``), nothing else."""
    return "".join(c for c in text if c.isascii() and c.isdigit())


def number_prefixes(destination: str) -> list[str]:
    """Every prefix of a destination a tenant's number could be, longest first."""
    digits = number_digits(destination)
    return [digits[:n] for n in range(len(digits), MIN_PREFIX - 1, -1)]


def longest_match(hits: list[bytes | None]) -> str | None:
    """The tenant of the longest prefix found (HMGET of ``number_prefixes``)."""
    for hit in hits:
        if hit is not None:
            return hit.decode()
    return None


@dataclass(frozen=True)
class ChannelConfig:
    """What the channels need to answer for one tenant."""

    tenant: str
    name: str
    language: str = templates.ZH
    reply_format: str = TWIML  # Twilio's webhook docs ask for TwiML; "text" on request
    sms_number: str = ""
    join_keyword: str = keywords.DEFAULT_JOIN
    balance_keyword: str = keywords.DEFAULT_BALANCE
    overrides: Mapping[str, str] = field(default_factory=dict)
    secret: str | None = None
    allow_ips: str = ""  # CIDRs the token-authenticated gateway posts may come from ("" any)

    def allows(self, address: str | None) -> bool:
        """Is ``address`` in the tenant's gateway allow-list (or is there none)?"""
        if not self.allow_ips:
            return True
        return proxies.is_trusted(address, proxies.parse_networks(self.allow_ips))
    sms_log_days: int = DEFAULT_SMS_LOG_DAYS

    def template(self, name: str) -> str:
        return self.overrides.get(name) or templates.DEFAULTS[self.language][name]

    def reply(self, name: str, **fields: object) -> str:
        """Render template ``name`` in one SMS segment; keywords are filled in."""
        values = {k: "" if v is None else str(v) for k, v in fields.items()}
        values.setdefault("join_kw", self.join_keyword)
        values.setdefault("balance_kw", self.balance_keyword)
        return templates.render(self.template(name), values)


def token_digest(token: str) -> str:
    """What the index keeps of a callback token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class ChannelStore:
    """Read and change tenants' channel settings; find a tenant by its SMS number."""

    def __init__(
        self,
        client: redis.Redis,
        master: MasterKey,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._redis = client
        self._master = master
        self._random = random_bytes
        self._tenants = TenantStore(client)

    def get(self, tenant: str) -> ChannelConfig:
        """The tenant's settings with the gateway secret opened (None if unset)."""
        return self.config_of(self._tenants.get(tenant))

    def config_of(self, found: Tenant) -> ChannelConfig:
        """The channel settings of a tenant record already read."""
        tenant, s = found.tenant_id, found.settings
        language = s.get("language") if s.get("language") in templates.LANGUAGES else templates.ZH
        sealed = s.get(SECRET_FIELD)
        return ChannelConfig(
            tenant=tenant,
            name=found.name,
            language=language,
            reply_format=s.get("reply_format") if s.get("reply_format") in REPLY_FORMATS else TWIML,
            sms_number=s.get("sms_number", ""),
            join_keyword=s.get("join_keyword") or keywords.DEFAULT_JOIN,
            balance_keyword=s.get("balance_keyword") or keywords.DEFAULT_BALANCE,
            overrides={
                k[len(TEMPLATE_PREFIX) :]: v
                for k, v in s.items()
                if k.startswith(TEMPLATE_PREFIX) and k[len(TEMPLATE_PREFIX) :] in templates.FIELDS
            },
            secret=self._open(tenant, sealed) if sealed else None,
            allow_ips=s.get(ALLOW_IPS_FIELD, ""),
            sms_log_days=_log_days(s.get("sms_log_days")),
        )

    def tenant_for(self, destination: str) -> str | None:
        """The tenant whose number is the longest prefix of ``destination`` (a sub-port)."""
        prefixes = number_prefixes(destination)
        return longest_match(self._redis.hmget(CHANNEL_NUMBERS, prefixes)) if prefixes else None

    def tenant_for_token(self, token: str) -> str | None:
        """The tenant whose SMS callback URL carries ``token``."""
        found = self._redis.hget(SMS_CALLBACK_TOKENS, token_digest(token))
        return found.decode() if found is not None else None

    def new_callback_token(self, tenant: str) -> str:
        """Make the tenant's SMS callback token (the old one stops working); return it, once.

        Only its SHA-256 is stored: the store (and its backups) cannot give
        the URL away. Lose it and make a new one.
        """
        self._tenants.get(tenant)
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(self._random(24)).decode().rstrip("=")
        digest = token_digest(token)
        old = self._redis.hget(TenantKeys(tenant).meta, TOKEN_FIELD)
        self._redis.hset(SMS_CALLBACK_TOKENS, digest, tenant)
        self._redis.hset(TenantKeys(tenant).meta, TOKEN_FIELD, digest)
        if old is not None and old.decode() != digest:
            self._redis.hdel(SMS_CALLBACK_TOKENS, old)
        return token

    def update(
        self,
        tenant: str,
        *,
        sms_number: str | None = None,
        sms_allow_ips: str | None = None,
        gateway_secret: str | None = None,
        language: str | None = None,
        reply_format: str | None = None,
        join_keyword: str | None = None,
        balance_keyword: str | None = None,
        templates_: Mapping[str, str] | None = None,
        sms_log_days: int | None = None,
    ) -> list[str]:
        """Validate and store the given settings; return the names changed.

        Everything is validated before anything is written, so a bad template
        leaves the number unchanged too.
        """
        self._tenants.get(tenant)
        fields = self._validated(
            language, reply_format, join_keyword, balance_keyword, templates_ or {}
        )
        if gateway_secret is not None:
            try:
                check_secret(gateway_secret, "the gateway secret")
            except WeakSecret as exc:
                raise SettingError(str(exc)) from None
            fields[SECRET_FIELD] = self._seal(tenant, gateway_secret)
        if sms_allow_ips is not None:
            networks = proxies.parse_networks(sms_allow_ips, "allowed gateway address")
            fields[ALLOW_IPS_FIELD] = ",".join(str(n) for n in networks)
        if sms_log_days is not None:
            if isinstance(sms_log_days, bool) or not isinstance(sms_log_days, int) \
                    or not 1 <= sms_log_days <= MAX_SMS_LOG_DAYS:
                raise SettingError(f"the SMS log keeps 1 to {MAX_SMS_LOG_DAYS} days")
            fields["sms_log_days"] = str(sms_log_days)
        if sms_number is not None:
            self._set_number(tenant, sms_number)
        if fields:
            self._redis.hset(TenantKeys(tenant).meta, mapping=fields)
        return sorted([*fields, *(["sms_number"] if sms_number is not None else [])])

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _validated(
        language: str | None,
        reply_format: str | None,
        join_keyword: str | None,
        balance_keyword: str | None,
        overrides: Mapping[str, str],
    ) -> dict[str, str]:
        fields: dict[str, str] = {}
        if language is not None:
            if language not in templates.LANGUAGES:
                raise SettingError(f"language must be one of {', '.join(templates.LANGUAGES)}")
            fields["language"] = language
        if reply_format is not None:
            if reply_format not in REPLY_FORMATS:
                raise SettingError(f"reply format must be one of {', '.join(REPLY_FORMATS)}")
            fields["reply_format"] = reply_format
        for name, word in (("join_keyword", join_keyword), ("balance_keyword", balance_keyword)):
            if word is not None:
                try:
                    checked = keywords.check_keyword(word)
                except ValueError as exc:
                    raise SettingError(str(exc)) from None
                if len(checked) > templates.MAX_KEYWORD:
                    raise SettingError(f"{name}: at most {templates.MAX_KEYWORD} characters")
                fields[name] = checked
        if join_keyword and balance_keyword and keywords.fold(join_keyword) == keywords.fold(
            balance_keyword
        ):
            raise SettingError("the join and balance keywords must differ")
        for name, text in overrides.items():
            try:
                checked = templates.check_template(name, text) if text else ""
                fields[TEMPLATE_PREFIX + name] = checked
            except ValueError as exc:
                raise SettingError(str(exc)) from None
        return fields

    def _set_number(self, tenant: str, number: str) -> None:
        """Point the index at ``tenant`` (an empty number removes it); refuse another's number.

        The index and the tenant record hash to different cluster slots, so
        they are not changed together: ``sms_number.lua`` changes the index
        (the source of truth gateways are routed by) atomically, then the
        record's field follows. A crash in between leaves the record showing
        the old number until the same setting is made again, which converges.
        """
        digits = number_digits(number)
        if number and not _NUMBER.match(digits):
            raise SettingError(f"bad SMS number {number!r}: 3-20 digits")
        holder = register(self._redis, "verify_api", "sms_number")(
            keys=[CHANNEL_NUMBERS], args=[tenant, digits]
        )
        if holder is not None:
            raise NumberTaken(f"the number {digits} belongs to tenant {holder.decode()!r}")
        self._redis.hset(TenantKeys(tenant).meta, "sms_number", digits)

    @staticmethod
    def _context(tenant: str) -> bytes:
        return f"itemseal/gateway-secret/{tenant}".encode()

    def _seal(self, tenant: str, secret: str) -> str:
        record = self._master.seal_record(secret.encode(), self._context(tenant), self._random(12))
        return json.dumps(record)

    def _open(self, tenant: str, raw: str) -> str:
        what = f"the gateway secret of tenant {tenant!r}"
        return self._master.open_record(json.loads(raw), self._context(tenant), what).decode()


class ChannelDirectory:
    """The consumer routes' view of channel settings, over the worker's asyncio link.

    Kept ``ttl`` seconds per tenant and per destination number, like the
    check's catalog: a setting changed with ``itemseal tenant set`` applies
    within that time, and a gateway's post costs no extra round trip.
    """

    def __init__(
        self, link: Link, store: ChannelStore, *, ttl: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._link = link
        self._store = store
        self._ttl = ttl
        self._monotonic = monotonic
        self._configs: dict[str, tuple[float, ChannelConfig | Exception]] = {}
        self._numbers: dict[str, tuple[float, str | None]] = {}
        self._tokens: dict[str, tuple[float, str | None]] = {}

    async def get(self, tenant: str) -> ChannelConfig:
        """The tenant's settings; raise UnknownTenant or BadTenantId (cached too)."""
        now = self._monotonic()
        cached = self._configs.get(tenant)
        if cached is None or now - cached[0] > self._ttl:
            try:
                check_tenant_id(tenant)
                (raw,) = await call(self._link, pack(b"HGETALL", TenantKeys(tenant).meta.encode()))
                value: ChannelConfig | Exception = self._store.config_of(
                    tenant_from_record(tenant, hash_pairs(raw)))
            except CodegenError as exc:
                value = exc
            if len(self._configs) >= MAX_CACHED:
                self._configs.clear()
            cached = self._configs[tenant] = (now, value)
        if isinstance(cached[1], Exception):
            raise cached[1]
        return cached[1]

    async def tenant_for(self, destination: str) -> str | None:
        """``ChannelStore.tenant_for`` over the link, cached."""
        now = self._monotonic()
        cached = self._numbers.get(destination)
        if cached is None or now - cached[0] > self._ttl:
            prefixes = number_prefixes(destination)
            found = None
            if prefixes:
                numbers = CHANNEL_NUMBERS.encode()
                (hits,) = await call(
                    self._link, pack(b"HMGET", numbers, *(p.encode() for p in prefixes)))
                found = longest_match(hits)
            if len(self._numbers) >= MAX_CACHED:
                self._numbers.clear()
            cached = self._numbers[destination] = (now, found)
        return cached[1]

    async def tenant_for_token(self, token: str) -> str | None:
        """``ChannelStore.tenant_for_token`` over the link, cached by the token's digest."""
        digest = token_digest(token)
        now = self._monotonic()
        cached = self._tokens.get(digest)
        if cached is None or now - cached[0] > self._ttl:
            (hit,) = await call(self._link, pack(b"HGET", SMS_CALLBACK_TOKENS.encode(),
                                                 digest.encode()))
            if len(self._tokens) >= MAX_CACHED:
                self._tokens.clear()
            cached = self._tokens[digest] = (now, hit.decode() if hit is not None else None)
        return cached[1]
