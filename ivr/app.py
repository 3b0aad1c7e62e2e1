"""Assemble the call-flow services from settings, and take them down again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ivr.lookup import Directory, DirectoryUnavailable
from ivr.services import Services, system_clock
from onerpa import db, hours
from onerpa.metrics import ProcessMetrics
from onerpa.recorder import CallRecorder
from onerpa.requests import RequestWriter
from onerpa.settings import Settings

log = logging.getLogger(__name__)


def build_services(
    settings: Settings,
    engine: Engine,
    *,
    clock: Callable[[], datetime] = system_clock,
    lookup_workers: int | None = None,
    metrics: ProcessMetrics | None = None,
    records: Engine | None = None,
    records_ready: threading.Event | None = None,
) -> Services:
    """Return the services a route runs with, on ``engine``, reporting to ``metrics``.

    The calls are recorded in ``records`` when given (a private simulation's scratch
    database, so the line's own records stay untouched), else in ``engine``. With
    ``records_ready`` they wait in memory until it is set (the schema checked).
    """
    metrics = metrics or ProcessMetrics()
    workers = lookup_workers or settings.lookup_workers or db.concurrent_reads(engine)
    target = engine if records is None else records
    recorder = CallRecorder(
        target if records_ready is None else cast(Engine, _GatedEngine(target, records_ready)),
        on_error=metrics.database_error("record"),
        on_record=metrics.on_record,
    )
    metrics.watch_recorder(recorder)
    requests = RequestWriter(recorder.engine, wait_for_calls=recorder.flush)
    return Services(
        settings=settings,
        directory=Directory(db.for_single_reads(engine), workers=workers),
        recorder=recorder,
        clock=clock,
        metrics=metrics,
        requests=requests,
    )


class SchemaNotChecked(SQLAlchemyError):
    """The database has not been reached and checked since start-up: records wait."""


class _GatedEngine:
    """An engine whose transactions fail, as a database that is away, until ``ready`` is set.

    Written to an unchecked schema, a call's record could be rejected for good (no table
    yet); refused this way, the recorder keeps it in memory and tries again.
    """

    def __init__(self, engine: Engine, ready: threading.Event) -> None:
        self._engine = engine
        self._ready = ready

    def begin(self) -> Any:
        if not self._ready.is_set():
            raise SchemaNotChecked("схема базы данных ещё не проверена")
        return self._engine.begin()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def warm_up(services: Services, *, directory: bool = True) -> None:
    """Do the one-off work of a first call before the first caller arrives.

    Loading the production calendar and compiling the look-up statements take tens of
    milliseconds once; without this the first calls of a fresh server pay for it. Without
    ``directory`` (the database is known to be away) only the calendar is loaded.
    """
    calendar = services.settings.calendar
    hours.warm_up(calendar, services.clock().astimezone(calendar.zone).date())
    if not directory:
        return
    try:
        services.directory.budget(5.0).by_phone("+70000000000")
    except DirectoryUnavailable as err:  # the database may be away: calls go degraded
        log.warning("customer directory not reachable at start-up: %s", err)


def close_services(services: Services, timeout: float = 5.0) -> None:
    """Write what is pending and release the pools."""
    services.recorder.close(timeout)
    if services.requests is not None:
        services.requests.close(timeout)
    services.directory.close()
