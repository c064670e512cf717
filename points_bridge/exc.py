"""Errors of the points engine, each with a message a user or operator can act on.

All below ``PointsError``, itself below the one root ``codegen.exc.ItemsealError``,
so the HTTP edge and the CLI map every expected failure in one place.
Subclasses keep the offending input as an attribute; messages quote it with
``!r`` and never include a secret (a tenant key or a salt).
"""

from __future__ import annotations

from collections.abc import Iterable

from codegen.exc import ConflictError, ItemsealError, NotFoundError


class PointsError(ItemsealError):
    """An expected failure of points, members, tiers, outbound SMS or outreach."""

    status = 422
    code = "invalid"


class BadPhone(PointsError):
    """Text that is not a valid phone number, so no member can be found or made by it."""

    code = "invalid_field"
    field = "phone"

    def __init__(self, phone: object, reason: str = "not a valid phone number") -> None:
        super().__init__(f"{phone!r}: {reason}; send the number as dialled, e.g. 138 1234 5678")
        self.phone = phone
        self.reason = reason


class BadRegion(PointsError):
    """A tenant's default phone region that phonenumbers does not know."""

    def __init__(self, region: object) -> None:
        super().__init__(
            f"unknown phone region {region!r}: use an ISO 3166-1 alpha-2 code such as 'CN'"
        )
        self.region = region


class BadSecret(PointsError):
    """A tenant key or salt too short (or of the wrong type) to hide what it must hide."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason


class CardSpaceExhausted(PointsError):
    """A card sequence number outside the space a card number can carry."""

    def __init__(self, seq: object, capacity: int) -> None:
        super().__init__(
            f"card sequence {seq!r} is outside [0, {capacity}): the tenant's card space is used up"
            " or the counter is corrupt"
        )
        self.seq = seq
        self.capacity = capacity


class BadRule(PointsError):
    """A campaign or points policy that cannot be applied as written."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"rule {rule!r}: {reason}")
        self.rule = rule
        self.reason = reason


class BadInput(PointsError):
    """Facts the engine cannot work with, e.g. fractional points or a naive datetime."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field}={value!r}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class BadLadder(PointsError):
    """A tier ladder that would place some member in no tier or two."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"tier ladder: {reason}")
        self.reason = reason


class UnknownTier(NotFoundError, PointsError):
    """A tier name (e.g. a manager's pin) that the tenant's ladder does not have."""

    def __init__(self, name: object, known: Iterable[str]) -> None:
        self.known = tuple(known)
        super().__init__(f"unknown tier {name!r}: the ladder has {', '.join(self.known)}")
        self.name = name


class BadSetting(PointsError):
    """A tenant points setting (tiers, cap, expiry, attributes ...) that cannot be used."""

    def __init__(self, name: str, value: object, reason: str) -> None:
        super().__init__(f"points setting {name}={value!r}: {reason}")
        self.name = name
        self.value = value
        self.reason = reason


class BadAttribute(PointsError):
    """A member attribute the tenant did not declare, or a value of the wrong type."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"attribute {name!r}: {reason}")
        self.name = name
        self.reason = reason


class UnknownMember(NotFoundError, PointsError):
    """No member has this phone or card."""

    def __init__(self, tenant: str, who: str) -> None:
        super().__init__(f"tenant {tenant!r} has no member {who!r}")
        self.tenant = tenant
        self.who = who


class PhoneTaken(ConflictError, PointsError):
    """A rebind to a phone that already belongs to another member."""

    def __init__(self, phone: str, card: str) -> None:
        super().__init__(f"phone {phone} already belongs to card {card}")
        self.phone = phone
        self.card = card


class MemberInactive(ConflictError, PointsError):
    """A frozen or cancelled member asked to spend, or a state change that does not apply."""

    def __init__(self, card: str, status: str, action: str) -> None:
        super().__init__(f"member {card} is {status}: cannot {action}")
        self.card = card
        self.member_status = status
        self.action = action


class InsufficientPoints(ConflictError, PointsError):
    """A redemption (or a negative adjustment) larger than the balance."""

    def __init__(self, card: str, balance: int, asked: int) -> None:
        super().__init__(f"member {card} has {balance} points: cannot take {asked}")
        self.card = card
        self.balance = balance
        self.asked = asked


class IdempotencyConflict(ConflictError, PointsError):
    """An idempotency key used again with a different request body."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for a different request:"
            " use a new key for a new request"
        )
        self.key = key


class UnknownCampaign(NotFoundError, PointsError):
    def __init__(self, tenant: str, campaign_id: str) -> None:
        super().__init__(f"tenant {tenant!r} has no campaign {campaign_id!r}")
        self.tenant = tenant
        self.campaign_id = campaign_id


class CampaignExists(ConflictError, PointsError):
    def __init__(self, tenant: str, campaign_id: str) -> None:
        super().__init__(f"tenant {tenant!r} already has campaign {campaign_id!r}")
        self.tenant = tenant
        self.campaign_id = campaign_id


class Contended(PointsError):
    """A member or a serial changed under us more times than a retry allows; try again."""

    status = 503
    code = "contended"


class UnknownDeadLetter(NotFoundError, PointsError):
    """A dead-letter id to replay that the tenant's dead-letter stream (CRM events or
    claims) does not hold."""

    def __init__(self, tenant: str, entry_ids: list[str], command: str = "bridge dead") -> None:
        super().__init__(
            f"no dead letter {', '.join(entry_ids)} for {tenant!r}: see `itemseal {command}`"
        )
        self.tenant = tenant
        self.entry_ids = entry_ids


class UnknownDraw(NotFoundError, PointsError):
    def __init__(self, tenant: str, keyword: str) -> None:
        super().__init__(f"tenant {tenant!r} has no draw {keyword!r}")


class DrawClosed(ConflictError, PointsError):
    def __init__(self, keyword: str) -> None:
        super().__init__(f"the draw {keyword!r} is already closed")


class UnknownSmsCampaign(NotFoundError, PointsError):
    def __init__(self, tenant: str, campaign_id: str) -> None:
        super().__init__(f"tenant {tenant!r} has no SMS campaign {campaign_id!r}")


class SenderError(PointsError):
    """A sender configuration that cannot work (bad template, bad URL)."""


class Stale(Contended):
    """The member changed since the snapshot a figure was computed from (retry)."""


class UnknownReward(NotFoundError, PointsError):
    def __init__(self, tenant: str, item: str) -> None:
        super().__init__(f"tenant {tenant!r} has no reward {item!r}: see `itemseal reward list`")
        self.item = item


class RewardExists(ConflictError, PointsError):
    def __init__(self, tenant: str, item: str) -> None:
        super().__init__(f"tenant {tenant!r} already has reward {item!r}: change it with "
                         "`itemseal reward set`")
        self.item = item


class OutOfStock(ConflictError, PointsError):
    """The reward's last item went to another redemption (nothing was debited)."""

    code = "out_of_stock"

    def __init__(self, item: str) -> None:
        super().__init__(f"reward {item!r} is out of stock: no points were taken")
        self.item = item


class RewardUnavailable(ConflictError, PointsError):
    """A reward that is paused, outside its validity window, or not for the member's tier."""

    code = "reward_unavailable"

    def __init__(self, item: str, reason: str) -> None:
        super().__init__(f"reward {item!r} cannot be redeemed: {reason}")
        self.item = item
        self.reason = reason


class UnknownRedemption(NotFoundError, PointsError):
    def __init__(self, tenant: str, redemption_id: str) -> None:
        super().__init__(f"tenant {tenant!r} has no redemption {redemption_id!r}")
        self.redemption_id = redemption_id


class RedemptionRefused(ConflictError, PointsError):
    """A redemption that cannot move the way asked (refused earlier, coupon used, ...)."""

    code = "redemption_refused"


class CouponRefused(ConflictError, PointsError):
    """A coupon that cannot be used: already used, expired or void (``code`` says which)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownCoupon(NotFoundError, PointsError):
    """A coupon code that is mistyped, forged or not this tenant's (``code`` says which)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
class UnknownShop(NotFoundError, PointsError):
    """No shop of the tenant has this id (``itemseal shop list``)."""

    def __init__(self, tenant: str, shop_id: str) -> None:
        super().__init__(f"tenant {tenant!r} has no shop {shop_id!r}: see itemseal shop list")
        self.tenant = tenant
        self.shop_id = shop_id


class ShopExists(ConflictError, PointsError):
    def __init__(self, tenant: str, shop_id: str) -> None:
        super().__init__(f"tenant {tenant!r} already has a shop {shop_id!r}: use shop set")
        self.shop_id = shop_id


class UnknownPurchase(NotFoundError, PointsError):
    def __init__(self, tenant: str, purchase_id: str) -> None:
        super().__init__(f"tenant {tenant!r} has no purchase {purchase_id!r}")
        self.purchase_id = purchase_id


class AlreadyRefunded(ConflictError, PointsError):
    """A refund of purchase lines of which some were refunded already."""

    code = "already_refunded"

    def __init__(self, purchase_id: str, lines: Iterable[int]) -> None:
        shown = ", ".join(str(n) for n in sorted(lines))
        super().__init__(f"purchase {purchase_id}: line(s) {shown} already refunded")
        self.purchase_id = purchase_id


class InsufficientStoredValue(ConflictError, PointsError):
    """A payment or negative adjustment larger than the member's stored value."""

    code = "insufficient_stored_value"

    def __init__(self, card: str, stored: int, asked: int) -> None:
        super().__init__(f"member {card} has {stored} fen of stored value: cannot take {asked}")
        self.card = card
        self.stored = stored
        self.asked = asked


class ArchiveMissing(PointsError):
    """An archive file Redis lists is not where it was written: history would be incomplete.

    Refused rather than read as an empty history, so no one sees (or exports,
    or reconciles against) a ledger with entries missing.
    """

    status = 503
    code = "archive_missing"

    def __init__(self, path: str, run_id: str) -> None:
        super().__init__(
            f"archived ledger file {path!r} (archive run {run_id}) is missing: restore it"
            " from backup, or mount the archive folder where it was written"
        )
        self.path = path
        self.run_id = run_id
