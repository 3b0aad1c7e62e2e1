"""The evidence behind a call's decision: stored with the call as JSON, read out in words.

A decision (``entitlement.decide``) carries the facts it was made on. The call flow stores
them in ``calls.evidence`` at the moment of the decision, so a later change to the
directory never changes what an old call shows. The format (``version`` 1)::

    {"version": 1, "decision": "free_goodwill", "at": "2026-12-07T08:00:00+00:00",
     "facts": [
       {"kind": "day", "on": "2026-12-07", "day_type": "working"},
       {"kind": "grant", "until": "2027-03-31", "reason": "…", "granted_by": "vera",
        "granted_at": "2026-12-05T09:00:00+00:00", "state": "in_force", "applied": true},
       {"kind": "licence", "product": "OneRPA Studio", "number": "4711",
        "purchased_on": "2024-03-01", "last_day": "2025-03-01", "state": "ended",
        "applied": false},
       {"kind": "updates", "purchased_on": "…", "months": 12, "last_day": "…", …},
       {"kind": "subscription", "service": "…", "starts_on": "…", "ends_on": null,
        "cancelled_at": null, …},
       {"kind": "refusal", "set_at": "…", "reason": "…", "expires_at": null,
        "lifted_at": null, …},
       {"kind": "rule", "reason": "free_goodwill"}]}

Dates are ISO days (Moscow calendar days), moments ISO with their UTC offset. ``state`` is
``entitlement.State`` (in_force, not_started, ended, cancelled, lifted), ``day_type`` is
``entitlement.DayKind`` (working, short, day_off). The fact the decision rests on comes first
with ``applied`` true; the rule comes last. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from onerpa import hours
from onerpa.entitlement import (
    MOSCOW,
    DayFact,
    DayKind,
    Fact,
    GrantFact,
    LicenceFact,
    RefusalFact,
    RuleFact,
    State,
    SubscriptionFact,
    UpdatesFact,
)

log = logging.getLogger(__name__)

VERSION = 1
KINDS: dict[str, type[Any]] = {
    "day": DayFact,
    "licence": LicenceFact,
    "updates": UpdatesFact,
    "subscription": SubscriptionFact,
    "grant": GrantFact,
    "refusal": RefusalFact,
    "rule": RuleFact,
}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}
_DAYS = frozenset({"on", "purchased_on", "last_day", "starts_on", "ends_on", "until"})
_MOMENTS = frozenset({"cancelled_at", "granted_at", "set_at", "expires_at", "lifted_at"})

RULES = {
    "free_first_year": "бесплатно — первый год после покупки",
    "free_updates": "бесплатно — куплены обновления",
    "free_subscription": "бесплатно — действующая подписка",
    "free_critical_bug": "бесплатно — заявлена грубая ошибка (баг)",
    "free_goodwill": "бесплатно — жест доброй воли",
    "not_entitled": "не положено — нет действующих прав на бесплатную поддержку",
    "refused_etiquette": "отказ в консультации (нарушение этикета)",
    "unknown_caller": "звонящий не опознан",
    "closed": "звонок вне часов работы",
    "degraded": "база клиентов недоступна — клиент не проверен",
}
DAY_TYPES = {
    DayKind.WORKING: "рабочий день",
    DayKind.SHORT: "сокращённый предпраздничный день",
    DayKind.DAY_OFF: "выходной или праздничный день",
}


@dataclass(frozen=True)
class Evidence:
    """What a stored call was decided on."""

    decision: str
    at: datetime
    facts: tuple[Fact, ...]


@dataclass(frozen=True)
class Line:
    """One fact in words; ``applied`` when the decision rests on it."""

    kind: str
    text: str
    applied: bool = False


def day_fact(calendar: hours.SupportCalendar, at: datetime) -> DayFact:
    """Return the day type of ``at``'s day in the line's calendar."""
    day = at.astimezone(calendar.zone).date()
    if not hours.is_working_day(calendar, day):
        return DayFact(day, DayKind.DAY_OFF)
    return DayFact(day, DayKind.SHORT if hours.is_pre_holiday(calendar, day) else DayKind.WORKING)


def to_json(decision: str, at: datetime, facts: Sequence[Fact]) -> str:
    """Return the evidence as it is stored in ``calls.evidence``."""
    body = {
        "version": VERSION,
        "decision": decision,
        "at": at.isoformat(),
        "facts": [_fact_to_dict(fact) for fact in facts],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def from_json(text: str | None) -> Evidence | None:
    """Read stored evidence back; None when there is none or it does not parse."""
    if not text:
        return None
    try:
        body = json.loads(text)
        facts = tuple(_fact_from_dict(item) for item in body["facts"])
        return Evidence(str(body["decision"]), datetime.fromisoformat(body["at"]), facts)
    except (ValueError, KeyError, TypeError) as err:
        log.warning("stored evidence does not parse: %s", err)
        return None


def lines(facts: Sequence[Fact]) -> list[Line]:
    """Return the facts in Russian words, one line each, in their order."""
    return [
        Line(_KIND_OF[type(fact)], _words(fact), getattr(fact, "applied", False)) for fact in facts
    ]


def stored_lines(text: str | None) -> list[Line]:
    """Return the words of evidence stored as JSON (none when absent or unreadable)."""
    found = from_json(text)
    return lines(found.facts) if found else []


_FIELD_NAMES = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _KIND_OF}


def _fact_to_dict(fact: Fact) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": _KIND_OF[type(fact)]}
    # The facts are flat: their fields read as they are (asdict would deep-copy each value,
    # which on every call cost more than all the rest of the evidence together).
    for name in _FIELD_NAMES[type(fact)]:
        value = getattr(fact, name)
        body[name] = value.isoformat() if isinstance(value, date) else value
    return body


def _fact_from_dict(item: dict[str, Any]) -> Fact:
    cls = KINDS[item["kind"]]
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = item.get(f.name)
        if value is not None and f.name in _DAYS:
            value = date.fromisoformat(value)
        elif value is not None and f.name in _MOMENTS:
            value = datetime.fromisoformat(value)
        elif f.name == "state":
            value = State(str(value))
        elif f.name == "day_type":
            value = DayKind(str(value))
        values[f.name] = value
    return cls(**values)  # type: ignore[no-any-return]


def _words(fact: Fact) -> str:
    if isinstance(fact, DayFact):
        return f"День звонка {_ru(fact.on)} — {DAY_TYPES[fact.day_type]}"
    if isinstance(fact, LicenceFact):
        return _licence_words(fact)
    if isinstance(fact, UpdatesFact):
        head = f"Обновления, куплены {_ru(fact.purchased_on)} на {fact.months} мес."
        return f"{head} — {_term_words(fact.state, fact.last_day)}"
    if isinstance(fact, SubscriptionFact):
        return _subscription_words(fact)
    if isinstance(fact, GrantFact):
        return _grant_words(fact)
    if isinstance(fact, RefusalFact):
        return _refusal_words(fact)
    return f"Правило: {RULES.get(fact.reason, fact.reason)} ({fact.reason})"


def _licence_words(fact: LicenceFact) -> str:
    number = f" № {fact.number}" if fact.number else ""
    head = f"Лицензия {fact.product}{number}, куплена {_ru(fact.purchased_on)}"
    if fact.state is State.ENDED:
        return f"{head} — бесплатный год истёк {_ru(fact.last_day)}"
    return f"{head} — {_term_words(fact.state, fact.last_day)}"


def _term_words(state: State, last_day: date) -> str:
    if state is State.IN_FORCE:
        return f"бесплатная поддержка до {_ru(last_day)}"
    if state is State.NOT_STARTED:
        return "куплены позже дня звонка"
    return f"срок истёк {_ru(last_day)}"


def _subscription_words(fact: SubscriptionFact) -> str:
    term = f"по {_ru(fact.ends_on)}" if fact.ends_on else "бессрочно"
    head = f"Подписка на {fact.service} с {_ru(fact.starts_on)} {term}"
    if fact.state is State.CANCELLED and fact.cancelled_at is not None:
        return f"{head} — отменена {_ru(_moscow_day(fact.cancelled_at))}"
    return head + {
        State.IN_FORCE: " — действует",
        State.NOT_STARTED: " — ещё не началась",
        State.ENDED: " — закончилась",
    }.get(fact.state, "")


def _grant_words(fact: GrantFact) -> str:
    given = f", {_ru(_moscow_day(fact.granted_at))}" if fact.granted_at else ""
    head = f"Жест доброй воли до {_ru(fact.until)} — {fact.reason} (выдал {fact.granted_by}{given})"
    return head + {
        State.IN_FORCE: ": бесплатная поддержка",
        State.NOT_STARTED: ": выдан позже звонка",
        State.ENDED: ": срок истёк",
    }.get(fact.state, "")


def _refusal_words(fact: RefusalFact) -> str:
    until = f" по {_ru(_last_moscow_day(fact.expires_at))}" if fact.expires_at else " до снятия"
    head = f"Отказ в консультации с {_ru(_moscow_day(fact.set_at))}{until}: {fact.reason}"
    if fact.state is State.LIFTED and fact.lifted_at is not None:
        return f"{head} — снят {_ru(_moscow_day(fact.lifted_at))}"
    return head + {
        State.IN_FORCE: " — действует",
        State.NOT_STARTED: " — установлен позже звонка",
        State.ENDED: " — истёк",
    }.get(fact.state, "")


def _moscow_day(moment: datetime) -> date:
    return moment.astimezone(MOSCOW).date()


def _last_moscow_day(end: datetime) -> date:
    # A term is stored as the moment it ends, 00:00 after its last day.
    return _moscow_day(end - timedelta(microseconds=1))


def _ru(day: date) -> str:
    return day.strftime("%d.%m.%Y")
