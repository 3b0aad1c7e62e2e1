"""Call-backs: the call file, placing it once, reading Asterisk's archived results, and the
two AGI scripts (a waiting caller asks for a call-back; the customer answers one).

The call files and archives are checked against real Asterisk 22 transcripts
(tests/data/asterisk/record/callfile_*.txt).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, insert, select

from dashboard.testing import Clock, add_call, add_customer, add_user
from ivr import dialplan
from ivr.app import build_services, close_services
from ivr.emulator import EmulatedCall
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.routes import ROUTES
from onerpa import callback, db
from onerpa.metrics import ProcessMetrics
from onerpa.models import Call, SupportRequest
from onerpa.settings import Settings

RECORD = Path(__file__).resolve().parent / "data" / "asterisk" / "record"
T = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
REQUESTS = SupportRequest.__table__
_BYTES = re.compile(r"^(?:As Python bytes: |\+\s+[\d.]+\s+wrote .*?: )(b'.*')$", re.M)


def transcript_files(name: str) -> tuple[bytes, bytes]:
    """Return the call file as written and as archived, from a recorded transcript."""
    found = [ast.literal_eval(m) for m in _BYTES.findall((RECORD / name).read_text())]
    return found[0], found[-1]


def add_request(engine: Engine, **fields: object) -> int:
    values: dict[str, object] = {
        "kind": "callback",
        "status": "new",
        "caller_e164": "+74951234567",
        "callerid_raw": "84951234567",
        "received_at": T,
        "place_at": T,
        "due_at": T + timedelta(hours=2),
    }
    values.update(fields)
    with engine.begin() as conn:
        key = conn.execute(insert(REQUESTS).values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def stored(engine: Engine, request_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(select(REQUESTS).where(REQUESTS.c.id == request_id)).mappings().one()
    return dict(row)


@pytest.fixture
def spool(tmp_path: Path) -> callback.Spool:
    found = callback.Spool(tmp_path / "outgoing", tmp_path / "outgoing_done", tmp_path / "tmp")
    for folder in (found.outgoing, found.done, found.tmp):
        folder.mkdir()
    return found


def place(engine: Engine, spool: callback.Spool, request_id: int, **kw: object) -> int:
    args: dict[str, object] = {
        "agent": "anna",
        "interface": "PJSIP/101",
        "seen_attempts": 0,
        "max_attempts": 3,
        "now": T,
    }
    args.update(kw)
    return callback.place(engine, spool, request_id, **args)  # type: ignore[arg-type]


# --- the call file --------------------------------------------------------------------------


def test_call_file_has_the_form_asterisk_read_in_the_transcript() -> None:
    written, _ = transcript_files("callfile_01_success.txt")
    known = {line.split(":")[0] for line in written.decode().splitlines()}
    text = callback.call_file(
        12,
        interface="PJSIP/101",
        number="74951234567",
        agent="anna",
        shown_name="Перезвон №12",
        ring_seconds=30,
    )
    assert text.endswith("\n") and "\r" not in text
    lines = text.splitlines()
    assert all(re.fullmatch(r"[A-Za-z]+: \S.*", line) for line in lines)
    assert {line.split(":")[0] for line in lines} <= known
    fields = [line.split(": ", 1) for line in lines]
    assert ["Channel", "PJSIP/101"] in fields  # the agent's phone rings first
    assert ["Context", dialplan.CONTEXT_CALLBACK] in fields
    assert ["MaxRetries", "0"] in fields and ["Archive", "yes"] in fields
    assert ["Setvar", "ONERPA_REQUEST_ID=12"] in fields
    assert ["Setvar", "ONERPA_CALLBACK_NUMBER=74951234567"] in fields


def test_call_file_cannot_be_steered_by_a_shown_name() -> None:
    text = callback.call_file(
        1,
        interface="PJSIP/101",
        number="74951234567",
        agent="anna",
        shown_name='x"\nChannel: Local/evil@x <1>',
        ring_seconds=30,
    )
    assert [line for line in text.splitlines() if line.startswith("Channel:")] == [
        "Channel: PJSIP/101"
    ]


def test_call_file_is_complete_before_it_enters_the_spool(
    spool: callback.Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str, bytes]] = []
    real_rename = os.rename

    def watching(src: str | Path, dst: str | Path) -> None:
        seen.append((str(src), str(dst), Path(src).read_bytes()))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", watching)
    target = callback.write_call_file(spool, "onerpa-request-1-1.call", "Channel: PJSIP/101\n")
    assert seen == [
        (str(spool.tmp / "onerpa-request-1-1.call"), str(target), b"Channel: PJSIP/101\n")
    ]
    assert target.parent == spool.outgoing and list(spool.tmp.iterdir()) == []


# --- reading Asterisk's archive -------------------------------------------------------------


@pytest.mark.parametrize(
    ("transcript", "status"),
    [
        ("callfile_01_success.txt", "Completed"),
        ("callfile_02_noanswer_retry.txt", "Expired"),
        ("callfile_03_bad_extension.txt", "Expired"),
        ("callfile_04_invalid_file.txt", "Failed"),
    ],
)
def test_archived_status_is_read_as_asterisk_wrote_it(transcript: str, status: str) -> None:
    _, archived = transcript_files(transcript)
    result = callback.parse_archive("onerpa-request-7-2.call", archived.decode())
    assert result is not None
    assert (result.request_id, result.attempt, result.status) == (7, 2, status)


def test_files_that_are_not_ours_are_left_alone(engine: Engine, spool: callback.Spool) -> None:
    _, archived = transcript_files("callfile_01_success.txt")
    (spool.done / "someone-else.call").write_bytes(archived)
    assert callback.collect(engine, spool) == []
    assert (spool.done / "someone-else.call").exists()


def archive(spool: callback.Spool, name: str, transcript: str) -> None:
    """Move our call file to outgoing_done with the ending of a recorded archive."""
    placed = spool.outgoing / name
    _, archived = transcript_files(transcript)
    ending = archived.decode().split("Setvar: X=Y\n", 1)[1]
    (spool.done / name).write_text(placed.read_text() + ending)
    placed.unlink()


def test_agent_phone_not_answering_gives_the_attempt_back(
    engine: Engine, spool: callback.Spool
) -> None:
    request_id = add_request(engine)
    assert place(engine, spool, request_id) == 1
    assert callback.in_progress(spool, request_id)
    archive(spool, f"onerpa-request-{request_id}-1.call", "callfile_02_noanswer_retry.txt")
    assert callback.in_progress(spool, request_id)  # not read yet
    (result,) = callback.collect(engine, spool)
    assert result.status == "Expired"
    assert stored(engine, request_id)["attempts"] == 0
    assert not callback.in_progress(spool, request_id)
    assert list(spool.done.iterdir()) == []


def test_customer_not_answering_counts_the_attempt_and_returns_the_request(
    engine: Engine, spool: callback.Spool
) -> None:
    request_id = add_request(engine)
    place(engine, spool, request_id)
    # Completed: the agent answered and the dialplan ran; nobody closed the request, so the
    # customer did not answer.
    archive(spool, f"onerpa-request-{request_id}-1.call", "callfile_01_success.txt")
    callback.collect(engine, spool)
    row = stored(engine, request_id)
    assert (row["attempts"], row["status"]) == (1, "in_work")
    assert place(engine, spool, request_id, seen_attempts=1) == 2


def test_after_the_last_attempt_the_request_stays_open_for_a_written_answer(
    engine: Engine, spool: callback.Spool
) -> None:
    request_id = add_request(engine, attempts=3, status="in_work")
    with pytest.raises(callback.CallbackRefused) as refused:
        place(engine, spool, request_id, seen_attempts=3)
    assert refused.value.code == "changed"
    assert stored(engine, request_id)["status"] == "in_work"
    assert list(spool.outgoing.iterdir()) == []


# --- placing once ---------------------------------------------------------------------------


def test_placing_takes_the_request_and_counts_the_attempt(
    engine: Engine, spool: callback.Spool
) -> None:
    request_id = add_request(engine)
    place(engine, spool, request_id)
    row = stored(engine, request_id)
    assert (row["status"], row["taken_by"], row["attempts"]) == ("in_work", "anna", 1)
    assert row["last_attempt_at"] == T
    (placed,) = spool.outgoing.iterdir()
    assert placed.name == f"onerpa-request-{request_id}-1.call"
    assert "Setvar: ONERPA_CALLBACK_AGENT=anna\n" in placed.read_text()


def test_two_agents_pressing_at_once_place_one_call(engine: Engine, spool: callback.Spool) -> None:
    request_id = add_request(engine)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def press(agent: str, interface: str) -> None:
        start.wait()
        try:
            place(engine, spool, request_id, agent=agent, interface=interface)
            outcomes.append("placed")
        except callback.CallbackRefused as refused:
            outcomes.append(refused.code)

    threads = [
        threading.Thread(target=press, args=("anna", "PJSIP/101")),
        threading.Thread(target=press, args=("boris", "PJSIP/102")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) in (["changed", "placed"], ["busy", "placed"])
    assert len(list(spool.outgoing.iterdir())) == 1
    assert stored(engine, request_id)["attempts"] == 1


def test_a_second_press_while_the_call_is_in_the_spool_places_nothing(
    engine: Engine, spool: callback.Spool
) -> None:
    request_id = add_request(engine)
    place(engine, spool, request_id)
    with pytest.raises(callback.CallbackRefused) as refused:
        place(engine, spool, request_id, seen_attempts=1)
    assert refused.value.code == "busy"
    assert stored(engine, request_id)["attempts"] == 1


def test_spool_not_writable_leaves_the_request_as_it_was(
    engine: Engine, spool: callback.Spool
) -> None:
    request_id = add_request(engine)
    broken = dataclasses.replace(spool, tmp=spool.tmp / "missing")
    with pytest.raises(callback.CallbackRefused) as refused:
        place(engine, broken, request_id)
    assert refused.value.code == "spool"
    assert "телефонной станции" in refused.value.message
    row = stored(engine, request_id)
    assert (row["status"], row["attempts"], row["taken_by"]) == ("new", 0, None)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"caller_e164": None}, "no_number"),
        ({"status": "answered"}, "closed"),
    ],
)
def test_nothing_to_call(engine: Engine, spool: callback.Spool, fields: dict, code: str) -> None:
    request_id = add_request(engine, **fields)
    with pytest.raises(callback.CallbackRefused) as refused:
        place(engine, spool, request_id)
    assert refused.value.code == code
    assert list(spool.outgoing.iterdir()) == []


def test_an_agent_without_a_phone_is_told(engine: Engine, spool: callback.Spool) -> None:
    request_id = add_request(engine)
    with pytest.raises(callback.CallbackRefused) as refused:
        place(engine, spool, request_id, interface=None)
    assert refused.value.code == "no_phone"


# --- deadlines ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span", "left", "state"),
    [
        (timedelta(hours=72), timedelta(hours=25), "ok"),
        (timedelta(hours=72), timedelta(hours=24), "amber"),
        (timedelta(hours=72), timedelta(seconds=1), "amber"),
        (timedelta(hours=72), timedelta(seconds=-1), "red"),
        (timedelta(hours=2), timedelta(minutes=41), "ok"),
        (timedelta(hours=2), timedelta(minutes=40), "amber"),
    ],
)
def test_deadline_colour(span: timedelta, left: timedelta, state: str) -> None:
    due_at = T + span
    assert callback.due(T, due_at, due_at - left).state == state


# --- the AGI scripts ------------------------------------------------------------------------


@dataclasses.dataclass
class Line:
    engine: Engine
    server: FastAGIServer
    services: object

    def run(self, call: EmulatedCall, script: str) -> dict[str, str]:
        result = call.run_fastagi(("127.0.0.1", self.server.port), script)
        assert self.services.recorder.flush()  # type: ignore[attr-defined]
        return result.variables


@pytest.fixture
def line(engine: Engine) -> Iterator[Line]:
    metrics = ProcessMetrics(registry=CollectorRegistry(), scripts=ROUTES)
    services = build_services(
        Settings(),
        engine,
        clock=Clock(T + timedelta(minutes=2)),
        lookup_workers=2,
        metrics=metrics,
    )
    server = FastAGIServer(("127.0.0.1", 0), services)
    start_in_thread(server)
    yield Line(engine, server, services)
    server.shutdown()
    server.server_close()
    close_services(services)


def queued_call(engine: Engine, caller: str = "+74951234567") -> Call:
    with db.session_factory(engine).begin() as session:
        customer = add_customer(session, phone=caller)
        call = add_call(
            session,
            caller_e164=caller,
            status="queued",
            arrived_at=T,
            queued_at=T,
            customer_id=customer.id,
            decision="free_first_year",
        )
        session.expunge(call)
    return call


def test_waiting_caller_gets_a_call_back_that_keeps_their_place(engine: Engine, line: Line) -> None:
    call = queued_call(engine)
    press = EmulatedCall(
        caller="84951234567",
        args=[call.call_ref],
        context=dialplan.CONTEXT_QUEUE_EXIT,
        extension="callback",
        answered=True,
    )
    variables = line.run(press, dialplan.SCRIPT_CALLBACK_REQUEST)
    assert variables[dialplan.VAR_CALLBACK] == dialplan.CALLBACK_ACCEPTED
    with engine.connect() as conn:
        (request,) = conn.execute(select(REQUESTS)).mappings()
    assert request["kind"] == "callback" and request["status"] == "new"
    assert request["place_at"] == T  # when the call arrived, not when 1 was pressed
    assert request["received_at"] == T + timedelta(minutes=2)
    assert request["due_at"] == T + Settings().callback_due  # 12:30 in Moscow: same day
    assert request["call_id"] == call.id and request["caller_e164"] == "+74951234567"
    assert request["decision"] == "free_first_year"
    # Pressing again on the same call does not make a second request.
    line.run(press, dialplan.SCRIPT_CALLBACK_REQUEST)
    with engine.connect() as conn:
        assert len(conn.execute(select(REQUESTS.c.id)).all()) == 1


@pytest.mark.parametrize(
    ("caller", "variables"),
    [
        ("anonymous", {}),
        ("", {}),
        ("Restricted", {}),
    ],
    ids=["anonymous", "empty", "restricted"],
)
def test_withheld_number_is_refused_a_call_back(
    engine: Engine, line: Line, caller: str, variables: dict[str, str]
) -> None:
    call = queued_call(engine)
    press = EmulatedCall(
        caller=caller,
        args=[call.call_ref],
        context=dialplan.CONTEXT_QUEUE_EXIT,
        extension="callback",
        answered=True,
        variables=variables,
    )
    result = line.run(press, dialplan.SCRIPT_CALLBACK_REQUEST)
    assert result[dialplan.VAR_CALLBACK] == dialplan.CALLBACK_REFUSED
    with engine.connect() as conn:
        assert conn.execute(select(REQUESTS.c.id)).all() == []


def test_answered_call_back_is_a_normal_call_linked_to_its_request(
    engine: Engine, line: Line
) -> None:
    with db.session_factory(engine).begin() as session:
        add_user(session, "anna", interface="PJSIP/101", member_name="Агент 101")
    request_id = add_request(engine, status="in_work", taken_by="anna", attempts=1)
    answered = EmulatedCall(
        args=[str(request_id), "anna"],
        uniqueid="1796.5",
        channel="PJSIP/provider-00000007",
        context=dialplan.CONTEXT_CALLBACK_ANSWERED,
        answered=True,
    )
    variables = line.run(answered, dialplan.SCRIPT_CALLBACK)
    call_ref = variables[dialplan.VAR_CALL_ID]
    with engine.connect() as conn:
        call = (
            conn.execute(select(Call.__table__).where(Call.call_ref == call_ref)).mappings().one()
        )
    assert call["status"] == "talking" and call["route"] == "callback"
    assert call["answered_at"] == T + timedelta(minutes=2) and call["queued_at"] is None
    assert call["agent_interface"] == "PJSIP/101" and call["caller_e164"] == "+74951234567"
    assert f"№{request_id}" in call["explanation"]
    row = stored(engine, request_id)
    assert (row["status"], row["closed_by"]) == ("answered", "anna")
    assert call_ref in str(row["note"])
    # The customer's hang-up handler ends it as any answered call: timed from the answer.
    hangup = EmulatedCall(
        args=[call_ref, "1796.5"],
        uniqueid="1796.5",
        context=dialplan.CONTEXT_HANGUP,
        variables={dialplan.VAR_CALL_ID: call_ref},
        dead_at_start=True,
    )
    line.run(hangup, dialplan.SCRIPT_HANGUP)
    with engine.connect() as conn:
        status = conn.scalar(select(Call.status).where(Call.call_ref == call_ref))
    assert status == "completed"


# --- metrics --------------------------------------------------------------------------------


def test_request_metrics_count_open_overdue_and_answers_by_kind(engine: Engine) -> None:
    from onerpa.metrics import DatabaseCollector
    from onerpa.timing import Targets

    add_request(engine, kind="message", due_at=T - timedelta(hours=1))  # overdue
    add_request(engine, kind="message")  # open, in time
    add_request(engine, kind="callback", status="in_work")
    add_request(  # a call-back answered 30 minutes after the caller's place
        engine,
        status="answered",
        place_at=T - timedelta(hours=1),
        received_at=T - timedelta(minutes=50),
        closed_at=T - timedelta(minutes=30),
    )
    add_request(  # a message answered after 80 hours
        engine,
        kind="message",
        status="answered",
        received_at=T - timedelta(hours=81),
        closed_at=T - timedelta(hours=1),
    )
    add_request(engine, kind="message", status="declined", closed_at=T)
    registry = CollectorRegistry()
    DatabaseCollector(engine, Targets(), registry=registry, clock=lambda: T)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"onerpa_support_{name}", labels)

    assert value("requests_open", kind="message") == 2
    assert value("requests_open", kind="callback") == 1
    assert value("requests_overdue", kind="message") == 1
    assert value("requests_overdue", kind="callback") == 0
    assert value("requests_answered_recent", kind="callback", within_72h="true") == 1
    assert value("requests_answered_recent", kind="message", within_72h="false") == 1
    assert value("request_answer_seconds_avg", kind="callback") == 30 * 60
    assert value("request_answer_seconds_avg", kind="message") == 80 * 3600
