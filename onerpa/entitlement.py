"""The support rules as code: who gets free support at a given moment, and why.

Pure: the caller's records and the moment come in, a decision comes out.

How the terms are counted (Civil Code of the Russian Federation, arts. 192 and 194):
a term of N years or months ends on the same day-of-month N years/months later, or on the
last day of that month when it has no such day (a purchase on 29 February 2024 has its
anniversary on 28 February 2025); the term runs until the end of that day, Moscow time.
So the anniversary day itself is inside the free year, and the first moment outside it is
00:00 Moscow time on the day after. Dates of purchases, updates and subscriptions are
calendar days in Moscow; a subscription's end date is its last day of service, and a
goodwill grant's ``until`` its last day of free support.

Every decision carries its evidence: the facts it was made on (each record with its last
day and whether it was in force, the rule that applied, and the day type when the caller
gives it), so a call can show later why it was decided as it was.
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
    FREE_GOODWILL = "free_goodwill"
    NOT_ENTITLED = "not_entitled"
    REFUSED_ETIQUETTE = "refused_etiquette"
    UNKNOWN_CALLER = "unknown_caller"


FREE_REASONS = frozenset(
    {
        Reason.FREE_FIRST_YEAR,
        Reason.FREE_UPDATES,
        Reason.FREE_SUBSCRIPTION,
        Reason.FREE_CRITICAL_BUG,
        Reason.FREE_GOODWILL,
    }
)


@dataclass(frozen=True)
class Licence:
    """A purchase of OneRPA software."""

    product: str
    purchased_on: date
    # Not part of the purchase's identity for the rules: two equal purchases decide alike.
    number: str | None = field(default=None, compare=False)


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
class Grant:
    """Free support given as a gesture of goodwill, through the end of ``until`` (Moscow).

    In force from ``granted_at`` (when given; None means from any moment) to its last day.
    """

    until: date
    reason: str
    granted_by: str
    granted_at: datetime | None = None


@dataclass(frozen=True)
class CallerRecords:
    """Everything the rules need to know about one identified customer."""

    licences: Sequence[Licence] = ()
    updates: Sequence[UpdatePlan] = ()
    subscriptions: Sequence[Subscription] = ()
    refusals: Sequence[RefusalFlag] = field(default_factory=tuple)
    grants: Sequence[Grant] = ()


class State(StrEnum):
    """Where a record stood at the moment of the decision."""

    IN_FORCE = "in_force"
    NOT_STARTED = "not_started"  # bought or given after the moment
    ENDED = "ended"  # its last day passed (a refusal: expired)
    CANCELLED = "cancelled"  # a subscription cancelled before the moment
    LIFTED = "lifted"  # a refusal lifted before the moment


class DayKind(StrEnum):
    """The day type of the line's calendar (onerpa.hours) on the day of the decision."""

    WORKING = "working"
    SHORT = "short"  # a shortened pre-holiday working day
    DAY_OFF = "day_off"  # a weekend or public holiday


@dataclass(frozen=True)
class DayFact:
    on: date
    day_type: DayKind


@dataclass(frozen=True)
class LicenceFact:
    product: str
    number: str | None
    purchased_on: date
    last_day: date  # the last day of the free year after the purchase
    state: State
    applied: bool = False


@dataclass(frozen=True)
class UpdatesFact:
    purchased_on: date
    months: int
    last_day: date
    state: State
    applied: bool = False


@dataclass(frozen=True)
class SubscriptionFact:
    service: str
    starts_on: date
    ends_on: date | None
    cancelled_at: datetime | None
    state: State
    applied: bool = False


@dataclass(frozen=True)
class GrantFact:
    until: date
    reason: str
    granted_by: str
    granted_at: datetime | None
    state: State
    applied: bool = False


@dataclass(frozen=True)
class RefusalFact:
    set_at: datetime
    reason: str
    expires_at: datetime | None
    lifted_at: datetime | None
    state: State
    applied: bool = False


@dataclass(frozen=True)
class RuleFact:
    """The rule that decided: its reason code (or the call flow's ``closed``/``degraded``)."""

    reason: str


Fact = DayFact | LicenceFact | UpdatesFact | SubscriptionFact | GrantFact | RefusalFact | RuleFact


@dataclass(frozen=True)
class Decision:
    """The outcome: a reason code, whether support is free, a line for the agent, and the
    facts it was made on."""

    reason: Reason
    explanation: str
    valid_until: date | None = None
    evidence: tuple[Fact, ...] = ()

    @property
    def entitled(self) -> bool:
        return self.reason in FREE_REASONS


def decide(
    records: CallerRecords | None,
    at: datetime,
    *,
    critical_bug: bool = False,
    day: DayFact | None = None,
    free_months: int = FREE_MONTHS_AFTER_PURCHASE,
) -> Decision:
    """Apply the support rules to ``records`` at moment ``at``; ``day`` joins the evidence.

    ``free_months`` is the free term after a purchase; only a what-if (onerpa.whatif) sets
    another than the rules' own.
    """
    moment = _aware(at)
    decision, applied = _decide(records, moment, critical_bug, free_months)
    facts = _facts(records, moment, applied, free_months) if records is not None else ()
    head = (day,) if day is not None else ()
    return replace(decision, evidence=(*head, *facts, RuleFact(decision.reason)))


# The record a decision rests on: a term that applied, the refusal in force, or the purchase
# that opens the critical-bug exception. Facts are marked ``applied`` by identity with it.
_Applied = Licence | UpdatePlan | Subscription | Grant | RefusalFlag | None


def _decide(
    records: CallerRecords | None,
    moment: datetime,
    critical_bug: bool,
    free_months: int = FREE_MONTHS_AFTER_PURCHASE,
) -> tuple[Decision, _Applied]:
    if records is None:
        return Decision(Reason.UNKNOWN_CALLER, "Звонящий не опознан как клиент OneRPA"), None
    refusal = active_refusal(records.refusals, moment)
    if refusal is not None:
        return _refused(refusal), refusal
    free = _best_free_period(records, moment, free_months)
    if free is not None:
        return free
    latest = _latest_licence_before(records.licences, moment)
    if critical_bug and latest is not None:
        text = "Бесплатно: заявлена грубая ошибка (баг) — подтвердите при разговоре"
        return Decision(Reason.FREE_CRITICAL_BUG, text), latest
    return Decision(Reason.NOT_ENTITLED, _not_entitled_text(records, moment, free_months)), None


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


def last_free_day_after_purchase(
    purchased_on: date, months: int = FREE_MONTHS_AFTER_PURCHASE
) -> date:
    """Return the last day of the free year (``months`` long) after a purchase."""
    return add_months(purchased_on, months)


def _best_free_period(
    records: CallerRecords, moment: datetime, free_months: int = FREE_MONTHS_AFTER_PURCHASE
) -> tuple[Decision, _Applied] | None:
    """Return the most favourable free term in force (the latest last day), with its record."""
    today = moment.astimezone(MOSCOW).date()
    candidates: list[tuple[Decision, _Applied]] = []
    for licence in records.licences:
        last = last_free_day_after_purchase(licence.purchased_on, free_months)
        if licence.purchased_on <= today <= last:
            text = f"Бесплатно: первый год после покупки ({licence.product}), до {_ru(last)}"
            candidates.append((Decision(Reason.FREE_FIRST_YEAR, text, last), licence))
    for plan in records.updates:
        last = add_months(plan.purchased_on, plan.months)
        if plan.purchased_on <= today <= last:
            text = f"Бесплатно: куплены обновления {_ru(plan.purchased_on)}, до {_ru(last)}"
            candidates.append((Decision(Reason.FREE_UPDATES, text, last), plan))
    for sub in records.subscriptions:
        if _subscription_state(sub, moment, today) is State.IN_FORCE:
            until = f", до {_ru(sub.ends_on)}" if sub.ends_on else ", бессрочно"
            text = f"Бесплатно: действующая подписка на {sub.service}{until}"
            candidates.append((Decision(Reason.FREE_SUBSCRIPTION, text, sub.ends_on), sub))
    for grant in records.grants:
        if _grant_state(grant, moment, today) is State.IN_FORCE:
            candidates.append(
                (Decision(Reason.FREE_GOODWILL, goodwill_text(grant), grant.until), grant)
            )
    if not candidates:
        return None
    # max() keeps the first of equals: a bought term before goodwill ending the same day.
    return max(candidates, key=lambda item: _favourability(item[0]))


def goodwill_text(grant: Grant) -> str:
    """Return the line an agent reads for a goodwill grant in force."""
    return (
        f"Бесплатно: жест доброй воли до {_ru(grant.until)} — {grant.reason} "
        f"(выдал {grant.granted_by})"
    )


def _favourability(decision: Decision) -> tuple[int, date]:
    # An open-ended subscription outlasts any dated period.
    if decision.valid_until is None:
        return (1, date.max)
    return (0, decision.valid_until)


def _latest_licence_before(licences: Sequence[Licence], moment: datetime) -> Licence | None:
    today = moment.astimezone(MOSCOW).date()
    past = [licence for licence in licences if licence.purchased_on <= today]
    return max(past, key=lambda licence: licence.purchased_on) if past else None


def _grant_state(grant: Grant, moment: datetime, today: date) -> State:
    if grant.granted_at is not None and _aware(grant.granted_at) > moment:
        return State.NOT_STARTED
    return State.IN_FORCE if today <= grant.until else State.ENDED


def _term_state(first: date, last: date, today: date) -> State:
    if today < first:
        return State.NOT_STARTED
    return State.IN_FORCE if today <= last else State.ENDED


def _subscription_state(sub: Subscription, moment: datetime, today: date) -> State:
    if sub.cancelled_at is not None and _aware(sub.cancelled_at) <= moment:
        return State.CANCELLED
    if today < sub.starts_on:
        return State.NOT_STARTED
    return State.IN_FORCE if sub.ends_on is None or today <= sub.ends_on else State.ENDED


def _refusal_state(flag: RefusalFlag, moment: datetime) -> State:
    if flag.set_at > moment:
        return State.NOT_STARTED
    if flag.lifted_at is not None and flag.lifted_at <= moment:
        return State.LIFTED
    if flag.expires_at is not None and flag.expires_at <= moment:
        return State.ENDED
    return State.IN_FORCE


def _facts(
    records: CallerRecords,
    moment: datetime,
    applied: _Applied,
    free_months: int = FREE_MONTHS_AFTER_PURCHASE,
) -> tuple[Fact, ...]:
    """Return every record as a fact at ``moment``; the one the decision rests on applied."""
    today = moment.astimezone(MOSCOW).date()
    facts: list[Fact] = []
    for g in records.grants:
        state = _grant_state(g, moment, today)
        facts.append(GrantFact(g.until, g.reason, g.granted_by, g.granted_at, state, g is applied))
    for lic in records.licences:
        last = last_free_day_after_purchase(lic.purchased_on, free_months)
        state = _term_state(lic.purchased_on, last, today)
        facts.append(
            LicenceFact(lic.product, lic.number, lic.purchased_on, last, state, lic is applied)
        )
    for plan in records.updates:
        last = add_months(plan.purchased_on, plan.months)
        state = _term_state(plan.purchased_on, last, today)
        facts.append(UpdatesFact(plan.purchased_on, plan.months, last, state, plan is applied))
    for sub in records.subscriptions:
        state = _subscription_state(sub, moment, today)
        facts.append(
            SubscriptionFact(
                sub.service, sub.starts_on, sub.ends_on, sub.cancelled_at, state, sub is applied
            )
        )
    for flag in records.refusals:
        state = _refusal_state(flag, moment)
        facts.append(
            RefusalFact(
                flag.set_at, flag.reason, flag.expires_at, flag.lifted_at, state, flag is applied
            )
        )
    # The record the decision rests on first, so a reader sees the reason before the rest.
    return tuple(sorted(facts, key=lambda fact: not getattr(fact, "applied", False)))


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


def _not_entitled_text(
    records: CallerRecords, moment: datetime, free_months: int = FREE_MONTHS_AFTER_PURCHASE
) -> str:
    today = moment.astimezone(MOSCOW).date()
    past = [lic for lic in records.licences if lic.purchased_on <= today]
    ended = [sub for sub in records.subscriptions if sub.starts_on <= today]
    if not past and not ended:
        return "Не положено: нет покупок OneRPA и действующей подписки"
    if not past:
        return f"Не положено: подписка на {ended[-1].service} закончилась, покупок программ нет"
    latest = max(past, key=lambda lic: lic.purchased_on)
    last = last_free_day_after_purchase(latest.purchased_on, free_months)
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
