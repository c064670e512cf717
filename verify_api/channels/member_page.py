"""The member's own page (``/m/{tenant}``): sign in by SMS code, then balance, history,
points about to expire, rewards to redeem and coupons. Chinese and English.

Pure, like ``web.py`` (whose style it shares): ``signin_page`` and
``home_page`` return HTML from plain values; no JavaScript, no outside
assets, every value escaped, readable on a small phone. ``session_cookie``
and ``session_card`` sign and read the sign-in cookie.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from urllib.parse import quote

from codegen.coupons import printed
from codegen.keys import MasterKey
from codegen.times import iso
from points_bridge.cards import format_card
from verify_api.channels.templates import EN, ZH
from verify_api.channels.web import STYLE

SESSION_COOKIE = "itemseal_member"
SESSION_SECONDS = 1800
EXTRA_STYLE = (
    "table{width:100%;border-collapse:collapse;font-size:.95rem}td,th{padding:6px 4px;"
    "border-bottom:1px solid #ddd;text-align:left}.num{text-align:right}"
    ".card{display:flex;justify-content:space-between;align-items:center;gap:8px;"
    "padding:10px 0;border-bottom:1px solid #ddd}.card form{margin:0}.card button{width:auto;"
    "padding:8px 14px}.muted{color:#666;font-size:.9rem}.big{font-size:2rem;margin:0}"
    "nav{display:flex;justify-content:space-between;align-items:center}"
    "nav form button{width:auto;padding:6px 12px;background:#555}"
    ".coupon{font-family:ui-monospace,monospace;font-size:1.1rem;letter-spacing:.05em}"
)
TEXT = {
    ZH: {
        "lang": "zh-CN", "other": "English", "other_lang": EN,
        "title": "会员中心", "signin": "登录会员中心", "phone": "手机号码",
        "send": "获取验证码", "code": "验证码", "login": "登录",
        "sent": "如果此号码是会员，验证码已通过短信发出，{minutes}分钟内有效。",
        "balance": "当前积分", "tier": "等级", "card": "会员卡号", "logout": "退出",
        "expiring": "即将过期的积分", "expires_on": "{points}积分将于{date}过期",
        "no_expiry": "暂无即将过期的积分。",
        "rewards": "可兑换的礼品", "redeem": "兑换", "points": "积分",
        "stock": "剩余{stock}件", "no_rewards": "暂无礼品。",
        "coupons": "我的优惠券", "no_coupons": "暂无优惠券。", "valid_until": "有效期至{date}",
        "history": "积分记录", "no_history": "暂无记录。",
        "redeemed": "兑换成功：{name}，扣除{points}积分。",
        "coupon_issued": "您的券码：{code}（结账时出示）。",
        "state_issued": "可用", "state_used": "已使用", "state_expired": "已过期",
        "state_void": "已作废",
        "kind_credit": "验证积分", "kind_redeem": "兑换", "kind_adjust": "调整",
        "kind_expire": "过期", "kind_refund": "退回", "kind_tier": "等级变化",
        "error_phone": "手机号码有误，请核对。", "error_code": "验证码错误或已过期，请重新获取。",
        "error_busy": "请求过于频繁，请稍后再试。", "error_expired": "页面已过期，请重试。",
        "error_unknown": "未知品牌。", "error_redeem": "兑换失败：{reason}",
        "why_stock": "已兑完", "why_points": "还差{n}积分", "why_other": "暂不可兑换",
    },
    EN: {
        "lang": "en", "other": "中文", "other_lang": ZH,
        "title": "My membership", "signin": "Sign in", "phone": "Mobile number",
        "send": "Text me a code", "code": "Code from the SMS", "login": "Sign in",
        "sent": "If this number belongs to a member, a code is on its way by SMS; it is valid"
                " for {minutes} minutes.",
        "balance": "Points balance", "tier": "Tier", "card": "Card", "logout": "Sign out",
        "expiring": "Points about to expire", "expires_on": "{points} points expire on {date}",
        "no_expiry": "No points are about to expire.",
        "rewards": "Rewards", "redeem": "Redeem", "points": "points",
        "stock": "{stock} left", "no_rewards": "No rewards yet.",
        "coupons": "My coupons", "no_coupons": "No coupons yet.",
        "valid_until": "valid until {date}",
        "history": "Points history", "no_history": "Nothing yet.",
        "redeemed": "Redeemed: {name}, {points} points taken.",
        "coupon_issued": "Your coupon code: {code} (show it at the till).",
        "state_issued": "valid", "state_used": "used", "state_expired": "expired",
        "state_void": "cancelled",
        "kind_credit": "Check", "kind_redeem": "Redeemed", "kind_adjust": "Adjustment",
        "kind_expire": "Expired", "kind_refund": "Refund", "kind_tier": "Tier change",
        "error_phone": "That is not a mobile number: please check it.",
        "error_code": "Wrong or expired code: ask for a new one.",
        "error_busy": "Too many requests: please try again in a few minutes.",
        "error_expired": "This form has expired: please try again.",
        "error_unknown": "Unknown brand.", "error_redeem": "Not redeemed: {reason}",
        "why_stock": "out of stock", "why_points": "{n} more points needed",
        "why_other": "not available now",
    },
}


def session_secret(master: MasterKey) -> bytes:
    """The sign-in cookie's key, derived from the master key (never stored)."""
    return hmac.digest(master.secret, b"itemseal/member-session", "sha256")


def _session_mac(secret: bytes, tenant: str, card: str, expires: int) -> str:
    message = f"{tenant}\x00{card}\x00{expires}".encode()
    return hmac.digest(secret, message, "sha256").hex()[:40]


def session_cookie(secret: bytes, tenant: str, card: str, now: int) -> str:
    expires = now + SESSION_SECONDS
    return f"{card}.{expires}.{_session_mac(secret, tenant, card, expires)}"


def session_card(secret: bytes, tenant: str, cookie: str | None, now: int) -> str | None:
    """The card a live, genuine cookie signs in; None otherwise."""
    parts = (cookie or "").split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    card, expires, mac = parts[0], int(parts[1]), parts[2]
    if now >= expires:
        return None
    good = _session_mac(secret, tenant, card, expires)
    return card if hmac.compare_digest(mac.encode(), good.encode()) else None


def why_not_text(language: str, reason: str | None, stock: int, short: int) -> str | None:
    """Why a reward has no redeem button, in the page's language (None: it has one)."""
    if reason is None:
        return None
    t = TEXT[language]
    if stock < 1:
        return t["why_stock"]
    if short > 0 and reason.startswith("needs"):
        return t["why_points"].format(n=short)
    return t["why_other"]


@dataclass(frozen=True)
class RewardRow:
    item: str
    name: str
    points: int
    stock: int
    reason: str | None  # why not (None: redeemable now)


@dataclass(frozen=True)
class HomeInput:
    tenant: str
    brand: str
    language: str
    csrf: str
    card: str
    balance: int
    tier: str
    expiring: Sequence[tuple[int, int]] = ()  # (expires_at, points)
    rewards: Sequence[RewardRow] = ()
    coupons: Sequence[tuple[str, str, str, int]] = ()  # (code, name, state, expires_at)
    history: Sequence[tuple[int, str, int, int, str]] = ()  # (at, kind, delta, balance, note)
    note: str = ""
    error: str = ""
    redeem_key: str = ""


def _date(ts: int | None) -> str:
    return (iso(ts) or "?")[:10]


def _head(t: dict, title: str, brand: str) -> str:
    return (f'<!doctype html><html lang="{t["lang"]}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)} · {escape(brand)}</title>"
            f"<style>{STYLE}{EXTRA_STYLE}</style></head><body><main>")


def _base(tenant: str) -> str:
    return f"/m/{quote(tenant, safe='')}"


def _hidden(csrf: str, language: str) -> str:
    return (f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f'<input type="hidden" name="lang" value="{escape(language)}">')


def _switch(tenant: str, t: dict) -> str:
    return (f'<a id="lang" href="{_base(tenant)}?lang={t["other_lang"]}" '
            f'hreflang="{t["other_lang"]}">{t["other"]}</a>')


def signin_page(tenant: str, brand: str, language: str, csrf: str, *, phone: str = "",
                sent: bool = False, minutes: int = 5, error: str = "") -> str:
    """Step 1 (phone) or, once a code was sent, step 2 (the code)."""
    t = TEXT[language]
    base = _base(tenant)
    out = [_head(t, t["signin"], brand),
           f'<nav><p id="brand">{escape(brand)}</p>{_switch(tenant, t)}</nav>',
           f'<h1>{t["signin"]}</h1>']
    if error:
        out.append(f'<p class="note error" id="error">{escape(t["error_" + error])}</p>')
    if sent:
        out.append(f'<p class="note" id="sent">{escape(t["sent"].format(minutes=minutes))}</p>'
                   f'<form method="post" action="{base}/login" id="code-form">'
                   f'<input type="hidden" name="phone" value="{escape(phone)}">'
                   f'<label for="code">{t["code"]}</label>'
                   '<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code"'
                   ' maxlength="8" required>'
                   f'{_hidden(csrf, language)}<button type="submit">{t["login"]}</button></form>')
    out.append(f'<form method="post" action="{base}/code" id="phone-form">'
               f'<label for="phone">{t["phone"]}</label>'
               f'<input id="phone" name="phone" type="tel" inputmode="tel" autocomplete="tel"'
               f' maxlength="32" value="{escape(phone)}" required>'
               f'{_hidden(csrf, language)}<button type="submit">{t["send"]}</button></form>')
    out.append("</main></body></html>")
    return "".join(out)


def home_page(p: HomeInput) -> str:
    """The signed-in page."""
    t = TEXT[p.language]
    base = _base(p.tenant)
    out = [_head(t, t["title"], p.brand),
           f'<nav><p id="brand">{escape(p.brand)}</p>{_switch(p.tenant, t)}'
           f'<form method="post" action="{base}/logout">{_hidden(p.csrf, p.language)}'
           f'<button type="submit" id="logout">{t["logout"]}</button></form></nav>']
    if p.error:
        out.append(f'<p class="note error" id="error">{escape(p.error)}</p>')
    if p.note:
        out.append(f'<p class="note" id="note">{escape(p.note)}</p>')
    out.append(f'<section class="result" id="summary" style="border-color:#1f4e8c">'
               f'<p class="muted">{t["balance"]}</p><p class="big" id="balance">{p.balance}</p>'
               f'<p>{t["tier"]}: <strong id="tier">{escape(p.tier)}</strong> · {t["card"]} '
               f'<span id="card">{escape(format_card(p.card))}</span></p></section>')
    out.append(f'<section id="expiring"><h2>{t["expiring"]}</h2>')
    if p.expiring:
        out.append("".join(f'<p>{escape(t["expires_on"].format(points=n, date=_date(at)))}</p>'
                           for at, n in p.expiring))
    else:
        out.append(f'<p class="muted">{t["no_expiry"]}</p>')
    out.append(f'</section><section id="rewards"><h2>{t["rewards"]}</h2>')
    for r in p.rewards:
        if r.reason is None:
            key = f"{p.redeem_key}.{r.item}"
            action = (f'<form method="post" action="{base}/redeem">{_hidden(p.csrf, p.language)}'
                      f'<input type="hidden" name="item" value="{escape(r.item)}">'
                      f'<input type="hidden" name="key" value="{escape(key)}">'
                      f'<button type="submit" id="redeem-{escape(r.item)}">{t["redeem"]}'
                      "</button></form>")
        else:
            action = f'<span class="muted">{escape(r.reason)}</span>'
        out.append(f'<div class="card" data-item="{escape(r.item)}"><div><strong>'
                   f'{escape(r.name)}</strong><br><span class="muted">{r.points} {t["points"]}'
                   f' · {escape(t["stock"].format(stock=r.stock))}</span></div>{action}</div>')
    if not p.rewards:
        out.append(f'<p class="muted">{t["no_rewards"]}</p>')
    out.append(f'</section><section id="coupons"><h2>{t["coupons"]}</h2>')
    for code, name, state, expires in p.coupons:
        until = t["valid_until"].format(date=_date(expires)) if expires else ""
        out.append(f'<div class="card"><div><span class="coupon">{escape(printed(code))}</span>'
                   f'<br><span class="muted">{escape(name)} · {escape(until)}</span></div>'
                   f'<strong>{escape(t["state_" + state])}</strong></div>')
    if not p.coupons:
        out.append(f'<p class="muted">{t["no_coupons"]}</p>')
    out.append(f'</section><section id="history"><h2>{t["history"]}</h2>')
    if p.history:
        out.append("<table><tbody>")
        for at, kind, delta, balance, note in p.history:
            label = t.get("kind_" + kind, kind)
            out.append(f"<tr><td>{_date(at)}</td><td>{escape(label)}"
                       f'{(" · " + escape(note)) if note else ""}</td>'
                       f'<td class="num">{delta:+d}</td><td class="num">{balance}</td></tr>')
        out.append("</tbody></table>")
    else:
        out.append(f'<p class="muted">{t["no_history"]}</p>')
    out.append("</section></main></body></html>")
    return "".join(out)


@dataclass(frozen=True)
class Notice:
    """What the page says after a redemption (``?done=<id>``)."""

    name: str
    points: int
    coupon: str | None = None
    extra: dict = field(default_factory=dict)

    def text(self, language: str) -> str:
        t = TEXT[language]
        out = t["redeemed"].format(name=self.name, points=self.points)
        if self.coupon:
            out += " " + t["coupon_issued"].format(code=printed(self.coupon))
        return out
