"""The call-timing commands: ``metrics``, ``sweep`` and ``queuelog``."""

from __future__ import annotations

import itertools
import logging
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

import click
from prometheus_client import CollectorRegistry, start_http_server

from onerpa import agents, queuelog, startup, sweep
from onerpa.metrics import DatabaseCollector, LineCollector
from onerpa.timing import Targets

log = logging.getLogger(__name__)

CHUNK = 1000  # queue_log lines per transaction when reading a whole file


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _wait_for_signal(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


@click.command("metrics")
@click.option("--host", default=None, help="Адрес, на котором слушать [ONERPA_METRICS_HOST].")
@click.option("--port", type=int, default=None, help="Порт [ONERPA_METRICS_PORT, 9464].")
@click.option(
    "--sweep/--no-sweep",
    "with_sweep",
    default=False,
    help=(
        "Также закрывать зависшие звонки "
        "(для классического AGI, где этого не делает сервер FastAGI)."
    ),
)
def metrics_command(host: str | None, port: int | None, with_sweep: bool) -> None:
    """Отдавать метрики звонков (из базы) на /metrics."""
    settings = startup.load_settings()
    listen = startup.command_binding(settings, startup.METRICS, host, port)
    startup.ensure_ports_free([listen])
    engine = startup.open_database(settings)
    registry = CollectorRegistry()
    collector = DatabaseCollector(engine, Targets.from_settings(settings), registry=registry)
    # The queue and agents from Asterisk (onerpa.agents); ami_up 0 while AMI is not set up.
    LineCollector(agents.LineMonitor(settings, ttl=1.0).line, settings.calendar, registry=registry)
    start_http_server(listen.port, listen.host, registry)
    click.echo(f"metrics on http://{listen.host}:{listen.port}/metrics", err=True)
    stop = threading.Event()
    if with_sweep:
        errors = collector.errors.labels("sweep")
        sweep.run_periodically(
            engine,
            sweep.Limits.from_settings(settings),
            settings.sweep_interval.total_seconds(),
            _utcnow,
            stop=stop,
            on_error=lambda _err: errors.inc(),
        )
    _wait_for_signal(stop)


@click.command("sweep")
def sweep_command() -> None:
    """Пометить потерянными звонки, «живые» дольше любого настоящего."""
    settings = startup.load_settings()
    engine = startup.open_database(settings)
    marked = sweep.sweep(engine, _utcnow(), sweep.Limits.from_settings(settings))
    click.echo(f"звонков помечено потерянными: {marked}")


@click.command("queuelog")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--follow", is_flag=True, help="Читать дальше по мере записи Asterisk, как tail -F.")
@click.option("--queue", "queues", multiple=True, help="Какую очередь читать [ONERPA_QUEUE].")
@click.option("--all-queues", is_flag=True, help="Читать строки всех очередей.")
def queuelog_command(
    path: Path | None, follow: bool, queues: tuple[str, ...], all_queues: bool
) -> None:
    """Дополнить времена звонков из queue_log Asterisk [ONERPA_QUEUE_LOG]."""
    settings = startup.load_settings()
    engine = startup.open_database(settings)
    path = path or Path(settings.queue_log)
    wanted = () if all_queues else (queues or (settings.queue,))
    if follow:
        ingester = queuelog.Ingester(engine, queues=wanted)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        click.echo(f"following {path}", err=True)
        queuelog.follow(path, ingester, stop=stop.is_set)
        return
    ingester = queuelog.Ingester(engine, queues=wanted, grace=0)
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        while chunk := list(itertools.islice(handle, CHUNK)):
            ingester.feed(chunk)
    counts = ingester.counts
    click.echo(
        f"{counts.applied} lines applied, {counts.unknown} of calls not stored, "
        f"{counts.ignored} ignored, {counts.malformed} malformed"
    )


COMMANDS = [metrics_command, sweep_command, queuelog_command]
