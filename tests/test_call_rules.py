"""The rules that keep the call flow, the hooks, the queue_log and the sweep from undoing
each other's writes, and the events each state change leaves."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from onerpa.callstatus import CallStatus, EndedBy
from onerpa.models import Call, CallEvent
from onerpa.recorder import (
    CallKey,
    CallRecorder,
    Change,
    End,
    NotStored,
    Source,
    advances,
    apply_changes,
    final_status,
    ivr_change,
    merge,
)

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (None, "in_ivr", True),
        ("in_ivr", "queued", True),
        ("queued", "talking", True),
        ("talking", "completed", True),
        ("queued", "in_ivr", False),
        ("talking", "queued", False),
        ("completed", "queued", False),
        ("completed", "abandoned_queue", False),
        ("ended_ivr", "abandoned_ivr", False),
        ("lost", "completed", True),
        ("lost", "talking", True),
        ("lost", "in_ivr", False),
        ("queued", "queued", False),
    ],
)
def test_status_only_moves_forward(old: str | None, new: str, allowed: bool) -> None:
    assert advances(old, new) is allowed


@pytest.mark.parametrize(
    ("stored", "queued_at", "answered", "expected"),
    [
        ("in_ivr", None, None, "abandoned_ivr"),
        ("queued", T0, None, "abandoned_queue"),
        ("queued", T0, False, "abandoned_queue"),
        ("queued", T0, True, "completed"),  # the connect hook was missed
        ("talking", T0, None, "completed"),
        ("ended_ivr", None, None, "ended_ivr"),
        ("transferred", None, None, "transferred"),
        ("lost", T0, None, "abandoned_queue"),
        ("lost", None, None, "abandoned_ivr"),
        ("lost", T0, True, "completed"),
    ],
)
def test_end_signal_status_depends_on_where_the_call_was(
    stored: str, queued_at: datetime | None, answered: bool | None, expected: str
) -> None:
    row = {"status": stored, "queued_at": queued_at}
    assert final_status(row, End(answered=answered)) == expected


def test_late_queued_write_does_not_reopen_a_completed_call() -> None:
    row = {"status": "completed", "ended_at": at(300), "ended_by": "caller", "queued_at": None}
    late = ivr_change({"status": "queued", "queued_at": at(20), "step": "routed"})
    merged = merge(row, late)
    assert merged["status"] == "completed"
    assert merged["queued_at"] == at(20)  # a stamp it lacked is still welcome
    assert merged["ended_at"] == at(300)


def test_hook_end_time_overwrites_the_call_flow_estimate() -> None:
    row = {"status": "ended_ivr", "ended_at": at(30), "ended_by": "system"}
    hook = Change(Source.HOOK, fields={"ended_at": at(41.5)}, end=End(answered=False))
    merged = merge(row, hook)
    assert (merged["status"], merged["ended_at"], merged["ended_by"]) == (
        "ended_ivr",
        at(41.5),
        "system",
    )


def test_call_flow_end_arriving_after_the_hook_changes_nothing() -> None:
    row = {"status": "abandoned_ivr", "ended_at": at(12.25), "ended_by": None}
    late = ivr_change({"status": "ended_ivr", "ended_at": at(10), "ended_by": "system"})
    assert merge(row, late) == row


def test_queue_log_only_fills_empty_fields() -> None:
    row = {"status": "talking", "answered_at": at(62.4), "agent": "Agent 101", "queued_at": None}
    qlog = Change(
        Source.QUEUELOG,
        fills={"answered_at": at(62), "agent": "Agent 102", "queued_at": at(2)},
        status="talking",
    )
    merged = merge(row, qlog)
    assert (merged["answered_at"], merged["agent"], merged["queued_at"]) == (
        at(62.4),
        "Agent 101",
        at(2),
    )


def test_none_never_erases_a_stored_value() -> None:
    row = {"status": "queued", "queued_at": at(20)}
    assert merge(row, ivr_change({"queued_at": None}))["queued_at"] == at(20)


def test_real_end_after_the_sweep_replaces_lost_and_its_verdict() -> None:
    row = {"status": "lost", "ended_by": "sweep", "ended_at": None, "queued_at": at(20)}
    hook = Change(
        Source.HOOK, fields={"ended_at": at(400), "ended_by": "caller"}, end=End(answered=True)
    )
    merged = merge(row, hook)
    assert (merged["status"], merged["ended_by"], merged["ended_at"]) == (
        "completed",
        "caller",
        at(400),
    )


def test_sweep_does_not_touch_a_call_that_ended_meanwhile() -> None:
    row = {"status": "completed", "ended_by": None, "ended_at": at(300)}
    sweep = Change(Source.SWEEP, status="lost", with_status={"ended_by": "sweep"})
    assert merge(row, sweep) == row


# --- through the database ------------------------------------------------------------------


def _events(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(CallEvent.call_ref, CallEvent.kind, CallEvent.source).order_by(CallEvent.id)
        )
        return [tuple(r) for r in rows]


def _call(engine: Engine, ref: str) -> Call:
    with engine.connect() as conn:
        return conn.execute(select(Call).where(Call.call_ref == ref)).one()


def test_each_state_change_is_logged_once_even_when_two_sources_end_the_call(
    engine: Engine,
) -> None:
    key = CallKey(call_ref="c1")
    steps = [
        ivr_change({"arrived_at": at(0), "status": "in_ivr", "uniqueid": "1795696812.28"}),
        ivr_change({"decision": "free_first_year", "decided_at": at(15)}),
        ivr_change({"status": "queued", "queued_at": at(15)}),
        Change(Source.HOOK, fields={"answered_at": at(40), "agent": "Agent 101"}, status="talking"),
        Change(Source.HOOK, fields={"ended_at": at(220), "ended_by": "caller"}, end=End()),
        Change(Source.QUEUELOG, fills={"ended_at": at(220), "ended_by": "caller"}, end=End(True)),
    ]
    for step in steps:
        with engine.begin() as conn:
            apply_changes(conn, key, [step], at(500))
    assert _events(engine) == [
        ("c1", "arrived", "ivr"),
        ("c1", "decided", "ivr"),
        ("c1", "queued", "ivr"),
        ("c1", "answered", "hook"),
        ("c1", "ended", "hook"),
    ]
    call = _call(engine, "c1")
    assert (call.status, call.answered_at, call.ended_at) == ("completed", at(40), at(220))


def test_hook_for_an_unknown_call_creates_nothing(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(NotStored):
        apply_changes(conn, CallKey(uniqueid="1.1"), [Change(Source.HOOK, end=End())], T0)
    with engine.connect() as conn:
        assert conn.scalar(select(Call.id)) is None


def test_hook_without_call_id_finds_the_newest_call_of_the_channel(engine: Engine) -> None:
    for ref, second in (("older", 0), ("newer", 100)):
        with engine.begin() as conn:
            fields = {"arrived_at": at(second), "status": "queued", "uniqueid": "1795696825.32"}
            apply_changes(conn, CallKey(call_ref=ref), [ivr_change(fields)], T0)
    with engine.begin() as conn:
        hook = Change(Source.HOOK, fields={"answered_at": at(130)}, status="talking")
        apply_changes(conn, CallKey(uniqueid="1795696825.32"), [hook], T0)
    assert _call(engine, "newer").status == "talking"
    assert _call(engine, "older").status == "queued"


def test_recorder_update_waits_for_a_call_written_by_another_process(engine: Engine) -> None:
    hooks = CallRecorder(engine, retry_delay=0.05, orphan_grace=5)
    hooks.update(
        CallKey(call_ref="c9"),
        Change(Source.HOOK, fields={"answered_at": at(30), "agent": "Agent 102"}, status="talking"),
    )
    assert hooks.flush()  # tried once: nothing to update yet, and flush does not hang
    flow = CallRecorder(engine)
    flow.record("c9", arrived_at=at(0), status="queued", queued_at=at(10))
    assert flow.flush()
    flow.close()
    for _ in range(100):
        hooks.flush()
        if _call(engine, "c9").status == "talking":
            break
        time.sleep(0.02)
    hooks.close()
    assert _call(engine, "c9").agent == "Agent 102"


def test_recorder_drops_a_stray_hook_after_the_grace(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = CallRecorder(engine, retry_delay=0.01, orphan_grace=0.05)
    hooks.update(CallKey(uniqueid="9.9"), Change(Source.HOOK, end=End()))
    for _ in range(100):
        hooks.flush()
        if hooks.pending == 0:
            break
        time.sleep(0.02)
    hooks.close()
    assert hooks.pending == 0
    assert "no stored call uniqueid 9.9" in caplog.text
    with engine.connect() as conn:
        assert conn.scalar(select(Call.id)) is None


def test_sweep_event_is_logged_as_swept(engine: Engine) -> None:
    with engine.begin() as conn:
        apply_changes(conn, CallKey(call_ref="s1"), [ivr_change({"arrived_at": at(0)})], T0)
        sweep = Change(
            Source.SWEEP, status=CallStatus.LOST.value, with_status={"ended_by": EndedBy.SWEEP}
        )
        apply_changes(conn, CallKey(call_ref="s1"), [sweep], at(3600))
    assert _events(engine)[-1] == ("s1", "swept", "sweep")
    call = _call(engine, "s1")
    assert (call.status, call.ended_by, call.ended_at) == ("lost", "sweep", None)
