"""The dashboard's tables: the 0003 migration matches the models, and goes down and up."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

import onerpa.staff  # noqa: F401  (registers the tables on Base)
from onerpa import db
from onerpa.models import Base

TABLES = {"users", "wrapups", "audit_log"}


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_dashboard_migration_goes_down_and_up(engine: Engine) -> None:
    config = db.alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    assert not TABLES & set(inspect(engine).get_table_names())
    db.migrate(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
