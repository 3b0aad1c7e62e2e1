"""What if the line's rules had been different: re-decide recorded calls under changed rules.

Each call is re-decided at its own moment against the directory *as it was*: the records
stored with it (``calls.evidence``, onerpa.evidence), never today's directory. Pure: rows
come in, counts and a listing come out; the database read is in ``whatif_command``.

How a call is re-decided:

* Open or closed: the new calendar at the moment the call arrived (``hours.opening_on``,
  as ``hours.line_status`` does). Open before, closed now: ``closed``.
* Open before and open now: the caller's records are rebuilt from the stored facts and the
  rules applied again (``entitlement.decide``) at the moment of the stored decision, with the
  new free term after purchase. A caller who declared a critical bug (``free_critical_bug``)
  is taken to declare it again: it still holds when the rules leave them without a free term
  and they bought the software. ``unknown_caller`` and ``degraded`` calls have no records:
  they stay as they were.
* Closed before, open now: a closed call stores only its day, not the caller's records.
  Its customer (``calls.customer_id``, known when the caller ID matched) is re-decided from
  the records of the same customer's nearest later call in the period — rows are read newest
  first for that. Without one (caller not identified, or no later call with records) the new
  outcome is ``open_unknown``: the line would have been open, the entitlement is not known.
* No evidence (calls stored before evidence existed, or a call that ended before a decision):
  not re-decidable, counted apart and never in the transitions.

Work is cached, since a customer's calls share their records: records are parsed once per
distinct stored text, decisions once per (records, Moscow day, moments passed), opening
hours once per day. Every cache is bounded, so memory stays flat over any number of calls.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Protocol

from onerpa import entitlement, evidence, hours
from onerpa.entitlement import (
    FREE_MONTHS_AFTER_PURCHASE,
    MOSCOW,
    CallerRecords,
    GrantFact,
    LicenceFact,
    Reason,
    RefusalFact,
    SubscriptionFact,
    UpdatesFact,
)
from onerpa.hours import SupportCalendar
from onerpa.settings import Settings

CLOSED = "closed"
DEGRADED = "degraded"
OPEN_UNKNOWN = "open_unknown"
DEFAULT_LIMIT = 50
CACHE_LIMIT = 100_000  # entries per cache before it is emptied: keeps memory flat

# Every outcome a call can have before or after, in Russian (the --json keys are the codes).
OUTCOMES = {
    Reason.FREE_FIRST_YEAR.value: "бесплатно: первый год после покупки",
    Reason.FREE_UPDATES.value: "бесплатно: обновления",
    Reason.FREE_SUBSCRIPTION.value: "бесплатно: подписка",
    Reason.FREE_CRITICAL_BUG.value: "бесплатно: заявлен баг",
    Reason.FREE_GOODWILL.value: "бесплатно: жест доброй воли",
    Reason.NOT_ENTITLED.value: "не положено",
    Reason.REFUSED_ETIQUETTE.value: "отказ (этикет)",
    Reason.UNKNOWN_CALLER.value: "не опознан",
    CLOSED: "нерабочее время",
    DEGRADED: "без проверки (сбой базы)",
    OPEN_UNKNOWN: "в часы работы, право неизвестно",
}
_NO_RECORDS = frozenset({CLOSED, DEGRADED, Reason.UNKNOWN_CALLER.value})
_FACTS = ',"facts":['
_HEAD = '{"version":1,"decision":"'
_AT = '","at":"'
_DAY = '{"kind":"day"'
_RULE = '{"kind":"rule"'
_BLANK = '{"version":1,"decision":"-","at":"2000-01-01T00:00:00+00:00","facts":['


class StoredCall(Protocol):
    """The columns of a stored call the what-if reads (a database row will do)."""

    id: int
    arrived_at: datetime
    caller_e164: str | None
    customer_id: int | None
    decision: str | None
    evidence: str | None


@dataclass(frozen=True)
class Rules:
    """The changed rules: the line's calendar and the free term after a purchase."""

    calendar: SupportCalendar
    free_months: int = FREE_MONTHS_AFTER_PURCHASE


@dataclass(frozen=True)
class Change:
    """One call whose outcome would change."""

    call_id: int
    arrived_at: datetime
    caller: str | None
    old: str
    new: str


@dataclass
class Result:
    """How many calls were re-decided, which changed and how; the first changes listed."""

    calls: int = 0
    changed: int = 0
    not_redecidable: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class _Records:
    value: CallerRecords
    moments: tuple[datetime, ...]  # when an in-force state can change within a day


@dataclass(frozen=True)
class _Stored:
    decision: str
    at: datetime
    key: str | None  # the records' stored text; None when they were parsed the slow way
    records: _Records | None = None


def changed_calendar(
    base: SupportCalendar,
    *,
    hours_text: str | None = None,
    closed_dates: str | None = None,
    working_dates: str | None = None,
) -> SupportCalendar:
    """Return ``base`` with other hours and extra days off or working days.

    The values read as the settings ``ONERPA_HOURS``, ``ONERPA_CLOSED_DATES`` and
    ``ONERPA_WORKING_DATES`` do, with the same checks (``SettingsError`` names the setting).
    """
    given = {
        "ONERPA_HOURS": hours_text,
        "ONERPA_CLOSED_DATES": closed_dates,
        "ONERPA_WORKING_DATES": working_dates,
    }
    parsed = Settings.from_env({k: v for k, v in given.items() if v}).calendar
    return replace(
        base,
        weekly=parsed.weekly if hours_text else base.weekly,
        extra_closed=(base.extra_closed | parsed.extra_closed) - parsed.extra_working,
        extra_working=(base.extra_working | parsed.extra_working) - parsed.extra_closed,
    )


def redecide(calls: Iterable[StoredCall], rules: Rules, *, limit: int = DEFAULT_LIMIT) -> Result:
    """Re-decide ``calls`` (newest first) under ``rules``; count all, list the first ``limit``."""
    replay = Replay(rules)
    result = Result()
    heap: list[tuple[float, int, Change]] = []
    for call in calls:
        result.calls += 1
        outcome = replay.outcome(call)
        if outcome is None:
            result.not_redecidable += 1
            continue
        old, new = outcome
        if old == new:
            continue
        result.changed += 1
        result.transitions[(old, new)] += 1
        if limit > 0:
            change = Change(call.id, call.arrived_at, call.caller_e164, old, new)
            # A max-heap by (moment, id) of the earliest ``limit`` changes, in any read order.
            item = (-call.arrived_at.timestamp(), -call.id, change)
            if len(heap) < limit:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    result.changes = sorted((c for _, _, c in heap), key=lambda c: (c.arrived_at, c.call_id))
    return result


class Replay:
    """Re-decides one call after another under ``rules``, remembering what repeats."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._windows: dict[date, tuple[datetime, datetime] | None] = {}
        self._records: dict[str, _Records] = {}
        self._decisions: dict[tuple[str, date, bool, int], str] = {}
        # Each customer's records as their nearest later call stored them (for closed calls).
        self._latest: dict[int, str] = {}

    def outcome(self, call: StoredCall) -> tuple[str, str] | None:
        """Return (old, new) outcome of ``call``; None when it cannot be re-decided."""
        stored = self._stored(call.evidence)
        if stored is None:
            return None
        old = call.decision or stored.decision
        if old not in _NO_RECORDS and stored.key is not None and call.customer_id is not None:
            self._latest[call.customer_id] = stored.key
        if not self.is_open(call.arrived_at):
            return old, CLOSED
        if old == CLOSED:
            return old, self._opened(call)
        if old in _NO_RECORDS:
            return old, old
        critical = old == Reason.FREE_CRITICAL_BUG.value
        return old, self._decide(stored, stored.at, critical)

    def is_open(self, at: datetime) -> bool:
        """Return True when the new calendar has the line open at ``at``."""
        local = at.astimezone(self.rules.calendar.zone)
        day = local.date()
        if day not in self._windows:
            self._windows[day] = hours.opening_on(self.rules.calendar, day)
        window = self._windows[day]
        return window is not None and window[0] <= local < window[1]

    def _opened(self, call: StoredCall) -> str:
        key = self._latest.get(call.customer_id) if call.customer_id is not None else None
        if key is None:
            return OPEN_UNKNOWN
        return self._decide(_Stored(CLOSED, call.arrived_at, key), call.arrived_at, False)

    def _decide(self, stored: _Stored, at: datetime, critical: bool) -> str:
        records = stored.records or self._parsed(stored.key or "")
        day = at.astimezone(MOSCOW).date()
        passed = bisect_right(records.moments, at) if records.moments else 0
        cache_key = (stored.key, day, critical, passed) if stored.key is not None else None
        if cache_key is not None and cache_key in self._decisions:
            return self._decisions[cache_key]
        reason = entitlement.decide(
            records.value, at, critical_bug=critical, free_months=self.rules.free_months
        ).reason.value
        if cache_key is not None:
            _bounded(self._decisions)[cache_key] = reason
        return reason

    def _stored(self, text: str | None) -> _Stored | None:
        if not text:
            return None
        fast = _split(text)
        if fast is not None:
            decision, at, key = fast
            try:
                return _Stored(decision, datetime.fromisoformat(at), key)
            except ValueError:
                pass
        found = evidence.from_json(text)
        if found is None:
            return None
        return _Stored(found.decision, found.at, None, _records_from(found.facts))

    def _parsed(self, key: str) -> _Records:
        records = self._records.get(key)
        if records is None:
            found = evidence.from_json(_BLANK + key + "]}")
            records = _records_from(found.facts if found else ())
            _bounded(self._records)[key] = records
        return records


def _bounded(cache: dict[Any, Any]) -> dict[Any, Any]:
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    return cache


def _split(text: str) -> tuple[str, str, str] | None:
    """Return (decision, moment, records' text) of evidence as ``evidence.to_json`` writes it.

    The records' text lies between the day fact and the rule fact. JSON escapes every quote
    inside a value, so ``{"kind":"`` can only start a fact. Anything else: None.
    """
    head, found, facts = text.partition(_FACTS)
    if not found or not head.startswith(_HEAD) or not facts.endswith("]}"):
        return None
    decision, found, at = head[len(_HEAD) :].partition(_AT)
    if not found or not at.endswith('"'):
        return None
    body = facts[:-2]
    if body.startswith(_DAY):
        end = body.find("}")
        body = body[end + 2 :] if end >= 0 else ""
    rule = body.rfind(_RULE)
    if rule < 0:
        return None
    return decision, at[:-1], body[: max(rule - 1, 0)]


def _records_from(facts: Iterable[entitlement.Fact]) -> _Records:
    """Return the caller's records the stored facts describe, and their moments."""
    licences, updates, subscriptions, grants, refusals = [], [], [], [], []
    for fact in facts:
        if isinstance(fact, LicenceFact):
            licences.append(entitlement.Licence(fact.product, fact.purchased_on, fact.number))
        elif isinstance(fact, UpdatesFact):
            updates.append(entitlement.UpdatePlan(fact.purchased_on, fact.months))
        elif isinstance(fact, SubscriptionFact):
            subscriptions.append(
                entitlement.Subscription(
                    fact.service, fact.starts_on, fact.ends_on, fact.cancelled_at
                )
            )
        elif isinstance(fact, GrantFact):
            grants.append(
                entitlement.Grant(fact.until, fact.reason, fact.granted_by, fact.granted_at)
            )
        elif isinstance(fact, RefusalFact):
            refusals.append(
                entitlement.RefusalFlag(fact.set_at, fact.reason, fact.expires_at, fact.lifted_at)
            )
    moments = {
        *(s.cancelled_at for s in subscriptions),
        *(g.granted_at for g in grants),
        *(m for r in refusals for m in (r.set_at, r.expires_at, r.lifted_at)),
    }
    value = CallerRecords(
        tuple(licences), tuple(updates), tuple(subscriptions), tuple(refusals), tuple(grants)
    )
    return _Records(value, tuple(sorted(m for m in moments if m is not None)))
