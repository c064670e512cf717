"""Turn a verification answer into the reply text a consumer reads or hears.

Pure. One rule for SMS and the phone keypad: a claim that credited points
says so (``claimed``), a claim whose credit is queued says the points follow
(``pending``), anything else answers with the result's own template.
"""

from __future__ import annotations

from verify_api.channels import templates
from verify_api.channels.config import ChannelConfig
from verify_api.check import answers
from verify_api.check.answers import Answer


def template_for(answer: Answer) -> str:
    authentic = answer.result in (answers.GENUINE, answers.ALREADY_VERIFIED)
    if authentic and answer.points_pending:
        return "pending"
    if authentic and answer.credit is not None and not answer.credit.duplicate:
        return "claimed"
    return answer.result


def for_answer(config: ChannelConfig, answer: Answer) -> str:
    """The reply to a check, in the tenant's language, in one SMS segment."""
    when = answers.iso_time(answer.first_verified_at)
    return config.reply(
        template_for(answer),
        product=answer.product_name or answer.sku or "",
        count=answer.scan_count,
        date=when[:10] if when else "?",
        channel=templates.channel_name(config.language, answer.first_channel),
        points=answer.points_awarded,
        balance=answer.balance,
    )
