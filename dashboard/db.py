"""The database and the clock as the views see them: one session per request, one ``now``.

The engine comes from the app config (``ENGINE``, else ``DATABASE_URL``, else the
settings). The clock is ``CLOCK`` in the config, so tests can move time on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from onerpa import db as onerpa_db
from onerpa.settings import Settings

EXTENSION = "onerpa_db"


def system_clock() -> datetime:
    return datetime.now(UTC)


def init_app(app: Flask) -> None:
    """Attach the engine and the session maker to ``app``; close sessions after requests."""
    engine: Engine | None = app.config.get("ENGINE")
    if engine is None:
        url = app.config.get("DATABASE_URL") or settings_of(app).database_url
        engine = onerpa_db.make_engine(url)
        app.config["ENGINE"] = engine
    app.config.setdefault("CLOCK", system_clock)
    app.extensions[EXTENSION] = onerpa_db.session_factory(engine)
    app.teardown_appcontext(close_db)


def sessions(app: Flask | None = None) -> sessionmaker[Session]:
    """Return the session maker of ``app`` (the current app by default)."""
    return (app or current_app).extensions[EXTENSION]


def get_db() -> Session:
    """Return this request's session, opening it on first use."""
    if "db" not in g:
        g.db = sessions()()
    return g.db


def close_db(_error: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def now() -> datetime:
    """Return the current moment by the app's clock (aware, UTC)."""
    clock: Callable[[], datetime] = current_app.config["CLOCK"]
    return clock()


def settings_of(app: Flask | None = None) -> Settings:
    """Return the service settings the app was built with."""
    return (app or current_app).config["SETTINGS"]
