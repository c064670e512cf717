"""The phone keypad: TwiML that asks for the code, speaks the answer, asks again on a slip.

The prompt is also a menu: ``1#`` joins as a member, ``2#`` speaks the balance
(the SMS join and balance keywords, keyed in, do the same).

A call comes in, we answer with ``<Gather input="dtmf" finishOnKey="#">``
around the prompt; the caller keys the code and ``#``; the gateway posts the
``Digits`` back to the same route. The answer is the SMS text of the result
(short and speakable), read in the tenant's language by a voice that speaks it;
after ``mistyped`` or ``malformed`` the caller hears the keypad's own wording
(``ivr_mistyped``: "key them in again", not the SMS's "send it again") and is
asked again.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from verify_api.channels.config import ChannelConfig
from verify_api.channels.templates import ZH

VOICE_LANGUAGE = {ZH: "zh-CN", "en": "en-US"}
# Twilio speaks ``<Say>`` with its default voice, which has no Chinese: a ``zh-CN`` text
# needs a voice that speaks it. Amazon Polly's Zhiyu (Mandarin) and Joanna (US English)
# are in Twilio's list of text-to-speech voices.
VOICE = {ZH: "Polly.Zhiyu", "en": "Polly.Joanna"}
# The menu beside the code: 1# joins, 2# tells the balance (the SMS keywords work too).
JOIN_KEY, BALANCE_KEY = "1", "2"
ACTION = "/v1/ivr/inbound"


def say(config: ChannelConfig, text: str) -> str:
    return (f"<Say voice={quoteattr(VOICE[config.language])}"
            f" language={quoteattr(VOICE_LANGUAGE[config.language])}>{escape(text)}</Say>")


def gather(config: ChannelConfig) -> str:
    return (
        f'<Gather input="dtmf" finishOnKey="#" timeout="10" method="POST"'
        f" action={quoteattr(ACTION)}>{say(config, config.reply('ivr_prompt'))}</Gather>"
    )


def twiml(*verbs: str) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"


def prompt(config: ChannelConfig) -> str:
    """The first answer to a call: ask for the code."""
    return twiml(gather(config))


def answer(config: ChannelConfig, text: str, *, again: bool) -> str:
    """Speak ``text``; ask for the code again when the caller slipped."""
    if again:
        return twiml(say(config, text), gather(config))
    return twiml(say(config, text), "<Hangup/>")
