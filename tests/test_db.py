"""The data layer on SQLite and PostgreSQL: schema, constraints, time zones and pragmas."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session

from ivr.app import build_services, close_services
from onerpa import db
from onerpa.models import Customer, PhoneNumber, Refusal, UpdatePurchase
from onerpa.settings import DEFAULT_DATABASE_URL, Settings

MSK = ZoneInfo("Europe/Moscow")


def add_customer(session: Session, number: str = "1001") -> Customer:
    customer = Customer(customer_number=number, organisation="ООО «Вектор»")
    session.add(customer)
    session.flush()
    return customer


def test_migrations_bring_the_schema_to_head(engine: Engine) -> None:
    head = ScriptDirectory.from_config(db.alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == head
    tables = set(inspect(engine).get_table_names())
    expected = {"customers", "phone_numbers", "licences", "update_purchases", "subscriptions"}
    assert expected | {"refusals", "calls"} <= tables


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    db.migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


def test_aware_moment_comes_back_as_the_same_instant_in_utc(session: Session) -> None:
    customer = add_customer(session)
    set_at = datetime(2024, 3, 15, 23, 30, tzinfo=MSK)
    session.add(
        Refusal(customer_id=customer.id, reason="грубость", set_by="ivanova", set_at=set_at)
    )
    session.commit()
    session.expunge_all()
    stored = session.scalars(select(Refusal.set_at)).one()
    assert stored == datetime(2024, 3, 15, 20, 30, tzinfo=UTC)
    assert stored.utcoffset() == timedelta(0)


def test_naive_moment_is_refused_on_write(session: Session) -> None:
    customer = add_customer(session)
    session.add(
        Refusal(customer_id=customer.id, reason="x", set_by="y", set_at=datetime(2024, 3, 15, 12))
    )
    with pytest.raises(StatementError, match="naive"):
        session.flush()


def test_dates_round_trip_unchanged(session: Session) -> None:
    customer = add_customer(session)
    session.add(UpdatePurchase(customer_id=customer.id, purchased_on=date(2024, 2, 29)))
    session.commit()
    assert session.scalars(select(UpdatePurchase.purchased_on)).one() == date(2024, 2, 29)


def test_one_e164_number_belongs_to_one_customer(session: Session) -> None:
    first, second = add_customer(session, "1001"), add_customer(session, "1002")
    session.add(PhoneNumber(customer_id=first.id, e164="+74951234567"))
    session.flush()
    session.add(PhoneNumber(customer_id=second.id, e164="+74951234567"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_customer_numbers_are_unique(session: Session) -> None:
    add_customer(session, "1001")
    with pytest.raises(IntegrityError):
        add_customer(session, "1001")


def test_foreign_keys_are_enforced(session: Session) -> None:
    session.add(PhoneNumber(customer_id=424242, e164="+74951234567"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_deleting_a_customer_deletes_their_numbers_in_the_database(session: Session) -> None:
    customer = add_customer(session)
    session.add(PhoneNumber(customer_id=customer.id, e164="+74951234567"))
    session.commit()
    session.execute(delete(Customer).where(Customer.id == customer.id))
    session.commit()
    assert session.scalar(select(func.count()).select_from(PhoneNumber)) == 0


def test_refusal_needs_a_customer_or_a_number(session: Session) -> None:
    session.add(Refusal(reason="грубость", set_by="ivanova"))
    with pytest.raises(IntegrityError, match="has_target"):
        session.flush()


def test_refusal_on_a_number_alone_is_allowed(session: Session) -> None:
    session.add(Refusal(phone_e164="+74951234567", reason="грубость", set_by="ivanova"))
    session.commit()
    assert session.scalar(select(func.count()).select_from(Refusal)) == 1


def test_update_purchase_months_must_be_positive(session: Session) -> None:
    customer = add_customer(session)
    session.add(UpdatePurchase(customer_id=customer.id, purchased_on=date(2024, 1, 1), months=0))
    with pytest.raises(IntegrityError, match="months_positive"):
        session.flush()


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_runs_in_wal_with_a_busy_timeout_and_foreign_keys(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    assert _pragma(engine, "journal_mode") == "wal"
    assert _pragma(engine, "busy_timeout") == 5000
    assert _pragma(engine, "foreign_keys") == 1


def test_postgresql_url_uses_the_psycopg_driver() -> None:
    engine = db.make_engine("postgresql://postgres@127.0.0.1:5432/test")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


def test_default_database_directory_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = db.make_engine(DEFAULT_DATABASE_URL)
    db.migrate(engine)
    engine.dispose()
    assert (tmp_path / "var" / "onerpa-support.sqlite3").exists()


def test_a_given_database_directory_is_not_created(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'typo' / 'support.sqlite3'}")
    with pytest.raises(OperationalError):
        db.migrate(engine)
    engine.dispose()
    assert not (tmp_path / "typo").exists()


def test_migrate_says_which_revisions_it_went_between(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'support.sqlite3'}")
    head = ScriptDirectory.from_config(db.alembic_config(engine)).get_current_head()
    assert db.migrate(engine) == (None, head)
    assert db.migrate(engine) == (head, head)
    engine.dispose()


def test_single_reads_run_outside_a_transaction(engine: Engine) -> None:
    # now() is when the transaction began: only a statement on its own began it with itself.
    began_with_this_statement = text("SELECT now() = statement_timestamp()")
    with db.for_single_reads(engine).connect() as conn:
        assert conn.execute(select(func.count()).select_from(Customer)).scalar() == 0
        if engine.dialect.name == "postgresql":
            assert conn.execute(began_with_this_statement).scalar() is True
        else:
            assert conn.connection.dbapi_connection.in_transaction is False  # type: ignore[union-attr]
    with engine.connect() as conn:  # the engine itself keeps its transactions
        conn.execute(select(func.count()).select_from(Customer))
        if engine.dialect.name == "postgresql":
            assert conn.execute(began_with_this_statement).scalar() is False


@pytest.mark.parametrize("configured", [0, 5])
def test_look_up_threads_suit_the_database_unless_configured(
    engine: Engine, configured: int
) -> None:
    services = build_services(Settings(lookup_workers=configured), engine)
    try:
        by_database = 2 if engine.dialect.name == "sqlite" else 16
        assert services.directory.pool.max_workers == (configured or by_database)
    finally:
        close_services(services)
