"""Verify codes: decode without the store, then one script call for the authentic ones.

The order is what makes guessing cheap to refuse: a client refused lately is
refused at once (ratelimit.py); the code's format and HMAC tag are checked in
this process (``malformed``, ``mistyped`` and ``counterfeit`` never reach
Redis with their code); then one round trip carries the rate-limit counts and,
for an authentic code only, ``lua/verify.lua``, which finds its batch, reads
and updates its scan record and claims it for a member phone, atomically.
The checks that reach Redis in one event-loop turn of a worker share one
call of the script per segment (``turns.py``), each with its own request's
context. A claim's credit then takes one more round trip
(``points_bridge/credit.py``).

Every method is a coroutine over the worker's asyncio link
(``codegen/store/link.py``): a check never blocks the event loop.

Lookups (``GET /codes/{code}``) and distributor batches use the same script in
look-up mode: they read the record and never count as a consumer's check, so a
carton scanned at the warehouse does not make every buyer see "already
verified".
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import redis

from codegen.checker import CodeChecker, Decoded
from codegen.codes import Rejected
from codegen.exc import ItemsealError
from codegen.keys import KeyStore
from codegen.store.keyspace import TenantKeys
from codegen.store.link import forget
from codegen.store.standby import replica_ack_from_env
from codegen.store.wire import Link, call, hash_pairs, pack
from points_bridge import regions
from points_bridge.credit import ClaimCrediter, Prefetch
from points_bridge.phones import normalize_phone
from verify_api.check import answers, stats
from verify_api.check.answers import Answer
from verify_api.check.batch_parse import parse_many
from verify_api.check.catalog import Catalog, TenantPolicy
from verify_api.check.fingerprints import Fingerprints
from verify_api.check.inputs import extract_code, extract_gtin
from verify_api.check.ratelimit import Hit, Pending, RateLimiter
from verify_api.check.risk import (
    LOW,
    PHONE_SKETCH_BITS,
    REGION_SKETCH_BITS,
    distinct_estimate,
    risk_level,
)
from verify_api.check.scanrecord import CHANNEL_CODES
from verify_api.check.scans import (
    ACTIVE,
    VERIFY,
    CheckContext,
    ScanQuery,
    ScanReply,
    VerifyScripts,
    parse_verify_reply,
    unclaim_call,
    verify_calls,
)
from verify_api.check.turns import CheckTurns
from verify_api.exc import RateLimited

LOOKUP_ONLY = CheckContext()
log = logging.getLogger(__name__)


@dataclass(slots=True)  # not frozen: made on every check (ARCHITECTURE.md)
class CheckRequest:
    """A consumer's check, validated (``bodies.py``); the phone as typed."""

    code: str
    phone: str | None = None
    channel: str = "api"
    region: str | None = None
    # The region is the caller's word to trust: the engine's own callers (the CLI, tests)
    # are; the public route's body is not unless it came with a token (resources/verify.py).
    region_trusted: bool = True
    region_source: str = regions.NONE  # set by the engine: where ``region`` came from


class VerifyEngine:
    """Answer checks of every tenant; one instance per worker process."""

    def __init__(
        self,
        link: Link,
        key_store: KeyStore,
        *,
        clock: Callable[[], float] = time.time,
        key_cache_seconds: float = 2.0,
        catalog_seconds: float = 5.0,
        on_result: Callable[[str, int], None] | None = None,
    ) -> None:
        self._keys = key_store
        self._clock = clock
        self._key_cache_seconds = key_cache_seconds
        self._checkers: dict[str, CodeChecker] = {}
        self.link = link
        self.scripts = VerifyScripts(link)
        # one verify call per segment for a turn's checks; a cluster's link sends each its own
        self.turns = CheckTurns(self.scripts) if hasattr(link, "submit") else None
        self.catalog = Catalog(link, ttl=catalog_seconds)
        self.limiter = RateLimiter(self.scripts, clock=clock)
        self._on_result = on_result or (lambda result, count=1: None)
        self.crediter = ClaimCrediter(link, clock=clock, view_seconds=catalog_seconds,
                                      master=key_store.master)
        self.fingerprints = Fingerprints.from_master(key_store.master)
        self.replica_ack = replica_ack_from_env(link)  # ITEMSEAL_REPLICAS (store/standby.py)

    # -- public -------------------------------------------------------------------------

    async def verify(self, tenant: str, request: CheckRequest, client_ip: str) -> Answer:
        """A consumer's check: records the scan, claims the code for a member phone."""
        policy = await self.catalog.policy(tenant)
        phone = normalize_phone(request.phone, policy.phone_region) if request.phone else None
        hits = [Hit(f"ip/{client_ip}", policy.ip_limit)]
        if phone:
            hits.append(Hit(f"phone/{self.fingerprints.phone_key(phone)}", policy.phone_limit))
        self.limiter.refuse_lately(tenant, hits)
        request = self.locate(request, phone)
        decoded = (await self._checker(tenant)).decode(extract_code(request.code))
        skus = await self._skus_of_link(tenant, request.code) if decoded.authentic else ()
        if skus is None:  # a GS1 link whose GTIN is none of the tenant's products
            decoded = replace(decoded, verdict=answers.COUNTERFEIT)
        query = self._query(decoded) if decoded.authentic else None
        if query is None:  # junk checks carrying a phone cannot lock that phone out
            hits = hits[:1]
        limit = self.limiter.prepare(tenant, hits)
        now = int(self._clock())
        context = self._context(policy, request, phone, skus or ())
        # Sent along with the script: what a claim's credit reads first (the phone's card,
        # and its member when this worker has met the phone), or the count of a code
        # refused before Redis (never a round trip of its own).
        prefetch = None
        if query is None:
            extra = self._tally(tenant, decoded.verdict, request, now, policy)
        elif phone:
            prefetch = await self.crediter.prefetch(tenant, phone, decoded.serial)
            extra = prefetch.commands
        else:
            extra = []
        reply, read = await self._round_trip(tenant, limit, [query] if query else [], context,
                                             now, extra)
        if query is None:
            return self._done(Answer(decoded.verdict))
        answer = await self._answer(tenant, policy, reply[0], now, recorded=True)
        if prefetch is not None:
            prefetch.replies = read
            if not reply[0].outbox_entry:  # no claim: learn the phone's card for its next one
                self.crediter.learn(tenant, prefetch)
        if reply[0].outbox_entry and phone:
            answer = await self._credit(tenant, answer, decoded.serial, request, now, prefetch)
            if not answer.points_pending:  # credited: the outbox keeps only what is owed
                await self.crediter.forget_claim(tenant, decoded.serial, reply[0].outbox_entry)
            if self.replica_ack is not None:  # unanswered (503) until the replicas have it
                await self.replica_ack()
        return self._done(answer)

    async def _credit(
        self,
        tenant: str,
        answer: Answer,
        serial: int,
        request: CheckRequest,
        now: int,
        prefetch: Prefetch,
    ) -> Answer:
        """Credit the claim's points now; if that fails the outbox entry is replayed later.

        The claim and its outbox entry were written by the verify script, so a
        failure here loses nothing: ``itemseal points reconcile`` credits it,
        exactly once (the credit is idempotent by serial).
        """
        try:
            credit = await self.crediter.credit_after_check(
                tenant, prefetch, serial, answer.sku or "", request.channel, request.region, now
            )
        except (redis.RedisError, ItemsealError) as exc:
            log.warning("claim of serial %s of %s queued for reconcile: %s", serial, tenant,
                        type(exc).__name__)
            answer.points_pending = True  # this check's own answer (_answer_of): set, not copied
            return answer
        answer.points_awarded, answer.balance, answer.credit = credit.points, credit.balance, credit
        answer.points_pending = credit.pending
        return answer

    @staticmethod
    def locate(request: CheckRequest, phone: str | None) -> CheckRequest:
        """The request with its region from the best source (``points_bridge/regions.py``).

        A declared region counts only when ``region_trusted`` (an authenticated
        caller); else the phone's home region (cached per prefix: a dict hit).
        """
        region, source = regions.resolve(request.region, trusted=request.region_trusted,
                                         phone=phone)
        # built, not ``dataclasses.replace``d: on every check, and replace costs twice as much
        return CheckRequest(request.code, request.phone, request.channel, region,
                            request.region_trusted, source)

    async def lookup(self, tenant: str, code: str, client_ip: str) -> Answer:
        """The brand's look at a code: the same answer, nothing recorded or claimed."""
        policy = await self.catalog.policy(tenant)
        limit = self.limiter.prepare(tenant, [Hit(f"ip/{client_ip}", policy.ip_limit)])
        decoded = (await self._checker(tenant)).decode(extract_code(code))
        skus = await self._skus_of_link(tenant, code) if decoded.authentic else ()
        if skus is None:
            decoded = replace(decoded, verdict=answers.COUNTERFEIT)
        query = self._query(decoded) if decoded.authentic else None
        now = int(self._clock())
        reply, _ = await self._round_trip(tenant, limit, [query] if query else [],
                                          replace(LOOKUP_ONLY, skus=skus or ()), now)
        if query is None:
            return self._done(Answer(decoded.verdict))
        return self._done(await self._answer(tenant, policy, reply[0], now, recorded=False))

    async def verify_batch(self, tenant: str, codes: list[str], client_ip: str) -> list[Answer]:
        """Look up many codes (a distributor's carton) in one pipeline of EVALSHAs."""
        policy = await self.catalog.policy(tenant)
        hit = Hit(f"batch/{client_ip}", policy.batch_limit, len(codes))
        limit = self.limiter.prepare(tenant, [hit])
        checker = await self._checker(tenant)
        found: list[Answer | None] = [None] * len(codes)
        queries, slots = [], []
        texts = [extract_code(text) for text in codes]
        well_formed = []
        for i, (text, parsed) in enumerate(zip(texts, parse_many(texts), strict=True)):
            if isinstance(parsed, Rejected):
                found[i] = Answer(parsed.verdict.value)
            else:
                well_formed.append((i, text, parsed))
        decoded_all = checker.decode_many([(text, parsed) for _, text, parsed in well_formed])
        for (i, _, _), decoded in zip(well_formed, decoded_all, strict=True):
            if decoded.authentic:
                queries.append(self._query(decoded))
                slots.append(i)
            else:
                found[i] = Answer(decoded.verdict)
        now = int(self._clock())
        replies, _ = await self._round_trip(tenant, limit, queries, LOOKUP_ONLY, now)
        names = {sku: await self.catalog.product_name(tenant, sku)
                 for sku in {reply.sku for reply in replies} if sku}
        for i, reply in zip(slots, replies, strict=True):
            found[i] = _answer_of(policy, reply, names.get(reply.sku), now, recorded=False)
        for result, count in Counter(answer.result for answer in found).items():
            self._on_result(result, count)
        return found  # type: ignore[return-value]

    async def ping(self) -> None:
        """Raise StoreError unless Redis answers, over the same link the checks use."""
        await call(self.link, pack(b"PING"))

    # -- internals ----------------------------------------------------------------------

    async def _skus_of_link(self, tenant: str, text: str) -> tuple[str, ...] | None:
        """The SKUs a GS1 link's GTIN allows: () for no GS1 GTIN (any SKU), None for no product.

        The verify script compares the batch's SKU with these in the same
        round trip as the check, so a genuine serial under another product's
        GTIN answers ``counterfeit`` and records nothing; the GTIN index is the
        catalog's, cached, so the common path takes no extra round trip.
        """
        gtin = extract_gtin(text)
        if gtin is None:
            return ()
        return await self.catalog.skus_of_gtin(tenant, gtin) or None

    async def _checker(self, tenant: str) -> CodeChecker:
        """The tenant's checker, its key ring read over the link when it is due."""
        checker = self._checkers.get(tenant)
        if checker is None:
            checker = self._checkers[tenant] = CodeChecker(
                self._keys, tenant, max_age=self._key_cache_seconds
            )
        if checker.stale():
            (raw,) = await call(self.link, pack(b"HGETALL", TenantKeys(tenant).keys.encode()))
            checker.load(hash_pairs(raw))
        return checker

    @staticmethod
    def _query(decoded: Decoded) -> ScanQuery:
        return ScanQuery(decoded.serial, decoded.key_id, decoded.profile.wire_id,
                         decoded.verdict == answers.REVOKED)  # positional: once per code

    def _context(
        self, policy: TenantPolicy, request: CheckRequest, phone: str | None,
        skus: tuple[str, ...],
    ) -> CheckContext:
        region = request.region or ""
        return CheckContext(
            VERIFY,
            channel=CHANNEL_CODES[request.channel],
            region=region,
            phone_fingerprint=self.fingerprints.phone_fingerprint(phone) if phone else 0,
            phone_bit=self.fingerprints.sketch_bit(phone, PHONE_SKETCH_BITS) if phone else 0,
            region_bit=self.fingerprints.sketch_bit(region, REGION_SKETCH_BITS) if region else 0,
            cap=policy.check_cap,
            phone=phone or "",
            channel_name=request.channel,
            skus=skus,
            region_source=request.region_source,
            timezone=policy.timezone,
        )

    @staticmethod
    def _tally(
        tenant: str, result: str, request: CheckRequest, now: int, policy: TenantPolicy
    ) -> list[bytes]:
        """Count a check refused before any script (the script counts the others)."""
        key = TenantKeys(tenant).stats_day(stats.day_of(now, policy.timezone))
        commands = stats.tally_commands(key, result, request.region, request.channel,
                                        request.region_source)
        return [pack(*command) for command in commands]

    async def _round_trip(
        self,
        tenant: str,
        limit: Pending | None,
        queries: list[ScanQuery],
        context: CheckContext,
        now: int,
        reads: list[bytes] = (),
    ) -> tuple[list[ScanReply], list]:
        """Send the rate-limit counts and the code scripts together; judge the limit first.

        A request that crosses its limit is refused (429) although its own
        script ran in the same round trip: a claim it made is undone at once
        (``_unclaim``), and the limiter refuses that client locally, without
        Redis, until Retry-After (see ratelimit.py). The tally of a code
        refused before any script (``reads``) is sent even with the limits
        off. Returns the scans and the replies to ``reads``.
        """
        keys = TenantKeys(tenant)
        scanning = None
        if self.turns is not None and len(queries) == 1:  # joins this turn's call (turns.py)
            scanning, packed = self.turns.scan(keys, queries[0], context, now), []
        else:
            packed = verify_calls(self.scripts, keys, queries, context, now)
        counting = list(limit.commands) if limit is not None else []
        calls = counting + [call for call, _ in packed]
        replies: list = []
        if calls or reads:
            try:
                replies = await self.scripts.run(calls + list(reads))
            except BaseException:
                if scanning is not None:
                    scanning.add_done_callback(forget)
                raise
        read = replies[len(calls) :]
        counted = replies[: len(counting)]
        found: list[ScanReply] = [None] * len(queries)  # type: ignore[list-item]
        if scanning is not None:
            found[0] = await scanning
        for (_, indexes), reply in zip(packed, replies[len(counting) : len(calls)], strict=True):
            for i, scan in zip(indexes, parse_verify_reply(reply), strict=True):
                found[i] = scan
        try:
            self.limiter.settle(limit, counted)
        except RateLimited:
            await self._unclaim(tenant, queries, found, context, now)
            raise
        return found, read

    async def _unclaim(
        self, tenant: str, queries: list[ScanQuery], found: list[ScanReply],
        context: CheckContext, now: int,
    ) -> None:
        """Undo what a refused request claimed: a 429 never claims (``lua/unclaim.lua``)."""
        calls = [unclaim_call(self.scripts, TenantKeys(tenant), query.serial, scan, context, now)
                 for query, scan in zip(queries, found, strict=True) if scan.outbox_entry]
        if calls:
            await self.scripts.run(calls)

    async def _answer(
        self, tenant: str, policy: TenantPolicy, reply: ScanReply, now: int, recorded: bool
    ) -> Answer:
        """Turn the script's reply into an answer; ``recorded``: this call counted a check."""
        name = await self.catalog.product_name(tenant, reply.sku) if reply.sku else None
        return _answer_of(policy, reply, name, now, recorded)

    def _done(self, answer: Answer) -> Answer:
        self._on_result(answer.result, 1)
        return answer


def _answer_of(
    policy: TenantPolicy, reply: ScanReply, name: str | None, now: int, recorded: bool
) -> Answer:
    """The answer to one code, its product's name found (``VerifyEngine._answer``); apart so
    a carton's 1,000 answers are made without a coroutine each."""
    if reply.status != ACTIVE:
        status = reply.status if reply.status in answers.RESULTS else answers.REVOKED
        return Answer(status, reply.sku, name)
    record = reply.record
    if record is None:  # a look-up of a code nobody has checked yet
        return Answer(answers.GENUINE, reply.sku, name, risk=LOW)
    first = recorded and record.count == 1
    risk = LOW
    if record.count > 1:
        risk = risk_level(
            record.count,
            now - record.first_at,
            distinct_estimate(record.phone_sketch, PHONE_SKETCH_BITS),
            distinct_estimate(record.region_sketch, REGION_SKETCH_BITS),
        )
    return Answer(
        answers.GENUINE if first else answers.ALREADY_VERIFIED,
        reply.sku,
        name,
        scan_count=record.count,
        first_verified_at=record.first_at,
        first_channel=record.first_channel,
        risk=risk,
        limit_reached=record.count > policy.check_cap,
        claimed=reply.claimed_now,
    )
