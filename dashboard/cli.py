"""The dashboard's commands: ``create-user``, ``disable-user`` and ``dashboard``."""

from __future__ import annotations

import logging
import sys

import click

from onerpa.db import session_factory
from onerpa.settings import SettingsError
from onerpa.startup import (
    DASHBOARD,
    StartupError,
    command_binding,
    ensure_ports_free,
    load_settings,
    open_database,
)

log = logging.getLogger(__name__)


@click.command("create-user")
@click.argument("username")
@click.argument("role", type=click.Choice(["agent", "supervisor"]))
@click.option("--interface", default="", help="Интерфейс в очереди, например PJSIP/101.")
@click.option(
    "--member-name", default="", help="Имя участника очереди, если очередь его использует."
)
@click.option("--display-name", default="", help="Имя на панели.")
@click.option("--password-stdin", is_flag=True, help="Прочитать пароль со стандартного ввода.")
@click.option(
    "--update", is_flag=True, help="Изменить существующего пользователя (пароль, роль, телефон)."
)
def create_user_command(
    username: str,
    role: str,
    interface: str,
    member_name: str,
    display_name: str,
    password_stdin: bool,
    update: bool,
) -> None:
    """Создать пользователя панели (агента или руководителя) с паролем."""
    from dashboard.users import UserError, create_user, find_user, update_user

    password = _read_password(password_stdin)
    engine = open_database(load_settings())
    try:
        with session_factory(engine).begin() as session:
            existing = find_user(session, username)
            done = "updated" if update and existing is not None else "created"
            if update and existing is not None:
                update_user(
                    session,
                    existing,
                    role=role,
                    password=password,
                    interface=interface,
                    active=True,
                )
            else:
                create_user(
                    session,
                    username,
                    role,
                    password,
                    interface=interface,
                    member_name=member_name,
                    display_name=display_name,
                )
    except UserError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"user {username} ({role}) {done}")


@click.command("disable-user")
@click.argument("username")
def disable_user_command(username: str) -> None:
    """Запретить пользователю вход (его сеансы кончатся при следующем запросе)."""
    from dashboard.users import find_user, update_user

    engine = open_database(load_settings())
    with session_factory(engine).begin() as session:
        user = find_user(session, username)
        if user is None:
            raise click.ClickException(f"no user {username!r}")
        update_user(session, user, active=False)
    click.echo(f"user {username} disabled")


@click.command("dashboard")
@click.option("--host", default=None, help="Адрес, на котором слушать [ONERPA_DASHBOARD_HOST].")
@click.option("--port", type=int, default=None, help="Порт [ONERPA_DASHBOARD_PORT, 8080].")
def dashboard_command(host: str | None, port: int | None) -> None:
    """Запустить панель агентов и руководителей (нужен ONERPA_SECRET_KEY)."""
    from dashboard import create_app
    from dashboard.server import DashboardServer

    settings = load_settings()
    listen = command_binding(settings, DASHBOARD, host, port)
    ensure_ports_free([listen])
    engine = open_database(settings)
    try:
        app = create_app({"ENGINE": engine, "SETTINGS": settings})
    except SettingsError as err:
        raise StartupError(f"Ошибка настройки: {err}") from None
    server = DashboardServer(app, listen.host, listen.port)
    click.echo(f"dashboard on {server.url}", err=True)
    server.serve_forever()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


COMMANDS = [create_user_command, disable_user_command, dashboard_command]
