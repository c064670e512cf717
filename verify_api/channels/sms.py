"""Answer an inbound SMS: find the tenant, drop retries, and act on what it asks.

A gateway that gets no answer in time posts the same message again. The
first delivery of a message takes a marker (``SET NX``, ``PENDING_SECONDS``)
under the tenant and the message's id (``InboundSms.dedup_id``: the
gateway's id, or a hash of sender, time and text); when it has answered, the
reply replaces the marker for ``DEDUP_SECONDS``. A retry that finds the
reply sends it again and does nothing else; one that finds the marker waits
for the reply, so concurrent deliveries give the same answer and only one
of them acts. A delivery that crashed leaves its marker to expire, and the
next retry acts: a code it already claimed answers ``already_verified`` and
credits nothing twice (the claim is exactly-once in the verify script).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from codegen.amounts import yuan
from codegen.coupons import printed
from codegen.exc import StoreError
from codegen.store.keyspace import PointsKeys, TenantKeys
from codegen.store.wire import Link, ScriptSet, call, hash_pairs, pack
from points_bridge.cards import format_card
from points_bridge.credit import ClaimCrediter
from points_bridge.exc import (
    BadInput,
    BadPhone,
    InsufficientPoints,
    OutOfStock,
    PointsError,
    UnknownReward,
)
from points_bridge.members import Member, earned_for_tier, parse_index
from points_bridge.outreach.draws import OPEN, split_entry
from points_bridge.phones import normalize_phone
from points_bridge.rewards import RewardStore
from points_bridge.settings import PointsSettings
from points_bridge.sms import outbound
from points_bridge.tiers import tier_for
from verify_api.channels import keywords, replies
from verify_api.channels.config import ChannelConfig, ChannelDirectory
from verify_api.channels.feedback import FeedbackInbox
from verify_api.channels.gateways import InboundSms
from verify_api.check.engine import CheckRequest, VerifyEngine
from verify_api.exc import InProgress, InvalidField, RateLimited, UnknownNumber

log = logging.getLogger(__name__)
DEDUP_SECONDS = 7 * 86400
PENDING_SECONDS = 60
PENDING = b"\x00pending"


class _Noting:
    """A tenant's ``ChannelConfig`` that remembers the reply template it rendered last:
    the outcome the inbound log records (``join``, ``join_exists``, ``not_member``,
    ``redeemed``, ``redeem_out``, ``claimed``, ``counterfeit`` ...)."""

    def __init__(self, config: ChannelConfig) -> None:
        self._config = config
        self.outcome = ""
        self.kind = ""
        self.keyword = ""

    def __getattr__(self, name: str):
        return getattr(self._config, name)

    def reply(self, name: str, **fields: object) -> str:
        self.outcome = name
        return self._config.reply(name, **fields)


class SmsService:
    """The SMS channel of every tenant, over the worker's asyncio link.

    Members are found and made by the check engine's crediter (the same
    reads and scripts as a claim's credit); opt-outs, draw entries, feedback
    and queued replies are single commands or scripts packed here from the
    stores' own definitions (``Outbox.enqueue_call``, ``FeedbackInbox.add_command``).
    """

    def __init__(
        self,
        link: Link,
        engine: VerifyEngine,
        channels: ChannelDirectory,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wait_seconds: float = 10.0,
        rewards: Callable[[str], RewardStore] | None = None,
    ) -> None:
        self._link = link
        self._rewards = rewards
        self._scripts = ScriptSet(link, "points_bridge", ("out_enqueue",))
        self._engine = engine
        self._crediter: ClaimCrediter = engine.crediter
        self.channels = channels
        self._clock = clock
        self._sleep = sleep
        self._wait = wait_seconds

    async def config_for(self, destination: str) -> ChannelConfig:
        """The settings of the tenant that owns the number (or sub-port) ``destination``."""
        tenant = await self.channels.tenant_for(destination)
        if tenant is None:
            raise UnknownNumber(f"no tenant has the SMS number {destination!r}")
        return await self.channels.get(tenant)

    async def handle(self, config: ChannelConfig, msg: InboundSms) -> str:
        """Return the reply to ``msg``; a retry of an answered message gets the same reply."""
        key = TenantKeys(config.tenant).sms_seen(msg.dedup_id).encode()
        for _ in range(3):
            (taken,) = await self._run(pack(b"SET", key, PENDING, b"NX", b"EX",
                                            b"%d" % PENDING_SECONDS))
            if taken is not None:
                noting = _Noting(config)
                try:
                    reply = await self._dispatch(noting, msg)  # type: ignore[arg-type]
                except BaseException:
                    await self._run(pack(b"DEL", key))  # nothing to replay: the retry acts again
                    raise
                await self._run(pack(b"SET", key, reply.encode(), b"EX", b"%d" % DEDUP_SECONDS))
                await self._log(config, msg, noting)
                return reply
            stored = await self._stored(key)
            if stored is not None:
                return stored
        raise InProgress("this message is being answered: retry later")

    async def _stored(self, key: bytes) -> str | None:
        """Wait for the first delivery's reply; None if its marker went away unanswered."""
        deadline = time.monotonic() + self._wait
        while True:
            (value,) = await self._run(pack(b"GET", key))
            if value is None:
                return None
            if value != PENDING:
                return value.decode()
            if time.monotonic() > deadline:
                raise InProgress("the first delivery of this message is still being answered")
            await self._sleep(0.05)

    async def _log(self, config: ChannelConfig, msg: InboundSms, noting: _Noting) -> None:
        """Append the message, what it asked and how it ended to the tenant's inbound log.

        The log keeps ``config.sms_log_days`` (``XADD MINID``); a reply within
        ``REPLY_DAYS`` of an SMS campaign to the phone names that campaign.
        A failure here is logged, not raised: the member has had the answer.
        """
        now = int(self._clock())
        try:
            phone = await self.phone_of(config.tenant, msg.sender)
            (asked,) = await self._run(pack(b"GET", PointsKeys(config.tenant).sms_asked(phone)
                                            .encode()))
            oldest = max(now - config.sms_log_days * 86400, 0) * 1000
            fields = {"at": str(now), "phone": phone, "text": msg.text[:320], "kind": noting.kind,
                      "keyword": noting.keyword, "outcome": noting.outcome,
                      "campaign": (asked or b"").decode(), "id": msg.dedup_id}
            body: list[bytes] = []
            for name, value in fields.items():
                body += [name.encode(), value.encode()]
            await self._append(TenantKeys(config.tenant).sms_inbound.encode(), now * 1000,
                               oldest, body)
        except (StoreError, OSError) as exc:
            log.warning("inbound SMS of %s not logged: %s", config.tenant, exc)

    async def _append(self, stream: bytes, at_ms: int, oldest_ms: int, body: list[bytes]) -> None:
        """XADD with an id from the injected clock (``<ms>-<seq>``, after the stream's last),
        so the reports' day ranges and the retention (``MINID``) follow the same clock;
        Redis 6.2 has no ``<ms>-*``. Two workers racing for one id: the loser takes the next.
        """
        for _ in range(5):
            (top,) = await self._run(pack(b"XREVRANGE", stream, b"+", b"-", b"COUNT", b"1"))
            ms, seq = at_ms, 0
            if top:
                last_ms, _, last_seq = top[0][0].decode().partition("-")
                if int(last_ms) >= ms:
                    ms, seq = int(last_ms), int(last_seq) + 1
            try:
                await self._run(pack(b"XADD", stream, b"MINID", b"%d" % oldest_ms,
                                     b"%d-%d" % (ms, seq), *body))
                return
            except StoreError:  # that id was taken a moment ago
                continue
        raise StoreError("could not append to the inbound SMS log")

    async def join_reply(self, config: ChannelConfig, sender: str) -> str:
        """The join keyword's answer (the keypad's menu uses it too)."""
        return await self._join(config, sender)

    async def balance_reply(self, config: ChannelConfig, sender: str) -> str:
        """The balance keyword's answer (the keypad's menu uses it too)."""
        return await self._balance(config, sender)

    async def _dispatch(self, config: ChannelConfig, msg: InboundSms) -> str:
        intent = keywords.classify(msg.text, config.join_keyword, config.balance_keyword)
        noting = config if isinstance(config, _Noting) else _Noting(config)
        noting.kind = intent.kind
        if intent.kind in (keywords.JOIN, keywords.BALANCE, keywords.STOP):
            noting.keyword = keywords.fold(msg.text)
        elif intent.kind == keywords.REDEEM:
            noting.keyword = "dh"
        if intent.kind == keywords.CODE:
            return (await check_code(self._engine, config, msg.sender, intent.text, "sms"))[1]
        if intent.kind == keywords.JOIN:
            return await self._join(config, msg.sender)
        if intent.kind == keywords.BALANCE:
            return await self._balance(config, msg.sender)
        if intent.kind == keywords.REDEEM and self._rewards is not None:
            return await self._redeem(config, msg, intent.text)
        keys = PointsKeys(config.tenant)
        if intent.kind == keywords.STOP:
            phone = await self.phone_of(config.tenant, msg.sender)
            await self._run(pack(b"HSETNX", keys.optouts.encode(), phone.encode(),
                                 b"%d" % int(self._clock())))
            return config.reply("stop")
        if not intent.text:
            noting.kind = "unknown"
            return config.reply("malformed")
        drawn = await self._draw(config, msg.sender, intent.text)
        if drawn is not None:
            noting.kind, noting.keyword = "draw", (split_entry(intent.text) or ("",))[0]
            return drawn
        inbox = FeedbackInbox(None, config.tenant)
        await self._run(inbox.add_command(msg.sender, intent.text, "sms", int(self._clock())))
        return config.reply("feedback")

    async def queue_reply(self, config: ChannelConfig, msg: InboundSms, reply: str) -> str:
        """Queue ``reply`` to the tenant's outbound sender (gateways that cannot answer inline).

        The id comes from the inbound message, so a gateway's retry queues
        nothing twice. Replies are transactional: no quiet hours; an opted-out
        phone gets only the acknowledgement of its opt-out.
        """
        intent = keywords.classify(msg.text, config.join_keyword, config.balance_keyword)
        kind = outbound.OPTOUT_ACK if intent.kind == keywords.STOP else outbound.REPLY
        phone = await self.phone_of(config.tenant, msg.sender)
        keys, body = outbound.enqueue_call(PointsKeys(config.tenant), f"r.{msg.dedup_id}", phone,
                                           reply, kind, int(self._clock()))
        scripts = self._scripts
        (done,) = await scripts.run([scripts.evalsha("out_enqueue", keys, (body.encode(),))])
        return done.decode()

    async def phone_of(self, tenant: str, phone: str) -> str:
        """The E.164 form of a phone as texted (``optout.phone_of``, over the link)."""
        try:
            return normalize_phone(phone, (await self._settings(tenant)).region)
        except PointsError:
            return "".join(c for c in phone if c.isdigit() or c == "+") or phone

    async def _settings(self, tenant: str) -> PointsSettings:
        return (await self._crediter.tenant_view(tenant, "")).settings

    async def _draw(self, config: ChannelConfig, sender: str, text: str) -> str | None:
        """Enter a keyword draw (``cj#answer``); None if the text is no draw entry."""
        parsed = split_entry(text)
        if parsed is None:
            return None
        keyword, answer = parsed
        keys = PointsKeys(config.tenant)
        draw = keys.draw(keyword).encode()
        ((status, right),) = await self._run(pack(b"HMGET", draw, b"status", b"answer"))
        if status is None:
            return None
        phone = await self.phone_of(config.tenant, sender)
        if await self._member_of(config.tenant, phone) is None:
            return config.reply("not_member")
        if status.decode() != OPEN:
            return config.reply("draw_closed")
        entry = b"%d" % int(answer == (right or b"").decode())
        await self._run(pack(b"HSETNX", keys.draw_entries(keyword).encode(), phone.encode(), entry))
        return config.reply("draw_entered")

    async def _join(self, config: ChannelConfig, sender: str) -> str:
        try:
            settings = await self._settings(config.tenant)
            e164 = normalize_phone(sender, settings.region)
            member, created = await self._crediter.ensure_member(
                config.tenant, e164, settings, int(self._clock()), source="sms")
        except PointsError as exc:
            raise InvalidField("From", str(exc)) from None
        await self._run(pack(b"HDEL", PointsKeys(config.tenant).optouts.encode(),
                             member.phone.encode()))
        card = format_card(member.card)
        if created:
            return config.reply("join", card=card)
        return config.reply("join_exists", card=card, balance=member.balance)

    async def _balance(self, config: ChannelConfig, sender: str) -> str:
        try:
            settings = await self._settings(config.tenant)
            e164 = normalize_phone(sender, settings.region)
        except PointsError as exc:
            raise InvalidField("From", str(exc)) from None
        member = await self._member_of(config.tenant, e164)
        if member is None:
            return config.reply("not_member")
        pin = member.pinned_tier if member.pinned_tier in settings.ladder.names else None
        status = tier_for(earned_for_tier(member, settings, int(self._clock())), settings.ladder,
                          pin)
        return config.reply(
            "balance", balance=member.balance, stored=yuan(member.stored), tier=status.name,
            card=format_card(member.card),
        )

    async def _redeem(self, config: ChannelConfig, msg: InboundSms, item: str) -> str:
        """``DH#<item>``: redeem for the sender, once per message (the key is its dedup id).

        The rewards store is synchronous (redis-py, like the CLI's and the admin
        routes'), so it runs in the thread pool, never on the event loop.
        """
        phone = await self.phone_of(config.tenant, msg.sender)
        member = await self._member_of(config.tenant, phone)
        if member is None:
            return config.reply("not_member")
        store = self._rewards(config.tenant)  # type: ignore[misc]
        try:
            reward = await asyncio.to_thread(store.get, item)
        except (UnknownReward, BadInput):
            return config.reply("redeem_unknown")
        try:
            done = await asyncio.to_thread(store.redeem, member.card, reward.item,
                                           key=f"sms:{msg.dedup_id}", channel="sms")
        except OutOfStock:
            return config.reply("redeem_out", product=reward.label(config.language))
        except InsufficientPoints as exc:
            return config.reply("redeem_short", product=reward.label(config.language),
                                points=reward.points, balance=exc.balance)
        except PointsError:
            return config.reply("redeem_refused", product=reward.label(config.language))
        balance = done.balance if done.balance is not None else member.balance
        if done.coupon:
            return config.reply("redeemed_coupon", product=reward.label(config.language),
                                points=done.points, balance=balance, coupon=printed(done.coupon))
        return config.reply("redeemed", product=reward.label(config.language),
                            points=done.points, balance=balance)

    async def _member_of(self, tenant: str, e164: str) -> Member | None:
        """The member whose record names this phone (``MemberStore.by_phone`` over the link)."""
        keys = PointsKeys(tenant)
        card, _ = parse_index((await self._run(pack(b"GET", keys.phone(e164).encode())))[0])
        if card is None:
            return None
        (raw,) = await self._run(pack(b"HGETALL", keys.member(card).encode()))
        fields = {k.decode(): v.decode() for k, v in hash_pairs(raw).items()}
        if not fields.get("status") or fields.get("phone") != e164:
            return None
        return Member.from_record(tenant, card, fields)

    async def _run(self, *commands: bytes) -> list:
        return await call(self._link, *commands)


async def check_code(
    engine: VerifyEngine, config: ChannelConfig, phone: str, code: str, channel: str
) -> tuple[str | None, str]:
    """Verify ``code`` for ``phone`` (claim and credit); return the result and its wording.

    The rate limits count per caller: the "client IP" of a gateway's post is
    the gateway's, so the sender stands in for it.
    """
    client = f"{channel}/{phone}"
    try:
        try:
            answer = await engine.verify(config.tenant, CheckRequest(code, phone, channel),
                                         client)
        except BadPhone:  # a sender that is no phone number (a short code): no claim
            answer = await engine.verify(config.tenant, CheckRequest(code, None, channel),
                                         client)
    except RateLimited:
        return None, config.reply("limited")
    return answer.result, replies.for_answer(config, answer)
