"""The demo set: every situation of the support rules, reachable by phone, loaded idempotently."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from dashboard.testing import Clock, make_app, sign_in
from dashboard.users import ensure_demo_users, find_user, update_user
from ivr.dialplan import Route, Topic
from onerpa import db, demo, directory, entitlement, figures
from onerpa.entitlement import Reason
from onerpa.hours import SupportCalendar
from onerpa.importer import import_file
from onerpa.models import Call, CallEvent, Customer
from onerpa.settings import Settings
from onerpa.staff import AuditEntry
from onerpa.timing import Targets
from onerpa_support import allinone
from onerpa_support.cli import main

MSK = ZoneInfo("Europe/Moscow")
SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "customers.sample.csv"
TABLES = ("customers", "phone_numbers", "licences", "update_purchases", "subscriptions", "refusals")


@pytest.fixture
def loaded(engine: Engine) -> Counter[str]:
    return demo.load_demo(engine)


def decide_for(session: Session, e164: str, at: datetime, critical: bool = False) -> Reason:
    card = directory.find_by_phone(session, e164)
    assert card is not None, e164
    return entitlement.decide(card.records, at, critical_bug=critical).reason


def test_demo_adds_the_featured_and_generated_customers(loaded: Counter[str]) -> None:
    assert loaded == Counter(
        customers_added=51,
        phones_added=54,
        licences_added=33,
        updates_added=10,
        subscriptions_added=20,
        refusals_added=2,
    )


def test_loading_the_demo_again_changes_nothing(engine: Engine, loaded: Counter[str]) -> None:
    def snapshot() -> dict[str, list[tuple[object, ...]]]:
        with engine.connect() as conn:
            rows = {t: conn.execute(text(f"SELECT * FROM {t} ORDER BY id")) for t in TABLES}
            return {table: [tuple(row) for row in result] for table, result in rows.items()}

    before = snapshot()
    assert demo.load_demo(engine) == Counter()
    assert snapshot() == before


JANUARY, JUNE, NEW_YEARS_EVE = (
    datetime(2026, 1, 15, 10, tzinfo=MSK),
    datetime(2026, 6, 15, 10, tzinfo=MSK),
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=MSK),
)


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+74951234567", [Reason.FREE_FIRST_YEAR] * 3),
        ("+79165551234", [Reason.FREE_FIRST_YEAR] * 3),
        ("+79035550142", [Reason.NOT_ENTITLED] * 3),
        ("+78125552030", [Reason.FREE_UPDATES] * 3),
        ("+73435557710", [Reason.FREE_SUBSCRIPTION] * 3),
        ("+73835554421", [Reason.NOT_ENTITLED] * 3),
        ("+74955559000", [Reason.NOT_ENTITLED, Reason.FREE_FIRST_YEAR, Reason.FREE_FIRST_YEAR]),
        ("+375295551234", [Reason.FREE_FIRST_YEAR, Reason.NOT_ENTITLED, Reason.NOT_ENTITLED]),
        ("+78435551890", [Reason.NOT_ENTITLED] * 3),
        ("+78465556307", [Reason.REFUSED_ETIQUETTE] * 3),
        ("+73915552740", [Reason.NOT_ENTITLED] * 3),
        ("+78615557215", [Reason.FREE_SUBSCRIPTION] * 3),
    ],
)
def test_featured_numbers_are_in_the_documented_situation_all_2026(
    session: Session, loaded: Counter[str], e164: str, expected: list[Reason]
) -> None:
    assert [decide_for(session, e164, at) for at in (JANUARY, JUNE, NEW_YEARS_EVE)] == expected


def test_entitled_demo_customer_is_free_until_the_end_of_2026(
    session: Session, loaded: Counter[str]
) -> None:
    new_year = datetime(2027, 1, 1, tzinfo=MSK)
    assert decide_for(session, demo.ENTITLED_PHONE, new_year) is Reason.NOT_ENTITLED


def test_not_entitled_demo_customer_is_free_for_a_declared_critical_bug(
    session: Session, loaded: Counter[str]
) -> None:
    reason = decide_for(session, demo.NOT_ENTITLED_PHONE, JUNE, critical=True)
    assert reason is Reason.FREE_CRITICAL_BUG


def test_refusal_on_a_number_without_a_customer(session: Session, loaded: Counter[str]) -> None:
    assert directory.find_by_phone(session, demo.REFUSED_NUMBER_ONLY) is None
    flags = directory.refusals_for_phone(session, demo.REFUSED_NUMBER_ONLY)
    assert entitlement.active_refusal(flags, NEW_YEARS_EVE) is not None
    assert entitlement.active_refusal(flags, datetime(2027, 1, 1, tzinfo=MSK)) is None


def test_generated_customers_cover_every_situation(session: Session, loaded: Counter[str]) -> None:
    numbers = session.scalars(
        select(Customer.customer_number).where(Customer.customer_number >= "100200")
    ).all()
    at = datetime(2026, 11, 26, 12, tzinfo=MSK)
    reasons = Counter()
    for number in numbers:
        card = directory.find_by_number(session, number)
        assert card is not None
        reasons[entitlement.decide(card.records, at).reason] += 1
    assert reasons == {
        Reason.FREE_FIRST_YEAR: 8,
        Reason.FREE_UPDATES: 8,
        Reason.FREE_SUBSCRIPTION: 8,
        Reason.NOT_ENTITLED: 16,
    }


def test_the_sample_import_file_agrees_with_the_demo_set(
    engine: Engine, loaded: Counter[str]
) -> None:
    result = import_file(engine, SAMPLE)
    assert (result.bad_rows, result.changes) == (0, Counter())


def test_generated_customers_are_the_same_every_time() -> None:
    assert demo.generated() == demo.generated()


def test_demo_data_command_says_which_numbers_to_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONERPA_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    first = CliRunner().invoke(main, ["demo-data"])
    again = CliRunner().invoke(main, ["demo-data"])
    assert first.exit_code == 0, first.output
    summary, numbers = first.stdout.splitlines()
    added = re.fullmatch(
        r"демо-данные: клиентов добавлено 51, прошлых звонков (\d+), всего изменений (\d+)", summary
    )
    assert added and int(added[1]) > 1000 and int(added[2]) == 170 + int(added[1]), summary
    assert numbers == (
        "позвоните с +7 495 123-45-67 (первый год, поддержка бесплатна) и "
        "с +7 903 555-01-42 (поддержка не положена)"
    )
    assert again.stdout.splitlines()[0] == (
        "демо-данные: клиентов добавлено 0, прошлых звонков 0, всего изменений 0"
    )


def test_demo_data_command_without_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONERPA_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    result = CliRunner().invoke(main, ["demo-data", "--no-demo-calls"])
    assert result.stdout.splitlines()[0] == (
        "демо-данные: клиентов добавлено 51, прошлых звонков 0, всего изменений 170"
    )


# --- a month of calls --------------------------------------------------------------------

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=MSK)  # a Thursday
MONTH = (datetime.combine(NOW.date() - timedelta(days=29), time(0), MSK), NOW)  # "30 дней"


def _count_calls(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Call)).scalar_one()


def test_demo_calls_give_the_figures_of_the_last_30_days(engine: Engine) -> None:
    changes = demo.load_demo(engine, calls=True, now=NOW)
    with Session(engine) as session:
        month = figures.compute(session, *MONTH, targets=Targets())
        agents = figures.per_agent(session, *MONTH, targets=Targets())
        decisions = figures.per_decision(session, *MONTH, targets=Targets())
        closed = session.scalar(select(func.count()).where(Call.decision == "closed"))
    assert changes["calls_added"] == month.offered > 1000
    assert sum(count for _, count in month.outcomes()) == month.offered
    assert month.answered > month.offered / 2
    assert 0 < month.abandoned_queue < month.answered / 5
    assert month.abandoned_ivr and month.lost and month.transferred
    assert month.in_progress == 0  # nothing left live: the board starts empty
    assert 150 < month.consultation_avg_seconds < 300  # around the 3-5 minute target
    assert 0 < month.over_limit < month.answered / 3
    assert month.service_level is not None and month.service_level > 0.7
    assert sorted(agents) == [agent.member_name for agent in demo.AGENTS]
    assert "unknown_caller" in decisions and "not_entitled" in decisions
    assert 0 < closed < month.offered / 10  # mostly in the line's hours


def test_demo_calls_are_added_once(engine: Engine) -> None:
    first = demo.load_demo(engine, calls=True, now=NOW)
    again = demo.load_demo(engine, calls=True, now=NOW + timedelta(days=1))
    assert first["calls_added"] == _count_calls(engine)
    assert again == Counter()
    assert _count_calls(engine) == first["calls_added"]


def test_demo_calls_skip_a_database_that_has_calls(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Call(call_ref="real-1", arrived_at=NOW, status="completed"))
        session.commit()
    assert demo.load_demo(engine, calls=True, now=NOW)["calls_added"] == 0
    assert _count_calls(engine) == 1


def test_demo_calls_are_the_same_for_the_same_moment() -> None:
    numbers = [demo.Caller("+74951234567", 1, "free_first_year", "Первый год")]
    calendar = SupportCalendar()
    assert demo.demo_calls(numbers, NOW, calendar) == demo.demo_calls(numbers, NOW, calendar)


def test_demo_calls_have_events_like_the_recorder_writes(engine: Engine) -> None:
    demo.load_demo(engine, calls=True, now=NOW)
    with engine.connect() as conn:
        query = select(CallEvent.kind, func.count()).group_by(CallEvent.kind)
        kinds = {kind: count for kind, count in conn.execute(query)}
        answered = conn.scalar(select(func.count()).where(Call.answered_at.is_not(None)))
        lost = conn.scalar(select(func.count()).where(Call.status == "lost"))
    assert kinds["arrived"] == _count_calls(engine)
    assert kinds["answered"] == answered
    assert kinds["swept"] == lost
    assert kinds["ended"] + kinds["swept"] == kinds["arrived"]


def test_demo_routes_and_topics_are_the_dialplans(engine: Engine) -> None:
    demo.load_demo(engine, calls=True, now=NOW)
    with engine.connect() as conn:
        routes = set(conn.scalars(select(Call.route).distinct()))
        topics = set(conn.scalars(select(Call.topic).distinct()))
    assert routes - {None} <= {route.value for route in Route}
    assert topics - {None} <= {topic.value for topic in Topic}


# --- `run` with the demo set: the flag, restarts ------------------------------------------


class _Started(Exception):
    """Raised where ``run`` would start the servers: the demo set is loaded by then."""


@pytest.fixture
def run_twice_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    database = tmp_path / "run.sqlite3"
    settings = Settings.from_env({"ONERPA_DATABASE_URL": f"sqlite:///{database}"})
    monkeypatch.setattr(allinone, "load_settings", lambda listening=(): settings)

    def stop(*args: object, **kwargs: object) -> None:
        raise _Started

    monkeypatch.setattr(allinone, "build_services", stop)
    return database


def test_run_loads_a_month_of_calls_once_and_audits_no_restart(run_twice_env: Path) -> None:
    url = f"sqlite:///{run_twice_env}"
    for _ in range(2):
        result = CliRunner().invoke(main, ["run"])
        assert isinstance(result.exception, _Started), result.output
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            calls = _count_calls(engine)
            audit = list(conn.execute(select(AuditEntry.action, AuditEntry.details)))
    finally:
        engine.dispose()
    assert calls > 1000
    assert [action for action, _ in audit].count("user.update") == 0
    assert [action for action, _ in audit].count("user.create") == len(demo.AGENTS) + 1


def test_run_without_demo_calls(run_twice_env: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--no-demo-calls"])
    assert isinstance(result.exception, _Started), result.output
    engine = db.make_engine(f"sqlite:///{run_twice_env}")
    try:
        assert _count_calls(engine) == 0
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Customer)) == 51
    finally:
        engine.dispose()


def test_restarted_demo_keeps_its_sign_ins_and_audits_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    remember = tmp_path / "var" / "demo-sign-ins.json"
    first = ensure_demo_users(engine, remember=remember)
    with engine.connect() as conn:
        audited = conn.scalar(select(func.count()).select_from(AuditEntry))
    again = ensure_demo_users(engine, remember=remember)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(AuditEntry)) == audited
    assert again == first
    assert remember.stat().st_mode & 0o777 == 0o600
    client = make_app(engine, Clock(NOW)).test_client()
    for credentials in again:
        assert sign_in(client, credentials.username, credentials.password).status_code == 302


def test_demo_sign_in_changed_elsewhere_gets_a_new_password_audited(
    engine: Engine, tmp_path: Path
) -> None:
    remember = tmp_path / "demo-sign-ins.json"
    first = ensure_demo_users(engine, remember=remember)
    with Session(engine) as session:
        user = find_user(session, "demo-supervisor")
        assert user is not None
        update_user(session, user, password="changed by the supervisor", by="vera")
        session.commit()
    again = ensure_demo_users(engine, remember=remember)
    assert again[0].password != first[0].password and again[1] == first[1]
    with engine.connect() as conn:
        updates = conn.execute(
            select(AuditEntry.username, AuditEntry.details).where(
                AuditEntry.action == "user.update"
            )
        ).all()
    assert updates == [("vera", "password"), ("demo", "password")]


def test_demo_agents_name_the_demo_calls_agents(engine: Engine) -> None:
    ensure_demo_users(engine)
    with Session(engine) as session:
        for agent in demo.AGENTS:
            user = find_user(session, agent.username)
            assert user is not None
            assert (user.member_interface, user.label) == (agent.interface, agent.display_name)


def test_updating_a_user_to_what_it_is_audits_nothing(engine: Engine) -> None:
    ensure_demo_users(engine)
    with Session(engine) as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
        user = find_user(session, "demo-agent")
        assert user is not None
        update_user(session, user, role="agent", interface="PJSIP/101", active=True)
        session.commit()
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == before
