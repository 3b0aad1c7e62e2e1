"""What every command does first: read the settings and open the database, or say why not."""

from __future__ import annotations

import click
from sqlalchemy import Engine

from onerpa import db
from onerpa.settings import Settings, SettingsError


def load_settings() -> Settings:
    """Build settings from the environment, or stop with the setting that is wrong."""
    try:
        return Settings.from_env()
    except SettingsError as err:
        raise click.ClickException(f"configuration error: {err}") from None


def open_database(settings: Settings) -> Engine:
    """Create the engine, run migrations, and return the engine."""
    engine = db.make_engine(settings.database_url)
    try:
        db.migrate(engine)
    except Exception as err:  # a dead or misconfigured database must say so plainly
        raise click.ClickException(f"database {engine.url!r} is not usable: {err}") from None
    return engine
