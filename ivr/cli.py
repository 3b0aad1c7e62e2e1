"""The call-flow commands: ``fastagi`` and ``simulate-call``."""

from __future__ import annotations

import logging
import signal
import threading

import click

from ivr.app import build_services, close_services
from ivr.fastagi import FastAGIServer, start_in_thread
from onerpa.cli import load_settings, open_database

log = logging.getLogger(__name__)


@click.command("fastagi")
@click.option("--host", default=None, help="Address to listen on [ONERPA_FASTAGI_HOST].")
@click.option("--port", type=int, default=None, help="Port [ONERPA_FASTAGI_PORT, 4573].")
def fastagi_command(host: str | None, port: int | None) -> None:
    """Run the FastAGI server for Asterisk."""
    settings = load_settings()
    engine = open_database(settings)
    services = build_services(settings, engine)
    address = (host or settings.fastagi_host, port or settings.fastagi_port)
    server = FastAGIServer(address, services, allowed=settings.allowed_peers)
    start_in_thread(server)
    click.echo(f"FastAGI listening on {address[0]}:{server.port}", err=True)
    wait_for_signal()
    server.shutdown()
    server.server_close()
    close_services(services)


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
