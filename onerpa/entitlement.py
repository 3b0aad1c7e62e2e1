"""The support rules as code: who gets free support at a given moment, and why.

Pure: the caller's records and the moment come in, a decision comes out.

How the terms are counted (Civil Code of the Russian Federation, arts. 192 and 194):
a term of N years or months ends on the same day-of-month N years/months later, or on the
last day of that month when it has no such day (a purchase on 29 February 2024 has its
anniversary on 28 February 2025); the term runs until the end of that day, Moscow time.
So the anniversary day itself is inside the free year, and the first moment outside it is
00:00 Moscow time on the day after. Dates of purchases, updates and subscriptions are
calendar days in Moscow; a subscription's end date is its last day of service.
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")
FREE_MONTHS_AFTER_PURCHASE = 12
DEFAULT_UPDATE_MONTHS = 12


class Reason(StrEnum):
    """Stable reason codes: stored with every call and shown to agents."""

    FREE_FIRST_YEAR = "free_first_year"
    FREE_UPDATES = "free_updates"
    FREE_SUBSCRIPTION = "free_subscription"
    FREE_CRITICAL_BUG = "free_critical_bug"
    NOT_ENTITLED = "not_entitled"
    REFUSED_ETIQUETTE = "refused_etiquette"
    UNKNOWN_CALLER = "unknown_caller"


FREE_REASONS = frozenset(
    {
        Reason.FREE_FIRST_YEAR,
        Reason.FREE_UPDATES,
        Reason.FREE_SUBSCRIPTION,
        Reason.FREE_CRITICAL_BUG,
    }
)


@dataclass(frozen=True)
class Licence:
    """A purchase of OneRPA software."""

    product: str
    purchased_on: date


@dataclass(frozen=True)
class UpdatePlan:
    """A purchase of software updates: free support for ``months`` from ``purchased_on``."""

    purchased_on: date
    months: int = DEFAULT_UPDATE_MONTHS


@dataclass(frozen=True)
class Subscription:
    """An online-service subscription; ``ends_on`` None means open-ended."""

    service: str
    starts_on: date
    ends_on: date | None = None
    cancelled_at: datetime | None = None


@dataclass(frozen=True)
class RefusalFlag:
    """An etiquette refusal; ``lifted_at`` ends it early, ``expires_at`` ends it on time."""

    set_at: datetime
    reason: str
    expires_at: datetime | None = None
    lifted_at: datetime | None = None


@dataclass(frozen=True)
class CallerRecords:
    """Everything the rules need to know about one identified customer."""

    licences: Sequence[Licence] = ()
    updates: Sequence[UpdatePlan] = ()
    subscriptions: Sequence[Subscription] = ()
    refusals: Sequence[RefusalFlag] = field(default_factory=tuple)


@dataclass(frozen=True)
class Decision:
    """The outcome: a reason code, whether support is free, and a line for the agent."""

    reason: Reason
    explanation: str
    valid_until: date | None = None

    @property
    def entitled(self) -> bool:
        return self.reason in FREE_REASONS


def decide(records: CallerRecords | None, at: datetime, *, critical_bug: bool = False) -> Decision:
    """Apply the support rules to ``records`` at moment ``at``."""
    moment = _aware(at)
    if records is None:
        return Decision(Reason.UNKNOWN_CALLER, "Звонящий не опознан как клиент OneRPA")
    refusal = active_refusal(records.refusals, moment)
    if refusal is not None:
        return _refused(refusal)
    free = _best_free_period(records, moment)
    if free is not None:
        return free
    if critical_bug and _has_licence_before(records.licences, moment):
        return Decision(
            Reason.FREE_CRITICAL_BUG,
            "Бесплатно: заявлена грубая ошибка (баг) — подтвердите при разговоре",
        )
    return Decision(Reason.NOT_ENTITLED, _not_entitled_text(records, moment))


def active_refusal(flags: Sequence[RefusalFlag], at: datetime) -> RefusalFlag | None:
    """Return the refusal in force at ``at``, if any."""
    moment = _aware(at)
    for flag in flags:
        if flag.set_at > moment:
            continue
        if flag.lifted_at is not None and flag.lifted_at <= moment:
            continue
        if flag.expires_at is not None and flag.expires_at <= moment:
            continue
        return flag
    return None


def add_months(start: date, months: int) -> date:
    """Return the same day ``months`` later, or that month's last day (Civil Code art. 192)."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    last = _calendar.monthrange(year, month)[1]
    return date(year, month, min(start.day, last))


def last_free_day_after_purchase(purchased_on: date) -> date:
    """Return the last day of the free year after a purchase on ``purchased_on``."""
    return add_months(purchased_on, FREE_MONTHS_AFTER_PURCHASE)


def _best_free_period(records: CallerRecords, moment: datetime) -> Decision | None:
    today = moment.astimezone(MOSCOW).date()
    candidates: list[Decision] = []
    for licence in records.licences:
        last = last_free_day_after_purchase(licence.purchased_on)
        if licence.purchased_on <= today <= last:
            text = f"Бесплатно: первый год после покупки ({licence.product}), до {_ru(last)}"
            candidates.append(Decision(Reason.FREE_FIRST_YEAR, text, last))
    for plan in records.updates:
        last = add_months(plan.purchased_on, plan.months)
        if plan.purchased_on <= today <= last:
            text = f"Бесплатно: куплены обновления {_ru(plan.purchased_on)}, до {_ru(last)}"
            candidates.append(Decision(Reason.FREE_UPDATES, text, last))
    for sub in records.subscriptions:
        if _subscription_active(sub, moment, today):
            until = f", до {_ru(sub.ends_on)}" if sub.ends_on else ", бессрочно"
            text = f"Бесплатно: действующая подписка на {sub.service}{until}"
            candidates.append(Decision(Reason.FREE_SUBSCRIPTION, text, sub.ends_on))
    if not candidates:
        return None
    return max(candidates, key=_favourability)


def _favourability(decision: Decision) -> tuple[int, date]:
    # An open-ended subscription outlasts any dated period.
    if decision.valid_until is None:
        return (1, date.max)
    return (0, decision.valid_until)


def _subscription_active(sub: Subscription, moment: datetime, today: date) -> bool:
    if sub.cancelled_at is not None and _aware(sub.cancelled_at) <= moment:
        return False
    if today < sub.starts_on:
        return False
    return sub.ends_on is None or today <= sub.ends_on


def _has_licence_before(licences: Sequence[Licence], moment: datetime) -> bool:
    today = moment.astimezone(MOSCOW).date()
    return any(licence.purchased_on <= today for licence in licences)


class Lapsed(StrEnum):
    """What a caller without free support once had: what ran out, so what renews it."""

    LICENCE = "licence"  # a purchase whose free year (and any updates) ran out
    SUBSCRIPTION = "subscription"  # an online-service subscription that ended
    BOTH = "both"
    NOTHING = "nothing"  # neither a purchase nor a subscription before this moment


def lapsed(records: CallerRecords, at: datetime) -> Lapsed:
    """Tell what the caller's free support ran out of at ``at`` (call when not entitled)."""
    today = _aware(at).astimezone(MOSCOW).date()
    licence = any(lic.purchased_on <= today for lic in records.licences)
    subscription = any(sub.starts_on <= today for sub in records.subscriptions)
    if licence and subscription:
        return Lapsed.BOTH
    if licence:
        return Lapsed.LICENCE
    return Lapsed.SUBSCRIPTION if subscription else Lapsed.NOTHING


def _not_entitled_text(records: CallerRecords, moment: datetime) -> str:
    today = moment.astimezone(MOSCOW).date()
    past = [lic for lic in records.licences if lic.purchased_on <= today]
    ended = [sub for sub in records.subscriptions if sub.starts_on <= today]
    if not past and not ended:
        return "Не положено: нет покупок OneRPA и действующей подписки"
    if not past:
        return f"Не положено: подписка на {ended[-1].service} закончилась, покупок программ нет"
    latest = max(past, key=lambda lic: lic.purchased_on)
    last = last_free_day_after_purchase(latest.purchased_on)
    subscription = "подписка закончилась" if ended else "подписки нет"
    return (
        f"Не положено: бесплатный год истёк {_ru(last)}, обновления не куплены, "
        f"{subscription}; бесплатно только при грубой ошибке (баге)"
    )


def _refused(flag: RefusalFlag) -> Decision:
    # The last day in force: an expiry at 00:00 on 1 July leaves 30 June as the last day.
    last = flag.expires_at - timedelta(microseconds=1) if flag.expires_at else None
    until = last.astimezone(MOSCOW).date() if last else None
    tail = f" до {_ru(until)}" if until else ""
    return Decision(
        Reason.REFUSED_ETIQUETTE,
        f"Отказ в консультации (нарушение этикета){tail}: {flag.reason}",
        until,
    )


def end_of_day(day: date) -> datetime:
    """Return the first moment after ``day`` in Moscow (when a term ending on it expires)."""
    return datetime.combine(day + timedelta(days=1), time(0), MOSCOW)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a moment must carry its time zone; naive datetimes are ambiguous")
    return moment


def _ru(day: date) -> str:
    return day.strftime("%d.%m.%Y")
