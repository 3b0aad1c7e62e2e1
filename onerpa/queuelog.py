"""Asterisk's queue_log: parse its lines, follow the file, and fill what the hooks missed.

A line is ``epoch|callid|queue|agent|EVENT|data...`` (see ``tests/data/asterisk/queue``). The
callid is the uniqueid of the channel that ran Queue(): our caller channel, so a line finds
its call through ``calls.uniqueid``. The epoch is whole seconds and the durations are
differences of whole seconds (one second off at times), so everything taken from here only
fills fields that are still empty: the hooks' millisecond stamps always win.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Engine

from onerpa.callstatus import CallStatus, EndedBy
from onerpa.recorder import CallKey, Change, End, NotStored, Source, apply_changes

log = logging.getLogger(__name__)

NO_AGENT = "NONE"
MAX_BACKLOG = 100_000  # lines kept while the database is away
# Events that say something about a caller's time in the queue; the rest (member
# management, QUEUESTART, ring attempts) are parsed but change no call.
CALL_EVENTS = frozenset(
    {
        "ENTERQUEUE",
        "CONNECT",
        "COMPLETECALLER",
        "COMPLETEAGENT",
        "ABANDON",
        "EXITWITHTIMEOUT",
        "EXITEMPTY",
        "EXITWITHKEY",
        "BLINDTRANSFER",
        "ATTENDEDTRANSFER",
    }
)


class QueueLogError(ValueError):
    """A queue_log line that does not have the documented shape."""


@dataclass(frozen=True)
class Entry:
    """One queue_log line."""

    epoch: int
    callid: str
    queue: str
    agent: str | None  # the member name (or interface); None for "NONE"
    event: str
    data: tuple[str, ...] = ()

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.epoch, UTC)

    def number(self, index: int) -> int | None:
        """Return data field ``index`` as a whole number, None if absent or not one."""
        try:
            return int(self.data[index])
        except (IndexError, ValueError):
            return None


def parse_line(line: str) -> Entry:
    """Parse one queue_log line; raise ``QueueLogError`` when it is malformed."""
    text = line.rstrip("\r\n")
    parts = text.split("|")
    if len(parts) < 5:
        raise QueueLogError(f"fewer than 5 fields: {text!r}")
    epoch, callid, queue, agent, event, *data = parts
    if not epoch.isdigit():
        raise QueueLogError(f"time is not whole seconds: {text!r}")
    if not event or not event.replace("_", "").isalnum() or event.upper() != event:
        raise QueueLogError(f"not an event name: {text!r}")
    return Entry(
        epoch=int(epoch),
        callid=callid,
        queue=queue,
        agent=None if agent in (NO_AGENT, "") else agent,
        event=event,
        data=tuple(data),
    )


def parse(lines: Iterable[str]) -> Iterator[Entry]:
    """Yield the entries of ``lines``, logging and skipping malformed ones."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield parse_line(line)
        except QueueLogError as err:
            log.warning("queue_log line %d skipped: %s", number, err)


def change_for(entry: Entry) -> Change | None:
    """Return what ``entry`` says about its call, or None when it says nothing."""
    at = entry.at
    if entry.event == "ENTERQUEUE":
        return Change(Source.QUEUELOG, fills={"queued_at": at}, status=CallStatus.QUEUED)
    if entry.event == "CONNECT":
        fills = {"answered_at": at, "agent": entry.agent, "queued_at": _before(at, entry, 0)}
        return Change(Source.QUEUELOG, fills=fills, status=CallStatus.TALKING)
    if entry.event in ("COMPLETECALLER", "COMPLETEAGENT"):
        ender = EndedBy.CALLER if entry.event == "COMPLETECALLER" else EndedBy.AGENT
        fills = {
            "ended_at": at,
            "ended_by": ender.value,
            "agent": entry.agent,
            "answered_at": _before(at, entry, 1),
        }
        return Change(Source.QUEUELOG, fills=fills, end=End(answered=True))
    if entry.event in ("BLINDTRANSFER", "ATTENDEDTRANSFER"):
        fills = {"ended_at": at, "ended_by": EndedBy.AGENT.value, "agent": entry.agent}
        return Change(Source.QUEUELOG, fills=fills, end=End(answered=True))
    if entry.event in ("ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY"):
        ender = EndedBy.CALLER if entry.event == "ABANDON" else EndedBy.SYSTEM
        fills = {"ended_at": at, "ended_by": ender.value, "queued_at": _before(at, entry, 2)}
        # EXITEMPTY: every member went paused or unavailable while the caller waited
        # (leavewhenempty); the caller did not give up, nobody was there.
        end = End(answered=False, no_agents=entry.event == "EXITEMPTY")
        return Change(Source.QUEUELOG, fills=fills, end=end)
    if entry.event == "EXITWITHKEY":  # the caller left the queue and goes on in the dialplan
        return Change(Source.QUEUELOG, fills={"queued_at": _before(at, entry, 3)})
    return None


def _before(at: datetime, entry: Entry, index: int) -> datetime | None:
    seconds = entry.number(index)
    return None if seconds is None else at - timedelta(seconds=seconds)


# --- ingesting -----------------------------------------------------------------------------


@dataclass
class Counts:
    """What an ingester did with the lines it was given."""

    applied: int = 0  # lines that found their call (whether or not anything was new)
    unknown: int = 0  # call lines whose call is not ours, or not stored (yet)
    ignored: int = 0  # lines that concern no call, or another queue
    malformed: int = 0


class Ingester:
    """Apply queue_log lines to the stored calls, in the order they were written.

    Lines whose call is not stored yet are retried for ``grace`` seconds after they were
    written (the call flow may still be storing the call), then counted as unknown: calls
    of other queues, or of other users of the PBX.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        queues: Iterable[str] = (),
        grace: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.queues = frozenset(queues)  # empty: every queue
        self.grace = grace
        self.clock = clock
        self.counts = Counts()
        self._waiting: deque[tuple[float, Entry, Change]] = deque()

    @property
    def waiting(self) -> int:
        """Return how many lines wait for their call to be stored."""
        return len(self._waiting)

    def feed(self, lines: Iterable[str]) -> None:
        """Apply ``lines`` in one transaction, with the waiting lines that are due.

        If the database fails, nothing is applied and the error is raised: feed the same
        lines again later.
        """
        work = [item for item in map(self._interpret, lines) if item is not None]
        retries = self._due_retries()
        try:
            self._apply([(e, c) for _, e, c in retries] + work)
        except Exception:
            self._waiting.extendleft(reversed(retries))
            raise

    def _interpret(self, line: str) -> tuple[Entry, Change] | None:
        if not line.strip():
            return None
        try:
            entry = parse_line(line)
        except QueueLogError as err:
            self.counts.malformed += 1
            log.warning("queue_log line skipped: %s", err)
            return None
        change = change_for(entry)
        if change is None or (self.queues and entry.queue not in self.queues):
            self.counts.ignored += 1
            return None
        return entry, change

    def _due_retries(self) -> list[tuple[float, Entry, Change]]:
        now = time.monotonic()
        due = []
        while self._waiting and self._waiting[0][0] <= now:
            due.append(self._waiting.popleft())
        return due

    def _apply(self, work: list[tuple[Entry, Change]]) -> None:
        if not work:
            return
        now = self.clock()
        waiting = []
        with self.engine.begin() as conn:
            for entry, change in work:
                try:
                    apply_changes(conn, CallKey(uniqueid=entry.callid), [change], now)
                except NotStored:
                    waiting.append((entry, change))
        self.counts.applied += len(work) - len(waiting)
        for entry, change in waiting:
            self._wait(entry, change)

    def _wait(self, entry: Entry, change: Change) -> None:
        if time.time() - entry.epoch > self.grace:
            self.counts.unknown += 1
            log.debug("queue_log: no stored call with uniqueid %s", entry.callid)
            return
        self._waiting.append((time.monotonic() + min(1.0, self.grace), entry, change))


# --- following the file --------------------------------------------------------------------


class Follower:
    """Read a growing file line by line like ``tail -F``: across rotation and truncation."""

    def __init__(self, path: Path, *, from_start: bool = True) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._inode: int | None = None
        self._partial = ""
        self._from_start = from_start

    def read(self) -> list[str]:
        """Return the complete lines written since the last call."""
        if self._file is None and not self._open():
            return []
        lines = self._drain()
        if self._rotated():
            # The old file is finished: read what is left of it, then start the new one.
            lines += self._drain()
            self._close()
            if self._open(from_start=True):
                lines += self._drain()
        return lines

    def close(self) -> None:
        """Close the file being followed."""
        self._close()

    def _open(self, *, from_start: bool | None = None) -> bool:
        try:
            handle = open(self.path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
        except FileNotFoundError:
            return False
        start = self._from_start if from_start is None else from_start
        if not start:
            handle.seek(0, os.SEEK_END)
        self._file, self._inode, self._partial = handle, os.fstat(handle.fileno()).st_ino, ""
        return True

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None

    def _drain(self) -> list[str]:
        assert self._file is not None
        if os.fstat(self._file.fileno()).st_size < self._file.tell():
            log.info("queue_log %s was truncated: reading it from the start", self.path)
            self._file.seek(0)
            self._partial = ""
        chunk = self._partial + self._file.read()
        lines = chunk.split("\n")
        self._partial = lines.pop()  # an unfinished last line waits for its newline
        return [line + "\n" for line in lines]

    def _rotated(self) -> bool:
        try:
            return os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            return False  # between the rename and the new file: keep the old one


def follow(
    path: Path,
    ingester: Ingester,
    *,
    poll: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Feed the lines of ``path`` to ``ingester`` as they are written, until ``stop()``."""
    follower = Follower(path)
    backlog: list[str] = []
    try:
        while not stop():
            lines = backlog + follower.read()
            try:
                ingester.feed(lines)
                backlog = []
            except Exception as err:  # the database may be away: keep the lines, retry
                log.warning("queue_log: %d lines not applied yet: %s", len(lines), err)
                if len(lines) > MAX_BACKLOG:
                    log.error("queue_log: %d oldest lines dropped", len(lines) - MAX_BACKLOG)
                backlog = lines[-MAX_BACKLOG:]
            time.sleep(poll)
    finally:
        follower.close()
