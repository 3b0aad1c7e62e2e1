"""The demo set: every situation of the support rules, reachable by phone, loaded idempotently."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from onerpa import demo, directory, entitlement
from onerpa.cli import main
from onerpa.entitlement import Reason
from onerpa.importer import import_file
from onerpa.models import Customer

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
    assert first.stdout.splitlines() == [
        "demo data: 51 customers added, 170 changes in all",
        "try +7 495 123-45-67 (entitled, first year) and +7 903 555-01-42 (not entitled)",
    ]
    assert again.stdout.splitlines()[0] == "demo data: 0 customers added, 0 changes in all"
