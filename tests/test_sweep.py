"""The sweep: calls no end signal closed are marked lost, never given an invented end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from onerpa import sweep
from onerpa.models import Call, CallEvent
from onerpa.recorder import CallKey, CallRecorder, Change, End, Source, apply_changes, ivr_change

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
LIMITS = sweep.Limits(
    in_ivr=timedelta(minutes=15), queued=timedelta(hours=2), talking=timedelta(hours=4)
)


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def store(engine: Engine, ref: str, **fields: object) -> None:
    with engine.begin() as conn:
        apply_changes(conn, CallKey(call_ref=ref), [ivr_change(fields)], NOW)


def status_of(engine: Engine) -> dict[str, tuple[str, str | None, datetime | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Call.call_ref, Call.status, Call.ended_by, Call.ended_at))
        return {ref: (status, by, at) for ref, status, by, at in rows}


def test_only_calls_live_past_their_limit_are_marked_lost(engine: Engine) -> None:
    store(engine, "ivr-old", arrived_at=ago(minutes=16), status="in_ivr")
    store(engine, "ivr-new", arrived_at=ago(minutes=14), status="in_ivr")
    store(engine, "queued-old", arrived_at=ago(hours=3), status="queued", queued_at=ago(hours=2.5))
    store(engine, "queued-new", arrived_at=ago(hours=3), status="queued", queued_at=ago(hours=1))
    store(engine, "talk-old", arrived_at=ago(hours=5), status="talking", answered_at=ago(hours=4.5))
    store(engine, "talk-new", arrived_at=ago(hours=5), status="talking", answered_at=ago(hours=3))
    store(engine, "done", arrived_at=ago(days=3), status="completed", ended_at=ago(days=3))
    assert sweep.sweep(engine, NOW, LIMITS) == 3
    states = status_of(engine)
    assert {ref for ref, (status, _, _) in states.items() if status == "lost"} == {
        "ivr-old",
        "queued-old",
        "talk-old",
    }
    assert states["talk-old"] == ("lost", "sweep", None)  # no end time is invented
    assert states["done"][0] == "completed"


def test_sweep_leaves_an_event_and_a_second_sweep_changes_nothing(engine: Engine) -> None:
    store(engine, "c1", arrived_at=ago(hours=1), status="in_ivr")
    assert sweep.sweep(engine, NOW, LIMITS) == 1
    assert sweep.sweep(engine, NOW, LIMITS) == 0
    with engine.connect() as conn:
        kinds = conn.scalars(select(CallEvent.kind).order_by(CallEvent.id)).all()
    assert kinds == ["arrived", "swept"]


def test_restarted_server_closes_only_its_own_calls_left_in_the_ivr(engine: Engine) -> None:
    store(engine, "mine-ivr", arrived_at=ago(seconds=30), status="in_ivr", server="agi-1")
    store(engine, "mine-queued", arrived_at=ago(minutes=2), status="queued", server="agi-1")
    store(engine, "other-ivr", arrived_at=ago(seconds=30), status="in_ivr", server="agi-2")
    assert sweep.sweep_at_start(engine, "agi-1", NOW) == 1
    states = status_of(engine)
    assert states["mine-ivr"] == ("lost", "sweep", None)
    assert states["mine-queued"][0] == "queued"  # Asterisk still holds it: hooks will come
    assert states["other-ivr"][0] == "in_ivr"


def test_hang_up_that_arrives_after_the_sweep_still_counts(engine: Engine) -> None:
    store(engine, "c1", arrived_at=ago(hours=5), status="talking", answered_at=ago(hours=4.5))
    sweep.sweep(engine, NOW, LIMITS)
    recorder = CallRecorder(engine)
    hook = Change(
        Source.HOOK, fields={"ended_at": NOW, "ended_by": "caller"}, end=End(answered=True)
    )
    recorder.update(CallKey(call_ref="c1"), hook)
    assert recorder.flush()
    recorder.close()
    assert status_of(engine)["c1"] == ("completed", "caller", NOW)


def test_restart_loses_nothing_already_recorded(engine: Engine) -> None:
    first = CallRecorder(engine)
    first.record("c1", arrived_at=ago(minutes=3), status="queued", queued_at=ago(minutes=2))
    first.record("c2", arrived_at=ago(minutes=1), status="in_ivr", server="agi-1")
    first.close()  # the process stops
    second = CallRecorder(engine)  # and starts again
    sweep.sweep_at_start(engine, "agi-1", NOW)
    second.update(
        CallKey(call_ref="c1"),
        Change(Source.HOOK, fields={"answered_at": ago(seconds=30)}, status="talking"),
    )
    assert second.flush()
    second.close()
    states = status_of(engine)
    assert states["c1"][0] == "talking"
    assert states["c2"] == ("lost", "sweep", None)
    with engine.connect() as conn:
        c1 = conn.execute(select(Call).where(Call.call_ref == "c1")).one()
    assert (c1.arrived_at, c1.queued_at) == (ago(minutes=3), ago(minutes=2))
