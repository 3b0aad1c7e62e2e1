"""Requests: the callers the line could not serve live, each with a deadline and an owner.

A request is a voice message (``message``: recorded, or a missed call when the caller hung
up at the beep) or a call-back (``callback``). The support rules promise a written answer
within 72 hours, so a message is due 72 hours after it was received; a call-back is due
the same working day (see ``callback_due``).

The call flow hands requests to a ``RequestWriter``, which stores them from a thread of its
own and keeps them in memory while the database is away: no caller waits on the database,
and no request is lost. The dashboard and the commands read and change them with the
functions below; each change may call an ``audit`` hook inside its transaction, so the web
layer writes its audit line atomically with the change.

Recordings live under ``ONERPA_RECORDINGS_DIR``: ``<yyyy>/<mm>/<dd>/<call ref>.wav`` from
the FastAGI server, ``fallback/<epoch>_<uniqueid>_<call ref>_<number>.wav`` from the
dialplan's own Record() when no server answered (``import_fallback_recordings`` turns those
into requests). They are personal data: ``purge_recordings`` removes them after
``ONERPA_RECORDING_RETENTION_DAYS``.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from onerpa import hours
from onerpa.directory import find_by_phone
from onerpa.hours import SupportCalendar
from onerpa.models import Call, Customer, SupportRequest
from onerpa.phone import normalize
from onerpa.settings import CALLBACK_NEXT_DAY_END, CALLBACK_NEXT_OPENING
from onerpa.staff import AuditEntry

log = logging.getLogger(__name__)

MESSAGE_DEADLINE = timedelta(hours=72)  # the support rules: written requests, 72 hours
CALLBACK_WITHIN = timedelta(hours=2)  # ONERPA_CALLBACK_DUE_SECONDS by default
MISSED_CALL_NOTE = "пропущенный звонок"
PURGED_NOTE = "запись удалена по сроку хранения"
FALLBACK_DIR = "fallback"
FALLBACK_DECISION = "fallback"
RECORD_RATE = 8000
MIN_RECORDING_SECONDS = 0.2  # shorter than this there is nothing to hear
_FALLBACK_NAME = re.compile(
    r"^(?P<epoch>\d{9,11})_(?P<uniqueid>[0-9.]{1,64})_(?P<call_ref>[0-9a-f-]{0,36})"
    r"_(?P<number>[0-9]{0,20})\.wav$"
)
_TABLE = SupportRequest.__table__
_NOTE_LIMIT = 4000


class Kind(StrEnum):
    MESSAGE = "message"
    CALLBACK = "callback"


class Status(StrEnum):
    NEW = "new"
    IN_WORK = "in_work"
    ANSWERED = "answered"
    DECLINED = "declined"


OPEN = (Status.NEW.value, Status.IN_WORK.value)


class MailState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # tried and failed; tried again at mail_next_at


class RecordingState(StrEnum):
    """What the request's recording is, for the dashboard and the CLI."""

    NONE = "none"  # never recorded: a missed call, an empty message, a failed recording
    PRESENT = "present"
    MISSING = "missing"  # the request names a file that is not on disk
    PURGED = "purged"  # removed after the retention period


class RequestError(Exception):
    """A change a request cannot take; the message is for the person who asked."""


class RequestNotFound(RequestError):
    pass


class RequestConflict(RequestError):
    pass


# -- deadlines: pure, the moment passed in --------------------------------------------------


def message_due(received_at: datetime) -> datetime:
    """Return when a voice message must be answered: 72 hours after it was received."""
    return received_at + MESSAGE_DEADLINE


def callback_due(
    calendar: SupportCalendar,
    received_at: datetime,
    *,
    within: timedelta = CALLBACK_WITHIN,
    after_hours: str = CALLBACK_NEXT_DAY_END,
) -> datetime:
    """Return when a call-back asked for at ``received_at`` must be placed.

    In hours: ``within`` of the request, but no later than today's closing (the same
    working day, on the production calendar). After hours, by ``after_hours``: the end of
    the next working day (``next_day_end``), or ``within`` of the next opening
    (``next_opening``), again no later than that day's closing.
    """
    status = hours.line_status(calendar, received_at)
    if status.is_open and status.closes_at is not None:
        return min(received_at + within, status.closes_at)
    opening = status.next_opening
    window = hours.opening_on(calendar, opening.date()) if opening else None
    if opening is None or window is None:
        return message_due(received_at)  # no opening within a year: the written promise
    if after_hours == CALLBACK_NEXT_OPENING:
        return min(opening + within, window[1])
    return window[1]


# -- creating -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewRequest:
    """A request as the call flow (or the fallback import) knows it."""

    kind: Kind
    received_at: datetime
    due_at: datetime
    call_ref: str | None = None
    caller_e164: str | None = None
    callerid_raw: str = ""
    customer_id: int | None = None
    decision: str | None = None  # the entitlement at that moment: reason code
    explanation: str = ""  # ... and the agent's line
    place_at: datetime | None = None
    recording_path: str | None = None
    recording_seconds: float | None = None
    recording_note: str = ""
    note: str = ""


def voice_message(received_at: datetime, **fields: Any) -> NewRequest:
    """Return a voice message received at ``received_at``, due 72 hours later."""
    return NewRequest(Kind.MESSAGE, received_at, message_due(received_at), **fields)


def insert_request(conn: Connection, new: NewRequest) -> int:
    """Store ``new`` in ``conn``'s transaction, linked to its call if stored; return its id."""
    call_id = None
    if new.call_ref:
        call_id = conn.scalar(select(Call.id).where(Call.call_ref == new.call_ref))
    values = {
        "kind": new.kind.value,
        "status": Status.NEW.value,
        "call_id": call_id,
        "caller_e164": new.caller_e164,
        "callerid_raw": new.callerid_raw[:80],
        "customer_id": new.customer_id,
        "decision": new.decision,
        "explanation": new.explanation,
        "received_at": new.received_at,
        "place_at": new.place_at,
        "due_at": new.due_at,
        "recording_path": new.recording_path,
        "recording_seconds": new.recording_seconds,
        "recording_note": new.recording_note,
        "attempts": 0,
        "note": new.note,
        "mail_state": MailState.PENDING.value,
        "mail_attempts": 0,
        "mail_next_at": new.received_at,
        "mail_error": "",
    }
    inserted = conn.execute(insert(SupportRequest).values(**values)).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def create_request(engine: Engine, new: NewRequest) -> int:
    """Store ``new`` now (one transaction); return its id."""
    with engine.begin() as conn:
        return insert_request(conn, new)


def _call_stored(conn: Connection, call_ref: str) -> bool:
    return conn.scalar(select(Call.id).where(Call.call_ref == call_ref)) is not None


class RequestWriter:
    """Store the call flow's requests from one background thread; never lose one.

    ``submit`` returns at once. While the database is away the requests wait in memory and
    are tried again every ``retry_delay`` seconds. A request is linked to its call: the
    call's own record may still be on its way (``wait_for_calls``, the call recorder's
    flush, is asked first), and a request whose call is not stored after ``link_grace``
    seconds is stored unlinked rather than held back.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        wait_for_calls: Callable[[float], bool] | None = None,
        retry_delay: float = 1.0,
        link_grace: float = 30.0,
        on_stored: Callable[[int, NewRequest], None] | None = None,
    ) -> None:
        self.engine = engine
        self.wait_for_calls = wait_for_calls
        self.retry_delay = retry_delay
        self.link_grace = link_grace
        self.on_stored = on_stored
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: list[tuple[float, NewRequest]] = []
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="request-writer", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Return how many requests wait to be stored."""
        return len(self._pending) + self._queue.qsize()

    def submit(self, new: NewRequest) -> None:
        """Queue ``new`` to be stored."""
        self._queue.put((time.monotonic(), new))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far is stored; False on timeout."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Store what is pending (within ``timeout``) and stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        for _, new in self._pending:
            log.error("обращение не сохранено при остановке: звонок %s", new.call_ref)

    def _run(self) -> None:
        waiters: list[threading.Event] = []
        stopping = False
        while True:
            try:
                item = self._queue.get(timeout=self.retry_delay if self._pending else None)
            except queue.Empty:
                item = False
            while item is not False:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    self._pending.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = False
            self._write()
            if not self._pending:
                for waiter in waiters:
                    waiter.set()
                waiters.clear()
            if stopping:
                return

    def _write(self) -> None:
        if not self._pending:
            return
        if self.wait_for_calls is not None:
            self.wait_for_calls(2.0)
        kept: list[tuple[float, NewRequest]] = []
        try:
            with self.engine.begin() as conn:
                for queued_at, new in self._pending:
                    young = time.monotonic() - queued_at < self.link_grace
                    if new.call_ref and young and not _call_stored(conn, new.call_ref):
                        kept.append((queued_at, new))
                        continue
                    stored = insert_request(conn, new)
                    if self.on_stored is not None:
                        self.on_stored(stored, new)
        except (SQLAlchemyError, OSError) as err:
            if not self._failing:
                log.warning("база данных недоступна, обращения ждут в памяти: %s", err)
            self._failing = True
            return
        if self._failing:
            log.warning("база данных снова доступна: обращения сохранены")
        self._failing = False
        self._pending = kept


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestView:
    """One request as the dashboard and the CLI show it."""

    id: int
    kind: str
    status: str
    received_at: datetime
    due_at: datetime
    place_at: datetime | None
    caller_e164: str | None
    callerid_raw: str
    customer_id: int | None
    customer_number: str | None
    organisation: str | None
    contact_name: str | None
    email: str | None
    decision: str | None
    explanation: str
    call_id: int | None
    call_ref: str | None
    recording_path: str | None
    recording_seconds: float | None
    recording_note: str
    attempts: int
    last_attempt_at: datetime | None
    taken_by: str | None
    taken_at: datetime | None
    closed_by: str | None
    closed_at: datetime | None
    note: str
    mail_state: str
    mail_attempts: int
    mail_next_at: datetime | None
    mail_error: str

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def time_left(self, now: datetime) -> timedelta:
        """Return the time to the deadline (negative once overdue)."""
        return self.due_at - now


def _query() -> Any:
    return (
        select(
            _TABLE,
            Customer.customer_number,
            Customer.organisation,
            Customer.contact_name,
            Customer.email,
            Call.call_ref,
        )
        .outerjoin(Customer, Customer.id == SupportRequest.customer_id)
        .outerjoin(Call, Call.id == SupportRequest.call_id)
    )


def _view(row: Any) -> RequestView:
    return RequestView(**{name: row._mapping[name] for name in RequestView.__dataclass_fields__})


def get_request(engine: Engine | Connection, request_id: int) -> RequestView:
    """Return the request ``request_id``; raise RequestNotFound."""
    query = _query().where(SupportRequest.id == request_id)
    if isinstance(engine, Connection):
        row = engine.execute(query).first()
    else:
        with engine.connect() as conn:
            row = conn.execute(query).first()
    if row is None:
        raise RequestNotFound(f"обращения № {request_id} нет")
    return _view(row)


def open_callbacks(engine: Engine, *, limit: int = 500) -> list[RequestView]:
    """Return the open call-backs, the longest-waiting place first (``place_at``)."""
    query = (
        _query()
        .where(SupportRequest.kind == Kind.CALLBACK.value, SupportRequest.status.in_(OPEN))
        .order_by(
            SupportRequest.place_at.is_(None),
            SupportRequest.place_at,
            SupportRequest.received_at,
            SupportRequest.id,
        )
        .limit(limit)
    )
    return _fetch(engine, query)


def open_messages(engine: Engine, *, limit: int = 500) -> list[RequestView]:
    """Return the open voice messages, the nearest deadline first (``due_at``)."""
    query = (
        _query()
        .where(SupportRequest.kind == Kind.MESSAGE.value, SupportRequest.status.in_(OPEN))
        .order_by(SupportRequest.due_at, SupportRequest.id)
        .limit(limit)
    )
    return _fetch(engine, query)


def open_requests(engine: Engine, *, limit: int = 500) -> list[RequestView]:
    """Return every open request: the call-backs (by place), then the messages (by deadline)."""
    return open_callbacks(engine, limit=limit) + open_messages(engine, limit=limit)


def all_requests(engine: Engine, *, limit: int = 500) -> list[RequestView]:
    """Return the requests open or closed, newest first."""
    query = _query().order_by(SupportRequest.received_at.desc(), SupportRequest.id.desc())
    return _fetch(engine, query.limit(limit))


def _fetch(engine: Engine, query: Any) -> list[RequestView]:
    with engine.connect() as conn:
        return [_view(row) for row in conn.execute(query)]


# -- changing -------------------------------------------------------------------------------

# Called inside the change's transaction: (connection, action, before, after). The web layer
# writes its audit line here, so the change and its audit line commit together.
AuditHook = Callable[[Connection, str, RequestView, RequestView], None]


def take(
    engine: Engine,
    request_id: int,
    username: str,
    now: datetime,
    *,
    audit: AuditHook | None = None,
) -> RequestView:
    """Take the request into work as ``username``; refuse one taken by someone else."""

    def change(before: RequestView) -> dict[str, Any]:
        if before.status == Status.IN_WORK and before.taken_by not in (None, username):
            raise RequestConflict(f"обращение № {before.id} уже в работе у {before.taken_by}")
        return {"status": Status.IN_WORK.value, "taken_by": username, "taken_at": now}

    return _change(engine, request_id, "take", change, audit)


def answer(
    engine: Engine,
    request_id: int,
    username: str,
    now: datetime,
    note: str = "",
    *,
    audit: AuditHook | None = None,
) -> RequestView:
    """Mark the request answered by ``username``, with an optional ``note``."""

    def change(before: RequestView) -> dict[str, Any]:
        return _closing(before, Status.ANSWERED, username, now, note)

    return _change(engine, request_id, "answer", change, audit)


def decline(
    engine: Engine,
    request_id: int,
    username: str,
    now: datetime,
    note: str,
    *,
    audit: AuditHook | None = None,
) -> RequestView:
    """Decline the request (not a customer, not our product...): ``note`` says why."""
    if not note.strip():
        raise RequestError("укажите, почему обращение отклонено")

    def change(before: RequestView) -> dict[str, Any]:
        return _closing(before, Status.DECLINED, username, now, note)

    return _change(engine, request_id, "decline", change, audit)


def _closing(
    before: RequestView, status: Status, username: str, now: datetime, note: str
) -> dict[str, Any]:
    values: dict[str, Any] = {"status": status.value, "closed_by": username, "closed_at": now}
    if before.taken_by is None:
        values |= {"taken_by": username, "taken_at": now}
    if note.strip():
        values["note"] = add_note(before.note, note, username, now)
    return values


def add_note(existing: str, text: str, username: str, now: datetime) -> str:
    """Return ``existing`` with a dated line by ``username`` appended."""
    line = f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC {username}: {' '.join(text.split())}"
    return (f"{existing}\n{line}" if existing else line)[-_NOTE_LIMIT:]


def _change(
    engine: Engine,
    request_id: int,
    action: str,
    change: Callable[[RequestView], dict[str, Any]],
    audit: AuditHook | None,
) -> RequestView:
    with engine.begin() as conn:
        before = get_request(conn, request_id)
        if not before.is_open:
            raise RequestConflict(f"обращение № {request_id} уже закрыто ({before.status})")
        values = change(before)
        done = conn.execute(
            update(SupportRequest)
            .where(SupportRequest.id == request_id, SupportRequest.status == before.status)
            .values(**values)
        )
        if done.rowcount != 1:  # someone changed it between our read and our write
            raise RequestConflict(f"обращение № {request_id} только что изменили: обновите")
        after = get_request(conn, request_id)
        if audit is not None:
            audit(conn, action, before, after)
        return after


# -- recordings -----------------------------------------------------------------------------


def recording_state(request: RequestView, recordings_dir: Path) -> RecordingState:
    """Say whether the request's recording is there, missing, purged or never was."""
    if request.recording_path is None:
        return (
            RecordingState.PURGED if PURGED_NOTE in request.recording_note else RecordingState.NONE
        )
    return (
        RecordingState.PRESENT
        if recording_file(request, recordings_dir)
        else RecordingState.MISSING
    )


def recording_file(request: RequestView, recordings_dir: Path) -> Path | None:
    """Return the recording's file when it is on disk inside ``recordings_dir``, else None.

    The only way the dashboard should find a file to play: never a path from the browser.
    """
    if not request.recording_path:
        return None
    root = Path(recordings_dir).resolve()
    path = Path(request.recording_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def recording_problem(request: RequestView, recordings_dir: Path) -> str | None:
    """Return, in Russian, what is wrong with the request's recording; None when nothing."""
    state = recording_state(request, recordings_dir)
    if state is RecordingState.MISSING:
        return f"файла записи нет на диске: {request.recording_path}"
    if state is RecordingState.NONE and request.recording_note:
        return request.recording_note
    if state is RecordingState.PURGED:
        return "запись удалена по сроку хранения"
    return None


def message_path(recordings_dir: Path, calendar: SupportCalendar, at: datetime, ref: str) -> Path:
    """Return where the call ``ref``'s message goes, without extension (RECORD FILE adds it)."""
    day = at.astimezone(calendar.zone)
    return Path(recordings_dir) / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" / ref


def wav_seconds(path: Path) -> float | None:
    """Return the length of a WAV file in seconds; None when it cannot be read."""
    try:
        with wave.open(str(path), "rb") as sound:
            return sound.getnframes() / sound.getframerate()
    except (OSError, EOFError, wave.Error):
        return None


@dataclass
class PurgeReport:
    """What a purge removed."""

    requests: list[int] = field(default_factory=list)
    files: int = 0
    unlinked_files: int = 0


def purge_recordings(
    engine: Engine,
    recordings_dir: Path,
    retention_days: int,
    now: datetime,
    *,
    author: str = "cli",
) -> PurgeReport:
    """Remove recordings older than ``retention_days``: each request keeps its record, with
    a note and an audit line; files no request names are removed too (by their age)."""
    cutoff = now - timedelta(days=retention_days)
    report = PurgeReport()
    note = f"{PURGED_NOTE} ({retention_days} дн.) {now.astimezone(UTC):%Y-%m-%d}"
    with engine.begin() as conn:
        rows = conn.execute(
            select(SupportRequest.id, SupportRequest.recording_path, SupportRequest.recording_note)
            .where(SupportRequest.recording_path.is_not(None), SupportRequest.received_at < cutoff)
            .with_for_update()
        ).all()
        doomed: list[Path] = []
        for request_id, path, old_note in rows:
            conn.execute(
                update(SupportRequest)
                .where(SupportRequest.id == request_id)
                .values(recording_path=None, recording_note=f"{old_note}; {note}".lstrip("; "))
            )
            conn.execute(
                insert(AuditEntry).values(
                    at=now,
                    username=author,
                    action="purge_recording",
                    target_type="request",
                    target_id=str(request_id),
                    details=f"запись удалена по сроку хранения {retention_days} дн.: {path}",
                )
            )
            report.requests.append(request_id)
            doomed.append(Path(str(path)))
    # Only once the requests no longer name them: a failure here leaves files without a
    # request, which the sweep below removes next time.
    for wav in doomed:
        report.files += _unlink(wav)
    report.unlinked_files = _purge_unnamed(engine, Path(recordings_dir), cutoff, now, author)
    return report


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    except OSError as err:
        log.error("запись %s не удалена: %s", path, err)
        return 0
    return 1


def _purge_unnamed(
    engine: Engine, recordings_dir: Path, cutoff: datetime, now: datetime, author: str
) -> int:
    if not recordings_dir.is_dir():
        return 0
    with engine.connect() as conn:
        named = set(
            conn.scalars(
                select(SupportRequest.recording_path).where(
                    SupportRequest.recording_path.is_not(None)
                )
            )
        )
    removed = 0
    for path in _recording_files(recordings_dir):
        if str(path) in named or path.stat().st_mtime >= cutoff.timestamp():
            continue
        removed += _unlink(path)
    if removed:
        with engine.begin() as conn:
            conn.execute(
                insert(AuditEntry).values(
                    at=now,
                    username=author,
                    action="purge_recording",
                    target_type="recordings",
                    target_id=str(recordings_dir)[:64],
                    details=f"удалено старых файлов записей без обращения: {removed}",
                )
            )
    return removed


def _recording_files(root: Path) -> Iterable[Path]:
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith((".wav", ".gsm")):
                yield Path(folder) / name


# -- the dialplan's own recordings ----------------------------------------------------------


def import_fallback_recordings(engine: Engine, recordings_dir: Path) -> list[int]:
    """Turn the messages the dialplan recorded without a FastAGI server into requests.

    Each file is claimed by renaming it (one importer wins, however many servers run), then
    stored as a request; if the database refuses, the name is given back for next time.
    """
    folder = Path(recordings_dir) / FALLBACK_DIR
    if not folder.is_dir():
        return []
    stored = []
    for path in sorted(folder.iterdir()):
        match = _FALLBACK_NAME.match(path.name)
        if match is None:
            continue
        claimed = path.with_name("imported-" + path.name)
        try:
            path.rename(claimed)
        except OSError:
            continue  # another importer took it
        try:
            stored.append(_import_one(engine, claimed, match))
        except (SQLAlchemyError, OSError) as err:
            log.warning("сообщение %s не сохранено, попробуем позже: %s", path.name, err)
            claimed.rename(path)
    return stored


def _import_one(engine: Engine, path: Path, match: re.Match[str]) -> int:
    received = datetime.fromtimestamp(int(match["epoch"]), UTC)
    e164 = normalize(match["number"]) if match["number"] else None
    seconds = wav_seconds(path)
    recorded = seconds is not None and seconds >= MIN_RECORDING_SECONDS
    with engine.begin() as conn:
        call = _fallback_call(conn, match["call_ref"], match["uniqueid"])
        customer_id = call.customer_id if call is not None else None
        if customer_id is None and e164:
            card = find_by_phone(conn, e164)
            customer_id = card.customer_id if card else None
        new = voice_message(
            received,
            call_ref=call.call_ref if call is not None else None,
            caller_e164=e164,
            callerid_raw=match["number"],
            customer_id=customer_id,
            decision=(call.decision if call is not None else None) or FALLBACK_DECISION,
            explanation=(call.explanation if call is not None else "")
            or "Сообщение записано диалпланом без сервера FastAGI: клиент не проверен",
            recording_path=str(path) if recorded else None,
            recording_seconds=seconds if recorded else None,
            recording_note="" if recorded else "звонящий положил трубку, ничего не сказав",
            note="" if recorded else MISSED_CALL_NOTE,
        )
        request_id = insert_request(conn, new)
    if not recorded:
        _unlink(path)
    return request_id


def _fallback_call(conn: Connection, call_ref: str, uniqueid: str) -> Any:
    query = select(Call.call_ref, Call.customer_id, Call.decision, Call.explanation)
    if call_ref:
        found = conn.execute(query.where(Call.call_ref == call_ref)).first()
        if found is not None:
            return found
    return conn.execute(
        query.where(Call.uniqueid == uniqueid).order_by(Call.id.desc()).limit(1)
    ).first()
