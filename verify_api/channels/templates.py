"""Reply templates in Chinese and English, rendered to fit one SMS segment.

Pure. One segment holds 160 characters of the GSM 7-bit alphabet (the
extension characters ``^{}\\[~]|€`` count two) or 70 UTF-16 units of anything
else, and a reply that spills into a second segment costs twice and may
arrive out of order. So every template is checked at its fields' worst-case
widths when it is set (``check_template``), and ``render`` shrinks the one
field of unbounded length, the product name, until the reply fits. The IVR
speaks the same texts.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from verify_api.check import answers

ZH, EN = "zh", "en"
LANGUAGES = (ZH, EN)
GSM_LIMIT, UCS2_LIMIT = 160, 70
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
MAX_KEYWORD = 8
MAX_TIER = 16
# The widest value each bounded field can take (card: 12 digits in groups of 4).
WORST_CASE = {
    "count": "65535",
    "date": "2026-12-31",
    "points": "9999999",
    "balance": "999999999",
    "stored": "9999999.99",
    "card": "2300 7457 8089",
    "tier": "T" * MAX_TIER,
    "join_kw": "K" * MAX_KEYWORD,
    "coupon": "1234 5678 9012 345",
    "balance_kw": "K" * MAX_KEYWORD,
}
CHANNEL_NAMES = {
    ZH: {"sms": "短信", "ivr": "电话", "web": "网页", "api": "接口"},
    EN: {"sms": "SMS", "ivr": "phone", "web": "web", "api": "app"},
}
# Template name -> the fields it may use.
FIELDS: dict[str, frozenset[str]] = {
    answers.GENUINE: frozenset({"product"}),
    "claimed": frozenset({"product", "count", "points", "balance"}),
    "pending": frozenset({"product", "balance_kw"}),
    answers.ALREADY_VERIFIED: frozenset({"product", "count", "date", "channel"}),
    answers.NOT_ACTIVATED: frozenset({"product"}),
    answers.RECALLED: frozenset({"product"}),
    answers.REVOKED: frozenset({"product"}),
    answers.COUNTERFEIT: frozenset(),
    answers.MISTYPED: frozenset(),
    answers.MALFORMED: frozenset({"join_kw", "balance_kw"}),
    "limited": frozenset(),
    "join": frozenset({"card", "balance_kw"}),
    "join_exists": frozenset({"card", "balance"}),
    "balance": frozenset({"balance", "stored", "tier", "card"}),
    "not_member": frozenset({"join_kw"}),
    "feedback": frozenset(),
    "stop": frozenset(),
    "ivr_prompt": frozenset(),
    "ivr_mistyped": frozenset(),
    "ivr_malformed": frozenset(),
    "draw_entered": frozenset(),
    "draw_closed": frozenset(),
    "redeemed": frozenset({"product", "points", "balance"}),
    "redeemed_coupon": frozenset({"product", "points", "balance", "coupon"}),
    "redeem_out": frozenset({"product"}),
    "redeem_short": frozenset({"product", "points", "balance"}),
    "redeem_refused": frozenset({"product"}),
    "redeem_unknown": frozenset(),
}
NAMES = tuple(FIELDS)
DEFAULTS: dict[str, dict[str, str]] = {
    ZH: {
        answers.GENUINE: "正品验证通过：{product}。首次查询，感谢您的支持。",
        "claimed": "正品：{product}。第{count}次查询，积分+{points}，当前积分{balance}。",
        "pending": "正品：{product}。积分稍后到账，回复{balance_kw}查询。",
        answers.ALREADY_VERIFIED:
            "正品{product}，但此码已查询{count}次，首次{date}经{channel}。如非本人查询，请谨慎。",
        answers.NOT_ACTIVATED: "此码（{product}）尚未发布销售，请联系品牌方核实。",
        answers.RECALLED: "{product}属召回批次，请勿使用，并联系品牌方。",
        answers.REVOKED: "此码已失效（{product}），请联系品牌方。",
        answers.COUNTERFEIT: "此码不是品牌方发出的防伪码，商品可能是假冒的，请谨慎。",
        answers.MISTYPED: "防伪码有误，请核对数字后重新发送。",
        answers.MALFORMED:
            "未识别到防伪码，请发送涂层下的数字。回复{join_kw}注册会员，{balance_kw}查积分。",
        "limited": "查询过于频繁，请稍后再试。",
        "join": "欢迎加入会员！会员卡号{card}。回复{balance_kw}查询积分。",
        "join_exists": "您已是会员，卡号{card}，当前积分{balance}。",
        "balance": "您的积分：{balance}，储值：{stored}元，等级：{tier}，卡号{card}。",
        "not_member": "您还不是会员，回复{join_kw}即可注册。",
        "feedback": "您的留言已收到，我们会尽快回复，谢谢！",
        "stop": "已收到您的退订请求。",
        "ivr_prompt":
            "请输入涂层下的防伪码，以井号键结束。注册会员请按1和井号，查询积分请按2和井号。",
        "ivr_mistyped": "防伪码有误，请核对数字后重新输入。",
        "ivr_malformed": "未识别到防伪码，请输入涂层下的数字，以井号键结束。",
        "draw_entered": "您已成功参加抽奖，开奖后将短信通知中奖者。",
        "draw_closed": "本次抽奖已结束或不存在，感谢您的参与。",
        "redeemed": "兑换成功：{product}，扣{points}积分，余{balance}。",
        "redeemed_coupon": "兑换成功：{product}，券码{coupon}，扣{points}积分，余{balance}。",
        "redeem_out": "{product}已兑完，积分未扣除。",
        "redeem_short": "积分不足：{product}需{points}积分，您有{balance}。",
        "redeem_refused": "{product}暂不可兑换，积分未扣除。",
        "redeem_unknown": "没有这个礼品，请核对编号后重发，如DH#礼品编号。",
    },
    EN: {
        answers.GENUINE: "Genuine: {product}. First check of this code. Thank you for checking.",
        "claimed": "Genuine: {product}. Check {count} of this code: +{points} points,"
        " balance {balance}.",
        "pending": "Genuine: {product}. Your points will be credited shortly; text {balance_kw}"
        " for your balance.",
        answers.ALREADY_VERIFIED: "Genuine {product}, but this code was checked {count} times,"
        " first on {date} by {channel}. If that was not you, the label may be a copy.",
        answers.NOT_ACTIVATED: "This code ({product}) has not been released for sale."
        " Please contact the brand.",
        answers.RECALLED: "{product} belongs to a recalled batch. Do not use it; contact the"
        " brand.",
        answers.REVOKED: "This code ({product}) is no longer valid. Please contact the brand.",
        answers.COUNTERFEIT: answers.MESSAGES[answers.COUNTERFEIT],
        answers.MISTYPED: "The code looks mistyped: please check the digits and send it again.",
        answers.MALFORMED: "No product code found: send the digits under the scratch-off. Text"
        " {join_kw} to join, {balance_kw} for your points.",
        "limited": "Too many checks: please try again in a few minutes.",
        "join": "Welcome! Your member card is {card}. Text {balance_kw} for your points"
        " balance.",
        "join_exists": "You are already a member: card {card}, balance {balance} points.",
        "balance": "Points balance: {balance}, stored value {stored}, tier {tier},"
        " card {card}.",
        "not_member": "You are not a member yet: text {join_kw} to join.",
        "feedback": "Thank you, we received your message and will reply soon.",
        "stop": "Your opt-out request has been received.",
        "ivr_prompt": "Please key in the code under the scratch-off, then press the hash key. To"
        " join, press 1 and hash; for your points, press 2 and hash.",
        "ivr_mistyped": "The code looks mistyped. Please check the digits and key them in again.",
        "ivr_malformed": "No product code found. Please key in the digits under the"
        " scratch-off, then press the hash key.",
        "draw_entered": "You are in the draw. Winners will be told by SMS.",
        "draw_closed": "This draw is closed or does not exist. Thank you for taking part.",
        "redeemed": "Redeemed: {product}, -{points} points, balance {balance}.",
        "redeemed_coupon": "Redeemed: {product}. Coupon {coupon}, -{points} points, balance"
        " {balance}.",
        "redeem_out": "{product} is out of stock; no points were taken.",
        "redeem_short": "Not enough points: {product} needs {points}, you have {balance}.",
        "redeem_refused": "{product} cannot be redeemed now; no points were taken.",
        "redeem_unknown": "No such reward: check its id and send e.g. DH#mug again.",
    },
}


def is_gsm7(text: str) -> bool:
    return all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text)


def segment_units(text: str) -> tuple[int, int]:
    """Return (units used, units one segment holds) for ``text``."""
    if is_gsm7(text):
        return len(text) + sum(c in _GSM_EXTENDED for c in text), GSM_LIMIT
    return len(text.encode("utf-16-le")) // 2, UCS2_LIMIT


def fits(text: str) -> bool:
    used, limit = segment_units(text)
    return used <= limit


def used_fields(template: str) -> set[str]:
    """The field names of a template; raise ValueError on a broken one."""
    names = set()
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"bad field {{{name}}}: write plain {{name}}")
        names.add(name)
    return names


def check_template(name: str, template: str) -> str:
    """Validate a tenant's template: known name, allowed fields, one segment at worst case."""
    if name not in FIELDS:
        raise ValueError(f"unknown template {name!r}: one of {', '.join(NAMES)}")
    unknown = used_fields(template) - FIELDS[name]
    if unknown:
        allowed = ", ".join(f"{{{f}}}" for f in sorted(FIELDS[name])) or "none"
        raise ValueError(f"template {name!r} cannot use {sorted(unknown)}: allowed {allowed}")
    text = fill(template, worst_case_fields(template, ZH if not is_gsm7(template) else EN))
    used, limit = segment_units(text)
    if used > limit:
        raise ValueError(
            f"template {name!r} needs {used} units at its fields' widest, one SMS holds {limit}"
        )
    return template


def worst_case_fields(template: str, language: str, product: str = "") -> dict[str, str]:
    channel = max(CHANNEL_NAMES[language].values(), key=len)
    return {**WORST_CASE, "channel": channel, "product": product}


def fill(template: str, fields: Mapping[str, str]) -> str:
    return template.format_map({name: fields.get(name, "") for name in used_fields(template)})


def _ellipsis(rest: str) -> str:
    return "..." if is_gsm7(rest) else "…"


def render(template: str, fields: Mapping[str, str]) -> str:
    """Fill ``template``; shorten the product name (then the text) until one segment holds it."""
    text = fill(template, fields)
    if fits(text):
        return text
    product = fields.get("product") or ""
    if product and "product" in used_fields(template):
        lo, hi = 0, len(product) - 1  # the longest prefix of the product name that fits
        best = None
        while lo <= hi:
            mid = (lo + hi) // 2
            cut = product[:mid].rstrip()
            candidate = fill(template, {**fields, "product": cut + _ellipsis(cut) if cut else ""})
            if fits(candidate):
                best, lo = candidate, mid + 1
            else:
                hi = mid - 1
        if best is not None:
            return best
    return _cut(text)


def _cut(text: str) -> str:
    while not fits(text + _ellipsis(text)):
        text = text[:-1]
    return text + _ellipsis(text)


def channel_name(language: str, channel: str | None) -> str:
    return CHANNEL_NAMES[language].get(channel or "", channel or "?")
