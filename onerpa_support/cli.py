"""The ``onerpa-support`` command. Every subcommand is listed here, explicitly."""

from __future__ import annotations

import logging
import os
import sys

import click

from onerpa.settings import SettingsError, apply_config_file
from onerpa.startup import StartupError, load_settings, open_database

__all__ = ["load_settings", "main", "open_database"]


@click.group()
@click.option(
    "-v", "--verbose", is_flag=True, help="Писать отладочные сообщения (и шаги миграций)."
)
def main(verbose: bool) -> None:
    """Обработка звонков линии технической поддержки OneRPA."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # Alembic narrates every start at INFO; open_database says what changed
        logging.getLogger("alembic").setLevel(logging.WARNING)
    # Into the process environment, so every reader (the dashboard's config too) sees it.
    try:
        apply_config_file(os.environ)
    except SettingsError as err:
        raise StartupError(f"Ошибка настройки: {err}") from None


@main.command()
def migrate() -> None:
    """Создать или обновить схему базы данных."""
    settings = load_settings()
    engine = open_database(settings)
    click.echo(f"схема базы данных актуальна: {engine.url!r}")


def _register() -> None:
    from onerpa_support import commands

    for command in commands.ALL:
        main.add_command(command)


_register()
