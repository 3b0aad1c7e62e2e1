"""The call-flow commands: ``fastagi``, ``fastagi-health`` and ``simulate-call``."""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import click
from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy import Engine

from ivr import health, prompts
from ivr.app import build_services, close_services, warm_up
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.routes import ROUTES
from ivr.services import Services, system_clock
from ivr.watchdog import STALL_SECONDS
from onerpa import db, mail, startup, sweep
from onerpa.metrics import ProcessMetrics
from onerpa.settings import Settings

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 5.0
STALL_MARGIN_SECONDS = 5.0  # past the look-up budget, the longest a route legitimately thinks


@click.command("fastagi")
@click.option("--host", default=None, help="Адрес, на котором слушать [ONERPA_FASTAGI_HOST].")
@click.option("--port", type=int, default=None, help="Порт [ONERPA_FASTAGI_PORT, 4573].")
def fastagi_command(host: str | None, port: int | None) -> None:
    """Запустить сервер FastAGI для Asterisk."""
    settings = startup.load_settings()
    prompts.ensure_fit(settings)
    listen = startup.command_binding(settings, startup.FASTAGI, host, port)
    address = (listen.host, listen.port)
    problem = exposure_problem(address[0], settings.allowed_peers)
    if problem:
        raise startup.StartupError(f"Ошибка настройки: {problem}")
    own_metrics = startup.command_binding(settings, startup.FASTAGI_METRICS, None, None)
    startup.ensure_ports_free([listen, own_metrics])
    running = start_fastagi(settings, address)
    click.echo(f"FastAGI listening on {address[0]}:{running.server.port}", err=True)
    if settings.fastagi_metrics_port:
        start_http_server(settings.fastagi_metrics_port, settings.metrics_host, running.registry)
        url = f"http://{settings.metrics_host}:{settings.fastagi_metrics_port}/metrics"
        click.echo(f"metrics on {url}", err=True)
    liveness = health.Liveness(running.server.self_check, running.status)
    liveness.start()
    wait_for_signal()
    liveness.stop()
    running.stop()


@dataclass
class RunningFastAGI:
    """A FastAGI server started by ``start_fastagi``, with what it runs on."""

    server: FastAGIServer
    services: Services
    database: health.DatabaseState
    registry: CollectorRegistry
    stopping: threading.Event
    engine: Engine

    def status(self) -> str:
        """Say in one line how the server serves (systemd's STATUS=)."""
        if self.database.up:
            return "звонки принимаются; база данных доступна"
        return "звонки принимаются без базы данных: решения упрощённые, записи ждут в памяти"

    def stop(self) -> None:
        """Stop listening, write what is pending, release the pools."""
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        close_services(self.services)
        self.engine.dispose()


def start_fastagi(
    settings: Settings,
    address: tuple[str, int],
    *,
    clock: Callable[[], datetime] = system_clock,
    retry_delay: float = 1.0,
) -> RunningFastAGI:
    """Open the database if it answers, start serving on ``address`` either way.

    An unreachable database is not fatal: the calls are decided degraded and their records
    wait in memory while ``DatabaseWatch`` tries again. A database that answers but cannot
    serve (a schema newer than this program) stops the start with ``StartupError``.
    """
    engine = db.make_engine(settings.database_url)
    database = health.DatabaseState()
    registry = CollectorRegistry()
    metrics = ProcessMetrics(registry=registry, scripts=ROUTES)
    metrics.watch_database(lambda: database.up)
    services = build_services(
        settings, engine, clock=clock, metrics=metrics, records_ready=database.ready
    )
    # Host and port: two servers on one machine must not sweep each other's calls at start.
    services.server = f"{services.server}:{address[1]}"
    stopping = threading.Event()
    watch = health.DatabaseWatch(
        engine,
        database,
        on_ready=lambda: start_sweeps(engine, services, stopping),
        stop=stopping,
        first_delay=retry_delay,
    )
    try:
        watch.try_once()
    except Exception as err:  # away: serve degraded; wrong: stop here
        if not startup.database_unreachable(err):
            close_services(services)
            engine.dispose()
            raise startup.database_error(engine, err) from None
        click.echo(degraded_start_message(engine, err), err=True)
    watch.start()
    warm_up(services, directory=database.up)
    server = FastAGIServer(
        address,
        services,
        allowed=settings.allowed_peers,
        database=database,
        stall_seconds=stall_limit(settings),
    )
    start_in_thread(server)
    return RunningFastAGI(server, services, database, registry, stopping, engine)


def degraded_start_message(engine: Engine, err: BaseException) -> str:
    """Say in one line that the server starts without its database, and what that means."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"База данных {engine.url!r} недоступна ({reason}): FastAGI запускается без неё — "
        "звонки решаются упрощённо (часы работы и производственный календарь действуют, "
        "клиент не проверяется, звонящий идёт к оператору), записи звонков ждут в памяти, "
        "подключение повторяется в фоне"
    )


def stall_limit(settings: Settings) -> float:
    """Return how long a call may make no progress: never less than its look-ups may take."""
    return max(STALL_SECONDS, settings.decision_budget.total_seconds() + STALL_MARGIN_SECONDS)


@click.command("fastagi-health")
@click.option("--host", default=None, help="Адрес сервера FastAGI [ONERPA_FASTAGI_HOST].")
@click.option("--port", type=int, default=None, help="Порт [ONERPA_FASTAGI_PORT, 4573].")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=HEALTH_TIMEOUT,
    show_default=True,
    help="Сколько секунд ждать ответа.",
)
def fastagi_health_command(host: str | None, port: int | None, timeout: float) -> None:
    """Проверить сервер FastAGI настоящим запросом AGI, как его делает Asterisk.

    Код 0, если сервер отвечает (с базой или без), 1 — если нет.
    """
    if host is None or port is None:
        settings = startup.load_settings()
        host = host if host is not None else settings.fastagi_host
        port = port or settings.fastagi_port
    found = health.probe((reachable_host(host), port), timeout)
    if not found.ok:
        click.echo(found.reason, err=True)
        raise SystemExit(1)
    click.echo(f"{found.reason}; {DATABASE_STATES.get(found.database or '', DATABASE_UNKNOWN)}")


DATABASE_STATES: Mapping[str, str] = {
    health.UP: "база данных доступна",
    health.DOWN: (
        "база данных недоступна: звонки решаются упрощённо, записи звонков ждут в памяти"
    ),
}
DATABASE_UNKNOWN = "состояние базы данных неизвестно"


def reachable_host(host: str) -> str:
    """Return the address to reach a server listening on ``host`` (all addresses: loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def exposure_problem(host: str, allowed: Iterable[str]) -> str | None:
    """Say why listening on ``host`` is unsafe with only loopback ``allowed``; None if it is not.

    FastAGI has no authentication: a server reachable from other machines must name the
    Asterisk addresses it answers, or anyone who reaches the port can pose as the PBX.
    """
    if _is_loopback_host(host):
        return None
    if all(ipaddress.ip_network(a, strict=False).is_loopback for a in allowed):
        return (
            f"ONERPA_FASTAGI_HOST={host or '(все адреса)'} открывает FastAGI за пределы этой "
            f"машины, а ONERPA_FASTAGI_ALLOWED допускает только loopback ({', '.join(allowed)}): "
            "укажите в ONERPA_FASTAGI_ALLOWED адреса Asterisk или слушайте на 127.0.0.1"
        )
    return None


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything, so treat it as exposed


def start_sweeps(engine: Engine, services: Services, stop: threading.Event) -> None:
    """Close the calls this server left in the IVR, then sweep stale calls periodically;
    mail the requests and import the dialplan's own recordings (onerpa.mail) likewise."""
    sweep.sweep_at_start(engine, services.server, services.clock())
    settings = services.settings
    sweep.run_periodically(
        engine,
        sweep.Limits.from_settings(settings),
        settings.sweep_interval.total_seconds(),
        services.clock,
        stop=stop,
        on_error=services.metrics.database_error("sweep"),
    )
    mail.MailLoop(engine, settings, clock=services.clock, stop=stop).start()


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
