"""Call-centre figures for any period, aggregated in SQL over the stored calls.

A call belongs to the period in which it arrived (``start <= arrived_at < end``). The
definitions follow Asterisk's queue statistics (``queue show``), with our precise stamps
instead of its whole seconds:

- offered: calls that arrived; each of them has exactly one outcome (``outcome_of``: from its
  status by ``OUTCOME_OF``, or answered whenever an agent answered): answered (including a
  conversation going on now), abandoned in the queue, turned away because no agent was on
  the line (every member paused or unavailable), abandoned in the menu, ended by the rules
  (closed, not a customer, refused, not entitled, or sent to sales), lost (no end signal
  ever came, never answered), or still in progress (in the menu or waiting for an agent);
  the outcome counts add up to offered;
- service level SL = answered within the wait target / answered (Asterisk's
  ``callscompletedinsl / callscompleted``, "within" meaning ``wait <= target``);
- SL2 = (answered within the target + abandoned in the queue within the target) /
  (answered + abandoned in the queue) — Asterisk's ``ServicelevelPerf2``. Calls turned away
  for want of agents are in neither: they never waited for one (Asterisk has no record at
  all of those turned away at the door);
- ASA: the average wait of answered calls;
- consultation (answer to end) average and 90th percentile (nearest rank: the smallest
  value that at least 90 % of consultations do not exceed), the shares within 3 and 5
  minutes, and the counts over them.

Waits and consultations with a missing stamp are left out of every figure that needs them.
Ratios are None when their denominator is zero, never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from onerpa.callstatus import CallStatus
from onerpa.models import Call, SupportRequest
from onerpa.timing import Targets

__all__ = [
    "CONSULTATION_EDGES",
    "OUTCOME_OF",
    "UNDECIDED",
    "Figures",
    "Outcome",
    "Targets",
    "agent_interfaces",
    "outcome_of",
    "compute",
    "consultation_histogram",
    "hourly",
    "per_agent",
    "per_decision",
    "REQUEST_KINDS",
    "RequestFigures",
    "requests",
]

UNDECIDED = "undecided"  # the decision key of calls that ended before a decision
CONSULTATION_EDGES = (60, 120, 180, 240, 300, 420, 600)
_SLOT_SECONDS = 900  # every time zone's offset is a multiple of 15 minutes


class Outcome(StrEnum):
    """How an offered call turned out; every call has exactly one. Values are stable codes."""

    ANSWERED = "answered"
    ABANDONED_QUEUE = "abandoned_queue"
    NO_AGENTS = "no_agents"
    ABANDONED_IVR = "abandoned_ivr"
    ENDED_BY_RULES = "ended_by_rules"
    LOST = "lost"
    IN_PROGRESS = "in_progress"


# The one place that says which outcome each status is. A conversation going on now is
# answered (the wait is over; SL and ASA count it), a call sent to sales was ended by the
# rules (not entitled, the caller chose sales), a call still in the menu or the queue is in
# progress. ``Figures`` has one count per outcome, named by its code.
OUTCOME_OF: Mapping[CallStatus, Outcome] = {
    CallStatus.IN_IVR: Outcome.IN_PROGRESS,
    CallStatus.QUEUED: Outcome.IN_PROGRESS,
    CallStatus.TALKING: Outcome.ANSWERED,
    CallStatus.COMPLETED: Outcome.ANSWERED,
    CallStatus.ENDED_IVR: Outcome.ENDED_BY_RULES,
    CallStatus.TRANSFERRED: Outcome.ENDED_BY_RULES,
    CallStatus.ABANDONED_IVR: Outcome.ABANDONED_IVR,
    CallStatus.ABANDONED_QUEUE: Outcome.ABANDONED_QUEUE,
    CallStatus.NO_AGENTS: Outcome.NO_AGENTS,
    CallStatus.LOST: Outcome.LOST,
}


def outcome_of(status: str, answered_at: datetime | None) -> Outcome:
    """Return a call's outcome: answered once an agent answered it, else by its status.

    An answer time outranks the status because only a lost call can have both: the sweep
    closed it after an answer, when the hang-up never came. The agent did talk to the caller.
    """
    return Outcome.ANSWERED if answered_at is not None else OUTCOME_OF[CallStatus(status)]


def _outcome(status: Any, answered_at: Any) -> ColumnElement[str]:
    """SQL for ``outcome_of``: the same rule, per row."""
    by_status = [(status.in_(_statuses_of(o)), literal(o.value)) for o in Outcome]
    return case((answered_at.is_not(None), literal(Outcome.ANSWERED.value)), *by_status)


def _statuses_of(outcome: Outcome) -> list[str]:
    return [status.value for status, found in OUTCOME_OF.items() if found is outcome]


@dataclass(frozen=True)
class Figures:
    """The standard figures of one set of calls; times in seconds, shares in 0..1.

    ``offered`` is the sum of the seven outcome counts (``answered`` ... ``in_progress``);
    ``transferred`` is the part of ``ended_by_rules`` that was sent to sales.
    """

    offered: int = 0
    answered: int = 0
    abandoned_queue: int = 0
    no_agents: int = 0
    abandoned_ivr: int = 0
    ended_by_rules: int = 0
    lost: int = 0
    in_progress: int = 0
    transferred: int = 0
    service_level: float | None = None
    service_level2: float | None = None
    asa_seconds: float | None = None
    consultation_avg_seconds: float | None = None
    consultation_p90_seconds: float | None = None
    within_target_share: float | None = None
    within_limit_share: float | None = None
    over_target: int = 0
    over_limit: int = 0

    def outcomes(self) -> list[tuple[Outcome, int]]:
        """Return each outcome with its count, in ``Outcome`` order; they add up to offered."""
        return [(outcome, getattr(self, outcome.value)) for outcome in Outcome]


def compute(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    targets: Targets,
    agent: str | None = None,
    decision: str | None = None,
) -> Figures:
    """Return the figures of calls that arrived in ``[start, end)``, optionally narrowed."""
    filters = _period(start, end)
    if agent is not None:
        filters.append(Call.agent == agent)
    if decision is not None:
        filters.append(_decision_is(decision))
    return _grouped(session, filters, None, targets).get(None, Figures())


def per_agent(
    session: Session, start: datetime, end: datetime, *, targets: Targets
) -> dict[str, Figures]:
    """Return the figures of each agent's answered calls that arrived in the period."""
    filters = [*_period(start, end), Call.agent.is_not(None)]
    return _grouped(session, filters, Call.agent, targets)  # type: ignore[return-value]


def agent_interfaces(session: Session, start: datetime, end: datetime) -> dict[str, str]:
    """Return the phone interface each agent (as ``calls.agent`` names them) answered on."""
    rows = session.execute(
        select(Call.agent, func.max(Call.agent_interface))
        .where(*_period(start, end), Call.agent.is_not(None), Call.agent_interface.is_not(None))
        .group_by(Call.agent)
    )
    return {str(agent): str(interface) for agent, interface in rows}


def per_decision(
    session: Session, start: datetime, end: datetime, *, targets: Targets
) -> dict[str, Figures]:
    """Return the figures per IVR decision; calls ended before one are ``UNDECIDED``."""
    key = func.coalesce(Call.decision, literal(UNDECIDED))
    return _grouped(session, _period(start, end), key, targets)  # type: ignore[return-value]


def hourly(
    session: Session, start: datetime, end: datetime, tz: tzinfo
) -> list[tuple[datetime, int, int]]:
    """Return (local hour, offered, answered) for every hour of ``tz`` the period touches."""
    slot = _epoch(session, Call.arrived_at) // _SLOT_SECONDS  # whole slots, not a float
    rows = session.execute(
        select(
            slot.label("slot"),
            func.count(),
            _count_if(_outcome(Call.status, Call.answered_at) == Outcome.ANSWERED.value),
        )
        .where(*_period(start, end))
        .group_by(slot)
    )
    counts: dict[datetime, list[int]] = {}
    for slot_number, offered, answered in rows:
        moment = datetime.fromtimestamp(int(slot_number) * _SLOT_SECONDS, UTC)
        totals = counts.setdefault(_local_hour(moment, tz), [0, 0])
        totals[0] += offered
        totals[1] += int(answered or 0)
    return [(hour.astimezone(tz), *counts.get(hour, (0, 0))) for hour in _hours(start, end, tz)]


def consultation_histogram(
    session: Session,
    start: datetime,
    end: datetime,
    edges: Iterable[int] = CONSULTATION_EDGES,
) -> list[tuple[str, int]]:
    """Return consultations per length band: ``0-60``, ``60-120``, ..., ``600+`` (seconds).

    A band holds lengths above its lower edge up to and including its upper edge, so a
    consultation of exactly 180 s is in ``120-180``: within the 3-minute target.
    """
    bounds = sorted(edges)
    base = (
        select(_consultation(session).label("consult"))
        .where(*_period(start, end))
        .cte("base")
        .prefix_with("MATERIALIZED")  # the length is computed once per call, not per band
    )
    consult = base.c.consult
    bands = [consult <= bounds[0]]
    bands += [and_(consult > lo, consult <= hi) for lo, hi in zip(bounds, bounds[1:], strict=False)]
    bands.append(consult > bounds[-1])
    row = session.execute(select(*[_count_if(band) for band in bands])).one()
    labels = [f"0-{bounds[0]}"]
    labels += [f"{lo}-{hi}" for lo, hi in zip(bounds, bounds[1:], strict=False)]
    labels.append(f"{bounds[-1]}+")
    return [(label, int(count or 0)) for label, count in zip(labels, row, strict=True)]


# --- SQL building blocks -------------------------------------------------------------------


def _period(start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    return [Call.arrived_at >= start, Call.arrived_at < end]


def _decision_is(decision: str) -> ColumnElement[bool]:
    if decision == UNDECIDED:
        return Call.decision.is_(None)
    return Call.decision == decision


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def seconds_between(dialect: str, start: Any, end: Any) -> ColumnElement[float]:
    """Return SQL for the seconds from ``start`` to ``end`` (rounded to the millisecond)."""
    if dialect == "postgresql":
        return cast(func.round(func.extract("epoch", end - start), 3), Float)
    # SQLite keeps moments as text; julianday() reads them with their fractional seconds.
    return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)


def _epoch(session: Session, column: Any) -> ColumnElement[int]:
    if _dialect(session) == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), BigInteger)
    return cast(func.strftime("%s", column), Integer)


def _wait(session: Session) -> ColumnElement[float]:
    """SQL for the wait: to the answer, or to the end of a call abandoned in the queue."""
    dialect = _dialect(session)
    return case(
        (Call.answered_at.is_not(None), seconds_between(dialect, Call.queued_at, Call.answered_at)),
        (
            Call.status == CallStatus.ABANDONED_QUEUE.value,
            seconds_between(dialect, Call.queued_at, Call.ended_at),
        ),
    )


def _consultation(session: Session) -> ColumnElement[float]:
    return seconds_between(_dialect(session), Call.answered_at, Call.ended_at)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def _grouped(
    session: Session, filters: list[ColumnElement[bool]], key: Any, targets: Targets
) -> dict[str | None, Figures]:
    """Aggregate the calls matching ``filters``, per value of ``key`` (or all, if None).

    One statement: the period's calls with their wait and consultation computed once
    (a materialized CTE), the aggregates over it, and the 90th percentile beside them.
    """
    group = key if key is not None else literal("")
    base = (
        select(
            group.label("key"),
            Call.status.label("status"),
            _outcome(Call.status, Call.answered_at).label("outcome"),
            _wait(session).label("wait"),
            _consultation(session).label("consult"),
        )
        .where(*filters)
        .cte("base")
        .prefix_with("MATERIALIZED")
    )
    if key is None:
        row = session.execute(_totals(base, targets, grouped=False)).mappings().one()
        return {None: _figures(row)} if row["offered"] else {}
    totals = _totals(base, targets).subquery("totals")
    p90 = _p90(base).subquery("p90")
    query = select(totals, p90.c.p90).select_from(totals.outerjoin(p90, totals.c.key == p90.c.key))
    rows = session.execute(query).mappings().all()
    return {(row["key"] if key is not None else None): _figures(row) for row in rows}


def _totals(base: Any, targets: Targets, *, grouped: bool = True) -> Any:
    """Return SQL for the counts and averages over ``base``, per key or (with the 90th
    percentile) over all of it."""
    c = base.c
    # Answered means the answered outcome, on its card and in SL and ASA alike.
    answered = c.outcome == Outcome.ANSWERED.value
    abandoned_q = c.outcome == Outcome.ABANDONED_QUEUE.value
    outcomes = [_count_if(c.outcome == o.value).label(o.value) for o in Outcome]
    query = select(
        func.count().label("offered"),
        *outcomes,
        _count_if(
            and_(c.status == CallStatus.TRANSFERRED.value, c.outcome == Outcome.ENDED_BY_RULES)
        ).label("transferred"),
        _count_if(and_(answered, c.wait.is_not(None))).label("answered_timed"),
        _count_if(and_(answered, c.wait <= targets.wait)).label("answered_in_sl"),
        _count_if(and_(abandoned_q, c.wait.is_not(None))).label("abandoned_timed"),
        _count_if(and_(abandoned_q, c.wait <= targets.wait)).label("abandoned_in_sl"),
        func.avg(case((answered, c.wait))).label("asa"),
        func.count(c.consult).label("consultations"),
        func.avg(c.consult).label("consult_avg"),
        _count_if(c.consult <= targets.consultation_target).label("within_target"),
        _count_if(c.consult <= targets.consultation_limit).label("within_limit"),
        _count_if(c.consult > targets.consultation_target).label("over_target"),
        _count_if(c.consult > targets.consultation_limit).label("over_limit"),
    )
    if grouped:
        return query.add_columns(c.key).group_by(c.key)
    return query.add_columns(_p90_of_all(base).label("p90"))


def _p90_of_all(base: Any) -> Any:
    """Return SQL for the nearest-rank 90th percentile of all consultations in ``base``.

    One sort and no window: the value at offset ceil(0.9 n) - 1 of the sorted lengths.
    """
    c = base.c
    n = func.count(c.consult)
    offset = select(case((n == 0, 0), else_=(9 * n + 9) // 10 - 1)).scalar_subquery()
    return (
        select(c.consult)
        .where(c.consult.is_not(None))
        .order_by(c.consult)
        .limit(1)
        .offset(offset)
        .scalar_subquery()
    )


def _p90(base: Any) -> Any:
    """Return SQL for the nearest-rank 90th percentile of consultations, per key."""
    c = base.c
    ranked = (
        select(
            c.key,
            c.consult,
            func.row_number().over(partition_by=c.key, order_by=c.consult).label("rank"),
            func.count().over(partition_by=c.key).label("total"),
        )
        .where(c.consult.is_not(None))
        .subquery("ranked")
    )
    r = ranked.c
    # The smallest rank r with r >= 0.9 n, in whole numbers: 10 r >= 9 n > 10 (r - 1).
    return select(r.key, r.consult.label("p90")).where(
        r.rank * 10 >= r.total * 9, (r.rank - 1) * 10 < r.total * 9
    )


def _share(part: Any, whole: Any) -> float | None:
    return float(part or 0) / whole if whole else None


def _figures(row: Any) -> Figures:
    answered_timed = int(row["answered_timed"] or 0)
    both_timed = answered_timed + int(row["abandoned_timed"] or 0)
    in_sl = int(row["answered_in_sl"] or 0)
    consultations = int(row["consultations"] or 0)
    return Figures(
        offered=int(row["offered"]),
        **{outcome.value: int(row[outcome.value] or 0) for outcome in Outcome},
        transferred=int(row["transferred"] or 0),
        service_level=_share(in_sl, answered_timed),
        service_level2=_share(in_sl + int(row["abandoned_in_sl"] or 0), both_timed),
        asa_seconds=_float(row["asa"]),
        consultation_avg_seconds=_float(row["consult_avg"]),
        consultation_p90_seconds=_float(row["p90"]),
        within_target_share=_share(row["within_target"], consultations),
        within_limit_share=_share(row["within_limit"], consultations),
        over_target=int(row["over_target"] or 0),
        over_limit=int(row["over_limit"] or 0),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# --- hours ---------------------------------------------------------------------------------


def _local_hour(moment: datetime, tz: tzinfo) -> datetime:
    """Return the start of the local hour holding ``moment``, as a UTC moment."""
    local = moment.astimezone(tz)
    into_hour = timedelta(
        minutes=local.minute, seconds=local.second, microseconds=local.microsecond
    )
    return moment.astimezone(UTC) - into_hour


def _hours(start: datetime, end: datetime, tz: tzinfo) -> list[datetime]:
    """Return the UTC starts of the local hours overlapping ``[start, end)``."""
    hours = []
    hour = _local_hour(start, tz)
    while hour < end:
        hours.append(hour)
        hour = _local_hour(hour + timedelta(minutes=75), tz)
    return hours


@dataclass(frozen=True)
class RequestFigures:
    """The written-request promise over a period: what came in and how fast it was answered.

    ``received``/``answered`` per kind (``message``, ``callback``) received in the period;
    a message is answered in time when closed as answered within 72 hours of its arrival
    (its deadline); a call-back when answered by its deadline. Times are averages over the
    answered ones: a message from arrival, a call-back from the caller's place in the queue.
    ``open_now`` and ``overdue_now`` are counted at ``now``, whatever their period.
    """

    received: dict[str, int]
    answered: dict[str, int]
    in_time: dict[str, int]
    answer_seconds: dict[str, float | None]
    open_now: dict[str, int]
    overdue_now: dict[str, int]

    def in_time_share(self, kind: str) -> float | None:
        return _share(self.in_time.get(kind, 0), self.answered.get(kind, 0))


REQUEST_KINDS = ("message", "callback")


def requests(session: Session, start: datetime, end: datetime, now: datetime) -> RequestFigures:
    """Return the requests received in [start, end) and the open ones at ``now``."""
    r = SupportRequest
    answered = r.status == "answered"
    since = case(
        (r.kind == "callback", func.coalesce(r.place_at, r.received_at)), else_=r.received_at
    )
    took = seconds_between(_dialect(session), since, r.closed_at)
    period = session.execute(
        select(
            r.kind,
            func.count(),
            _count_if(answered),
            _count_if(answered & (r.closed_at <= r.due_at)),
            func.avg(case((answered, took))),
        )
        .where(r.received_at >= start, r.received_at < end)
        .group_by(r.kind)
    ).all()
    live = session.execute(
        select(r.kind, func.count(), _count_if(r.due_at < now))
        .where(r.status.in_(("new", "in_work")))
        .group_by(r.kind)
    ).all()
    return RequestFigures(
        received={k: int(n) for k, n, *_ in period},
        answered={k: int(a or 0) for k, _, a, *_ in period},
        in_time={k: int(t or 0) for k, _, _, t, _ in period},
        answer_seconds={k: _float(s) for k, *_, s in period},
        open_now={k: int(n) for k, n, _ in live},
        overdue_now={k: int(o or 0) for k, _, o in live},
    )
