"""Compose spoken sentences out of prompt files. Pure: no channel, no clock.

"Мы откроемся завтра в девять часов", "... в понедельник в девять часов",
"... одиннадцатого января в девять часов" — each word group is a prompt of the table in
``asterisk/sounds/prompts.ru.tsv``.
"""

from __future__ import annotations

from datetime import datetime

GREETING = "onerpa-greeting"
CLOSED = "onerpa-closed"
NEXT_OPEN = "onerpa-next-open"
CLOSED_EMAIL = "onerpa-closed-email"
ENTER_NUMBER = "onerpa-enter-number"
NUMBER_NOT_FOUND = "onerpa-number-not-found"
NOT_CUSTOMER = "onerpa-not-customer"
REFUSED = "onerpa-refused"
TOPIC_MENU = "onerpa-topic-menu"
INVALID_CHOICE = "onerpa-invalid-choice"
CONNECTING = "onerpa-connecting"
BUG_FLAGGED = "onerpa-bug-flagged"
NOT_ENTITLED = "onerpa-not-entitled"
BUG_OFFER = "onerpa-bug-offer"
BUY_UPDATES = "onerpa-buy-updates"
SALES_OFFER = "onerpa-sales-offer"
GOODBYE = "onerpa-goodbye"

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


def closed_message(now: datetime, opening: datetime | None) -> list[str]:
    """Return the whole closed-hours message: hours, next opening, e-mail."""
    return [CLOSED, *next_opening(now, opening), CLOSED_EMAIL]
