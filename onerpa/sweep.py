"""Close calls that no signal will ever close, with an explicit status instead of a guess.

A hang-up hook can be missed: Asterisk restarted, the FastAGI server was down, the network
dropped the connection. Such a call would stay "live" forever and distort every figure, so
the sweep marks it ``lost`` with ``ended_by = sweep`` and leaves ``ended_at`` empty: the
moment it ended is unknown, and inventing one would corrupt the timings. A real signal that
still arrives later replaces the verdict (see ``onerpa.recorder.merge``).

Two sweeps:
- by age, run periodically: calls in the IVR, in the queue or talking for longer than any
  real call could (limits in the settings);
- at the start of a FastAGI server: its own calls left in the IVR died with the process
  that served them (calls in the queue or talking live on in Asterisk and are left alone).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, func, or_, select

from onerpa.callstatus import CallStatus, EndedBy
from onerpa.models import Call
from onerpa.recorder import CallKey, Change, Source, apply_changes
from onerpa.settings import Settings

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True)
class Limits:
    """How long a call may stay in each live status before it is taken for lost."""

    in_ivr: timedelta = timedelta(minutes=15)
    queued: timedelta = timedelta(hours=2)
    talking: timedelta = timedelta(hours=4)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """Return the limits ``settings`` configure."""
        return cls(settings.sweep_in_ivr, settings.sweep_queued, settings.sweep_talking)


def lost_change() -> Change:
    """Return the sweep's verdict on a call: lost, ended by the sweep, end time unknown."""
    return Change(
        Source.SWEEP,
        status=CallStatus.LOST.value,
        with_status={"ended_by": EndedBy.SWEEP.value},
    )


def stale_calls(engine: Engine, now: datetime, limits: Limits) -> list[str]:
    """Return the references of live calls older than their status allows."""
    since = {
        CallStatus.IN_IVR: Call.arrived_at,
        CallStatus.QUEUED: func.coalesce(Call.queued_at, Call.arrived_at),
        CallStatus.TALKING: func.coalesce(Call.answered_at, Call.arrived_at),
    }
    limit = {
        CallStatus.IN_IVR: limits.in_ivr,
        CallStatus.QUEUED: limits.queued,
        CallStatus.TALKING: limits.talking,
    }
    overdue = or_(*[and_(Call.status == s.value, since[s] < now - limit[s]) for s in since])
    # The status IN (...) part lets the status index pick the few live calls.
    condition = and_(Call.status.in_([s.value for s in since]), overdue)
    with engine.connect() as conn:
        return list(conn.scalars(select(Call.call_ref).where(condition).order_by(Call.id)))


def orphans_of(engine: Engine, server: str) -> list[str]:
    """Return the calls ``server`` left in the IVR (its process ended with them inside)."""
    query = select(Call.call_ref).where(
        Call.status == CallStatus.IN_IVR.value, Call.server == server
    )
    with engine.connect() as conn:
        return list(conn.scalars(query.order_by(Call.id)))


def mark_lost(engine: Engine, refs: list[str], now: datetime) -> int:
    """Mark the calls ``refs`` lost (those still live); return how many were."""
    marked = 0
    for start in range(0, len(refs), BATCH):
        with engine.begin() as conn:
            for ref in refs[start : start + BATCH]:
                found = apply_changes(conn, CallKey(call_ref=ref), [lost_change()], now)
                marked += any(t.kind == "swept" for t in found)
    return marked


def sweep(engine: Engine, now: datetime, limits: Limits) -> int:
    """Close the live calls older than ``limits``; return how many were closed."""
    marked = mark_lost(engine, stale_calls(engine, now, limits), now)
    if marked:
        log.warning("sweep: %d calls had no end signal and were marked lost", marked)
    return marked


def sweep_at_start(engine: Engine, server: str, now: datetime) -> int:
    """Close the calls a restarted server ``server`` left in the IVR; return how many."""
    marked = mark_lost(engine, orphans_of(engine, server), now)
    if marked:
        log.warning("start-up: %d calls of %s were left in the IVR: marked lost", marked, server)
    return marked


def run_periodically(
    engine: Engine,
    limits: Limits,
    interval: float,
    clock: Callable[[], datetime],
    *,
    stop: threading.Event,
    on_error: Callable[[Exception], None] | None = None,
) -> threading.Thread:
    """Sweep every ``interval`` seconds in a daemon thread until ``stop`` is set."""

    def loop() -> None:
        while not stop.wait(interval):
            try:
                sweep(engine, clock(), limits)
            except Exception as err:  # a database away now is retried at the next round
                log.warning("sweep failed: %s", err)
                if on_error is not None:
                    on_error(err)

    thread = threading.Thread(target=loop, name="sweep", daemon=True)
    thread.start()
    return thread
