"""Assemble the call-flow services from settings, and take them down again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from ivr.lookup import Directory, DirectoryUnavailable
from ivr.services import Services, system_clock
from onerpa import db, hours
from onerpa.metrics import ProcessMetrics
from onerpa.recorder import CallRecorder
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
) -> Services:
    """Return the services a route runs with, on ``engine``, reporting to ``metrics``.

    The calls are recorded in ``records`` when given (a private simulation's scratch
    database, so the line's own records stay untouched), else in ``engine``.
    """
    metrics = metrics or ProcessMetrics()
    workers = lookup_workers or settings.lookup_workers or db.concurrent_reads(engine)
    recorder = CallRecorder(
        engine if records is None else records,
        on_error=metrics.database_error("record"),
        on_record=metrics.on_record,
    )
    metrics.watch_recorder(recorder)
    return Services(
        settings=settings,
        directory=Directory(db.for_single_reads(engine), workers=workers),
        recorder=recorder,
        clock=clock,
        metrics=metrics,
    )


def warm_up(services: Services) -> None:
    """Do the one-off work of a first call before the first caller arrives.

    Loading the production calendar and compiling the look-up statements take tens of
    milliseconds once; without this the first calls of a fresh server pay for it.
    """
    calendar = services.settings.calendar
    hours.warm_up(calendar, services.clock().astimezone(calendar.zone).date())
    try:
        services.directory.budget(5.0).by_phone("+70000000000")
    except DirectoryUnavailable as err:  # the database may be away: calls go degraded
        log.warning("customer directory not reachable at start-up: %s", err)


def close_services(services: Services, timeout: float = 5.0) -> None:
    """Write what is pending and release the pools."""
    services.recorder.close(timeout)
    services.directory.close()
