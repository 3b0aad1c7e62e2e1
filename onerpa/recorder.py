"""Write call records from one background thread, so no caller ever waits on the database.

The call flow hands over changes (``record(call_ref, **fields)``) and goes on at once. A
single writer thread merges the changes per call and writes them in batches: one writer
means SQLite never reports "database is locked" to a caller, and every call is stored
exactly once however often it is updated. When the database is down, changes wait in
memory and are retried; if the buffer overflows, the loss is logged with the call
reference — never dropped silently.

Several sources write to one call, at moments that can cross: the call flow (``ivr``), the
dialplan hooks (``hook``: agent connect, hang-up), the queue_log reader (``queuelog``) and
the sweep (``sweep``). The rules that keep their writes from undoing each other are in
``merge``; they are applied to the stored row inside the writing transaction:

- the status only moves forward (in_ivr, queued, talking, then an end); an end never
  changes again, except ``lost``, which a real signal may still correct;
- an end's time and who ended it belong to the hang-up hook; the other sources only fill
  them while they are empty, and only together with the end status they come with;
- a hook's stamps overwrite; the queue_log's whole-second stamps only fill empty fields;
- None never erases a stored value.

Every state change the write makes (arrived, decided, queued, answered, ended, swept) is
appended to ``call_events`` in the same transaction; metrics follow that log by id.
Only the call flow creates calls: a change from any other source for a call that is not
stored is retried for ``orphan_grace`` seconds (the call flow's insert may still be on its
way from another process), then dropped with a log line.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError, SQLAlchemyError

from onerpa.callstatus import LIVE, CallStatus, EndedBy
from onerpa.models import Call, CallEvent

log = logging.getLogger(__name__)

_FIELDS = frozenset(c.name for c in Call.__table__.columns) - {"id"}
_COLUMNS = [c for c in Call.__table__.columns]
# Statements built once: building them per write cost more than the database's own work.
_CALLS = Call.__table__
_LOAD_BY_REF = select(*_COLUMNS).where(_CALLS.c.call_ref == bindparam("ref")).with_for_update()
_LOAD_BY_REFS = (
    select(*_COLUMNS)
    .where(_CALLS.c.call_ref.in_(bindparam("refs", expanding=True)))
    .order_by(_CALLS.c.id)  # every writer locks rows in the same order
    .with_for_update()
)
_LOAD_BY_UNIQUEID, _LOAD_BY_LINKEDID = (
    select(*_COLUMNS)
    .where(column == bindparam("uid"))
    .order_by(_CALLS.c.id.desc())
    .limit(1)
    .with_for_update()
    for column in (_CALLS.c.uniqueid, _CALLS.c.linkedid)
)
_INSERT_CALL = insert(_CALLS)
# No values(): the SET clause follows the keys each write passes.
_UPDATE_CALL = update(_CALLS).where(_CALLS.c.id == bindparam("_call_id"))
_INSERT_EVENT = insert(CallEvent.__table__)
_STOP = object()
# Errors that say the data or statement is wrong, not that the database is away: retrying
# them can never succeed.
_REJECTED = (DataError, IntegrityError, ProgrammingError)
END_FIELDS = frozenset({"ended_at", "ended_by"})
_RANK = {CallStatus.IN_IVR: 0, CallStatus.QUEUED: 1, CallStatus.TALKING: 2}
_TERMINAL_RANK = 3
_PROVISIONAL_ENDERS = frozenset({EndedBy.SWEEP.value, EndedBy.ERROR.value})


class Source(StrEnum):
    """Who says what happened to a call."""

    IVR = "ivr"  # the call flow (FastAGI or classic AGI)
    HOOK = "hook"  # the dialplan hooks: agent connect, hang-up handler
    QUEUELOG = "queuelog"  # Asterisk's queue_log, whole seconds
    SWEEP = "sweep"  # the sweep of calls no signal closed


@dataclass(frozen=True)
class CallKey:
    """How a change finds its call: by our reference, or by the caller channel's uniqueid."""

    call_ref: str | None = None
    uniqueid: str | None = None

    def __post_init__(self) -> None:
        if not (self.call_ref or self.uniqueid):
            raise ValueError("a call key needs a call_ref or a uniqueid")

    def __str__(self) -> str:
        return self.call_ref or f"uniqueid {self.uniqueid}"


@dataclass(frozen=True)
class End:
    """A signal that the call is over; the final status depends on where the call was.

    ``answered`` is the signal's own evidence that an agent answered (True), that none did
    (False), or None when it cannot tell. ``no_agents`` says the queue turned the caller
    away because no member could take a call (paused or unavailable, at entry or while
    waiting): the call ends as ``no_agents``, not as abandoned.
    """

    answered: bool | None = None
    no_agents: bool = False


@dataclass
class Change:
    """What one source says about one call.

    ``fields`` overwrite stored values (except None), ``fills`` only fill empty ones,
    ``status`` moves the status forward if it can, and ``with_status`` is written only
    when that status is accepted (filling end fields, overwriting the rest).
    """

    source: Source
    fields: dict[str, Any] = field(default_factory=dict)
    fills: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    with_status: dict[str, Any] = field(default_factory=dict)
    end: End | None = None

    def __post_init__(self) -> None:
        unknown = (set(self.fields) | set(self.fills) | set(self.with_status)) - _FIELDS
        if unknown:
            raise TypeError(f"not call fields: {sorted(unknown)}")

    def absorb(self, later: Change) -> bool:
        """Fold ``later`` into this change when that gives the same result; say if it did."""
        if later.source is not self.source or later.end is not None or self.end is not None:
            return False
        if later.status and self.status and (later.with_status or self.with_status):
            return False
        self.fields.update({k: v for k, v in later.fields.items() if v is not None})
        for name, value in later.fills.items():
            self.fills.setdefault(name, value)
        if later.status is not None:
            self.status = later.status
            self.with_status.update(later.with_status)
        return True


@dataclass(frozen=True)
class Transition:
    """One state change a write made: the event appended, and the call as written."""

    kind: str
    at: datetime
    source: Source
    call: Mapping[str, Any]


def ivr_change(fields: Mapping[str, Any]) -> Change:
    """Return the call flow's ``fields`` as a change (end fields go with their status)."""
    status = fields.get("status")
    plain = {k: v for k, v in fields.items() if k != "status" and k not in END_FIELDS}
    ends = {k: v for k, v in fields.items() if k in END_FIELDS}
    if status is None:
        return Change(Source.IVR, fields=plain, fills=ends)
    return Change(Source.IVR, fields=plain, status=status, with_status=ends)


# --- the rules -----------------------------------------------------------------------------


def rank(status: str) -> int:
    """Return how far along ``status`` is: IVR, queue, talking, ended."""
    return _RANK.get(CallStatus(status), _TERMINAL_RANK)


def advances(old: str | None, new: str) -> bool:
    """Return True when a call may move from status ``old`` to ``new``."""
    if old is None:
        return True
    if new == old:
        return False
    if old == CallStatus.LOST:
        return new != CallStatus.IN_IVR
    return rank(new) > rank(old)


def final_status(row: Mapping[str, Any], end: End) -> str:
    """Return the status an end signal gives the call ``row``."""
    stored = row.get("status")
    if stored is not None and stored not in LIVE and stored != CallStatus.LOST:
        return str(stored)
    if end.answered or stored == CallStatus.TALKING:
        return CallStatus.COMPLETED.value
    if end.no_agents:
        return CallStatus.NO_AGENTS.value
    if stored == CallStatus.QUEUED or row.get("queued_at") is not None:
        return CallStatus.ABANDONED_QUEUE.value
    return CallStatus.ABANDONED_IVR.value


def merge(row: Mapping[str, Any], change: Change) -> dict[str, Any]:
    """Return ``row`` with ``change`` applied by the rules above."""
    merged = dict(row)
    status = final_status(row, change.end) if change.end is not None else change.status
    if status is not None and advances(row.get("status"), status):
        if row.get("status") == CallStatus.LOST and row.get("ended_by") in _PROVISIONAL_ENDERS:
            merged["ended_by"] = None  # a real signal replaces the sweep's verdict
        merged["status"] = status
        for name, value in change.with_status.items():
            _put(merged, name, value, fill=name in END_FIELDS and change.source is not Source.HOOK)
    for name, value in change.fields.items():
        _put(merged, name, value, fill=name in END_FIELDS and change.source is not Source.HOOK)
    for name, value in change.fills.items():
        _put(merged, name, value, fill=True)
    return merged


def _put(row: dict[str, Any], name: str, value: Any, *, fill: bool) -> None:
    if value is None or (fill and row.get(name) is not None):
        return
    row[name] = value


def transitions(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], source: Source, now: datetime
) -> list[Transition]:
    """Return the state changes between ``old`` and ``new``, in the order they happen."""
    before = old or {}
    found = []
    if old is None:
        found.append(Transition("arrived", new.get("arrived_at") or now, source, new))
    for kind, stamp in (("decided", "decided_at"), ("queued", "queued_at")):
        if before.get(stamp) is None and new.get(stamp) is not None:
            found.append(Transition(kind, new[stamp], source, new))
    if before.get("answered_at") is None and new.get("answered_at") is not None:
        found.append(Transition("answered", new["answered_at"], source, new))
    if new.get("status") != before.get("status") and _is_end(new.get("status")):
        kind = "swept" if source is Source.SWEEP else "ended"
        found.append(Transition(kind, new.get("ended_at") or now, source, new))
    return found


def _is_end(status: Any) -> bool:
    return status is not None and status not in LIVE


# --- writing -------------------------------------------------------------------------------


class NotStored(LookupError):
    """A change for a call that is not (yet) stored, from a source that may not create it."""


_NOT_LOADED: Any = object()


def apply_changes(
    conn: Connection,
    key: CallKey,
    changes: Iterable[Change],
    now: datetime,
    *,
    stored: Mapping[str, Any] | None = _NOT_LOADED,
    events: list[dict[str, Any]] | None = None,
) -> list[Transition]:
    """Apply ``changes`` to the call ``key`` in ``conn``'s transaction; return what changed.

    ``stored`` is the call's row when the caller has loaded it already (None: not stored);
    with ``events`` the event rows are appended there for the caller to insert, instead of
    being inserted here. Raise ``NotStored`` when the call is not stored and no change may
    create it.
    """
    changes = list(changes)
    old = _load(conn, key) if stored is _NOT_LOADED else (dict(stored) if stored else None)
    creates = key.call_ref is not None and any(c.source is Source.IVR for c in changes)
    if old is None and not creates:
        raise NotStored(str(key))
    row: dict[str, Any] = dict(old) if old is not None else _new_row(key)
    for change in changes:
        row = merge(row, change)
    found = transitions(old, row, changes[-1].source, now)
    if old is None:
        row.pop("id", None)
        inserted = conn.execute(_INSERT_CALL, row).inserted_primary_key
        assert inserted is not None
        row["id"] = inserted[0]
    else:
        diff = {k: v for k, v in row.items() if old.get(k) != v}
        if diff:
            conn.execute(_UPDATE_CALL, {**diff, "_call_id": old["id"]})
    if found:
        rows = [_event(row, t) for t in found]
        if events is None:
            conn.execute(_INSERT_EVENT, rows)
        else:
            events.extend(rows)
    return found


def load_calls(conn: Connection, refs: list[str]) -> dict[str, dict[str, Any]]:
    """Return the stored calls among ``refs`` by reference, locked for this transaction."""
    if not refs:
        return {}
    rows = conn.execute(_LOAD_BY_REFS, {"refs": refs}).mappings()
    return {row["call_ref"]: dict(row) for row in rows}


def _new_row(key: CallKey) -> dict[str, Any]:
    return {"call_ref": key.call_ref}


def _load(conn: Connection, key: CallKey) -> dict[str, Any] | None:
    """Return the stored call ``key`` names, locked for this transaction where possible."""
    if key.call_ref:
        queries = [(_LOAD_BY_REF, {"ref": key.call_ref})]
    else:
        # A channel that re-enters the IVR makes a second call with the same uniqueid:
        # the newest one is the one the hooks speak of.
        queries = [(q, {"uid": key.uniqueid}) for q in (_LOAD_BY_UNIQUEID, _LOAD_BY_LINKEDID)]
    for query, params in queries:
        found = conn.execute(query, params).mappings().first()
        if found is not None:
            return dict(found)
    return None


def _event(row: Mapping[str, Any], transition: Transition) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if transition.kind in ("ended", "swept"):
        data["status"] = row["status"]
    if transition.kind == "decided":
        data["decision"] = row.get("decision")
    return {
        "call_ref": row["call_ref"],
        "kind": transition.kind,
        "at": transition.at,
        "source": transition.source.value,
        "agent": row.get("agent") if transition.kind == "answered" else None,
        "data": json.dumps(data, separators=(",", ":")) if data else "",
    }


def _system_clock() -> datetime:
    return datetime.now(UTC)


class _Outage:
    """Log a database outage once, then a summary now and then, then the recovery.

    Retrying every half second, a line per failure would bury everything else in the log.
    """

    def __init__(self, summary_every: float) -> None:
        self.summary_every = summary_every
        self.since: float | None = None
        self.next_summary = 0.0
        self.failures = 0

    def failed(self, err: BaseException, pending: int) -> None:
        now = time.monotonic()
        self.failures += 1
        if self.since is None:
            self.since, self.next_summary, self.failures = now, now + self.summary_every, 1
            log.warning(
                "database unavailable, call records wait in memory (%d calls): %s",
                pending,
                _first_line(err),
            )
        elif now >= self.next_summary:
            self.next_summary = now + self.summary_every
            log.warning(
                "database still unavailable after %.0f s (%d tries): %d calls' records waiting",
                now - self.since,
                self.failures,
                pending,
            )

    def recovered(self, pending: int) -> None:
        if self.since is None:
            return
        log.warning(
            "database available again after %.0f s; call records written (%d calls still queued)",
            time.monotonic() - self.since,
            pending,
        )
        self.since = None


def _first_line(err: BaseException) -> str:
    # SQLAlchemy appends the statement and a link on lines of their own.
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


class CallRecorder:
    """Buffer call changes and write them to the database in the background."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_pending: int = 100_000,
        batch_size: int = 500,
        retry_delay: float = 0.5,
        orphan_grace: float = 10.0,
        linger: float = 0.05,
        outage_summary: float = 60.0,
        on_error: Callable[[Exception], None] | None = None,
        on_record: Callable[[str, Mapping[str, Any]], None] | None = None,
        clock: Callable[[], datetime] = _system_clock,
    ) -> None:
        self.engine = engine
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.retry_delay = retry_delay
        self.orphan_grace = orphan_grace
        self.linger = linger
        self.on_error = on_error
        self.on_record = on_record
        self.clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: dict[CallKey, list[Change]] = {}
        # Calls not stored yet: (first "not stored" answer, next try), monotonic seconds.
        self._orphans: dict[CallKey, tuple[float, float]] = {}
        self._lost = 0
        self._outage = _Outage(outage_summary)
        self._thread = threading.Thread(target=self._run, name="call-recorder", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> int:
        """Return how many call changes were dropped because the buffer overflowed."""
        return self._lost

    @property
    def pending(self) -> int:
        """Return how many calls have changes waiting to be written."""
        return len(self._pending)

    def record(self, call_ref: str, **fields: Any) -> None:
        """Queue ``fields`` to be stored on the call ``call_ref`` (created if need be)."""
        change = ivr_change(fields)  # refuses unknown fields at once
        if self.on_record is not None:
            self.on_record(call_ref, fields)
        self._queue.put((CallKey(call_ref=call_ref), change))

    def update(self, key: CallKey, change: Change) -> None:
        """Queue ``change`` for the stored call ``key``; never creates a call."""
        self._queue.put((key, change))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; return False on timeout.

        Changes for calls not stored yet count as done once tried: they wait for their call
        in the background and never hold up a flush.
        """
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending (within ``timeout``) and stop the writer thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._pending:
            log.error("call records not written at shutdown: %s", sorted(map(str, self._pending)))

    def _run(self) -> None:
        stopping = False
        waiters: list[threading.Event] = []
        while True:
            idle = not self._due()
            stopping = self._collect(waiters, block=idle) or stopping
            if idle and self.linger and self._pending and not stopping:
                # Let the changes of other calls join this one's transaction.
                time.sleep(self.linger)
                stopping = self._collect(waiters, block=False) or stopping
            if self._due() and not self._write():
                if stopping:
                    return
                time.sleep(self.retry_delay)
                continue
            if self._due():
                continue  # more than one batch pending: write on before answering waiters
            for waiter in waiters:
                waiter.set()
            waiters.clear()
            if stopping:
                if self._pending:
                    self._write(force=True)  # a last try for calls not stored yet
                return

    def _due(self) -> bool:
        """Return True when some pending change should be tried now."""
        if len(self._orphans) < len(self._pending):
            return True
        now = time.monotonic()
        return any(self._orphans[key][1] <= now for key in self._pending)

    def _collect(self, waiters: list[threading.Event], *, block: bool) -> bool:
        """Move queued changes into ``_pending``; return True when asked to stop."""
        try:
            item = self._queue.get(timeout=0.2) if block else self._queue.get_nowait()
        except queue.Empty:
            return False
        count = 0
        while True:
            if item is _STOP:
                return True
            if isinstance(item, threading.Event):
                waiters.append(item)
            else:
                self._merge(*item)
            count += 1
            if count >= self.batch_size * 4:
                return False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False

    def _merge(self, key: CallKey, change: Change) -> None:
        if key not in self._pending and len(self._pending) >= self.max_pending:
            self._lost += 1
            log.error("call record buffer full: change to call %s lost", key)
            return
        changes = self._pending.setdefault(key, [])
        if not changes or not changes[-1].absorb(change):
            changes.append(change)

    def _write(self, *, force: bool = False) -> bool:
        """Write a batch of pending calls; keep them pending if the database fails."""
        due = float("inf") if force else time.monotonic()
        keys = [k for k in self._pending if k not in self._orphans or self._orphans[k][1] <= due]
        # Calls named by reference first: their rows are loaded up front, and a change found
        # by uniqueid may touch the same row; loaded after it, the row would be stale.
        keys = sorted(keys[: self.batch_size], key=lambda key: key.call_ref is None)
        missing: list[CallKey] = []
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                # One statement loads the batch's calls and one appends their events.
                stored = load_calls(conn, [key.call_ref for key in keys if key.call_ref])
                events: list[dict[str, Any]] = []
                for key in keys:
                    row = stored.get(key.call_ref) if key.call_ref else _NOT_LOADED
                    try:  # NotStored is raised before anything is written
                        apply_changes(conn, key, self._pending[key], now, stored=row, events=events)
                    except NotStored:
                        missing.append(key)
                if events:
                    conn.execute(_INSERT_EVENT, events)
        except _REJECTED as err:
            # One call's data the database will never take must not hold up the others.
            log.warning("a batch of call records was rejected; writing them one by one: %s", err)
            return self._write_each(keys, now)
        except (SQLAlchemyError, OSError) as err:
            self._outage.failed(err, len(self._pending))
            if self.on_error is not None:
                self.on_error(err)
            return False
        self._outage.recovered(len(self._pending) - len(keys) + len(missing))
        self._settle(keys, missing)
        return True

    def _write_each(self, keys: list[CallKey], now: datetime) -> bool:
        """Write calls one per transaction; drop, and log, the ones the database rejects."""
        done: list[CallKey] = []
        missing: list[CallKey] = []
        for key in keys:
            try:
                with self.engine.begin() as conn:
                    apply_changes(conn, key, self._pending[key], now)
            except NotStored:
                missing.append(key)
                continue
            except _REJECTED as err:
                self._lost += 1
                log.error("call %s: change rejected by the database and lost: %s", key, err)
                if self.on_error is not None:
                    self.on_error(err)
            except (SQLAlchemyError, OSError) as err:
                self._outage.failed(err, len(self._pending))
                if self.on_error is not None:
                    self.on_error(err)
                self._settle(done + missing, missing)
                return False
            done.append(key)
        self._outage.recovered(len(self._pending) - len(done))
        self._settle(done + missing, missing)
        return True

    def _settle(self, keys: list[CallKey], missing: list[CallKey]) -> None:
        """Forget the written changes; keep those whose call is not stored yet."""
        for key in keys:
            if key not in missing:
                del self._pending[key]
                self._orphans.pop(key, None)
        self._wait_for_calls(missing)

    def _wait_for_calls(self, keys: list[CallKey]) -> None:
        """Keep changes for calls not stored yet, until their grace runs out."""
        now = time.monotonic()
        for key in keys:
            first = self._orphans.get(key, (now, now))[0]
            if now - first >= self.orphan_grace:
                del self._pending[key]
                self._orphans.pop(key, None)
                log.warning("no stored call %s: its change is dropped", key)
            else:
                self._orphans[key] = (first, now + self.retry_delay)
