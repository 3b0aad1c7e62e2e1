"""Shared fixtures: a fresh, migrated database per test, on SQLite and on PostgreSQL.

PostgreSQL runs when ``TEST_DATABASE_URL`` names one; each test then gets a schema of its
own, dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from onerpa import db

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")

BACKENDS = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])


def _postgres_engine(schema: str) -> Engine:
    url = db.make_engine(TEST_DATABASE_URL).url
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return create_engine(
        url, connect_args={"options": f"-csearch_path={schema}"}, pool_pre_ping=True
    )


def _drop_schema(schema: str) -> None:
    admin = create_engine(db.make_engine(TEST_DATABASE_URL).url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@contextmanager
def migrated_database(backend: str, directory: Path) -> Iterator[Engine]:
    """Yield a migrated, empty database on ``backend``; drop it afterwards."""
    if backend == "sqlite":
        eng = db.make_engine(f"sqlite:///{directory / 'test.sqlite3'}")
        db.migrate(eng)
        yield eng
        eng.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    eng = _postgres_engine(schema)
    try:
        db.migrate(eng)
        yield eng
    finally:
        eng.dispose()
        _drop_schema(schema)


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database on each backend under test."""
    with migrated_database(request.param, tmp_path) as eng:
        yield eng


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return db.session_factory(engine)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s
