"""Engines, sessions and migrations: the only module that knows which database it is.

SQLite is the embedded default: WAL so readers (the dashboard) never block the writer (the
call flow), a busy timeout so a momentary lock waits instead of failing, and foreign keys on.
PostgreSQL is production. Migrations are Alembic's, run from code on start; on PostgreSQL an
advisory lock makes two processes starting at once take turns.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from onerpa.settings import DEFAULT_DATABASE_URL, sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 5000
_MIGRATION_LOCK_KEY = 0x0E2A_5EED  # any constant shared by every process of this service


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with the settings each database needs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None and url == DEFAULT_DATABASE_URL:  # `run` works in a fresh clone
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 5}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(
        parsed,
        echo=echo,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args={"connect_timeout": 3},
    )


def for_single_reads(engine: Engine) -> Engine:
    """Return ``engine`` as a look-up of one statement uses it: outside any transaction.

    On PostgreSQL a transaction adds a BEGIN and a ROLLBACK round trip around the one SELECT,
    and AUTOCOMMIT saves both. pysqlite opens no transaction for a SELECT anyway, and setting
    an isolation level there costs a PRAGMA per checkout, so SQLite's engine is returned as is.
    """
    if engine.dialect.name == "sqlite":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def concurrent_reads(engine: Engine) -> int:
    """Return how many look-ups at once pay off on ``engine``.

    SQLite reads run on this process's CPU, under its one GIL: a second thread lets one read
    while another waits, more only take turns (each thread added made a look-up dearer, 0.35
    ms of CPU per call with two threads against 0.9 ms with sixteen, see docs/benchmarks.md).
    A PostgreSQL read mostly waits for the network and the server, where threads overlap.
    """
    return 2 if engine.dialect.name == "sqlite" else 16


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return the session maker every component uses for ``engine``."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config  # Alembic is loaded only by what migrates

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> tuple[str | None, str | None]:
    """Bring the schema to the newest revision; return the revisions before and after.

    Safe to call from several processes at once. ``None`` before: the database was empty.
    """
    from alembic import command

    config = alembic_config(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            try:
                config.attributes["connection"] = conn
                before = _revision(conn)
                command.upgrade(config, "head")
                conn.commit()
                return before, _revision(conn)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                conn.commit()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        before = _revision(conn)
        command.upgrade(config, "head")
        return before, _revision(conn)


def _revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()
