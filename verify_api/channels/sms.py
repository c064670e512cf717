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

import time
from collections.abc import Callable

import redis

from codegen.store.keyspace import TenantKeys
from points_bridge.cards import format_card
from points_bridge.exc import BadPhone, PointsError
from points_bridge.members import MemberStore, earned_for_tier
from points_bridge.outreach.draws import Draws
from points_bridge.sms import outbound
from points_bridge.sms.optout import OptOuts, phone_of
from points_bridge.tiers import tier_for
from verify_api.channels import keywords, replies
from verify_api.channels.config import ChannelConfig, ChannelStore
from verify_api.channels.feedback import FeedbackInbox
from verify_api.channels.gateways import InboundSms
from verify_api.check.engine import CheckRequest, VerifyEngine
from verify_api.exc import InProgress, InvalidField, RateLimited, UnknownNumber

DEDUP_SECONDS = 7 * 86400
PENDING_SECONDS = 60
PENDING = b"\x00pending"


class SmsService:
    """The SMS channel of every tenant."""

    def __init__(
        self,
        client: redis.Redis,
        engine: VerifyEngine,
        channels: ChannelStore,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        wait_seconds: float = 10.0,
    ) -> None:
        self._redis = client
        self.client = client
        self._engine = engine
        self.channels = channels
        self._clock = clock
        self._sleep = sleep
        self._wait = wait_seconds

    def config_for(self, destination: str) -> ChannelConfig:
        """The settings of the tenant that owns the number (or sub-port) ``destination``."""
        tenant = self.channels.tenant_for(destination)
        if tenant is None:
            raise UnknownNumber(f"no tenant has the SMS number {destination!r}")
        return self.channels.get(tenant)

    def handle(self, config: ChannelConfig, msg: InboundSms) -> str:
        """Return the reply to ``msg``; a retry of an answered message gets the same reply."""
        key = TenantKeys(config.tenant).sms_seen(msg.dedup_id)
        for _ in range(3):
            if self._redis.set(key, PENDING, nx=True, ex=PENDING_SECONDS):
                try:
                    reply = self._dispatch(config, msg)
                except BaseException:
                    self._redis.delete(key)  # nothing to replay: the retry acts again
                    raise
                self._redis.set(key, reply.encode(), ex=DEDUP_SECONDS)
                return reply
            stored = self._stored(key)
            if stored is not None:
                return stored
        raise InProgress("this message is being answered: retry later")

    def _stored(self, key: str) -> str | None:
        """Wait for the first delivery's reply; None if its marker went away unanswered."""
        deadline = time.monotonic() + self._wait
        while True:
            value = self._redis.get(key)
            if value is None:
                return None
            if value != PENDING:
                return value.decode()
            if time.monotonic() > deadline:
                raise InProgress("the first delivery of this message is still being answered")
            self._sleep(0.05)

    def _dispatch(self, config: ChannelConfig, msg: InboundSms) -> str:
        intent = keywords.classify(msg.text, config.join_keyword, config.balance_keyword)
        if intent.kind == keywords.CODE:
            return self._check(config, msg.sender, intent.text)
        if intent.kind == keywords.JOIN:
            return self._join(config, msg.sender)
        if intent.kind == keywords.BALANCE:
            return self._balance(config, msg.sender)
        if intent.kind == keywords.STOP:
            OptOuts(self._redis, config.tenant, clock=self._clock).opt_out(
                phone_of(self._redis, config.tenant, msg.sender))
            return config.reply("stop")
        if not intent.text:
            return config.reply("malformed")
        drawn = self._draw(config, msg.sender, intent.text)
        if drawn is not None:
            return drawn
        FeedbackInbox(self._redis, config.tenant).add(
            msg.sender, intent.text, "sms", int(self._clock())
        )
        return config.reply("feedback")

    def _check(self, config: ChannelConfig, sender: str, code: str) -> str:
        return check_code(self._engine, config, sender, code, "sms")[1]

    def _members(self, tenant: str) -> MemberStore:
        return MemberStore(self._redis, tenant, clock=self._clock)

    def queue_reply(self, config: ChannelConfig, msg: InboundSms, reply: str) -> str:
        """Queue ``reply`` to the tenant's outbound sender (gateways that cannot answer inline).

        The id comes from the inbound message, so a gateway's retry queues
        nothing twice. Replies are transactional: no quiet hours; an opted-out
        phone gets only the acknowledgement of its opt-out.
        """
        intent = keywords.classify(msg.text, config.join_keyword, config.balance_keyword)
        kind = outbound.OPTOUT_ACK if intent.kind == keywords.STOP else outbound.REPLY
        phone = phone_of(self._redis, config.tenant, msg.sender)
        box = outbound.Outbox(self._redis, config.tenant, clock=self._clock)
        return box.enqueue(f"r.{msg.dedup_id}", phone, reply, kind)

    def _draw(self, config: ChannelConfig, sender: str, text: str) -> str | None:
        """Enter a keyword draw (``cj#answer``); None if the text is no draw entry."""
        draws = Draws(self._redis, config.tenant, clock=self._clock)
        phone = phone_of(self._redis, config.tenant, sender)
        if draws.get_status(text) is None:
            return None
        if self._members(config.tenant).by_phone(phone) is None:
            return config.reply("not_member")
        return config.reply("draw_" + draws.enter(phone, text))

    def _join(self, config: ChannelConfig, sender: str) -> str:
        try:
            member, created = self._members(config.tenant).join(sender, source="sms")
        except PointsError as exc:
            raise InvalidField("From", str(exc)) from None
        OptOuts(self._redis, config.tenant, clock=self._clock).opt_in(member.phone)
        card = format_card(member.card)
        if created:
            return config.reply("join", card=card)
        return config.reply("join_exists", card=card, balance=member.balance)

    def _balance(self, config: ChannelConfig, sender: str) -> str:
        store = self._members(config.tenant)
        try:
            settings = store.settings()
            member = store.by_phone(store.normalize(sender, settings))
        except PointsError as exc:
            raise InvalidField("From", str(exc)) from None
        if member is None:
            return config.reply("not_member")
        pin = member.pinned_tier if member.pinned_tier in settings.ladder.names else None
        status = tier_for(earned_for_tier(member, settings, int(self._clock())), settings.ladder,
                          pin)
        return config.reply(
            "balance", balance=member.balance, tier=status.name, card=format_card(member.card)
        )


def check_code(
    engine: VerifyEngine, config: ChannelConfig, phone: str, code: str, channel: str
) -> tuple[str | None, str]:
    """Verify ``code`` for ``phone`` (claim and credit); return the result and its wording.

    The rate limits count per caller: the "client IP" of a gateway's post is
    the gateway's, so the sender stands in for it.
    """
    client = f"{channel}/{phone}"
    try:
        try:
            answer = engine.verify(config.tenant, CheckRequest(code, phone, channel), client)
        except BadPhone:  # a sender that is no phone number (a short code): no claim
            answer = engine.verify(config.tenant, CheckRequest(code, None, channel), client)
    except RateLimited:
        return None, config.reply("limited")
    return answer.result, replies.for_answer(config, answer)
