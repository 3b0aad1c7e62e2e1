"""The call-flow commands: ``fastagi`` and ``simulate-call``."""

from __future__ import annotations

import logging
import signal
import threading

import click
from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy import Engine

from ivr.app import build_services, close_services
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.routes import ROUTES
from ivr.services import Services
from onerpa import sweep
from onerpa.cli import load_settings, open_database
from onerpa.metrics import ProcessMetrics

log = logging.getLogger(__name__)


@click.command("fastagi")
@click.option("--host", default=None, help="Address to listen on [ONERPA_FASTAGI_HOST].")
@click.option("--port", type=int, default=None, help="Port [ONERPA_FASTAGI_PORT, 4573].")
def fastagi_command(host: str | None, port: int | None) -> None:
    """Run the FastAGI server for Asterisk."""
    settings = load_settings()
    engine = open_database(settings)
    registry = CollectorRegistry()
    metrics = ProcessMetrics(registry=registry, scripts=ROUTES)
    services = build_services(settings, engine, metrics=metrics)
    stop = threading.Event()
    start_sweeps(engine, services, stop)
    address = (host or settings.fastagi_host, port or settings.fastagi_port)
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
