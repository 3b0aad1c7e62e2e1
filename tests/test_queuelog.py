"""The queue_log reader, on the exact lines a real Asterisk 22.10.1 wrote."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from onerpa.models import Call
from onerpa.queuelog import (
    Entry,
    Follower,
    Ingester,
    QueueLogError,
    change_for,
    follow,
    parse,
    parse_line,
)
from onerpa.recorder import CallKey, Change, Source, apply_changes, ivr_change
from onerpa_support.cli import main
from tests import scenarios


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def test_every_line_of_the_recorded_file_parses() -> None:
    entries = [parse_line(line) for line in scenarios.queue_log_file()]
    assert [e.event for e in entries[:4]] == [
        "QUEUESTART",
        "ENTERQUEUE",
        "CONNECT",
        "COMPLETECALLER",
    ]
    assert {e.event for e in entries} == {
        "QUEUESTART",
        "ENTERQUEUE",
        "CONNECT",
        "COMPLETECALLER",
        "COMPLETEAGENT",
        "RINGCANCELED",
        "ABANDON",
        "RINGNOANSWER",
        "EXITWITHTIMEOUT",
        "ADDMEMBER",
        "PAUSE",
        "EXITEMPTY",
        "REMOVEMEMBER",
        "EXITWITHKEY",
    }


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "1795696705|NONE|NONE|NONE|QUEUESTART|",
            Entry(1795696705, "NONE", "NONE", None, "QUEUESTART", ("",)),
        ),
        (
            "1795696716|1795696714.0|support|Agent One|CONNECT|2|1795696714.2|2",
            Entry(
                1795696716,
                "1795696714.0",
                "support",
                "Agent One",
                "CONNECT",
                ("2", "1795696714.2", "2"),
            ),
        ),
        (
            "1795696812|1795696812.28|support|NONE|ENTERQUEUE||+79161234567|1|Ivan Petrov",
            Entry(
                1795696812,
                "1795696812.28",
                "support",
                None,
                "ENTERQUEUE",
                ("", "+79161234567", "1", "Ivan Petrov"),
            ),
        ),
        (
            "1795696804|1795696801.26|support-key|NONE|EXITWITHKEY|1|1|1|3",
            Entry(
                1795696804,
                "1795696801.26",
                "support-key",
                None,
                "EXITWITHKEY",
                ("1", "1", "1", "3"),
            ),
        ),
        (
            "1795696791|CLI|support-leave|Local/agent2@agents/n|ADDMEMBER|",
            Entry(1795696791, "CLI", "support-leave", "Local/agent2@agents/n", "ADDMEMBER", ("",)),
        ),
        (
            "1795696791|NONE|support-leave|Agent Two|PAUSE|lunch",
            Entry(1795696791, "NONE", "support-leave", "Agent Two", "PAUSE", ("lunch",)),
        ),
    ],
)
def test_line_fields_are_read_in_their_documented_order(line: str, expected: Entry) -> None:
    assert parse_line(line + "\n") == expected


@pytest.mark.parametrize(
    "line",
    ["", "garbage", "1795696705|NONE|NONE|NONE", "17956x6705|a|b|c|CONNECT|1", "1|a|b|c||1"],
)
def test_malformed_line_is_refused(line: str) -> None:
    with pytest.raises(QueueLogError):
        parse_line(line)


def test_malformed_lines_are_reported_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    lines = ["1795696705|NONE|NONE|NONE|QUEUESTART|\n", "half a line\n", "\n"]
    assert [e.event for e in parse(lines)] == ["QUEUESTART"]
    assert "line 2 skipped" in caplog.text


@pytest.mark.parametrize(
    "event", ["RINGNOANSWER", "RINGCANCELED", "PAUSE", "QUEUESTART", "NEWTHING"]
)
def test_events_without_a_bearing_on_the_call_change_nothing(event: str) -> None:
    assert change_for(Entry(1, "1.1", "support", None, event, ("5000",))) is None


def test_whole_second_durations_place_the_stamps() -> None:
    connect = parse_line("1795696716|1795696714.0|support|Agent One|CONNECT|2|1795696714.2|2")
    change = change_for(connect)
    assert change is not None
    assert change.fills["answered_at"] == utc(1795696716)
    assert change.fills["queued_at"] == utc(1795696714)
    assert change.fills["agent"] == "Agent One"
    complete = change_for(
        parse_line("1795696749|1795696741.8|support|Agent One|COMPLETEAGENT|2|6|1")
    )
    assert complete is not None
    assert complete.fills["answered_at"] == utc(1795696743)
    assert complete.fills["ended_by"] == "agent"


# --- ingesting the recorded calls ----------------------------------------------------------


def _store(engine: Engine, ref: str, uniqueid: str, arrived: float, **fields: object) -> None:
    with engine.begin() as conn:
        change = ivr_change({"arrived_at": utc(arrived), "uniqueid": uniqueid, **fields})
        apply_changes(conn, CallKey(call_ref=ref), [change], utc(arrived))


def _stored(engine: Engine, ref: str):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(Call).where(Call.call_ref == ref)).one()


@pytest.mark.parametrize(
    ("name", "status", "ended_by", "answered", "ended"),
    [
        ("scenario_1_completecaller", "completed", "caller", 1795696716, 1795696721),
        ("scenario_2_completeagent", "completed", "agent", 1795696743, 1795696749),
        ("scenario_3_abandon", "abandoned_queue", "caller", None, 1795696759),
        ("scenario_4_exitwithtimeout", "abandoned_queue", "system", None, 1795696778),
        ("scenario_5b_exitempty", "no_agents", "system", None, 1795696791),
    ],
)
def test_queue_log_alone_gives_whole_second_times_and_the_outcome(
    engine: Engine,
    name: str,
    status: str,
    ended_by: str,
    answered: int | None,
    ended: int,
) -> None:
    recording = scenarios.load(name)
    enter = parse_line(next(line for line in recording.queue_log if "ENTERQUEUE" in line))
    _store(engine, "c1", enter.callid, enter.epoch - 20, status="queued")
    ingester = Ingester(engine, grace=0)
    ingester.feed(recording.queue_log)
    call = _stored(engine, "c1")
    assert (call.status, call.ended_by) == (status, ended_by)
    assert call.queued_at == utc(enter.epoch)
    assert call.answered_at == (utc(answered) if answered else None)
    assert call.ended_at == utc(ended)
    assert call.agent == ("Agent One" if answered else None)


def test_exit_with_key_leaves_the_call_to_the_dialplan(engine: Engine) -> None:
    recording = scenarios.load("scenario_5c_exitwithkey")
    _store(engine, "c1", "1795696801.26", 1795696790, status="queued")
    Ingester(engine, grace=0).feed(recording.queue_log)
    call = _stored(engine, "c1")
    assert (call.status, call.ended_at, call.queued_at) == ("queued", None, utc(1795696801))


def test_queue_log_never_overwrites_the_hooks_precise_times(engine: Engine) -> None:
    recording = scenarios.load("scenario_6a_agi_completecaller")
    _store(
        engine,
        "c1",
        "1795696812.28",
        1795696800,
        status="queued",
        queued_at=utc(1795696812.131103),
    )
    with engine.begin() as conn:
        hook = Change(Source.HOOK, fields={"answered_at": utc(1795696814.134598)}, status="talking")
        apply_changes(conn, CallKey(call_ref="c1"), [hook], utc(1795696814))
    Ingester(engine, grace=0).feed(recording.queue_log)
    call = _stored(engine, "c1")
    assert call.queued_at == utc(1795696812.131103)
    assert call.answered_at == utc(1795696814.134598)
    assert call.ended_at == utc(1795696819)  # the hang-up hook was missed: filled
    assert call.status == "completed"


def test_lines_of_calls_not_ours_are_counted_not_stored(engine: Engine) -> None:
    ingester = Ingester(engine, grace=0)
    ingester.feed(scenarios.queue_log_file())
    with engine.connect() as conn:
        assert conn.scalar(select(Call.id)) is None
    assert ingester.counts.unknown == 25
    assert ingester.counts.ignored == 8
    assert ingester.counts.malformed == 0


def test_line_written_before_its_call_is_stored_is_applied_when_it_is(engine: Engine) -> None:
    now = int(time.time())
    ingester = Ingester(engine, grace=5)
    ingester.feed([f"{now}|{now}.7|support|NONE|ENTERQUEUE||+79161234567|1\n"])
    assert ingester.waiting == 1
    _store(engine, "late", f"{now}.7", now - 30, status="in_ivr")
    deadline = time.monotonic() + 3
    while ingester.waiting and time.monotonic() < deadline:
        time.sleep(0.05)
        ingester.feed([])
    assert _stored(engine, "late").status == "queued"


def test_queue_filter_ignores_other_queues(engine: Engine) -> None:
    _store(engine, "c1", "1795696801.26", 1795696790, status="in_ivr")
    ingester = Ingester(engine, queues=["onerpa-support"], grace=0)
    ingester.feed(scenarios.load("scenario_5c_exitwithkey").queue_log)
    assert _stored(engine, "c1").status == "in_ivr"
    assert ingester.counts.ignored == 2


# --- following the file --------------------------------------------------------------------


def test_follower_returns_whole_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text("1|a|b|c|QUEUESTART|\n2|a|b|c|ENTER")
    follower = Follower(path)
    assert follower.read() == ["1|a|b|c|QUEUESTART|\n"]
    with path.open("a") as handle:
        handle.write("QUEUE||+7|1\n")
    assert follower.read() == ["2|a|b|c|ENTERQUEUE||+7|1\n"]
    assert follower.read() == []
    follower.close()


def test_follower_survives_rotation_without_losing_lines(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text("1|x|q|NONE|QUEUESTART|\n")
    follower = Follower(path)
    assert len(follower.read()) == 1
    with path.open("a") as handle:
        handle.write("2|x|q|NONE|LAST|\n")  # written just before logrotate moves the file
    os.rename(path, tmp_path / "queue_log.1")
    assert follower.read() == ["2|x|q|NONE|LAST|\n"]
    path.write_text("3|x|q|NONE|QUEUESTART|\n")
    assert follower.read() == ["3|x|q|NONE|QUEUESTART|\n"]
    follower.close()


def test_follower_rereads_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text("1|x|q|NONE|QUEUESTART|\n2|x|q|NONE|QUEUESTART|\n")
    follower = Follower(path)
    assert len(follower.read()) == 2
    path.write_text("3|x|q|NONE|QUEUESTART|\n")  # copytruncate, then a new line
    assert follower.read() == ["3|x|q|NONE|QUEUESTART|\n"]
    follower.close()


def test_follower_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    follower = Follower(tmp_path / "queue_log")
    assert follower.read() == []
    (tmp_path / "queue_log").write_text("1|x|q|NONE|QUEUESTART|\n")
    assert follower.read() == ["1|x|q|NONE|QUEUESTART|\n"]
    follower.close()


def test_stamps_are_utc_whole_seconds() -> None:
    entry = parse_line("1795696714|1795696714.0|support|NONE|ENTERQUEUE||+79161234567|1")
    assert entry.at == datetime(2026, 11, 26, 12, 38, 34, tzinfo=UTC)
    assert entry.at - utc(1795696704) == timedelta(seconds=10)


def test_follow_applies_lines_as_they_are_written(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text("")
    _store(engine, "c1", "1795696714.0", 1795696700, status="queued")
    lines = scenarios.load("scenario_1_completecaller").queue_log
    polls = iter(range(10))

    def stop() -> bool:
        poll = next(polls, None)
        if poll is not None and poll < len(lines):
            with path.open("a") as handle:
                handle.write(lines[poll])
        return poll is None

    follow(path, Ingester(engine, grace=0), poll=0, stop=stop)
    call = _stored(engine, "c1")
    assert (call.status, call.ended_at) == ("completed", utc(1795696721))


def test_queuelog_command_reads_a_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text("".join(scenarios.queue_log_file()) + "not a line\n")
    env = {"ONERPA_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    result = CliRunner().invoke(main, ["queuelog", "--all-queues", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert "0 lines applied, 25 of calls not stored, 8 ignored, 1 malformed" in result.output
