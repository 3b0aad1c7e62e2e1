"""``run``: the whole support line in one process, on the embedded default.

The FastAGI server, the dashboard and ``/metrics`` share one process and one SQLite file
(``var/onerpa-support.sqlite3`` unless ``ONERPA_DATABASE_URL`` says otherwise), filled with
demo customers, so a newcomer can place a call with ``simulate-call --server`` and watch it
on the live board. Production runs the three as separate services (docs/operations.md).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from prometheus_client import CollectorRegistry, start_http_server
from sqlalchemy import Engine

from ivr import prompts
from ivr.app import build_services, close_services, warm_up
from ivr.cli import start_sweeps, wait_for_signal
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.routes import ROUTES
from onerpa.demo import ENTITLED_PHONE, NOT_ENTITLED_PHONE, load_demo
from onerpa.metrics import DatabaseCollector, ProcessMetrics
from onerpa.phone import format_national
from onerpa.settings import Settings
from onerpa.startup import ALL_PORTS, load_settings, open_database, port_options
from onerpa.timing import Targets

SIGN_INS_FILE = "demo-sign-ins.json"  # the demo passwords, kept between runs


@click.command("run")
@click.option("--no-demo", is_flag=True, help="Не загружать демо-клиентов и демо-сотрудников.")
@click.option(
    "--no-demo-calls", is_flag=True, help="Не добавлять к демо-данным месяц прошлых звонков."
)
@port_options(*ALL_PORTS)
def run_command(no_demo: bool, no_demo_calls: bool) -> None:
    """Запустить вместе сервер FastAGI, панель и /metrics (демо)."""
    from dashboard import create_app
    from dashboard.server import serve_in_thread

    settings = load_settings(listening=ALL_PORTS)  # every port free before anything starts
    prompts.ensure_fit(settings)  # the caller hears these hours and this address
    engine = open_database(settings)
    credentials = [] if no_demo else load_demo_set(engine, settings, calls=not no_demo_calls)
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


def load_demo_set(engine: Engine, settings: Settings, *, calls: bool = True) -> list[Any]:
    """Load the demo customers (with a month of calls), the demo users; return the sign-ins."""
    from dashboard.users import ensure_demo_users

    load_demo(engine, calls=calls, now=datetime.now(UTC), calendar=settings.calendar)
    return ensure_demo_users(engine, remember=sign_ins_file(engine))


def sign_ins_file(engine: Engine) -> Path:
    """Return where the demo passwords are kept between runs: beside the SQLite file."""
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not database.startswith("file:"):
        return Path(database).parent / SIGN_INS_FILE
    return Path("var") / SIGN_INS_FILE


def _say_hello(settings, fastagi_port: int, board_url: str, credentials) -> None:  # type: ignore[no-untyped-def]
    host = settings.fastagi_host
    roles = {"agent": "агент", "supervisor": "руководитель"}
    lines = [
        "Линия поддержки OneRPA работает (остановить: Ctrl+C).",
        f"  FastAGI:    agi://{host}:{fastagi_port}/call   (база данных: {settings.database_url})",
        f"  Табло:      {board_url}",
        f"  Метрики:    http://{settings.metrics_host}:{settings.metrics_port}/metrics (звонки)",
    ]
    if settings.fastagi_metrics_port:
        port = settings.fastagi_metrics_port
        lines.append(
            f"              http://{settings.metrics_host}:{port}/metrics (сервер FastAGI)"
        )
    for cred in credentials:
        role = roles.get(str(cred.role), str(cred.role))
        lines.append(f"  Вход ({role}): {cred.username} / {cred.password}")
    entitled, lapsed = format_national(ENTITLED_PHONE), format_national(NOT_ENTITLED_PHONE)
    server = f"{host}:{fastagi_port}"
    lines += [
        "Позвоните на линию (из другого терминала):",
        f'  .venv/bin/onerpa-support simulate-call --server {server} --from "{entitled}" '
        "--digits 2 --agent PJSIP/101 --wait 5 --talk 200",
        f'  .venv/bin/onerpa-support simulate-call --server {server} --from "{lapsed}" --digits 1',
    ]
    click.echo("\n".join(lines))
