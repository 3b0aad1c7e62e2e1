"""Prometheus metrics of the support line, all in one place.

Two kinds, exported by two kinds of process (docs/timing.md has the table):

- ``ProcessMetrics``: what one FastAGI server sees happen in its own process — AGI sessions
  and errors, IVR decisions and their latency, degraded decisions, database errors, the
  recorder's backlog. Every FastAGI server exports its own; Prometheus sums them.
- ``DatabaseCollector``: what the stored calls say, for the whole site — calls by decision
  and outcome, waits and consultation times, service level, calls in the IVR / waiting /
  talking now and those talking past 3 and 5 minutes. It follows ``call_events`` by id
  (from the newest id at start, so history is never replayed) and counts live calls on the
  status index, so a scrape costs the same with a hundred calls stored or a million. One
  ``onerpa-support metrics`` process per site runs it; it is also how a classic-AGI install,
  whose processes die after each call, gets its metrics.

Label values come from small fixed sets only: decision codes, final statuses, script
names, error kinds. No phone number, name, customer or agent ever becomes a label.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from onerpa.callstatus import LIVE, CallStatus
from onerpa.entitlement import Reason
from onerpa.models import Call, CallEvent
from onerpa.timing import Targets

log = logging.getLogger(__name__)

PREFIX = "onerpa_support"
UNDECIDED = "undecided"
OTHER = "other"
DECISIONS = frozenset(
    {r.value for r in Reason} | {"closed", "degraded", "fallback", UNDECIDED, OTHER}
)
OUTCOMES = frozenset(s.value for s in CallStatus if s not in LIVE)
EVENT_KINDS = ("arrived", "decided", "queued", "answered", "ended", "swept")
ERROR_KINDS = ("protocol", "exception", "unknown_script")
DB_OPERATIONS = ("record", "sweep", "collect")
DECISION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120)
WAIT_BUCKETS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 600)
CONSULTATION_BUCKETS = (30, 60, 90, 120, 150, 180, 240, 300, 420, 600, 900, 1200, 1800)
_MAX_TRACKED = 10_000  # calls between arrival and decision, per process


def decision_label(decision: str | None) -> str:
    """Return the label for ``decision``: itself if it is a known code, else ``other``."""
    if decision is None:
        return UNDECIDED
    return decision if decision in DECISIONS else OTHER


def buckets(base: Iterable[float], *required: float) -> tuple[float, ...]:
    """Return the bucket edges ``base`` plus ``required`` (the configured targets)."""
    return tuple(sorted({float(edge) for edge in (*base, *required)}))


# --- per process: the FastAGI server -------------------------------------------------------


class ProcessMetrics:
    """The metrics one FastAGI server (or any call-flow process) updates as things happen.

    Without a registry the metrics exist but are exported nowhere (tests, classic AGI).
    """

    def __init__(
        self, *, registry: CollectorRegistry | None = None, scripts: Iterable[str] = ()
    ) -> None:
        self.scripts = frozenset(scripts)
        self.sessions = Counter(
            f"{PREFIX}_agi_sessions",
            "AGI sessions served, by script (call, agent-connect, hangup).",
            ["script"],
            registry=registry,
        )
        self.sessions_active = Gauge(
            f"{PREFIX}_agi_sessions_active",
            "AGI sessions being served now.",
            registry=registry,
        )
        self.agi_errors = Counter(
            f"{PREFIX}_agi_errors",
            "AGI sessions that ended in an error: protocol (the connection broke), exception "
            "(a bug; the caller was let through), unknown_script.",
            ["script", "kind"],
            registry=registry,
        )
        self.decisions = Counter(
            f"{PREFIX}_ivr_decisions",
            "IVR decisions made, by decision code.",
            ["decision"],
            registry=registry,
        )
        self.degraded = Counter(
            f"{PREFIX}_degraded_decisions",
            "Calls let through without a customer check (directory down or too slow).",
            registry=registry,
        )
        self.decision_latency = Histogram(
            f"{PREFIX}_ivr_decision_seconds",
            "Time from a call's arrival to the IVR's decision (greeting, look-ups, menus).",
            buckets=DECISION_BUCKETS,
            registry=registry,
        )
        self.database_errors = Counter(
            f"{PREFIX}_database_errors",
            "Database operations that failed, by operation (record, sweep, collect).",
            ["operation"],
            registry=registry,
        )
        for operation in DB_OPERATIONS:
            self.database_errors.labels(operation)
        self.stalled = Counter(
            f"{PREFIX}_agi_sessions_stalled",
            "AGI sessions the watchdog closed because the server made no progress on them "
            "(no command sent while Asterisk waited); the dialplan's fallback took the caller.",
            ["script"],
            registry=registry,
        )
        self._registry = registry
        self._arrived: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def script_label(self, script: str) -> str:
        """Return ``script`` if it is one this server answers, else ``unknown``."""
        return script if script in self.scripts else "unknown"

    @contextmanager
    def session(self, script: str) -> Iterator[None]:
        """Count one AGI session of ``script`` while it runs."""
        self.sessions.labels(self.script_label(script)).inc()
        with self.sessions_active.track_inprogress():
            yield

    def agi_error(self, script: str, kind: str) -> None:
        """Count an AGI session of ``script`` that ended in error ``kind``."""
        self.agi_errors.labels(self.script_label(script), kind).inc()

    def database_error(self, operation: str) -> Callable[[Exception], None]:
        """Return a callback that counts a failure of ``operation``."""
        counter = self.database_errors.labels(operation)
        return lambda _err: counter.inc()

    def on_record(self, call_ref: str, fields: Mapping[str, Any]) -> None:
        """Observe a change the call flow records: decisions and their latency."""
        with self._lock:
            if fields.get("arrived_at") is not None and len(self._arrived) < _MAX_TRACKED:
                self._arrived[call_ref] = fields["arrived_at"]
            status = fields.get("status")
            if fields.get("decided_at") is None:
                if status is not None and status not in LIVE:
                    self._arrived.pop(call_ref, None)
                return
            arrived = self._arrived.pop(call_ref, None)
        self.decisions.labels(decision_label(fields.get("decision"))).inc()
        if fields.get("degraded") or fields.get("decision") == "degraded":
            self.degraded.inc()
        if arrived is not None:
            self.decision_latency.observe((fields["decided_at"] - arrived).total_seconds())

    def session_stalled(self, script: str) -> None:
        """Count an AGI session of ``script`` that the watchdog closed."""
        self.stalled.labels(self.script_label(script)).inc()

    def watch_database(self, is_up: Callable[[], bool]) -> None:
        """Export whether the database answers and its schema is checked (the fastagi command)."""
        if self._registry is None:
            return
        gauge = Gauge(
            f"{PREFIX}_fastagi_database_up",
            "1 when this FastAGI server's database answers and its schema is checked; 0 while "
            "it decides calls without it (degraded) and keeps their records in memory.",
            registry=self._registry,
        )
        gauge.set_function(lambda: 1.0 if is_up() else 0.0)

    def watch_recorder(self, recorder: Any) -> None:
        """Export the backlog and losses of ``recorder`` (a ``CallRecorder``)."""
        if self._registry is not None:
            self._registry.register(_RecorderCollector(recorder))


class _RecorderCollector:
    """The call recorder's buffer, read at scrape time."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            f"{PREFIX}_recorder_pending_calls",
            "Calls with changes not written to the database yet.",
            value=self.recorder.pending,
        )
        lost = CounterMetricFamily(
            f"{PREFIX}_recorder_lost_changes",
            "Call changes dropped because the buffer overflowed while the database was away.",
            value=self.recorder.lost,
        )
        yield pending
        yield lost


# --- per site: the stored calls ------------------------------------------------------------


@dataclass
class _EventRow:
    id: int
    kind: str
    data: str
    decision: str | None
    queued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


class DatabaseCollector:
    """Follow the stored calls and export what they say, at the cost of the new events only.

    Events are read by id. Ids that are skipped (a transaction that has not committed yet
    on PostgreSQL, where ids are taken before commit) are looked for again for
    ``gap_wait`` seconds, so an event is counted even when it becomes visible late.
    """

    def __init__(
        self,
        engine: Engine,
        targets: Targets,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        gap_wait: float = 30.0,
        batch: int = 5000,
    ) -> None:
        self.engine = engine
        self.targets = targets
        self.clock = clock
        self.gap_wait = gap_wait
        self.batch = batch
        self._lock = threading.Lock()
        self._gaps: dict[int, float] = {}  # id -> monotonic deadline
        self._live = dict.fromkeys((s.value for s in LIVE), 0)
        self._over = {"target": 0, "limit": 0}
        self._up = 0
        self._build_metrics(targets)
        self._last_id: int | None = None
        self._start()
        if registry is not None:
            registry.register(self)
            RequestCollector(engine, registry=registry, clock=clock)  # the same site's requests

    def _build_metrics(self, targets: Targets) -> None:
        self.calls = Counter(
            f"{PREFIX}_calls",
            "Calls that ended, by IVR decision and outcome (final status); no_agents: turned "
            "away by the queue because every agent was paused or unavailable.",
            ["decision", "outcome"],
            registry=None,
        )
        # Exported at 0 from the start, so that increase() sees the first call turned away
        # (the NoAgentsOnLine alert): a series born at 1 shows no increase.
        for decision in DECISIONS:
            self.calls.labels(decision, CallStatus.NO_AGENTS.value)
        self.events = Counter(
            f"{PREFIX}_call_events",
            "State changes of calls: arrived, decided, queued, answered, ended, swept.",
            ["kind"],
            registry=None,
        )
        for kind in EVENT_KINDS:
            self.events.labels(kind)
        self.wait = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Wait for an agent: queue entry to answer (answered) or to hang-up (abandoned).",
            ["outcome"],
            buckets=buckets(WAIT_BUCKETS, targets.wait),
            registry=None,
        )
        self.service_level = Counter(
            f"{PREFIX}_service_level_calls",
            "Queue calls answered or abandoned, split by whether the wait was within the "
            "wait target (Asterisk's servicelevel): SL and SL2 are ratios of these.",
            ["outcome", "within_target"],
            registry=None,
        )
        for outcome in ("answered", "abandoned"):
            self.wait.labels(outcome)
            for within in ("true", "false"):
                self.service_level.labels(outcome, within)
        self.consultation = Histogram(
            f"{PREFIX}_consultation_seconds",
            "Consultation time, agent answer to end, of completed calls.",
            buckets=buckets(
                CONSULTATION_BUCKETS, targets.consultation_target, targets.consultation_limit
            ),
            registry=None,
        )
        self.errors = Counter(
            f"{PREFIX}_database_errors",
            "Database operations that failed, by operation (record, sweep, collect).",
            ["operation"],
            registry=None,
        )
        self.errors.labels("collect")
        self._counted: tuple[Counter | Histogram, ...] = (
            self.calls,
            self.events,
            self.wait,
            self.service_level,
            self.consultation,
            self.errors,
        )

    def _start(self) -> None:
        """Start after the newest event, so the history is not replayed."""
        try:
            with self.engine.connect() as conn:
                self._last_id = conn.scalar(select(func.max(CallEvent.id))) or 0
        except SQLAlchemyError as err:
            log.warning("metrics: database not readable yet: %s", err)
            self.errors.labels("collect").inc()

    # -- Prometheus collector protocol ------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        for metric in self._counted:
            yield from metric.describe()
        yield from self._gauges()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self.poll()
            for metric in self._counted:
                yield from metric.collect()
            yield from self._gauges()

    # -- reading the database ---------------------------------------------------------------

    def poll(self) -> None:
        """Read new events and the live counts; on a database error keep the last values."""
        try:
            if self._last_id is None:
                self._start()
                if self._last_id is None:
                    raise SQLAlchemyError("no starting point")
            with self.engine.connect() as conn:
                self._follow(conn)
                self._count_live(conn)
            self._up = 1
        except SQLAlchemyError as err:
            self._up = 0
            self.errors.labels("collect").inc()
            log.warning("metrics: database not readable: %s", err)

    def _follow(self, conn: Any) -> None:
        while True:
            rows = self._new_events(conn)
            for row in rows:
                self._gaps.pop(row.id, None)
                self._note_gaps(row.id)
                self._count(row)
            self._expire_gaps()
            if len(rows) < self.batch:
                return

    def _new_events(self, conn: Any) -> list[_EventRow]:
        assert self._last_id is not None
        wanted = CallEvent.id > self._last_id
        if self._gaps:
            wanted = wanted | CallEvent.id.in_(list(self._gaps))
        query = (
            select(
                CallEvent.id,
                CallEvent.kind,
                CallEvent.data,
                Call.decision,
                Call.queued_at,
                Call.answered_at,
                Call.ended_at,
            )
            .outerjoin(Call, Call.call_ref == CallEvent.call_ref)
            .where(wanted)
            .order_by(CallEvent.id)
            .limit(self.batch)
        )
        return [_EventRow(*row) for row in conn.execute(query)]

    def _note_gaps(self, event_id: int) -> None:
        assert self._last_id is not None
        if event_id <= self._last_id:
            return
        deadline = time.monotonic() + self.gap_wait
        for missing in range(self._last_id + 1, min(event_id, self._last_id + 1001)):
            self._gaps[missing] = deadline
        self._last_id = event_id

    def _expire_gaps(self) -> None:
        now = time.monotonic()
        for gap in [g for g, deadline in self._gaps.items() if deadline < now]:
            del self._gaps[gap]

    def _count(self, row: _EventRow) -> None:
        kind = row.kind if row.kind in EVENT_KINDS else "other"
        self.events.labels(kind).inc()
        if row.kind == "answered":
            self._waited("answered", _seconds(row.queued_at, row.answered_at))
        elif row.kind in ("ended", "swept"):
            outcome = _status_of(row.data)
            self.calls.labels(decision_label(row.decision), outcome).inc()
            if outcome == CallStatus.ABANDONED_QUEUE:
                self._waited("abandoned", _seconds(row.queued_at, row.ended_at))
            elif outcome == CallStatus.COMPLETED:
                consultation = _seconds(row.answered_at, row.ended_at)
                if consultation is not None:
                    self.consultation.observe(consultation)

    def _waited(self, outcome: str, wait: float | None) -> None:
        if wait is None:
            return
        self.wait.labels(outcome).observe(wait)
        within = "true" if wait <= self.targets.wait else "false"
        self.service_level.labels(outcome, within).inc()

    def _count_live(self, conn: Any) -> None:
        """Count live calls per status, and those talking past the target and the limit."""
        now = self.clock()
        target = now - timedelta(seconds=self.targets.consultation_target)
        limit = now - timedelta(seconds=self.targets.consultation_limit)
        query = (
            select(
                Call.status,
                func.count(),
                func.count().filter(Call.answered_at < target),
                func.count().filter(Call.answered_at < limit),
            )
            .where(Call.status.in_(list(self._live)))
            .group_by(Call.status)
        )
        rows = {status: counts for status, *counts in conn.execute(query)}
        self._live = {status: int(rows.get(status, [0])[0]) for status in self._live}
        talking = rows.get(CallStatus.TALKING.value, [0, 0, 0])
        self._over = {"target": int(talking[1]), "limit": int(talking[2])}

    def _gauges(self) -> Iterator[Metric]:
        live = GaugeMetricFamily(
            f"{PREFIX}_calls_in_progress",
            "Calls now in the IVR, waiting in the queue, or talking to an agent.",
            labels=["state"],
        )
        for state, count in self._live.items():
            live.add_metric([state], count)
        yield live
        over = GaugeMetricFamily(
            f"{PREFIX}_calls_talking_longer_than",
            "Calls talking now for longer than the consultation target (3 min) or limit (5 min).",
            labels=["threshold"],
        )
        for threshold, count in self._over.items():
            over.add_metric([threshold], count)
        yield over
        for name, value, help_text in (
            ("wait_target_seconds", self.targets.wait, "The wait-for-agent target."),
            ("consultation_target_seconds", self.targets.consultation_target, "Warning mark."),
            ("consultation_limit_seconds", self.targets.consultation_limit, "Breach mark."),
            ("collector_database_up", self._up, "1 if the last read of the database worked."),
        ):
            yield GaugeMetricFamily(f"{PREFIX}_{name}", help_text, value=value)


def _status_of(data: str) -> str:
    try:
        status = json.loads(data).get("status") if data else None
    except (ValueError, AttributeError):
        status = None
    return status if status in OUTCOMES else OTHER


class LineCollector:
    """The queue now, as Asterisk lists it over AMI, read at scrape time.

    Agents by state (``onerpa.agents.STATES`` but ``off``), callers waiting and the longest
    wait; whether the line is open by the configured hours (so an alert can ask "open and
    nobody free"); whether AMI answered. No agent name or number becomes a label.
    """

    def __init__(
        self,
        read: Callable[[], Any],
        calendar: Any,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.read = read  # returns an onerpa.agents.Line
        self.calendar = calendar
        self.clock = clock
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected on each scrape only

    def collect(self) -> Iterator[Metric]:
        from onerpa import agents, hours

        line = self.read()
        counts = line.counts() if line.ok else dict.fromkeys(agents.STATES[:-1], 0)
        by_state = GaugeMetricFamily(
            f"{PREFIX}_agents",
            "Queue members now by state: free, ringing, talking, busy (another call), paused, "
            "unavailable (phone not reachable). 0 everywhere while AMI does not answer.",
            labels=["state"],
        )
        for state, count in counts.items():
            by_state.add_metric([state], count)
        yield by_state
        for name, value, text in (
            ("callers_waiting", len(line.entries), "Callers waiting in the queue now."),
            ("longest_wait_seconds", line.longest_wait, "The longest current wait, seconds."),
            ("ami_up", int(line.ok), "1 if Asterisk's manager interface answered this scrape."),
            (
                "line_open",
                int(hours.is_open(self.calendar, self.clock())),
                "1 while the line is open by the configured hours and holidays.",
            ),
        ):
            yield GaugeMetricFamily(f"{PREFIX}_{name}", text, value=value)


# --- requests: voice messages and call-backs (onerpa.models.SupportRequest) -----------------

REQUEST_KINDS = ("message", "callback")
REQUEST_WINDOW = timedelta(days=30)  # answered requests looked at for the times and shares
ANSWER_PROMISE = timedelta(hours=72)  # written answers are promised within 72 hours


class RequestCollector:
    """The requests now and over the last 30 days, read from the database at scrape time.

    Open and overdue requests by kind; of those answered in the window, how many within 72
    hours of arriving, and the average time to the answer (a message: from the recording; a
    call-back: from the caller's place in the queue to the answered call-back). Labels: the
    kind only (message, callback), and within_72h (true, false).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.clock = clock
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected on each scrape only

    def collect(self) -> Iterator[Metric]:
        from onerpa.models import SupportRequest

        table = SupportRequest.__table__
        now = self.clock()
        open_ = table.c.status.in_(("new", "in_work"))
        try:
            with self.engine.connect() as conn:
                live = conn.execute(
                    select(
                        table.c.kind,
                        func.count().filter(open_),
                        func.count().filter(open_ & (table.c.due_at < now)),
                    ).group_by(table.c.kind)
                ).all()
                answered = conn.execute(
                    select(
                        table.c.kind, table.c.received_at, table.c.place_at, table.c.closed_at
                    ).where(table.c.status == "answered", table.c.closed_at >= now - REQUEST_WINDOW)
                ).all()
        except SQLAlchemyError as err:
            log.warning("metrics: requests not readable: %s", err)
            return
        yield from _request_gauges(live, answered)


def _request_gauges(live: Iterable[Any], answered: Iterable[Any]) -> Iterator[Metric]:
    counts = {kind: (0, 0) for kind in REQUEST_KINDS}
    counts.update({kind: (int(n), int(late)) for kind, n, late in live if kind in counts})
    open_, overdue = (
        GaugeMetricFamily(f"{PREFIX}_requests_{name}", text, labels=["kind"])
        for name, text in (
            ("open", "Requests not yet answered or declined, by kind (message, callback)."),
            ("overdue", "Open requests past their deadline, by kind."),
        )
    )
    for kind, (n, late) in counts.items():
        open_.add_metric([kind], n)
        overdue.add_metric([kind], late)
    yield open_
    yield overdue
    within = {(kind, flag): 0 for kind in REQUEST_KINDS for flag in ("true", "false")}
    spent: dict[str, list[float]] = {kind: [] for kind in REQUEST_KINDS}
    for kind, received_at, place_at, closed_at in answered:
        if kind not in spent:
            continue
        start = place_at if kind == "callback" and place_at is not None else received_at
        seconds = (closed_at - start).total_seconds()
        spent[kind].append(seconds)
        within[(kind, "true" if seconds <= ANSWER_PROMISE.total_seconds() else "false")] += 1
    shares = GaugeMetricFamily(
        f"{PREFIX}_requests_answered_recent",
        "Requests answered in the last 30 days, by kind and whether within 72 hours.",
        labels=["kind", "within_72h"],
    )
    for (kind, flag), n in within.items():
        shares.add_metric([kind, flag], n)
    yield shares
    times = GaugeMetricFamily(
        f"{PREFIX}_request_answer_seconds_avg",
        "Average time to the answer of requests answered in the last 30 days, by kind: a "
        "message from its arrival, a call-back from the caller's place in the queue.",
        labels=["kind"],
    )
    for kind, values in spent.items():
        if values:
            times.add_metric([kind], sum(values) / len(values))
    yield times
