"""What every command does first: read the settings, check its ports, open the database.

Each step that fails stops the command with one plain line naming what to change (a
setting or an option), never a traceback.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import IO, Any, NamedTuple, TypeVar

import click
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from onerpa import db
from onerpa.settings import Settings, SettingsError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_PORT_OPTIONS = "onerpa.port_options"  # click context meta: Listener -> port given on the line


class StartupError(click.ClickException):
    """A reason the command cannot start, shown as is (in Russian, without click's 'Error:')."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), err=True, file=file)


@dataclass(frozen=True)
class Listener:
    """A port the service listens on: its settings, and the option of ``run`` that overrides it."""

    port_field: str
    host_field: str
    port_setting: str
    host_setting: str
    what: str  # for --help

    @property
    def option(self) -> str:
        return "--" + self.port_setting.removeprefix("ONERPA_").lower().replace("_", "-")


FASTAGI = Listener(
    "fastagi_port", "fastagi_host", "ONERPA_FASTAGI_PORT", "ONERPA_FASTAGI_HOST", "Порт FastAGI"
)
DASHBOARD = Listener(
    "dashboard_port",
    "dashboard_host",
    "ONERPA_DASHBOARD_PORT",
    "ONERPA_DASHBOARD_HOST",
    "Порт панели",
)
METRICS = Listener(
    "metrics_port",
    "metrics_host",
    "ONERPA_METRICS_PORT",
    "ONERPA_METRICS_HOST",
    "Порт /metrics со звонками",
)
FASTAGI_METRICS = Listener(
    "fastagi_metrics_port",
    "metrics_host",
    "ONERPA_FASTAGI_METRICS_PORT",
    "ONERPA_METRICS_HOST",
    "Порт собственных /metrics сервера FastAGI, 0 — не открывать",
)
ALL_PORTS = (FASTAGI, DASHBOARD, METRICS, FASTAGI_METRICS)


class Binding(NamedTuple):
    """An address a command is about to listen on, and the names that set it."""

    host: str
    port: int
    port_name: str  # the setting, or the option, the port came from
    host_name: str


def load_settings(listening: Iterable[Listener] = ()) -> Settings:
    """Build settings from the environment, or stop with the setting that is wrong.

    With ``listening``, the command's port options (see ``port_options``) are applied and
    every one of those ports is checked free before anything starts.
    """
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        raise StartupError(f"Ошибка настройки: {err}") from None
    listening = tuple(listening)
    if not listening:
        return settings
    given: Mapping[Listener, int] = click.get_current_context().meta.get(_PORT_OPTIONS, {})
    overrides: dict[str, Any] = {item.port_field: port for item, port in given.items()}
    settings = replace(settings, **overrides)
    ensure_ports_free(
        Binding(
            getattr(settings, item.host_field),
            getattr(settings, item.port_field),
            item.option if item in given else item.port_setting,
            item.host_setting,
        )
        for item in listening
    )
    return settings


def command_binding(
    settings: Settings, listener: Listener, host: str | None, port: int | None
) -> Binding:
    """Return where a command with its own ``--host``/``--port`` options listens."""
    return Binding(
        host or getattr(settings, listener.host_field),
        port or getattr(settings, listener.port_field),
        "--port" if port else listener.port_setting,
        "--host" if host else listener.host_setting,
    )


def port_options(*listeners: Listener) -> Callable[[F], F]:
    """Add a ``--<name>-port`` option per listener; ``load_settings`` applies them."""
    defaults = {f.name: f.default for f in fields(Settings)}

    def remember(listener: Listener) -> Callable[[click.Context, click.Parameter, Any], None]:
        def callback(ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
            if value is not None:
                ctx.meta.setdefault(_PORT_OPTIONS, {})[listener] = value

        return callback

    def decorate(command: F) -> F:
        for listener in reversed(listeners):
            low = 0 if listener is FASTAGI_METRICS else 1  # 0: no FastAGI metrics
            command = click.option(
                listener.option,
                type=click.IntRange(low, 65535),
                expose_value=False,
                callback=remember(listener),
                help=f"{listener.what} [{listener.port_setting}, {defaults[listener.port_field]}].",
            )(command)
        return command

    return decorate


def ensure_ports_free(bindings: Iterable[Binding]) -> None:
    """Stop, with a line per port naming its setting, unless every binding can listen."""
    problems: list[str] = []
    seen: list[Binding] = []
    for binding in bindings:
        if binding.port == 0:  # 0: none, or any free port
            continue
        twin = next((b for b in seen if _same_socket(b, binding)), None)
        if twin is not None:
            problems.append(
                f"Порт {binding.port} указан дважды: в {twin.port_name} и в {binding.port_name}"
            )
            continue
        seen.append(binding)
        problem = bind_problem(binding)
        if problem:
            problems.append(problem)
    if problems:
        raise StartupError("\n".join(problems))


def bind_problem(binding: Binding) -> str | None:
    """Say why ``binding`` cannot be listened on now; None if it can.

    The probe binds with SO_REUSEADDR, as every server of the service does, so a port whose
    last connections are still closing (TIME_WAIT) is not reported busy.
    """
    host, port = binding.host, binding.port
    shown = host or "*"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        return f"Адрес {host!r} не найден: исправьте {binding.host_name}"
    where = _where(binding.port_name)
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return f"Порт {port} на {shown} занят: задайте другой {where}"
            if err.errno == errno.EACCES:
                return (
                    f"Порт {port} на {shown} открыт только для root: задайте порт от 1024 {where}"
                )
            if err.errno == errno.EADDRNOTAVAIL:
                return f"Адреса {host} у этой машины нет: исправьте {binding.host_name}"
            return f"Порт {port} на {shown} не открыть ({err.strerror}): проверьте {where}"
    return None


def _where(name: str) -> str:
    return f"параметром {name}" if name.startswith("--") else f"в {name}"


def _same_socket(a: Binding, b: Binding) -> bool:
    wildcard = ("", "0.0.0.0", "::")
    return a.port == b.port and (a.host == b.host or a.host in wildcard or b.host in wildcard)


def open_database(settings: Settings) -> Engine:
    """Create the engine, run migrations, and return the engine."""
    engine = db.make_engine(settings.database_url)
    try:
        migrate_database(engine)
    except Exception as err:  # a dead or misconfigured database must say so plainly
        raise database_error(engine, err) from None
    return engine


def migrate_database(engine: Engine) -> None:
    """Bring the schema up to date, logging what changed; raise what the database raised."""
    before, after = db.migrate(engine)
    if before is None:
        log.info("база данных создана: %r", engine.url)
    elif before != after:
        log.info("схема базы данных обновлена: %s → %s", before, after)


def database_unreachable(err: BaseException) -> bool:
    """Return True when ``err`` says the database is away (down, refusing, locked), not wrong.

    Such a failure may pass by itself, so a server can start without the database and try
    again; anything else (a schema newer than this program, a missing driver) will not.
    """
    return isinstance(err, (OperationalError, InterfaceError, OSError))


def database_error(engine: Engine, err: BaseException) -> StartupError:
    """Return the start-up error that says in one line why ``engine``'s database is unusable."""
    from alembic.util.exc import CommandError  # loaded only by what migrates, as in onerpa.db

    if isinstance(err, CommandError) and "Can't locate revision" in str(err):
        return StartupError(
            f"Схема базы данных {engine.url!r} новее этой версии onerpa-support ({err}): "
            "обновите onerpa-support до версии, которая её создала"
        )
    return StartupError(f"База данных {engine.url!r} недоступна: {err}")
