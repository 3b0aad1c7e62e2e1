"""Requests: deadlines, the open list, state changes, recordings, the writer, the fallback
import, retention, and the ``requests``/``purge-recordings`` commands."""

from __future__ import annotations

import json
import os
import threading
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from ivr.app import SchemaNotChecked
from onerpa import db, requests
from onerpa.demo import load_demo
from onerpa.hours import SupportCalendar
from onerpa.models import Call, Customer, SupportRequest
from onerpa.requests import Kind, NewRequest, RecordingState, RequestConflict, RequestError
from onerpa.settings import CALLBACK_NEXT_OPENING
from onerpa.staff import AuditEntry
from onerpa_support.cli import main

MSK = ZoneInfo("Europe/Moscow")
CALENDAR = SupportCalendar()
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK)


# -- deadlines ------------------------------------------------------------------------------


@pytest.mark.parametrize("received", [THURSDAY_11, at(28, 23, 59), at(31, 18, month=12)])
def test_a_message_is_due_72_hours_after_it_was_received(received: datetime) -> None:
    assert requests.message_due(received) == received + timedelta(hours=72)


@pytest.mark.parametrize(
    ("received", "rule", "due"),
    [
        (at(26, 11), "next_day_end", at(26, 13)),  # in hours: within 2 hours
        (at(26, 16, 30), "next_day_end", at(26, 17)),  # ... but the same working day
        (at(26, 18), "next_day_end", at(27, 17)),  # after hours: the next day's end
        (at(26, 18), CALLBACK_NEXT_OPENING, at(27, 11)),  # ... or 2 h after it opens
        (at(28, 10), "next_day_end", at(30, 17)),  # Saturday: Monday's end
        (at(3, 16, 30), "next_day_end", at(5, 17)),  # short day closed at 16, 4 Nov a holiday
        (at(3, 15, 30), "next_day_end", at(3, 16)),  # a short day closes at 16:00
    ],
)
def test_a_call_back_is_due_the_same_working_day(
    received: datetime, rule: str, due: datetime
) -> None:
    assert requests.callback_due(CALENDAR, received, after_hours=rule) == due


# -- storing and listing --------------------------------------------------------------------


def message(received: datetime, **fields: Any) -> NewRequest:
    return requests.voice_message(received.astimezone(UTC), **fields)


def callback(received: datetime, place_at: datetime) -> NewRequest:
    due = requests.callback_due(CALENDAR, received)
    return NewRequest(Kind.CALLBACK, received, due, place_at=place_at, caller_e164="+74951234567")


def test_open_list_has_call_backs_by_place_then_messages_by_deadline(engine: Engine) -> None:
    late = requests.create_request(engine, message(at(26, 10)))
    early = requests.create_request(engine, message(at(25, 10)))
    second = requests.create_request(engine, callback(at(26, 11), place_at=at(26, 10, 50)))
    first = requests.create_request(engine, callback(at(26, 11, 5), place_at=at(26, 10, 40)))
    closed = requests.create_request(engine, message(at(24, 10)))
    requests.answer(engine, closed, "ivanova", THURSDAY_11)

    listed = requests.open_requests(engine)

    assert [r.id for r in listed] == [first, second, early, late]
    assert [r.id for r in requests.open_callbacks(engine)] == [first, second]
    assert [r.id for r in requests.open_messages(engine)] == [early, late]
    assert closed in {r.id for r in requests.all_requests(engine)}


def test_a_request_is_linked_to_its_call_and_customer(engine: Engine) -> None:
    load_demo(engine)
    with engine.begin() as conn:
        customer = conn.scalar(select(Customer.id).where(Customer.customer_number == "100101"))
        conn.execute(Call.__table__.insert().values(call_ref="ref-1", arrived_at=THURSDAY_11))
    stored = requests.create_request(
        engine, message(THURSDAY_11, call_ref="ref-1", customer_id=customer, decision="x")
    )

    view = requests.get_request(engine, stored)

    assert (view.call_ref, view.customer_number, view.organisation) == (
        "ref-1",
        "100101",
        "ООО «Альфа-Логистик»",
    )
    assert (view.mail_state, view.mail_next_at) == ("pending", THURSDAY_11)


def test_unknown_request_is_refused_with_a_message(engine: Engine) -> None:
    with pytest.raises(requests.RequestNotFound, match="обращения № 42 нет"):
        requests.take(engine, 42, "ivanova", THURSDAY_11)


# -- state changes --------------------------------------------------------------------------


def test_take_answer_and_the_audit_hook_in_the_same_transaction(engine: Engine) -> None:
    stored = requests.create_request(engine, message(at(25, 10)))
    seen: list[tuple[str, str, str]] = []

    def audit(conn: Any, action: str, before: Any, after: Any) -> None:
        conn.execute(
            AuditEntry.__table__.insert().values(
                at=THURSDAY_11, username=after.taken_by or "", action=f"request_{action}",
                target_type="request", target_id=str(after.id), details=after.status,
            )
        )  # fmt: skip
        seen.append((action, before.status, after.status))

    taken = requests.take(engine, stored, "ivanova", THURSDAY_11, audit=audit)
    done = requests.answer(engine, stored, "ivanova", THURSDAY_11, "ответили письмом", audit=audit)

    assert (taken.status, taken.taken_by, taken.taken_at) == ("in_work", "ivanova", THURSDAY_11)
    assert (done.status, done.closed_by, done.closed_at) == ("answered", "ivanova", THURSDAY_11)
    assert done.note.endswith("ivanova: ответили письмом")
    assert seen == [("take", "new", "in_work"), ("answer", "in_work", "answered")]
    with engine.connect() as conn:
        assert len(conn.execute(select(AuditEntry.__table__)).all()) == 2


def test_a_failing_audit_hook_undoes_the_change(engine: Engine) -> None:
    stored = requests.create_request(engine, message(at(25, 10)))

    def audit(*_: Any) -> None:
        raise RuntimeError("audit log unavailable")

    with pytest.raises(RuntimeError):
        requests.take(engine, stored, "ivanova", THURSDAY_11, audit=audit)
    assert requests.get_request(engine, stored).status == "new"


def test_a_request_taken_by_someone_else_is_not_taken_again(engine: Engine) -> None:
    stored = requests.create_request(engine, message(at(25, 10)))
    requests.take(engine, stored, "ivanova", THURSDAY_11)

    with pytest.raises(RequestConflict, match="уже в работе у ivanova"):
        requests.take(engine, stored, "petrov", THURSDAY_11)
    assert requests.take(engine, stored, "ivanova", THURSDAY_11).taken_by == "ivanova"


def test_decline_needs_a_reason_and_a_closed_request_stays_closed(engine: Engine) -> None:
    stored = requests.create_request(engine, message(at(25, 10)))
    with pytest.raises(RequestError, match="почему"):
        requests.decline(engine, stored, "ivanova", THURSDAY_11, "  ")

    declined = requests.decline(engine, stored, "ivanova", THURSDAY_11, "не наш продукт")

    assert (declined.status, declined.taken_by) == ("declined", "ivanova")
    with pytest.raises(RequestConflict, match="уже закрыто"):
        requests.answer(engine, stored, "petrov", THURSDAY_11)


# -- recordings -----------------------------------------------------------------------------


def write_wav(path: Path, samples: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\0\0" * samples)
    return path


def test_a_recording_missing_on_disk_is_reported(engine: Engine, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "2026" / "11" / "26" / "a.wav", 8000)
    stored = requests.create_request(engine, message(THURSDAY_11, recording_path=str(wav)))
    before = requests.get_request(engine, stored)
    assert requests.recording_state(before, tmp_path) is RecordingState.PRESENT
    assert requests.recording_file(before, tmp_path) == wav
    assert requests.recording_problem(before, tmp_path) is None

    wav.unlink()
    after = requests.get_request(engine, stored)

    assert requests.recording_state(after, tmp_path) is RecordingState.MISSING
    assert requests.recording_problem(after, tmp_path) == f"файла записи нет на диске: {wav}"
    assert requests.recording_file(after, tmp_path) is None


def test_a_recording_outside_the_recordings_folder_is_never_served(
    engine: Engine, tmp_path: Path
) -> None:
    outside = write_wav(tmp_path / "elsewhere.wav", 8000)
    stored = requests.create_request(engine, message(THURSDAY_11, recording_path=str(outside)))
    view = requests.get_request(engine, stored)

    assert requests.recording_file(view, tmp_path / "recordings") is None


def test_purge_removes_old_recordings_keeps_the_requests_and_writes_an_audit_line(
    engine: Engine, tmp_path: Path
) -> None:
    now = THURSDAY_11
    old = write_wav(tmp_path / "2026" / "08" / "01" / "old.wav", 8000)
    young = write_wav(tmp_path / "2026" / "11" / "20" / "young.wav", 8000)
    stray = write_wav(tmp_path / "2026" / "07" / "01" / "stray.wav", 8000)
    os.utime(stray, (now.timestamp() - 100 * 86400,) * 2)
    expired = requests.create_request(engine, message(at(1, 10, month=8), recording_path=str(old)))
    kept = requests.create_request(engine, message(at(20, 10), recording_path=str(young)))

    report = requests.purge_recordings(engine, tmp_path, 90, now, author="cli")

    assert (report.requests, report.files, report.unlinked_files) == ([expired], 1, 1)
    assert not old.exists() and not stray.exists() and young.exists()
    purged = requests.get_request(engine, expired)
    assert purged.recording_path is None
    assert requests.PURGED_NOTE in purged.recording_note
    assert requests.recording_state(purged, tmp_path) is RecordingState.PURGED
    assert requests.get_request(engine, kept).recording_path == str(young)
    with engine.connect() as conn:
        audit = conn.execute(select(AuditEntry.__table__).order_by(AuditEntry.id)).all()
    assert [(a.username, a.action, a.target_type) for a in audit] == [
        ("cli", "purge_recording", "request"),
        ("cli", "purge_recording", "recordings"),
    ]
    assert audit[0].target_id == str(expired)


# -- the writer -----------------------------------------------------------------------------


class _Gate:
    """An engine that is away until opened, like a database that is down."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.open = threading.Event()

    def begin(self) -> Any:
        if not self.open.is_set():
            raise SchemaNotChecked("база недоступна")
        return self.engine.begin()


def test_writer_keeps_requests_while_the_database_is_away(engine: Engine) -> None:
    gate = _Gate(engine)
    writer = requests.RequestWriter(gate, retry_delay=0.05)  # type: ignore[arg-type]
    try:
        writer.submit(message(THURSDAY_11))
        assert not writer.flush(timeout=0.3)
        assert writer.pending == 1
        gate.open.set()
        assert writer.flush(timeout=5)
    finally:
        writer.close()
    assert len(requests.open_messages(engine)) == 1


def test_writer_waits_for_the_call_record_to_link_the_request(engine: Engine) -> None:
    writer = requests.RequestWriter(engine, retry_delay=0.05, link_grace=30)
    try:
        writer.submit(message(THURSDAY_11, call_ref="late-call"))
        assert not writer.flush(timeout=0.3)  # the call is not stored yet
        with engine.begin() as conn:
            conn.execute(
                Call.__table__.insert().values(call_ref="late-call", arrived_at=THURSDAY_11)
            )
        assert writer.flush(timeout=5)
    finally:
        writer.close()
    [stored] = requests.open_messages(engine)
    assert stored.call_ref == "late-call"


def test_writer_stores_the_request_unlinked_once_the_grace_is_over(engine: Engine) -> None:
    writer = requests.RequestWriter(engine, retry_delay=0.05, link_grace=0)
    try:
        writer.submit(message(THURSDAY_11, call_ref="never-stored"))
        assert writer.flush(timeout=5)
    finally:
        writer.close()
    [stored] = requests.open_messages(engine)
    assert stored.call_id is None


# -- the dialplan's own recordings ----------------------------------------------------------


def test_fallback_recordings_become_requests_once(engine: Engine, tmp_path: Path) -> None:
    load_demo(engine)
    with engine.begin() as conn:
        conn.execute(
            Call.__table__.insert().values(
                call_ref="3f0c2b1e-0000-4000-8000-000000000001",
                uniqueid="1796431913.13",
                arrived_at=THURSDAY_11,
                decision="not_entitled",
                explanation="Не положено",
            )
        )
    folder = tmp_path / "fallback"
    epoch = int(THURSDAY_11.timestamp())
    said = write_wav(
        folder / f"{epoch}_1796431913.13_3f0c2b1e-0000-4000-8000-000000000001_74951234567.wav",
        16000,
    )
    silent = write_wav(folder / f"{epoch}_1796431999.20__79035550142.wav", 0)

    first = requests.import_fallback_recordings(engine, tmp_path)
    again = requests.import_fallback_recordings(engine, tmp_path)

    assert len(first) == 2 and again == []
    linked, missed = (requests.get_request(engine, i) for i in first)
    assert (linked.call_ref, linked.decision, linked.received_at) == (
        "3f0c2b1e-0000-4000-8000-000000000001",
        "not_entitled",
        THURSDAY_11,
    )
    assert linked.customer_number == "100101"  # found by the number
    assert linked.recording_seconds == 2.0
    assert requests.recording_state(linked, tmp_path) is RecordingState.PRESENT
    assert (missed.decision, missed.note, missed.recording_path) == (
        "fallback",
        requests.MISSED_CALL_NOTE,
        None,
    )
    assert not said.exists() and not silent.exists()
    assert missed.due_at == THURSDAY_11 + timedelta(hours=72)


# -- the commands ---------------------------------------------------------------------------


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    url = f"sqlite:///{tmp_path / 'line.sqlite3'}"
    monkeypatch.setenv("ONERPA_DATABASE_URL", url)
    monkeypatch.setenv("ONERPA_RECORDINGS_DIR", str(tmp_path / "recordings"))
    for name in ("ONERPA_SMTP_HOST", "ONERPA_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    engine = db.make_engine(url)
    db.migrate(engine)
    return engine


def test_requests_command_lists_open_requests_with_their_countdown(cli_database: Engine) -> None:
    now = datetime.now(UTC)
    requests.create_request(
        cli_database, message(now - timedelta(hours=2), note="пропущенный звонок")
    )
    requests.create_request(cli_database, message(now - timedelta(hours=80)))

    shown = CliRunner().invoke(main, ["requests"])
    listed = CliRunner().invoke(main, ["requests", "--json"])

    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "просрочено на 8 ч" in lines[0] and "осталось 2 д 21 ч" in lines[1]
    assert "почта: не настроена (ONERPA_SMTP_HOST)" in lines[0]
    assert "запись: нет (пропущенный звонок)" in lines[1]
    found = json.loads(listed.output)
    assert [r["overdue"] for r in found] == [True, False]
    assert set(found[0]) == {
        "id", "kind", "status", "received_at", "due_at", "place_at", "seconds_left", "overdue",
        "caller", "customer_number", "organisation", "decision", "explanation", "call_ref",
        "recording", "note", "taken_by", "taken_at", "closed_by", "closed_at", "mail",
    }  # fmt: skip
    assert set(found[0]["mail"]) == {"state", "attempts", "next_at", "error"}
    assert set(found[0]["recording"]) == {"state", "path", "seconds", "note"}


def test_purge_recordings_command_says_what_it_removed(
    cli_database: Engine, tmp_path: Path
) -> None:
    wav = write_wav(tmp_path / "recordings" / "2026" / "01" / "01" / "a.wav", 800)
    old = datetime.now(UTC) - timedelta(days=91)
    requests.create_request(cli_database, message(old, recording_path=str(wav)))

    result = CliRunner().invoke(main, ["purge-recordings"])

    assert result.exit_code == 0, result.output
    assert "Удалены записи обращений: 1 (файлов: 1)" in result.output
    assert not wav.exists()
    with cli_database.connect() as conn:
        assert conn.scalar(select(SupportRequest.recording_path)) is None
        assert conn.scalar(select(AuditEntry.username)) == "cli"
