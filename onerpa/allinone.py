"""``run``: the whole support line in one process, on the embedded default.

The FastAGI server, the dashboard and ``/metrics`` share one process and one SQLite file
(``var/onerpa-support.sqlite3`` unless ``ONERPA_DATABASE_URL`` says otherwise), filled with
demo customers, so a newcomer can place a call with ``simulate-call --server`` and watch it
on the live board. Production runs the three as separate services (docs/operations.md).
"""

from __future__ import annotations

import threading

import click
from prometheus_client import CollectorRegistry, start_http_server

from ivr.app import build_services, close_services, warm_up
from ivr.cli import start_sweeps, wait_for_signal
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.routes import ROUTES
from onerpa.demo import ENTITLED_PHONE, NOT_ENTITLED_PHONE, load_demo
from onerpa.metrics import DatabaseCollector, ProcessMetrics
from onerpa.phone import format_national
from onerpa.startup import load_settings, open_database
from onerpa.timing import Targets


@click.command("run")
@click.option("--no-demo", is_flag=True, help="Do not load the demo customers and users.")
def run_command(no_demo: bool) -> None:
    """Run the FastAGI server, the dashboard and /metrics together (demo set-up)."""
    from dashboard import create_app
    from dashboard.server import serve_in_thread
    from dashboard.users import ensure_demo_users

    settings = load_settings()
    engine = open_database(settings)
    credentials = [] if no_demo else _load_demo(engine, ensure_demo_users)
    # Two registries, as in production: the FastAGI server's own metrics, and the site's
    # call metrics that follow the database (docs/timing.md says which is which).
    process_registry, site_registry = CollectorRegistry(), CollectorRegistry()
    metrics = ProcessMetrics(registry=process_registry, scripts=ROUTES)
    DatabaseCollector(engine, Targets.from_settings(settings), registry=site_registry)
    services = build_services(settings, engine, metrics=metrics)
    stop = threading.Event()
    start_sweeps(engine, services, stop)
    warm_up(services)
    fastagi = FastAGIServer(
        (settings.fastagi_host, settings.fastagi_port), services, allowed=settings.allowed_peers
    )
    start_in_thread(fastagi)
    app = create_app({"ENGINE": engine, "SETTINGS": settings, "DEMO": True})
    board = serve_in_thread(app, settings.dashboard_host, settings.dashboard_port)
    start_http_server(settings.metrics_port, settings.metrics_host, site_registry)
    if settings.fastagi_metrics_port:
        start_http_server(settings.fastagi_metrics_port, settings.metrics_host, process_registry)
    _say_hello(settings, fastagi.port, board.url, credentials)
    wait_for_signal()
    stop.set()
    board.stop()
    fastagi.shutdown()
    fastagi.server_close()
    close_services(services)


def _load_demo(engine, ensure_demo_users):  # type: ignore[no-untyped-def]
    load_demo(engine)
    return ensure_demo_users(engine)


def _say_hello(settings, fastagi_port: int, board_url: str, credentials) -> None:  # type: ignore[no-untyped-def]
    host = settings.fastagi_host
    lines = [
        "OneRPA support line is running (stop with Ctrl+C).",
        f"  FastAGI:   agi://{host}:{fastagi_port}/call   (database: {settings.database_url})",
        f"  Dashboard: {board_url}",
        f"  Metrics:   http://{settings.metrics_host}:{settings.metrics_port}/metrics (calls)",
    ]
    if settings.fastagi_metrics_port:
        port = settings.fastagi_metrics_port
        lines.append(f"             http://{settings.metrics_host}:{port}/metrics (FastAGI server)")
    for cred in credentials:
        lines.append(f"  Sign in as {cred.role}: {cred.username} / {cred.password}")
    entitled, lapsed = format_national(ENTITLED_PHONE), format_national(NOT_ENTITLED_PHONE)
    server = f"{host}:{fastagi_port}"
    lines += [
        "Place a call (another terminal):",
        f'  .venv/bin/onerpa-support simulate-call --server {server} --from "{entitled}" '
        "--digits 2",
        f'  .venv/bin/onerpa-support simulate-call --server {server} --from "{lapsed}" --digits 1',
    ]
    click.echo("\n".join(lines))
