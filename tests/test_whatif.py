"""What-if: recorded calls re-decided under other hours or another free term after purchase."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from dashboard.testing import Clock, add_call, add_customer, add_user, make_app, sign_in
from onerpa import entitlement, evidence, hours, whatif
from onerpa.entitlement import CallerRecords, Grant, Licence, RefusalFlag, Subscription
from onerpa.hours import SupportCalendar
from onerpa.settings import SettingsError
from onerpa_support.cli import main

CALENDAR = SupportCalendar()  # Moscow, mon-fri 09:00-17:00, the Russian production calendar
WIDER = whatif.changed_calendar(CALENDAR, hours_text="mon-fri 10:00-18:00")
PASSWORD = "correct horse"


def moscow(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), CALENDAR.zone).astimezone(UTC)


WEDNESDAY = date(2026, 11, 25)
THURSDAY = date(2026, 11, 26)


@dataclass(frozen=True)
class Row:
    id: int
    arrived_at: datetime
    caller_e164: str | None
    customer_id: int | None
    decision: str | None
    evidence: str | None


def recorded(
    call_id: int,
    arrived: datetime,
    records: CallerRecords | None,
    *,
    customer_id: int | None = 1,
    critical_bug: bool = False,
) -> Row:
    """Return a call as the call flow stores it under today's rules (ivr/routes/call.py)."""
    day = evidence.day_fact(CALENDAR, arrived)
    if not hours.is_open(CALENDAR, arrived):
        stored = evidence.to_json("closed", arrived, (day, entitlement.RuleFact("closed")))
        return Row(call_id, arrived, "+74997195581", customer_id, "closed", stored)
    decided = entitlement.decide(records, arrived, critical_bug=critical_bug, day=day)
    stored = evidence.to_json(decided.reason.value, arrived, decided.evidence)
    return Row(call_id, arrived, "+74997195581", customer_id, decided.reason.value, stored)


def newest_first(*rows: Row) -> list[Row]:
    return sorted(rows, key=lambda row: (row.arrived_at, row.id), reverse=True)


FRESH = CallerRecords(licences=(Licence("OneRPA Studio", date(2026, 6, 1), "4711"),))
# Bought 15 months before the calls: out of a 12-month free term, inside an 18-month one.
OLD = CallerRecords(licences=(Licence("OneRPA Studio", date(2025, 8, 20), "4712"),))


def test_closed_call_opens_when_hours_widen() -> None:
    late = recorded(1, moscow(WEDNESDAY, 17, 30), FRESH)
    later = recorded(2, moscow(THURSDAY, 12), FRESH)
    assert late.decision == "closed" and later.decision == "free_first_year"

    result = whatif.redecide(newest_first(late, later), whatif.Rules(WIDER))

    assert result.calls == 2 and result.changed == 1
    assert result.transitions == {("closed", "free_first_year"): 1}
    assert [(c.call_id, c.old, c.new) for c in result.changes] == [(1, "closed", "free_first_year")]


def test_closed_call_of_unknown_customer_opens_with_entitlement_unknown() -> None:
    late = recorded(1, moscow(WEDNESDAY, 17, 30), None, customer_id=None)

    result = whatif.redecide([late], whatif.Rules(WIDER))

    assert result.transitions == {("closed", "open_unknown"): 1}


def test_open_call_closes_when_hours_narrow() -> None:
    early = recorded(1, moscow(WEDNESDAY, 9, 30), FRESH)

    result = whatif.redecide([early], whatif.Rules(WIDER))

    assert result.transitions == {("free_first_year", "closed"): 1}


def test_not_entitled_becomes_free_with_eighteen_free_months() -> None:
    call = recorded(1, moscow(THURSDAY, 12), OLD)
    assert call.decision == "not_entitled"

    result = whatif.redecide([call], whatif.Rules(CALENDAR, free_months=18))

    assert result.transitions == {("not_entitled", "free_first_year"): 1}


def test_free_becomes_not_entitled_with_a_shorter_term() -> None:
    call = recorded(1, moscow(THURSDAY, 12), FRESH)  # bought almost six months before

    result = whatif.redecide([call], whatif.Rules(CALENDAR, free_months=3))

    assert result.transitions == {("free_first_year", "not_entitled"): 1}


def test_declared_critical_bug_stays_unless_a_free_term_now_covers_it() -> None:
    call = recorded(1, moscow(THURSDAY, 12), OLD, critical_bug=True)
    assert call.decision == "free_critical_bug"

    same = whatif.redecide([call], whatif.Rules(CALENDAR))
    longer = whatif.redecide([call], whatif.Rules(CALENDAR, free_months=18))

    assert same.changed == 0
    assert longer.transitions == {("free_critical_bug", "free_first_year"): 1}


def test_same_rules_change_nothing() -> None:
    thursday = moscow(THURSDAY, 12)
    mixed = CallerRecords(
        licences=(Licence("OneRPA Studio", date(2023, 1, 10)),),
        subscriptions=(
            Subscription("OneRPA Cloud", date(2026, 1, 1), None, thursday - timedelta(hours=1)),
        ),
        grants=(Grant(date(2026, 11, 26), "сбой у нас", "vera", thursday + timedelta(hours=1)),),
        refusals=(RefusalFlag(thursday - timedelta(days=3), "грубость", thursday),),
    )
    rows = [
        recorded(1, moscow(WEDNESDAY, 12), mixed),  # refused on Wednesday
        recorded(2, thursday, mixed),  # refusal over, subscription cancelled: not entitled
        recorded(3, thursday + timedelta(hours=2), mixed),  # the goodwill grant given since
        recorded(4, moscow(THURSDAY, 20), mixed),  # closed
        recorded(5, thursday, None, customer_id=None),  # unknown caller
    ]
    assert [r.decision for r in rows] == [
        "refused_etiquette",
        "not_entitled",
        "free_goodwill",
        "closed",
        "unknown_caller",
    ]

    result = whatif.redecide(newest_first(*rows), whatif.Rules(CALENDAR))

    assert (result.calls, result.changed, result.changes) == (5, 0, [])


def test_calls_without_evidence_are_counted_apart() -> None:
    bare = Row(1, moscow(THURSDAY, 12), "+74997195581", 1, "free_updates", None)
    broken = Row(2, moscow(THURSDAY, 13), "+74997195581", 1, "free_updates", "{not json")

    result = whatif.redecide([bare, broken], whatif.Rules(WIDER, free_months=18))

    assert (result.calls, result.not_redecidable, result.changed) == (2, 2, 0)


def test_evidence_in_another_layout_is_still_read() -> None:
    call = recorded(1, moscow(THURSDAY, 12), OLD)
    spaced = replace(call, evidence=json.dumps(json.loads(call.evidence or "")))

    result = whatif.redecide([spaced], whatif.Rules(CALENDAR, free_months=18))

    assert result.transitions == {("not_entitled", "free_first_year"): 1}


def test_limit_lists_the_earliest_changes_and_counts_all() -> None:
    rows = [recorded(i, moscow(THURSDAY, 12) + timedelta(minutes=i), OLD) for i in range(1, 8)]

    result = whatif.redecide(newest_first(*rows), whatif.Rules(CALENDAR, 18), limit=3)

    assert result.changed == 7
    assert [c.call_id for c in result.changes] == [1, 2, 3]


def test_bad_hours_are_refused_as_the_setting_would_be() -> None:
    with pytest.raises(SettingsError, match="ONERPA_HOURS"):
        whatif.changed_calendar(CALENDAR, hours_text="mon-fri 18:00-10:00")


def test_closed_dates_close_a_working_day() -> None:
    closed = whatif.changed_calendar(CALENDAR, closed_dates=THURSDAY.isoformat())
    call = recorded(1, moscow(THURSDAY, 12), FRESH)

    result = whatif.redecide([call], whatif.Rules(closed))

    assert result.transitions == {("free_first_year", "closed"): 1}


# --- the command and the database read ---------------------------------------------------


def _database_url(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return str(engine.url)
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    base = os.environ["TEST_DATABASE_URL"]
    return f"{base}?options=-csearch_path%3D{schema}"


def _store(session: Session, row: Row, customer_id: int | None) -> None:
    add_call(
        session,
        arrived_at=row.arrived_at,
        customer_id=customer_id,
        decision=row.decision,
        reason=row.decision,
        evidence=row.evidence,
        status="ended_ivr",
    )


@pytest.fixture
def history(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        customer = add_customer(session, purchased_on=date(2025, 8, 20)).id
        _store(session, recorded(0, moscow(WEDNESDAY, 17, 30), OLD), customer)  # closed
        _store(session, recorded(0, moscow(THURSDAY, 12), OLD), customer)  # not entitled
        _store(session, recorded(0, moscow(THURSDAY, 13), FRESH), customer)  # free, unchanged
        add_call(session, arrived_at=moscow(THURSDAY, 14), status="abandoned_ivr")
        _store(session, recorded(0, moscow(date(2026, 12, 2), 12), OLD), customer)  # after


def test_command_prints_json(
    engine: Engine, history: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONERPA_DATABASE_URL", _database_url(engine))
    args = ["what-if", "--hours", "mon-fri 10:00-18:00", "--free-months", "18"]
    args += ["--from", "2026-11-01", "--to", "2026-11-30", "--json"]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["period"] == {"from": "2026-11-01", "to": "2026-11-30"}
    assert body["rules"]["free_months"] == 18
    assert body["rules"]["hours"]["mon"] == "10:00-18:00"
    assert (body["calls"], body["changed"], body["not_redecidable"]) == (4, 2, 1)
    assert sorted((t["from"], t["to"], t["count"]) for t in body["transitions"]) == [
        ("closed", "free_first_year", 1),
        ("not_entitled", "free_first_year", 1),
    ]
    assert [(c["from"], c["arrived_at"]) for c in body["changes"]] == [
        ("closed", "2026-11-25T17:30:00+03:00"),
        ("not_entitled", "2026-11-26T12:00:00+03:00"),
    ]


def test_command_speaks_russian_and_limits_the_listing(
    engine: Engine, history: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONERPA_DATABASE_URL", _database_url(engine))
    args = ["what-if", "--free-months", "18", "--from", "2026-11-01", "--to", "2026-11-30"]

    result = CliRunner().invoke(main, [*args, "--limit", "0"])

    assert result.exit_code == 0, result.output
    assert "Звонков: 4, изменилось бы: 1" in result.output
    assert "не положено → бесплатно: первый год после покупки: 1" in result.output
    assert "№" not in result.output


def test_command_refuses_bad_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["what-if", "--hours", "mon-fri 9-17"])

    assert result.exit_code == 1
    assert "--hours" in result.output and "mon-fri 09:00-17:00" in result.output


# --- the dashboard -----------------------------------------------------------------------


def _client(engine: Engine, sessions: sessionmaker[Session], role: str) -> FlaskClient:
    with sessions.begin() as session:
        add_user(session, role, role, PASSWORD)
    client = make_app(engine, Clock(moscow(THURSDAY, 18))).test_client()
    sign_in(client, role, PASSWORD)
    return client


QUERY = "/figures/what-if?hours=mon-fri+10:00-18:00&free_months=18&from=2026-11-01&to=2026-11-30"


def test_supervisor_sees_what_would_change(
    engine: Engine, sessions: sessionmaker[Session], history: None
) -> None:
    client = _client(engine, sessions, "supervisor")

    page = client.get(QUERY).get_data(as_text=True)

    assert 'id="whatif-changed">2<' in page
    assert "<td>нерабочее время</td><td>бесплатно: первый год после покупки</td>" in page
    assert "<td>не положено</td><td>бесплатно: первый год после покупки</td>" in page
    assert "25.11.2026 17:30" in page


def test_whatif_form_refuses_bad_hours(
    engine: Engine, sessions: sessionmaker[Session], history: None
) -> None:
    client = _client(engine, sessions, "supervisor")

    page = client.get("/figures/what-if?hours=every+day&from=2026-11-01&to=2026-11-30")

    assert page.status_code == 200
    assert "не похоже на" in page.get_data(as_text=True)
    assert 'id="whatif-changed"' not in page.get_data(as_text=True)


def test_agent_may_not_run_a_whatif(engine: Engine, sessions: sessionmaker[Session]) -> None:
    client = _client(engine, sessions, "agent")

    assert client.get(QUERY).status_code == 403
