"""Voice messages through the real FastAGI server and the Asterisk emulator, on each database.

A caller the line cannot serve live (out of hours, not a customer, not entitled) may press 1
and leave a message; whatever happens next (a hang-up at the beep, a full disk) the call
leaves a request with its 72-hour deadline. A caller refused under the etiquette rules is
not offered one.
"""

from __future__ import annotations

import re
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from ivr.emulator import HANG_UP, CallResult, Speech
from onerpa import requests
from onerpa.models import Customer, SupportRequest
from onerpa.settings import Settings
from tests.flowkit import Line, support_line

MSK = ZoneInfo("Europe/Moscow")
SATURDAY_10 = datetime(2026, 11, 28, 10, 0, tzinfo=MSK)
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
ENTITLED = "+7 495 123-45-67"  # customer 100101 (onerpa/demo.py)
NOT_ENTITLED = "+79035550142"
REFUSED = "+78465556307"
HEADER_BYTES = 44
RATE = 8000


@contextmanager
def line_with_recordings(engine: Engine, at: datetime, folder: Path) -> Iterator[Line]:
    settings = replace(Settings(), recordings_dir=str(folder))
    with support_line(engine, at, settings) as line:
        yield line


def call_and_store(line: Line, caller: str, **options: Any) -> CallResult:
    result = line.call(caller, **options)
    assert line.services.requests is not None
    assert line.services.requests.flush(), "request not stored in time"
    return result


def stored_requests(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(SupportRequest.__table__).order_by(SupportRequest.id)))


def customer_id(engine: Engine, number: str) -> int:
    with engine.connect() as conn:
        found = conn.scalar(select(Customer.id).where(Customer.customer_number == number))
    assert found is not None
    return found


def test_out_of_hours_caller_leaves_a_message_kept_with_its_72_hour_deadline(
    engine: Engine, tmp_path: Path
) -> None:
    with line_with_recordings(engine, SATURDAY_10, tmp_path) as line:
        result = call_and_store(line, ENTITLED, keys=["1", Speech("#", seconds=3)])
        call = line.record(result)
    [request] = stored_requests(engine)

    assert result.prompts[-5:] == [
        "onerpa-message-offer",
        "onerpa-message-record",
        "beep",
        "onerpa-message-saved",
        "onerpa-message-callback",
    ]
    [made] = result.recordings
    wav = Path(request.recording_path)
    assert wav == made.path == tmp_path / "2026" / "11" / "28" / f"{call.call_ref}.wav"
    samples = 3 * RATE - 1600  # RECORD FILE drops the 200 ms before the "#"
    assert wav.stat().st_size == HEADER_BYTES + 2 * samples
    assert request.recording_seconds == samples / RATE
    assert (request.kind, request.status, request.mail_state) == ("message", "new", "pending")
    assert request.received_at == SATURDAY_10
    assert request.due_at == SATURDAY_10 + timedelta(hours=72)
    assert request.call_id == call.id
    assert request.customer_id == customer_id(engine, "100101")
    assert request.caller_e164 == "+74951234567"
    # The entitlement when they called, though the line was closed.
    assert request.decision.startswith("free")
    assert "Звонок вне часов работы" in request.explanation
    assert (call.route, call.status) == ("closed", "ended_ivr")


def test_not_entitled_caller_leaves_a_message_with_that_entitlement(
    engine: Engine, tmp_path: Path
) -> None:
    with line_with_recordings(engine, THURSDAY_11, tmp_path) as line:
        result = call_and_store(line, NOT_ENTITLED, keys=["", "1", Speech(seconds=4)])
        call = line.record(result)
    [request] = stored_requests(engine)

    assert result.prompts[-3:] == ["beep", "onerpa-message-saved", "onerpa-message-callback"]
    assert request.decision == "not_entitled"
    assert request.customer_id == call.customer_id is not None
    assert request.recording_seconds == (4 * RATE + 7520) / RATE  # ended by the silence
    assert result.variables["ONERPA_ROUTE"] == "not_entitled"


def test_unknown_caller_may_leave_a_message_and_hears_it_is_answered_by_the_contacts_given(
    engine: Engine, tmp_path: Path
) -> None:
    with line_with_recordings(engine, THURSDAY_11, tmp_path) as line:
        result = call_and_store(line, "", keys=["", "12#", "1", Speech("#", seconds=2)])
    [request] = stored_requests(engine)

    assert result.prompts[-3:] == ["beep", "onerpa-message-saved", "onerpa-message-contacts"]
    assert (request.decision, request.customer_id, request.caller_e164) == (
        "unknown_caller",
        None,
        None,
    )
    assert request.recording_path is not None


def test_caller_hanging_up_at_the_beep_is_kept_as_a_missed_call(
    engine: Engine, tmp_path: Path
) -> None:
    with line_with_recordings(engine, SATURDAY_10, tmp_path) as line:
        result = call_and_store(line, ENTITLED, keys=["1", HANG_UP])
        call = line.record(result)
    [request] = stored_requests(engine)

    assert result.prompts[-1] == "beep" and result.hung_up
    assert (request.kind, request.recording_path, request.recording_seconds) == (
        "message",
        None,
        None,
    )
    assert request.note == "пропущенный звонок"
    assert request.due_at == request.received_at + timedelta(hours=72)
    assert request.call_id == call.id
    assert list(tmp_path.rglob("*.wav")) == []  # the empty file is not kept
    assert (call.status, call.ended_by) == ("abandoned_ivr", "caller")


def test_caller_hanging_up_to_end_the_message_keeps_what_was_said(
    engine: Engine, tmp_path: Path
) -> None:
    with line_with_recordings(engine, SATURDAY_10, tmp_path) as line:
        call_and_store(line, ENTITLED, keys=["1", Speech(seconds=3.16, hangs_up=True)])
    [request] = stored_requests(engine)

    assert request.recording_seconds == 25280 / RATE
    assert Path(request.recording_path).stat().st_size == HEADER_BYTES + 2 * 25280
    assert request.note == ""


def test_full_disk_tells_the_caller_and_still_keeps_a_request(
    engine: Engine, tmp_path: Path
) -> None:
    with line_with_recordings(engine, SATURDAY_10, tmp_path) as line:
        result = call_and_store(line, ENTITLED, keys=["1", Speech("#", seconds=3)], disk_full=True)
    [request] = stored_requests(engine)

    assert result.prompts[-3:] == ["beep", "onerpa-message-failed", "onerpa-message-callback"]
    assert result.status == "FAILURE"  # as Asterisk reports a writefile
    assert request.recording_path is None
    assert "writefile" in request.recording_note
    assert request.due_at == request.received_at + timedelta(hours=72)


def test_recordings_folder_that_cannot_be_made_tells_the_caller_without_recording(
    engine: Engine, tmp_path: Path
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    with line_with_recordings(engine, SATURDAY_10, blocked) as line:
        result = call_and_store(line, "", keys=["1", Speech("#", seconds=3)])
    [request] = stored_requests(engine)

    assert not any(c.startswith("RECORD FILE") for c in result.commands)
    assert result.prompts[-2:] == ["onerpa-message-failed", "onerpa-message-write"]
    assert "папку для записи не удалось создать" in request.recording_note


def test_refused_caller_is_not_offered_a_message(engine: Engine, tmp_path: Path) -> None:
    with line_with_recordings(engine, THURSDAY_11, tmp_path) as line:
        result = call_and_store(line, REFUSED, keys=["1"])

    assert result.prompts == ["onerpa-greeting", "onerpa-refused"]
    assert stored_requests(engine) == []


def test_caller_who_does_not_press_1_leaves_no_request(engine: Engine, tmp_path: Path) -> None:
    with line_with_recordings(engine, SATURDAY_10, tmp_path) as line:
        result = call_and_store(line, ENTITLED, keys=["2"])

    assert result.prompts[-2:] == ["onerpa-message-offer", "onerpa-goodbye"]
    assert stored_requests(engine) == []


# -- the dialplan's own message path (no FastAGI server) ------------------------------------

EXTENSIONS = Path(__file__).resolve().parents[1] / "asterisk" / "extensions.conf"


def _context(name: str) -> str:
    text = EXTENSIONS.read_text(encoding="utf-8")
    match = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    assert match is not None
    return match.group(1)


def test_fallback_takes_a_message_out_of_hours_with_asterisks_own_record() -> None:
    fallback = _context("onerpa-fallback")
    closed = fallback.index("n(closed),Playback(onerpa-closed&onerpa-hours&onerpa-closed-email)")
    assert fallback.index("Goto(message,1)", closed) > closed
    record = re.search(r"Record\((?P<file>[^,]+),3,120,k\)", fallback)
    assert record is not None  # "#", 3 s of silence, 120 s; k keeps it on a hang-up
    assert record["file"] == (
        "${ONERPA_RECORDINGS_DIR}/fallback/${EPOCH}_${UNIQUEID}_${ONERPA_CALL_ID}_${NUMBER}.wav"
    )
    assert "exten => busy,1,Playback(onerpa-busy-message)" in fallback


def test_fallback_recordings_folder_is_the_services(tmp_path: Path) -> None:
    globals_ = _context("globals")
    folder = re.search(r"^ONERPA_RECORDINGS_DIR=(.*)$", globals_, re.M)
    assert folder is not None and folder[1] == Settings().recordings_dir


def test_a_name_the_fallback_writes_is_one_the_import_reads(engine: Engine, tmp_path: Path) -> None:
    # ${EPOCH}_${UNIQUEID}_${ONERPA_CALL_ID}_${NUMBER} as Asterisk fills it for a call the
    # server never saw (empty call id) from +7 495 123-45-67.
    name = "1796431913_1796431913.13__74951234567.wav"
    (tmp_path / "fallback").mkdir()
    write_wav(tmp_path / "fallback" / name, 16000)

    [stored] = requests.import_fallback_recordings(engine, tmp_path)

    request = requests.get_request(engine, stored)
    assert (request.caller_e164, request.decision, request.recording_seconds) == (
        "+74951234567",
        "fallback",
        2.0,
    )


def write_wav(path: Path, samples: int) -> None:
    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(RATE)
        sound.writeframes(b"\0\0" * samples)
