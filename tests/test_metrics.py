"""Metrics: values read back from a fresh registry and from the parsed /metrics text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.exc import OperationalError

from onerpa.metrics import DatabaseCollector, ProcessMetrics, decision_label
from onerpa.models import CallEvent
from onerpa.recorder import CallKey, Change, End, Source, apply_changes, ivr_change
from onerpa.timing import Targets

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
PHONE = re.compile(r"\+?\d[\d ()-]{6,}")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def write(engine: Engine, ref: str, *changes: Change) -> None:
    with engine.begin() as conn:
        for change in changes:
            apply_changes(conn, CallKey(call_ref=ref), [change], NOW)


def answered_call(engine: Engine, ref: str, *, wait: float, talk: float, start: float = 0) -> None:
    """Store a call that waited ``wait`` s and talked ``talk`` s, ended by the caller."""
    queued = start + 10
    write(
        engine,
        ref,
        ivr_change(
            {
                "arrived_at": at(start),
                "callerid_raw": "+74951234567",
                "decision": "free_first_year",
                "decided_at": at(queued),
                "status": "queued",
                "queued_at": at(queued),
            }
        ),
        Change(
            Source.HOOK,
            fields={"answered_at": at(queued + wait), "agent": "Агент Иванов"},
            status="talking",
        ),
        Change(
            Source.HOOK,
            fields={"ended_at": at(queued + wait + talk), "ended_by": "caller"},
            end=End(answered=True),
        ),
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


# --- the FastAGI server's own metrics ------------------------------------------------------


def test_decisions_and_their_latency_are_counted_as_recorded(registry: CollectorRegistry) -> None:
    metrics = ProcessMetrics(registry=registry, scripts=["call"])
    metrics.on_record("c1", {"arrived_at": at(0), "status": "in_ivr"})
    metrics.on_record("c1", {"step": "greeting"})
    metrics.on_record("c1", {"decision": "free_updates", "decided_at": at(12.5), "degraded": False})
    metrics.on_record("c2", {"arrived_at": at(1), "status": "in_ivr"})
    metrics.on_record("c2", {"decision": "degraded", "decided_at": at(3), "degraded": True})
    assert sample(registry, "onerpa_support_ivr_decisions_total", decision="free_updates") == 1
    assert sample(registry, "onerpa_support_degraded_decisions_total") == 1
    assert sample(registry, "onerpa_support_ivr_decision_seconds_count") == 2
    assert sample(registry, "onerpa_support_ivr_decision_seconds_sum") == pytest.approx(14.5)
    assert sample(registry, "onerpa_support_ivr_decision_seconds_bucket", le="1.0") == 0
    assert sample(registry, "onerpa_support_ivr_decision_seconds_bucket", le="2.0") == 1
    assert sample(registry, "onerpa_support_ivr_decision_seconds_bucket", le="15.0") == 2


def test_sessions_and_errors_are_counted_by_script_and_kind(registry: CollectorRegistry) -> None:
    metrics = ProcessMetrics(registry=registry, scripts=["call", "hangup"])
    with metrics.session("call"):
        assert sample(registry, "onerpa_support_agi_sessions_active") == 1
    with metrics.session("/etc/passwd"):
        metrics.agi_error("/etc/passwd", "unknown_script")
    metrics.database_error("record")(RuntimeError("down"))
    assert sample(registry, "onerpa_support_agi_sessions_total", script="call") == 1
    assert sample(registry, "onerpa_support_agi_sessions_total", script="unknown") == 1
    assert sample(registry, "onerpa_support_agi_sessions_active") == 0
    errors = sample(
        registry, "onerpa_support_agi_errors_total", script="unknown", kind="unknown_script"
    )
    assert errors == 1
    assert sample(registry, "onerpa_support_database_errors_total", operation="record") == 1


def test_unknown_decision_codes_fold_into_other() -> None:
    assert decision_label("free_first_year") == "free_first_year"
    assert decision_label(None) == "undecided"
    assert decision_label("+74951234567") == "other"


# --- the site's metrics from the database --------------------------------------------------


def test_history_before_start_is_not_replayed(engine: Engine, registry: CollectorRegistry) -> None:
    answered_call(engine, "old", wait=5, talk=100)
    DatabaseCollector(engine, Targets(), registry=registry, clock=lambda: NOW)
    generate_latest(registry)
    assert sample(registry, "onerpa_support_consultation_seconds_count") == 0
    answered_call(engine, "new", wait=5, talk=100)
    assert sample(registry, "onerpa_support_consultation_seconds_count") == 1


def test_outcomes_waits_and_consultations_follow_the_events(
    engine: Engine, registry: CollectorRegistry
) -> None:
    DatabaseCollector(engine, Targets(), registry=registry, clock=lambda: NOW)
    answered_call(engine, "a", wait=30, talk=170)
    answered_call(engine, "b", wait=90, talk=250)
    answered_call(engine, "c", wait=60, talk=301)
    write(
        engine,
        "d",
        ivr_change({"arrived_at": at(0), "status": "queued", "queued_at": at(10)}),
        Change(Source.HOOK, fields={"ended_at": at(50)}, end=End(answered=False)),
    )
    calls = "onerpa_support_calls_total"
    assert sample(registry, calls, decision="free_first_year", outcome="completed") == 3
    assert sample(registry, calls, decision="undecided", outcome="abandoned_queue") == 1
    consult = "onerpa_support_consultation_seconds_bucket"
    assert sample(registry, consult, le="180.0") == 1
    assert sample(registry, consult, le="300.0") == 2
    assert sample(registry, consult, le="+Inf") == 3
    wait = "onerpa_support_queue_wait_seconds_bucket"
    assert sample(registry, wait, outcome="answered", le="60.0") == 2  # 60 s is within
    assert sample(registry, wait, outcome="abandoned", le="60.0") == 1
    sl = "onerpa_support_service_level_calls_total"
    assert sample(registry, sl, outcome="answered", within_target="true") == 2
    assert sample(registry, sl, outcome="answered", within_target="false") == 1
    assert sample(registry, sl, outcome="abandoned", within_target="true") == 1
    assert sample(registry, "onerpa_support_call_events_total", kind="arrived") == 4


def test_live_calls_and_long_consultations_are_counted_now(
    engine: Engine, registry: CollectorRegistry
) -> None:
    DatabaseCollector(engine, Targets(), registry=registry, clock=lambda: NOW)
    write(engine, "ivr", ivr_change({"arrived_at": NOW, "status": "in_ivr"}))
    write(engine, "q", ivr_change({"arrived_at": NOW, "status": "queued", "queued_at": NOW}))
    for ref, talked in (("t1", 60), ("t2", 200), ("t3", 400)):
        answered = NOW - timedelta(seconds=talked)
        write(
            engine,
            ref,
            ivr_change({"arrived_at": answered, "status": "queued"}),
            Change(Source.HOOK, fields={"answered_at": answered}, status="talking"),
        )
    live = "onerpa_support_calls_in_progress"
    assert sample(registry, live, state="in_ivr") == 1
    assert sample(registry, live, state="queued") == 1
    assert sample(registry, live, state="talking") == 3
    over = "onerpa_support_calls_talking_longer_than"
    assert sample(registry, over, threshold="target") == 2
    assert sample(registry, over, threshold="limit") == 1


def test_event_committed_out_of_id_order_is_still_counted(
    engine: Engine, registry: CollectorRegistry
) -> None:
    answered_call(engine, "a", wait=5, talk=100)
    DatabaseCollector(engine, Targets(), registry=registry, clock=lambda: NOW)
    with engine.connect() as conn:
        newest = conn.scalar(select(func.max(CallEvent.id)))
    arrived = {"call_ref": "x", "kind": "arrived", "at": NOW, "source": "ivr", "data": ""}
    with engine.begin() as conn:  # a later id commits first...
        conn.execute(insert(CallEvent), [{**arrived, "id": newest + 2}])
    assert sample(registry, "onerpa_support_call_events_total", kind="arrived") == 1
    with engine.begin() as conn:  # ...then the transaction that took the id before it
        conn.execute(insert(CallEvent), [{**arrived, "id": newest + 1}])
    assert sample(registry, "onerpa_support_call_events_total", kind="arrived") == 2
    assert sample(registry, "onerpa_support_call_events_total", kind="arrived") == 2


def test_database_away_keeps_serving_and_says_so(
    engine: Engine, registry: CollectorRegistry
) -> None:
    DatabaseCollector(engine, Targets(), registry=registry, clock=lambda: NOW)
    answered_call(engine, "a", wait=5, talk=100)

    def fail(*_args: object) -> None:
        raise OperationalError("SELECT", {}, Exception("database is away"))

    event.listen(engine, "before_cursor_execute", fail)
    assert sample(registry, "onerpa_support_collector_database_up") == 0
    assert sample(registry, "onerpa_support_database_errors_total", operation="collect") >= 1
    event.remove(engine, "before_cursor_execute", fail)
    assert sample(registry, "onerpa_support_consultation_seconds_count") == 1
    assert sample(registry, "onerpa_support_collector_database_up") == 1


def test_metrics_text_names_no_number_name_or_agent(engine: Engine) -> None:
    site, process = CollectorRegistry(), CollectorRegistry()  # two processes
    DatabaseCollector(engine, Targets(), registry=site, clock=lambda: NOW)
    ProcessMetrics(registry=process, scripts=["call"]).on_record(
        "c1", {"decision": "+74951234567", "decided_at": NOW}
    )
    answered_call(engine, "a", wait=5, talk=100)
    text = generate_latest(site).decode() + generate_latest(process).decode()
    families = list(text_string_to_metric_families(text))
    assert families
    for family in families:
        assert family.name.startswith("onerpa_support_")
        assert not PHONE.search(family.documentation)
        for s in family.samples:
            for name, value in s.labels.items():
                if name != "le":
                    assert not PHONE.search(value), (s.name, name, value)
                    assert "Агент" not in value
    assert "Агент" not in text and "74951234567" not in text
