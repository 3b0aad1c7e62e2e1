"""The call recorder: every call stored once, nothing lost while the database is away."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError

from onerpa import recorder as recorder_module
from onerpa.models import Call
from onerpa.recorder import CallKey, CallRecorder, Change, End, Source

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class Outage:
    """Make every statement on ``engine`` fail while ``down`` is True."""

    def __init__(self, engine: Engine) -> None:
        self.down = False
        event.listen(engine, "before_cursor_execute", self._check)

    def _check(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if self.down and "calls" in statement:
            raise OperationalError(statement, parameters, Exception("database is away"))


def test_many_updates_store_one_row_per_call(engine: Engine) -> None:
    recorder = CallRecorder(engine)
    for n in range(50):
        recorder.record("call-a", step=f"step{n}", arrived_at=T0)
        recorder.record("call-b", status="queued", arrived_at=T0 + timedelta(seconds=n))
    assert recorder.flush()
    recorder.close()
    with engine.connect() as conn:
        rows = conn.execute(select(Call.call_ref, Call.step, Call.status).order_by(Call.call_ref))
        assert [tuple(r) for r in rows] == [
            ("call-a", "step49", "in_ivr"),
            ("call-b", "arrived", "queued"),
        ]


def test_later_fields_update_without_erasing_earlier_ones(engine: Engine) -> None:
    recorder = CallRecorder(engine)
    recorder.record("c1", callerid_raw="+74951234567", arrived_at=T0)
    assert recorder.flush()
    recorder.record("c1", decision="free_first_year")
    assert recorder.flush()
    recorder.close()
    with engine.connect() as conn:
        row = conn.execute(select(Call.callerid_raw, Call.decision, Call.arrived_at)).one()
    assert tuple(row) == ("+74951234567", "free_first_year", T0)


def test_changes_made_while_database_is_away_are_written_when_it_returns(engine: Engine) -> None:
    outage = Outage(engine)
    errors: list[Exception] = []
    recorder = CallRecorder(engine, retry_delay=0.05, on_error=errors.append)
    outage.down = True
    recorder.record("during-outage", arrived_at=T0, status="queued")
    assert not recorder.flush(timeout=0.5)  # cannot be written yet
    assert errors, "the failure is reported, not swallowed"
    outage.down = False
    assert recorder.flush(timeout=5)
    recorder.close()
    with engine.connect() as conn:
        assert conn.scalar(select(Call.status).where(Call.call_ref == "during-outage")) == "queued"


def test_an_outage_is_logged_once_then_its_end(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    outage = Outage(engine)
    errors: list[Exception] = []
    recorder = CallRecorder(engine, retry_delay=0.01, outage_summary=3600, on_error=errors.append)
    outage.down = True
    with caplog.at_level(logging.WARNING, logger="onerpa.recorder"):
        recorder.record("during-outage", arrived_at=T0, status="queued")
        assert not recorder.flush(timeout=0.5)
        outage.down = False
        assert recorder.flush(timeout=5)
    recorder.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(errors) >= 5, "the writer retried many times"
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unavailable, call records wait in memory (1 calls)")
    assert "\n" not in lines[0], "one line, without the SQL statement"
    assert lines[1].startswith("database available again after")


def test_a_long_outage_gets_periodic_summaries(caplog: pytest.LogCaptureFixture) -> None:
    outage = recorder_module._Outage(summary_every=0)
    with caplog.at_level(logging.WARNING, logger="onerpa.recorder"):
        for pending in (3, 4, 5):
            outage.failed(OperationalError("SELECT 1", {}, Exception("refused")), pending)
        outage.recovered(0)
        outage.recovered(0)  # nothing more to say once back
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert "database still unavailable" in lines[1] and "(2 tries): 4 calls'" in lines[1]
    assert "(3 tries): 5 calls'" in lines[2]
    assert lines[3].startswith("database available again")


def test_overflowing_buffer_counts_and_logs_the_loss(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    outage = Outage(engine)
    outage.down = True
    recorder = CallRecorder(engine, max_pending=3, retry_delay=0.05)
    for n in range(5):
        recorder.record(f"c{n}", arrived_at=T0)
    recorder.flush(timeout=0.5)
    assert recorder.lost == 2
    assert "c3" in caplog.text and "c4" in caplog.text
    outage.down = False
    assert recorder.flush(timeout=5)
    recorder.close()
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Call)) == 3


def test_unknown_field_is_refused_at_once(engine: Engine) -> None:
    recorder = CallRecorder(engine)
    with pytest.raises(TypeError):
        recorder.record("c1", colour="blue")
    recorder.close()


def test_a_change_the_database_rejects_is_logged_and_does_not_block_other_calls(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = CallRecorder(engine, retry_delay=0.05)
    recorder.record("rejected", arrived_at=T0, customer_id=987654)  # no such customer
    recorder.record("fine", arrived_at=T0, status="queued")
    assert recorder.flush(timeout=5)
    recorder.record("later", arrived_at=T0)
    assert recorder.flush(timeout=5)
    recorder.close()
    with engine.connect() as conn:
        stored = set(conn.scalars(select(Call.call_ref)))
    assert stored == {"fine", "later"}
    assert recorder.lost == 1
    assert "rejected" in caplog.text


def test_an_end_by_uniqueid_and_a_flow_change_in_one_batch_end_the_call(engine: Engine) -> None:
    outage = Outage(engine)
    recorder = CallRecorder(engine, retry_delay=0.05)
    recorder.record("c1", uniqueid="1795696825.32", arrived_at=T0, status="in_ivr")
    assert recorder.flush()
    outage.down = True  # both changes wait, then go out in one transaction
    hang_up = Change(Source.HOOK, fields={"ended_at": T0 + timedelta(seconds=9)}, end=End())
    recorder.update(CallKey(uniqueid="1795696825.32"), hang_up)
    recorder.record("c1", status="queued", queued_at=T0 + timedelta(seconds=8))
    assert not recorder.flush(timeout=0.3)
    outage.down = False
    assert recorder.flush(timeout=5)
    recorder.close()
    with engine.connect() as conn:
        row = conn.execute(select(Call.status, Call.queued_at, Call.ended_at)).one()
    assert tuple(row) == ("abandoned_queue", T0 + timedelta(seconds=8), T0 + timedelta(seconds=9))
