"""The live board (every current call) and "my call" (the call an agent is on), with JSON.

The pages are shells; ``static/live.js`` polls the JSON and draws the calls with
``textContent`` only. Timers tick in the browser from the server's start time and the
server's "now", so the browser's own clock never matters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template, url_for
from flask_login import current_user
from sqlalchemy import Row, select

from dashboard import labels, queries
from dashboard.db import get_db, now, settings_of
from onerpa import callback, timing
from onerpa.callstatus import CallStatus
from onerpa.models import Customer, SupportRequest

log = logging.getLogger(__name__)

bp = Blueprint("board", __name__)

RECENT_CACHE = "onerpa_recent_calls"

PHASES = {
    CallStatus.IN_IVR.value: "ivr",
    CallStatus.QUEUED.value: "wait",
    CallStatus.TALKING.value: "talk",
}
# A wait turns amber past the answer target and red past this many times it.
WAIT_RED_FACTOR = 2
CALLBACKS_SHOWN = 50  # call-back requests shown among the waiting callers


@bp.route("/")
def index() -> Any:
    """Show the live board."""
    return render_template("board/index.html", **_live_config("board.data"))


@bp.route("/my-call")
def my_call() -> Any:
    """Show the call that has just reached the signed-in agent."""
    return render_template("board/my_call.html", **_live_config("board.my_call_data"))


@bp.route("/api/board")
def data() -> Any:
    """Return every live call with its caller's context, as JSON."""
    session, moment = get_db(), now()
    calls = queries.live_calls(session, moment)
    recent = recent_calls(session, calls)
    view = _View(moment)
    body = view.envelope()
    body["calls"] = [view.call(row, recent(row)) for row in calls]
    body["callbacks"] = waiting_callbacks(session, moment)
    return jsonify(body)


@bp.route("/api/my-call")
def my_call_data() -> Any:
    """Return the signed-in agent's current call and the last one they finished."""
    session, moment = get_db(), now()
    current, last = queries.agent_calls(session, current_user, moment)
    view = _View(moment)
    body = view.envelope()
    body["linked"] = bool(current_user.member_interface or current_user.member_name)
    body["interface"] = current_user.member_interface or current_user.member_name or ""
    body["call"] = None
    if current is not None:
        body["call"] = view.call(current, recent_calls(session, [current])(current))
    body["last"] = view.last(session, last) if last is not None else None
    return jsonify(body)


def waiting_callbacks(session: Any, moment: datetime) -> list[dict[str, Any]]:
    """Return the callers waiting for a call-back, each with its place (when their call
    arrived), for the board to show among the callers waiting in the queue.

    A call-back being placed right now is not waiting; one whose customer did not answer is
    back in its place.
    """
    spool = callback.Spool.from_settings(settings_of())
    try:
        callback.collect(current_app.config["ENGINE"], spool)  # calls that came back
    except OSError as err:
        log.warning("call-back results not read: %s", err)
    requests = SupportRequest.__table__
    rows = session.execute(
        select(requests, Customer.organisation)
        .outerjoin(Customer, Customer.id == requests.c.customer_id)
        .where(requests.c.kind == "callback", requests.c.status.in_(callback.OPEN))
        .order_by(requests.c.place_at, requests.c.id)
        .limit(CALLBACKS_SHOWN)
    ).mappings()
    found = []
    for row in rows:
        if callback.in_progress(spool, row["id"]):
            continue
        place = row["place_at"] or row["received_at"]
        found.append(
            {
                "id": row["id"],
                "url": url_for("requests.index") + f"#request-{row['id']}",
                "place_ms": _ms(place),
                "caller": labels.caller_number(row["caller_e164"], row["callerid_raw"]),
                "organisation": row["organisation"] or "",
                "attempts": row["attempts"],
                "due_state": callback.due(row["received_at"], row["due_at"], moment).state,
            }
        )
    return found


def recent_calls(session: Any, calls: Sequence[Row[Any]]) -> Callable[[Row[Any]], list[Row[Any]]]:
    """Return a function giving each call's caller's last calls, without the live ones."""
    shown = current_app.config["RECENT_CALLS"]
    cache: RecentCache = current_app.extensions[RECENT_CACHE]
    keys = {key for key in map(queries.caller_key, calls) if key is not None}
    known = cache.get_many(keys)
    missing = keys - known.keys()
    if missing:
        # A few more than shown: the caller's live calls are among them and are dropped.
        fetched = queries.recent_calls(session, missing, shown + 2)
        cache.put_many(fetched)
        known.update(fetched)
    live = {call.id for call in calls}

    def of(call: Row[Any]) -> list[Row[Any]]:
        rows = known.get(queries.caller_key(call), [])  # type: ignore[arg-type]
        return [row for row in rows if row.id not in live][:shown]

    return of


class RecentCache:
    """Callers' last calls, kept a few seconds: they hardly change while a call is live.

    Every agent's board asks for the same callers every poll; without this each poll would
    run one index scan per caller. Per process, bounded, and keyed on the real clock.
    """

    def __init__(self, ttl: float, max_keys: int = 5000) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self._items: dict[queries.CallerKey, tuple[float, list[Row[Any]]]] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: set[queries.CallerKey]) -> dict[queries.CallerKey, list[Row[Any]]]:
        fresh_after = time.monotonic() - self.ttl
        with self._lock:
            return {
                key: item[1]
                for key in keys
                if (item := self._items.get(key)) is not None and item[0] > fresh_after
            }

    def put_many(self, found: dict[queries.CallerKey, list[Row[Any]]]) -> None:
        if self.ttl <= 0:
            return
        stamp = time.monotonic()
        with self._lock:
            if len(self._items) + len(found) > self.max_keys:
                self._items.clear()
            self._items.update((key, (stamp, rows)) for key, rows in found.items())


def init_app(app: Flask) -> None:
    """Give the app its cache of callers' last calls."""
    app.extensions[RECENT_CACHE] = RecentCache(app.config["RECENT_CALLS_TTL_SECONDS"])


def _live_config(endpoint: str) -> dict[str, Any]:
    return {
        "data_url": url_for(endpoint),
        "poll_ms": current_app.config["BOARD_POLL_MS"],
        "thresholds": thresholds(timing.Targets.from_settings(settings_of())),
    }


def thresholds(targets: timing.Targets) -> dict[str, dict[str, float]]:
    """Return where each phase's timer turns amber and red, in seconds, by phase.

    Waiting is held to the answer target (amber past it, red past twice it); talking to
    the consultation target and limit. Time in the menu is not graded.
    """
    return {
        "wait": {"amber_seconds": targets.wait, "red_seconds": targets.wait * WAIT_RED_FACTOR},
        "talk": {
            "amber_seconds": targets.consultation_target,
            "red_seconds": targets.consultation_limit,
        },
    }


class _View:
    """Turn call rows into the JSON the pages draw."""

    def __init__(self, moment: datetime) -> None:
        settings = settings_of()
        self.moment = moment
        self.zone = settings.calendar.zone
        self.thresholds = thresholds(timing.Targets.from_settings(settings))
        self.calls_url = url_for("calls.index")
        self.customers_url = url_for("customers.index")

    def envelope(self) -> dict[str, Any]:
        return {
            "now": self.moment.isoformat(),
            "now_ms": _ms(self.moment),
            # The moment in the line's time zone, as every other time on the pages.
            "now_local": self.moment.astimezone(self.zone).strftime("%H:%M:%S"),
            "thresholds": self.thresholds,
        }

    def call(self, row: Row[Any], recent: list[Row[Any]]) -> dict[str, Any]:
        return {
            "id": row.id,
            "call_ref": row.call_ref,
            "url": f"{self.calls_url}/{row.id}",
            "status": row.status,
            "status_label": labels.status_label(row.status),
            "step": row.step,
            "caller": {
                "name": labels.caller_name(row.callerid_name),
                "number": row.callerid_raw,
                "e164": row.caller_e164,
                "display": labels.caller_number(row.caller_e164, row.callerid_raw),
            },
            "customer": self.customer(row),
            "decision": {
                "code": row.decision,
                "label": labels.decision_label(row.decision),
                "tone": labels.decision_tone(row.decision),
                "explanation": row.explanation,
                # The facts the decision was made on, in words, as stored with the call.
                "evidence": [
                    {"kind": line.kind, "text": line.text, "applied": line.applied}
                    for line in labels.evidence_lines(row.evidence)
                ],
            },
            "topic": {"code": row.topic, "label": labels.topic_label(row.topic)},
            "digits": row.digits,
            "agent": row.agent or row.agent_interface or "",
            "timer": self.timer(row),
            "recent": [self.recent(item) for item in recent],
        }

    def customer(self, row: Row[Any]) -> dict[str, Any] | None:
        if row.customer_id is None:
            return None
        return {
            "id": row.customer_id,
            "url": f"{self.customers_url}/{row.customer_id}",
            "number": row.customer_number,
            "organisation": row.organisation,
            "contact": row.contact_name,
            "email": row.email,
        }

    def timer(self, row: Row[Any]) -> dict[str, Any]:
        started = _phase_start(row)
        elapsed = max(0.0, (self.moment - started).total_seconds())
        phase = PHASES.get(row.status, "ivr")
        return {
            "phase": phase,
            "label": labels.TIMER_PHASES.get(row.status, ""),
            "started_at": started.isoformat(),
            "started_ms": _ms(started),
            "elapsed_seconds": int(elapsed),
            "state": timer_state(elapsed, self.thresholds.get(phase)),
        }

    def recent(self, row: Row[Any]) -> dict[str, Any]:
        return {
            "id": row.id,
            "url": f"{self.calls_url}/{row.id}",
            "at": row.arrived_at.astimezone(self.zone).strftime("%d.%m.%Y %H:%M"),
            "status_label": labels.status_label(row.status),
            "decision_label": labels.decision_label(row.decision),
            "topic_label": labels.topic_label(row.topic),
        }

    def last(self, session: Any, row: Row[Any]) -> dict[str, Any]:
        wrapped = bool(queries.latest_wrapups(session, [row.id]))
        return {
            "id": row.id,
            "url": f"{self.calls_url}/{row.id}",
            "organisation": row.organisation or "",
            "caller": labels.caller_number(row.caller_e164, row.callerid_raw),
            "ended_at": row.ended_at.isoformat() if row.ended_at else None,
            "wrapped_up": wrapped,
        }


def timer_state(elapsed: float, marks: dict[str, float] | None) -> str:
    """Return ``ok``, ``amber`` (past the phase's target) or ``red``; ``none`` if ungraded."""
    if marks is None:
        return "none"
    if elapsed > marks["red_seconds"]:
        return "red"
    if elapsed > marks["amber_seconds"]:
        return "amber"
    return "ok"


def _phase_start(row: Row[Any]) -> datetime:
    if row.status == CallStatus.TALKING and row.answered_at is not None:
        return row.answered_at
    if row.status == CallStatus.QUEUED and row.queued_at is not None:
        return row.queued_at
    return row.arrived_at


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
