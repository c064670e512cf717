"""The page behind the QR code: the result in words and colour, the product, a claim form.

Pure: ``page(...)`` returns the HTML. No JavaScript, no outside assets, every
value escaped; readable on a small phone. Loading the page is a consumer's
check (recorded, channel ``web``): that is what makes a second visitor see
"checked before". A link preview or prefetch (``is_preview``: a chat app's
preview bot, a browser's prefetch or prerender) records nothing: it gets a
page with a button, and the check happens when a person presses it. The
form posts the phone to claim the points; the verify
script claims for the first check *with a phone*, so a claim after the
page's own phoneless check still credits (until the tenant's check cap).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

from codegen.words import plural
from verify_api.channels.templates import EN, ZH, channel_name
from verify_api.check import answers
from verify_api.check.answers import Answer

GREEN, AMBER, RED, GREY = "#1b7f3b", "#9a5b00", "#b3261e", "#555555"
COLOURS = {
    answers.GENUINE: GREEN,
    answers.ALREADY_VERIFIED: AMBER,
    answers.NOT_ACTIVATED: RED,
    answers.RECALLED: RED,
    answers.REVOKED: RED,
    answers.COUNTERFEIT: RED,
    answers.MISTYPED: GREY,
    answers.MALFORMED: GREY,
}
CLAIMABLE = frozenset((answers.GENUINE, answers.ALREADY_VERIFIED))
TEXT = {
    EN: {
        "lang": "en",
        answers.GENUINE: "Genuine product",
        answers.ALREADY_VERIFIED: "Genuine, checked before",
        answers.NOT_ACTIVATED: "Not released for sale",
        answers.RECALLED: "Recalled batch: do not use",
        answers.REVOKED: "This code is no longer valid",
        answers.COUNTERFEIT: "Counterfeit: not issued by the brand",
        answers.MISTYPED: "Mistyped code",
        answers.MALFORMED: "Not a product code",
        "first": "This is the first check of this code. Thank you for checking.",
        "before": "This code was checked {times} before, first on {date} (by {channel}). If"
        " that was not you, the label may be a copy.",
        "limit": "This code has reached its check limit.",
        "red": "Do not use this product; please contact the brand.",
        "retry": "Please check the digits under the scratch-off and enter them again.",
        "code": "Code",
        "enter": "Check",
        "description": "About this product",
        "usage": "How to use",
        "claim": "Claim your points",
        "phone": "Mobile number",
        "submit": "Claim points",
        "credited": "+{points} points credited. Your balance: {balance} points (card {card}).",
        "pending": "Your points will be credited shortly.",
        "spent": "No points: this code's points have already been claimed.",
        "bad_phone": "That is not a mobile number: please check it.",
        "busy": "Too many checks: please try again in a few minutes.",
        "expired": "This form has expired: please load the page again.",
        "unknown": "Unknown brand.",
        "preview": "Press the button to check this product's code.",
        "check": "Check this code",
    },
    ZH: {
        "lang": "zh-CN",
        answers.GENUINE: "正品",
        answers.ALREADY_VERIFIED: "正品，此码已被查询过",
        answers.NOT_ACTIVATED: "此码尚未发布销售",
        answers.RECALLED: "召回批次，请勿使用",
        answers.REVOKED: "此码已失效",
        answers.COUNTERFEIT: "假冒：此码不是品牌方发出的",
        answers.MISTYPED: "防伪码输入有误",
        answers.MALFORMED: "这不是防伪码",
        "first": "这是此码的首次查询，感谢您的支持。",
        "before": "此码之前已被查询{n}次，首次查询于{date}（{channel}）。"
        "如非本人查询，标签可能被复制。",
        "limit": "此码已达到查询次数上限。",
        "red": "请勿使用此商品，并联系品牌方。",
        "retry": "请核对涂层下的数字后重新输入。",
        "code": "防伪码",
        "enter": "查询",
        "description": "产品介绍",
        "usage": "使用方法",
        "claim": "领取积分",
        "phone": "手机号码",
        "submit": "领取积分",
        "credited": "积分+{points}，当前积分{balance}（会员卡号{card}）。",
        "pending": "积分稍后到账。",
        "spent": "此码的积分已被领取。",
        "bad_phone": "手机号码有误，请核对。",
        "busy": "查询过于频繁，请稍后再试。",
        "expired": "表单已过期，请重新打开页面。",
        "unknown": "未知品牌。",
        "preview": "请点击按钮查询此商品的防伪码。",
        "check": "查询此码",
    },
}
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;padding:16px;max-width:32rem;"
    "margin-inline:auto;line-height:1.45;color:#1f1f1f}"
    ".result{border-left:8px solid;padding:12px 16px;margin:0 0 16px;border-radius:4px;"
    "background:#f6f6f6}.result h1{font-size:1.5rem;margin:0 0 8px}"
    "label,input,button{display:block;width:100%;box-sizing:border-box;font-size:1.1rem}"
    "input{padding:10px;margin:4px 0 12px}button{padding:12px;border:0;border-radius:4px;"
    "background:#1f4e8c;color:#fff}.note{padding:10px 12px;border-radius:4px;background:#eef5ee}"
    ".error{background:#fbeaea}h2{font-size:1.15rem}"
)


@dataclass(frozen=True)
class PageInput:
    """What one page shows: the answer and the facts around it."""

    tenant: str
    brand: str
    language: str
    code: str
    answer: Answer | None = None
    description: str = ""
    usage: str = ""
    csrf: str = ""
    claim: Answer | None = None
    error: str | None = None  # a key of TEXT: bad_phone, busy, expired, unknown
    preview_action: str = ""  # a preview: nothing checked, a button to this URL checks


def _date(ts: int | None) -> str:
    return (answers.iso_time(ts) or "?")[:10]


def _result(p: PageInput, t: dict[str, str]) -> str:
    a = p.answer
    if a is None:
        return ""
    colour = COLOURS[a.result]
    lines = []
    if a.result == answers.GENUINE:
        lines.append(t["first"])
    elif a.result == answers.ALREADY_VERIFIED:
        lines.append(
            t["before"].format(
                n=max(a.scan_count - 1, 1), times=plural(max(a.scan_count - 1, 1), "time"),
                date=_date(a.first_verified_at),
                channel=channel_name(p.language, a.first_channel),
            )
        )
        if a.limit_reached:
            lines.append(t["limit"])
    elif a.result in (answers.MISTYPED, answers.MALFORMED):
        lines.append(t["retry"])
    else:
        lines.append(t["red"])
    product = f"<p id=\"product\"><strong>{escape(a.product_name or a.sku or '')}</strong></p>"
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    return (
        f'<section class="result" id="result" data-result="{a.result}" style="border-color:'
        f'{colour}"><h1 style="color:{colour}">{escape(t[a.result])}</h1>'
        f"{product if a.sku else ''}{body}</section>"
    )


def _facts(p: PageInput, t: dict[str, str]) -> str:
    out = []
    for key, text in (("description", p.description), ("usage", p.usage)):
        if text:
            out.append(f'<section id="{key}"><h2>{t[key]}</h2><p>{escape(text)}</p></section>')
    return "".join(out)


def _claim(p: PageInput, t: dict[str, str]) -> str:
    c = p.claim
    if c is None:
        return ""
    if c.points_pending:
        text, cls = t["pending"], "note"
    elif c.credit is not None and not c.credit.duplicate:
        text = t["credited"].format(
            points=c.points_awarded, balance=c.balance, card=c.credit.member_card
        )
        cls = "note"
    else:
        text, cls = t["spent"], "note error"
    return f'<p class="{cls}" id="points">{escape(text)}</p>'


def _form(p: PageInput, t: dict[str, str]) -> str:
    a = p.answer
    if a is None or p.claim is not None or a.result not in CLAIMABLE:
        return ""
    action = f"/t/{escape(p.tenant)}/v/{escape(p.code)}"
    return (
        f'<form method="post" action="{action}" id="claim-form"><h2>{t["claim"]}</h2>'
        f'<label for="phone">{t["phone"]}</label>'
        '<input id="phone" name="phone" type="tel" inputmode="tel" autocomplete="tel"'
        ' maxlength="32" required>'
        f'<input type="hidden" name="csrf" value="{escape(p.csrf)}">'
        f'<button type="submit">{t["submit"]}</button></form>'
    )


def _preview(p: PageInput, t: dict[str, str]) -> str:
    """The button a person presses; a preview bot never does (a GET it would not follow)."""
    if not p.preview_action:
        return ""
    return (
        f'<form method="get" action="{escape(p.preview_action)}" id="check-form">'
        f'<p class="note">{escape(t["preview"])}</p>'
        f'<button type="submit">{escape(t["check"])}</button></form>'
    )


_PREVIEW_AGENTS = re.compile(
    r"facebookexternalhit|facebookcatalog|Facebot|WhatsApp|Slackbot|Slack-ImgProxy|TelegramBot"
    r"|Twitterbot|LinkedInBot|Discordbot|SkypeUriPreview|redditbot|Pinterest|vkShare"
    r"|Embedly|Iframely|Google-PageRenderer|bingbot|Googlebot|Applebot|Bytespider"
    r"|YandexBot|Baiduspider|Sogou|360Spider|Mattermost|Snapchat|Viber|LINE-Parts"
    r"|kakaotalk-scrap|Yahoo! Slurp|MicroMessenger-Preview|WeChatShareExtension",
    re.IGNORECASE,
)


def is_preview(user_agent: str | None, purpose: str | None, sec_purpose: str | None,
               moz: str | None = None) -> bool:
    """A request no person is looking at yet: a link preview bot, a prefetch or a prerender.

    ``Sec-Purpose: prefetch`` (and ``prefetch;prerender``) is what browsers
    send now; ``Purpose: prefetch`` and ``X-Moz: prefetch`` the older forms.
    The agents are the link-preview fetchers of chat and social apps and
    crawlers. WeChat's in-app browser (``MicroMessenger``) is a person
    reading the page and is *not* one of them.
    """
    for value in (purpose, sec_purpose, moz):
        if value and "prefetch" in value.lower():
            return True
    return bool(user_agent) and _PREVIEW_AGENTS.search(user_agent) is not None


def _reenter(p: PageInput, t: dict[str, str]) -> str:
    a = p.answer
    if p.preview_action:
        return ""
    if a is not None and a.result not in (answers.MISTYPED, answers.MALFORMED):
        return ""
    action = f"/t/{escape(p.tenant)}/v"
    return (
        f'<form method="get" action="{action}" id="reenter-form">'
        f'<label for="code">{t["code"]}</label>'
        f'<input id="code" name="code" inputmode="numeric" maxlength="64"'
        f' value="{escape(p.code)}" required>'
        f'<button type="submit">{t["enter"]}</button></form>'
    )


def page(p: PageInput) -> str:
    """The whole page as HTML."""
    t = TEXT[p.language]
    error = f'<p class="note error" id="error">{escape(t[p.error])}</p>' if p.error else ""
    title = escape(t[p.answer.result]) if p.answer else escape(p.brand)
    return (
        f'<!doctype html><html lang="{t["lang"]}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title} · {escape(p.brand)}</title><style>{STYLE}</style></head><body><main>"
        f'<p id="brand">{escape(p.brand)}</p>{error}{_result(p, t)}{_claim(p, t)}'
        f"{_facts(p, t)}{_form(p, t)}{_reenter(p, t)}{_preview(p, t)}</main></body></html>"
    )
