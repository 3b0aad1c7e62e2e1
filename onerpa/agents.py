"""Agents on the line: their state in the queue, their sessions and pauses, and the figures.

Asterisk is the truth about who is in the queue (dynamic members, kept across restarts by
``persistentmembers``); the database keeps the history (``AgentSession``, ``AgentPause``) for
the figures. A change is asked of Asterisk first and written only once Asterisk has done it,
so a lost AMI connection never leaves a half-recorded change; ``reconcile`` then makes the
stored state match what Asterisk lists (after a restart, a change made at the Asterisk CLI,
or a write that failed after Asterisk had acted).

``member_state`` and ``line_figures``' arithmetic are pure; ``LineMonitor`` is the one place
that asks Asterisk for the live queue, at most once per ``ttl`` seconds per process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onerpa.ami import (
    AmiActionError,
    AmiAuthError,
    AmiClient,
    AmiConnectionError,
    AmiError,
    QueueEntry,
    QueueMember,
)
from onerpa.models import AgentPause, AgentSession, Call
from onerpa.settings import Settings
from onerpa.staff import User

log = logging.getLogger(__name__)

# Why an agent pauses: stable codes (sent to Asterisk as the pause reason, so queue_log
# carries them too) and the words the agents read.
PAUSE_REASONS = {
    "lunch": "обед",
    "training": "обучение",
    "technical": "техническая пауза",
    "other": "другое",
}

FREE, RINGING, TALKING, BUSY, PAUSED, UNAVAILABLE, OFF = (
    "free",
    "ringing",
    "talking",
    "busy",
    "paused",
    "unavailable",
    "off",
)
STATES = (FREE, RINGING, TALKING, BUSY, PAUSED, UNAVAILABLE, OFF)

# Device states of the member's state interface (Asterisk's AST_DEVICE_*).
_IN_USE = {2, 3}  # in use, busy
_RINGING = {6, 7}  # ringing, ringing while in use
_GONE = {4, 5}  # invalid, unavailable (phone not registered)

NOT_CONFIGURED = "not_configured"
UNREACHABLE = "unreachable"
REFUSED = "refused"


class LineError(Exception):
    """A change of an agent's line state that did not happen; ``str()`` is for the agent."""


def member_state(member: QueueMember) -> str:
    """Return what a supervisor should see for ``member``: one of ``STATES`` but ``off``.

    In a queue call beats everything (a pause taken mid-call starts after it); then the
    pause; then the phone: ringing, in use on another call, not reachable, or free.
    """
    if member.in_call:
        return TALKING
    if member.paused:
        return PAUSED
    if member.status in _RINGING:
        return RINGING
    if member.status in _IN_USE:
        return BUSY
    if member.status in _GONE:
        return UNAVAILABLE
    return FREE


def reason_code(paused_reason: str) -> str:
    """Return our reason code for Asterisk's ``PausedReason`` (unknown reasons: ``other``)."""
    return paused_reason if paused_reason in PAUSE_REASONS else "other"


def member_name(user: User) -> str:
    """Return the name the queue gives ``user`` (queue_log's agent, calls.agent)."""
    return (user.member_name or user.display_name or user.username).strip()


# -- the live line, read from Asterisk --------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """The queue as Asterisk last listed it, or why it could not be read."""

    queue: str
    error: str | None = None  # None, NOT_CONFIGURED, UNREACHABLE, REFUSED
    detail: str = ""
    members: tuple[QueueMember, ...] = ()
    entries: tuple[QueueEntry, ...] = ()
    read_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def member(self, interface: str | None) -> QueueMember | None:
        return next((m for m in self.members if m.interface == interface), None)

    def counts(self) -> dict[str, int]:
        """Return the members by state (``off`` is not Asterisk's to count)."""
        counts = dict.fromkeys(STATES[:-1], 0)
        for member in self.members:
            counts[member_state(member)] += 1
        return counts

    @property
    def longest_wait(self) -> int:
        return max((entry.wait for entry in self.entries), default=0)


ClientFactory = Callable[[Settings], AmiClient]


def default_client(settings: Settings) -> AmiClient:
    return AmiClient(
        settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret
    )


@dataclass
class LineMonitor:
    """Ask Asterisk for the queue at most once per ``ttl`` seconds; carry out line changes.

    Many browsers poll the board every two seconds; they share one snapshot per process.
    After a change the next read goes to Asterisk again. One AMI session, one action at a time.
    """

    settings: Settings
    ttl: float = 1.5
    factory: ClientFactory = default_client
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _client: AmiClient | None = field(default=None, init=False)
    _cached: tuple[float, Line] | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def configured(self) -> bool:
        return bool(self.settings.ami_secret)

    def client(self) -> AmiClient:
        if self._client is None:
            self._client = self.factory(self.settings)
        return self._client

    def line(self) -> Line:
        """Return the queue now (from the cache if fresh); never raises."""
        queue = self.settings.queue
        if not self.configured:
            return Line(queue, NOT_CONFIGURED)
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl:
                return self._cached[1]
            line = self._read(queue)
            self._cached = (time.monotonic(), line)
            return line

    def _read(self, queue: str) -> Line:
        try:
            status = self.client().queue_status(queue)
        except AmiAuthError as err:
            log.warning("AMI refused the user %s: %s", self.settings.ami_username, err)
            return Line(queue, REFUSED, str(err))
        except AmiError as err:
            log.warning("AMI: cannot read queue %s: %s", queue, err)
            return Line(queue, UNREACHABLE, str(err))
        members = tuple(m for m in status.members if m.queue == queue)
        entries = tuple(sorted((e for e in status.entries if e.queue == queue), key=_position))
        return Line(queue, None, "", members, entries, self.clock())

    def change(self, act: Callable[[AmiClient], object]) -> None:
        """Run one change on Asterisk; raise ``LineError`` (in Russian) if it did not happen."""
        if not self.configured:
            raise LineError("AMI не настроен: изменить состояние на линии нельзя.")
        with self._lock:
            self._cached = None
            try:
                act(self.client())
            except AmiAuthError:
                raise LineError(
                    "Asterisk не принял пользователя AMI: проверьте ONERPA_AMI_USERNAME и "
                    "ONERPA_AMI_SECRET. Ничего не изменено."
                ) from None
            except AmiConnectionError:
                raise LineError(
                    "Нет связи с Asterisk (AMI): ничего не изменено, попробуйте ещё раз."
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()


def _position(entry: QueueEntry) -> int:
    return entry.position


def _refused(err: AmiActionError) -> LineError:
    if err.permission_denied:
        return LineError(
            "У пользователя AMI нет права менять очередь (нужно write = agent в manager.conf). "
            "Ничего не изменено."
        )
    if "No such queue" in err.message:
        return LineError("В Asterisk нет такой очереди: проверьте ONERPA_QUEUE и queues.conf.")
    return LineError(f"Asterisk отказал: {err.message}. Ничего не изменено.")


# -- changes: Asterisk first, then the record ----------------------------------------------


def open_session(db: Session, interface: str) -> AgentSession | None:
    return db.scalar(
        select(AgentSession).where(
            AgentSession.interface == interface, AgentSession.ended_at.is_(None)
        )
    )


def open_pause(db: Session, session: AgentSession) -> AgentPause | None:
    return db.scalar(
        select(AgentPause).where(AgentPause.session_id == session.id, AgentPause.ended_at.is_(None))
    )


def _interface(user: User) -> str:
    if not user.member_interface:
        raise LineError("У вас не указан телефон (интерфейс в очереди): обратитесь к руководителю.")
    return user.member_interface


def go_on_line(db: Session, monitor: LineMonitor, user: User, now: datetime) -> None:
    """Add ``user`` to the queue as a dynamic member and open their session."""
    interface, queue = _interface(user), monitor.settings.queue

    def add(ami: AmiClient) -> None:
        try:
            ami.queue_add(queue, interface, member_name(user), interface)
        except AmiActionError as err:
            if "Already there" not in err.message:  # already in: the record catches up
                raise _refused(err) from None

    monitor.change(add)
    if open_session(db, interface) is None:
        db.add(_session_of(user, interface, queue, now))


def pause(db: Session, monitor: LineMonitor, user: User, reason: str, now: datetime) -> None:
    """Pause ``user`` in the queue with ``reason`` (a ``PAUSE_REASONS`` code)."""
    if reason not in PAUSE_REASONS:
        raise LineError("Выберите причину перерыва из списка.")
    interface, queue = _interface(user), monitor.settings.queue
    session = open_session(db, interface)
    if session is None:
        raise LineError("Вы не на линии: перерыв не нужен.")
    monitor.change(lambda ami: _pause(ami, queue, interface, True, reason))
    current = open_pause(db, session)
    if current is not None:
        current.ended_at = now
    db.add(AgentPause(session_id=session.id, reason=reason, started_at=now))


def resume(db: Session, monitor: LineMonitor, user: User, now: datetime) -> None:
    """End ``user``'s pause: back to taking calls."""
    interface, queue = _interface(user), monitor.settings.queue
    session = open_session(db, interface)
    if session is None:
        raise LineError("Вы не на линии.")
    monitor.change(lambda ami: _pause(ami, queue, interface, False, ""))
    current = open_pause(db, session)
    if current is not None:
        current.ended_at = now


def _pause(ami: AmiClient, queue: str, interface: str, paused: bool, reason: str) -> None:
    try:
        ami.queue_pause(queue, interface, paused, reason)
    except AmiActionError as err:
        if err.message == "Interface not found":
            raise LineError("Asterisk не видит вас в очереди: нажмите «На линии».") from None
        raise _refused(err) from None


def go_off_line(
    db: Session, monitor: LineMonitor, interface: str, now: datetime, *, by: str
) -> AgentSession | None:
    """Remove ``interface`` from the queue and close its session; ``by``: agent or supervisor."""
    queue = monitor.settings.queue

    def remove(ami: AmiClient) -> None:
        try:
            ami.queue_remove(queue, interface)
        except AmiActionError as err:
            if "Not there" not in err.message:  # already out: the record catches up
                raise _refused(err) from None

    monitor.change(remove)
    session = open_session(db, interface)
    if session is not None:
        _close(db, session, now, by)
    return session


def _close(db: Session, session: AgentSession, now: datetime, by: str) -> None:
    current = open_pause(db, session)
    if current is not None:
        current.ended_at = now
    session.ended_at, session.ended_by = now, by


def _session_of(user: User, interface: str, queue: str, started: datetime) -> AgentSession:
    return AgentSession(
        user_id=user.id,
        username=user.username,
        interface=interface,
        member_name=member_name(user),
        queue=queue,
        started_at=started,
    )


# -- reconciling the record with Asterisk ---------------------------------------------------


def reconcile(db: Session, line: Line, users: Iterable[User], now: datetime) -> int:
    """Make the open sessions and pauses match the members Asterisk lists; return changes.

    A member of ours without an open session gets one (from its LoginTime); an open session
    whose interface Asterisk no longer lists is closed (``asterisk``); pauses follow too.
    Members whose interface is nobody's are shown but not recorded.
    """
    if not line.ok:
        return 0
    by_interface = {u.member_interface: u for u in users if u.member_interface}
    members = {m.interface: m for m in line.members}
    changes = 0
    opened = db.scalars(select(AgentSession).where(AgentSession.ended_at.is_(None))).all()
    for session in opened:
        if session.interface not in members and session.queue == line.queue:
            _close(db, session, now, "asterisk")
            changes += 1
    known = {s.interface: s for s in opened if s.ended_at is None}
    for interface, member in members.items():
        user = by_interface.get(interface)
        if user is None:
            continue
        found = known.get(interface)
        if found is None:
            started = _epoch(member.login_time) or now
            found = _session_of(user, interface, line.queue, min(started, now))
            db.add(found)
            db.flush()
            changes += 1
        changes += _reconcile_pause(db, found, member, now)
    try:
        db.flush()
    except IntegrityError:  # another process recorded the same session first
        db.rollback()
        return 0
    return changes


def _reconcile_pause(db: Session, session: AgentSession, member: QueueMember, now: datetime) -> int:
    current = open_pause(db, session)
    if member.paused and current is None:
        started = _epoch(member.last_pause) or now
        db.add(
            AgentPause(
                session_id=session.id,
                reason=reason_code(member.paused_reason),
                started_at=min(max(started, session.started_at), now),
            )
        )
        return 1
    if not member.paused and current is not None:
        current.ended_at = now
        return 1
    return 0


def _epoch(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


# -- figures: time on the line, pauses by reason, occupancy ---------------------------------


@dataclass
class AgentLineTime:
    """One agent's line time within a period, in seconds."""

    username: str
    member_name: str
    logged_in: float = 0.0  # from "На линии" to "Уйти с линии", pauses included
    paused: dict[str, float] = field(default_factory=dict)  # by reason code
    talking: float = 0.0  # answered calls, answer to end, while on the line

    @property
    def paused_total(self) -> float:
        return sum(self.paused.values())

    @property
    def on_line(self) -> float:
        """Time available for calls: logged in, not paused."""
        return max(0.0, self.logged_in - self.paused_total)

    @property
    def occupancy(self) -> float | None:
        """Talking as a share of the time on the line (None without line time)."""
        return min(1.0, self.talking / self.on_line) if self.on_line > 0 else None


def _overlap(start: datetime, end: datetime | None, lo: datetime, hi: datetime) -> float:
    end = hi if end is None else end
    return max(0.0, (min(end, hi) - max(start, lo)).total_seconds())


def line_figures(db: Session, start: datetime, end: datetime, now: datetime) -> list[AgentLineTime]:
    """Return each agent's line time in ``[start, end)`` (open sessions count up to ``now``)."""
    hi = min(end, now)
    sessions = db.scalars(
        select(AgentSession)
        .where(AgentSession.started_at < hi)
        .where((AgentSession.ended_at.is_(None)) | (AgentSession.ended_at > start))
        .order_by(AgentSession.username, AgentSession.started_at)
    ).all()
    if not sessions:
        return []
    rows: dict[str, AgentLineTime] = {}
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for session in sessions:
        row = rows.setdefault(
            session.username, AgentLineTime(session.username, session.member_name)
        )
        row.logged_in += _overlap(session.started_at, session.ended_at, start, hi)
        spans[session.interface].append((session.started_at, session.ended_at or hi))
    _add_pauses(db, sessions, rows, start, hi)
    _add_talking(db, sessions, rows, spans, start, hi)
    return sorted(rows.values(), key=lambda r: r.member_name.lower())


def _add_pauses(db: Session, sessions, rows, start: datetime, hi: datetime) -> None:  # type: ignore[no-untyped-def]
    owner = {s.id: s.username for s in sessions}
    pauses = db.scalars(select(AgentPause).where(AgentPause.session_id.in_(list(owner)))).all()
    for item in pauses:
        seconds = _overlap(item.started_at, item.ended_at, start, hi)
        if seconds:
            paused = rows[owner[item.session_id]].paused
            paused[item.reason] = paused.get(item.reason, 0.0) + seconds


def _add_talking(db: Session, sessions, rows, spans, start: datetime, hi: datetime) -> None:  # type: ignore[no-untyped-def]
    owner = {s.interface: s.username for s in sessions}
    calls = db.execute(
        select(Call.agent_interface, Call.answered_at, Call.ended_at)
        .where(Call.agent_interface.in_(list(owner)))
        .where(Call.answered_at.is_not(None), Call.answered_at < hi)
        .where((Call.ended_at.is_(None)) | (Call.ended_at > start))
    ).all()
    for interface, answered, ended in calls:
        for lo, up in spans[interface]:  # only talking while on the line counts
            rows[owner[interface]].talking += _overlap(
                max(answered, lo), min(ended or hi, up), start, hi
            )


def since(moment: datetime, seconds: int) -> datetime:
    return moment - timedelta(seconds=seconds)
