"""The call-flow commands: ``fastagi`` and ``simulate-call``."""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Iterable

import click
from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy import Engine

from ivr import prompts
from ivr.app import build_services, close_services, warm_up
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.routes import ROUTES
from ivr.services import Services
from onerpa import startup, sweep
from onerpa.metrics import ProcessMetrics

log = logging.getLogger(__name__)


@click.command("fastagi")
@click.option("--host", default=None, help="Address to listen on [ONERPA_FASTAGI_HOST].")
@click.option("--port", type=int, default=None, help="Port [ONERPA_FASTAGI_PORT, 4573].")
def fastagi_command(host: str | None, port: int | None) -> None:
    """Run the FastAGI server for Asterisk."""
    settings = startup.load_settings()
    prompts.ensure_fit(settings)
    listen = startup.command_binding(settings, startup.FASTAGI, host, port)
    address = (listen.host, listen.port)
    problem = exposure_problem(address[0], settings.allowed_peers)
    if problem:
        raise startup.StartupError(f"Ошибка настройки: {problem}")
    own_metrics = startup.command_binding(settings, startup.FASTAGI_METRICS, None, None)
    startup.ensure_ports_free([listen, own_metrics])
    engine = startup.open_database(settings)
    registry = CollectorRegistry()
    metrics = ProcessMetrics(registry=registry, scripts=ROUTES)
    services = build_services(settings, engine, metrics=metrics)
    # Host and port: two servers on one machine must not sweep each other's calls at start.
    services.server = f"{services.server}:{address[1]}"
    stop = threading.Event()
    start_sweeps(engine, services, stop)
    warm_up(services)
    server = FastAGIServer(address, services, allowed=settings.allowed_peers)
    start_in_thread(server)
    click.echo(f"FastAGI listening on {address[0]}:{server.port}", err=True)
    if settings.fastagi_metrics_port:
        start_http_server(settings.fastagi_metrics_port, settings.metrics_host, registry)
        url = f"http://{settings.metrics_host}:{settings.fastagi_metrics_port}/metrics"
        click.echo(f"metrics on {url}", err=True)
    wait_for_signal()
    stop.set()
    server.shutdown()
    server.server_close()
    close_services(services)


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
    """Close the calls this server left in the IVR, then sweep stale calls periodically."""
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


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
