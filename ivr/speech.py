"""Compose spoken sentences out of prompt files. Pure: no channel, no clock.

"Мы откроемся завтра в девять часов", "... в понедельник в девять часов",
"... одиннадцатого января в девять часов" — each word group is a prompt of the table in
``asterisk/sounds/prompts.ru.tsv``.
"""

from __future__ import annotations

from datetime import datetime

from onerpa.entitlement import Lapsed

GREETING = "onerpa-greeting"
CLOSED = "onerpa-closed"
SHORT_DAY = "onerpa-short-day"
NEXT_OPEN = "onerpa-next-open"
HOURS = "onerpa-hours"
CLOSED_EMAIL = "onerpa-closed-email"
NUMBER_WITHHELD = "onerpa-number-withheld"
NUMBER_UNKNOWN = "onerpa-number-unknown"
ENTER_NUMBER = "onerpa-enter-number"
NUMBER_NOT_FOUND = "onerpa-number-not-found"
NOT_CUSTOMER = "onerpa-not-customer"
REFUSED = "onerpa-refused"
TOPIC_MENU = "onerpa-topic-menu"
INVALID_CHOICE = "onerpa-invalid-choice"
CONNECTING = "onerpa-connecting"
BUG_FLAGGED = "onerpa-bug-flagged"
NOT_ENTITLED = "onerpa-not-entitled"
SUBSCRIPTION_ENDED = "onerpa-subscription-ended"
NOTHING_BOUGHT = "onerpa-nothing-bought"
BUG_OFFER = "onerpa-bug-offer"
BUY_UPDATES = "onerpa-buy-updates"
RENEW_SUBSCRIPTION = "onerpa-renew-subscription"
RENEW_BOTH = "onerpa-renew-both"
BUY_LICENCE = "onerpa-buy-licence"
SALES_OFFER = "onerpa-sales-offer"
GOODBYE = "onerpa-goodbye"
MESSAGE_OFFER = "onerpa-message-offer"
MESSAGE_RECORD = "onerpa-message-record"
MESSAGE_SAVED = "onerpa-message-saved"
MESSAGE_EMPTY = "onerpa-message-empty"
MESSAGE_FAILED = "onerpa-message-failed"
MESSAGE_CALLBACK = "onerpa-message-callback"
MESSAGE_CONTACTS = "onerpa-message-contacts"
MESSAGE_WRITE = "onerpa-message-write"

_WEEK = 7


def next_opening(now: datetime, opening: datetime | None) -> list[str]:
    """Return the prompts that say when the line opens next, seen from ``now``.

    Both moments must be in the line's own time zone.
    """
    if opening is None:
        return []
    days = (opening.date() - now.date()).days
    if days == 0:
        day = ["onerpa-day-today"]
    elif days == 1:
        day = ["onerpa-day-tomorrow"]
    elif days < _WEEK:
        day = [f"onerpa-day-{opening.isoweekday()}"]
    else:
        day = [f"onerpa-date-{opening.day}", f"onerpa-month-{opening.month}"]
    return [NEXT_OPEN, *day, *clock_time(opening)]


def clock_time(moment: datetime) -> list[str]:
    """Return the prompts for "at HH" and, on a five-minute mark, "MM minutes"."""
    prompts = [f"onerpa-hour-{moment.hour}"]
    if moment.minute and moment.minute % 5 == 0:
        prompts.append(f"onerpa-minutes-{moment.minute}")
    return prompts


def until_time(moment: datetime) -> list[str]:
    """Return the prompts for "until HH" and, on a five-minute mark, "MM minutes"."""
    prompts = [f"onerpa-until-hour-{moment.hour}"]
    if moment.minute and moment.minute % 5 == 0:
        prompts.append(f"onerpa-until-minutes-{moment.minute}")
    return prompts


def closed_message(
    now: datetime, opening: datetime | None, closed_early: datetime | None = None
) -> list[str]:
    """Return the whole closed-hours message: closed, a short day's end, next opening,
    the weekly hours, the e-mail. ``closed_early`` is when a short day closed today."""
    short = [SHORT_DAY, *until_time(closed_early)] if closed_early else []
    return [CLOSED, *short, *next_opening(now, opening), HOURS, CLOSED_EMAIL]


# What ran out, and what renews it (entitlement.lapsed).
_LAPSED = {
    Lapsed.LICENCE: ([NOT_ENTITLED], BUY_UPDATES),
    Lapsed.SUBSCRIPTION: ([SUBSCRIPTION_ENDED], RENEW_SUBSCRIPTION),
    Lapsed.BOTH: ([NOT_ENTITLED, SUBSCRIPTION_ENDED], RENEW_BOTH),
    Lapsed.NOTHING: ([NOTHING_BOUGHT], BUY_LICENCE),
}


def not_entitled(lapsed: Lapsed) -> list[str]:
    """Return the prompts that say what ran out."""
    return _LAPSED[lapsed][0]


def renewal(lapsed: Lapsed) -> str:
    """Return the prompt that says what renews free support."""
    return _LAPSED[lapsed][1]


def message_confirmation(recorded: bool, failed: bool, number_known: bool) -> list[str]:
    """Return what a caller hears after leaving a message: whether it was recorded, and how
    the answer will come (a call back needs their number)."""
    head = MESSAGE_FAILED if failed else MESSAGE_SAVED if recorded else MESSAGE_EMPTY
    if number_known:
        return [head, MESSAGE_CALLBACK]
    return [head, MESSAGE_CONTACTS if recorded else MESSAGE_WRITE]
