"""«Обращения»: voice messages and call-back requests, their deadlines, and the call-back.

Agents and supervisors alike take a request, play its recording, mark it answered or
declined with a note (audited), and press «Перезвонить» to have Asterisk call the customer
back through the agent's phone (onerpa/callback.py). The countdown to each deadline is
computed here and ticked by ``static/requests.js``.

Recordings are served by the request's number only: the file is the one the request names,
and only when it lies inside ``ONERPA_RECORDINGS_DIR`` — no path ever comes from the browser.

Taking and closing go through ``onerpa.requests`` (take, answer, decline), audited in the
same transaction; the call-back through ``onerpa.callback``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    send_file,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import Connection, Engine, Row, insert, select
from sqlalchemy.orm import Session
from wtforms import HiddenField, IntegerField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NumberRange

from dashboard import labels
from dashboard.db import get_db, now, settings_of
from dashboard.users import audit
from onerpa import callback
from onerpa import requests as requests_core
from onerpa.models import Customer, SupportRequest
from onerpa.staff import AuditEntry

log = logging.getLogger(__name__)

bp = Blueprint("requests", __name__, url_prefix="/requests")

REQUESTS = SupportRequest.__table__
SHOWN = 500
NOTE_MAX = 2000


class TakeForm(FlaskForm):
    pass


class CloseForm(FlaskForm):
    outcome = HiddenField(validators=[AnyOf(("answered", "declined"))])
    note = TextAreaField(
        "Что ответили или почему отклонено",
        validators=[
            DataRequired("Напишите, что ответили или почему отклонено"),
            Length(max=NOTE_MAX),
        ],
    )


class CallbackForm(FlaskForm):
    attempts = IntegerField(validators=[InputRequired(), NumberRange(min=0, max=100)])


@dataclass(frozen=True)
class Entry:
    """One open request as the page shows it."""

    row: Row[Any]
    due: callback.Due
    recording: str  # "ok", "missing" (named, not on disk) or "none"
    calling: bool  # a call-back is in the spool right now
    may_call_back: bool

    @property
    def due_ms(self) -> int:
        return int(self.row.due_at.timestamp() * 1000)

    @property
    def amber_ms(self) -> int:
        """The moment the countdown turns amber (onerpa.callback.due's rule)."""
        amber = callback.amber_from(self.row.received_at, self.row.due_at)
        return int(amber.timestamp() * 1000)


@bp.route("")
def index() -> Any:
    """List the open requests, most urgent first, with their countdowns."""
    settings = settings_of()
    spool = callback.Spool.from_settings(settings)
    try:
        callback.collect(current_engine(), spool)
    except OSError as err:  # the results wait for the next look; the list still shows
        log.warning("call-back results not read: %s", err)
    moment = now()
    entries = [entry(row, moment, spool) for row in open_requests(get_db())]
    return render_template(
        "requests/index.html",
        entries=entries,
        now_ms=int(moment.timestamp() * 1000),
        max_attempts=settings.callback_max_attempts,
        take_form=TakeForm(),
        close_form=CloseForm(formdata=None),
        callback_form=CallbackForm(formdata=None),
    )


def open_requests(session: Session) -> list[Row[Any]]:
    """Return the open requests with their customer, earliest deadline first."""
    query = (
        select(*REQUESTS.c, Customer.organisation, Customer.customer_number)
        .outerjoin(Customer, Customer.id == REQUESTS.c.customer_id)
        .where(REQUESTS.c.status.in_(callback.OPEN))
        .order_by(REQUESTS.c.due_at, REQUESTS.c.id)
        .limit(SHOWN)
    )
    return list(session.execute(query))


def entry(row: Any, moment: datetime, spool: callback.Spool) -> Entry:
    max_attempts = settings_of().callback_max_attempts
    calling = callback.in_progress(spool, row.id)
    return Entry(
        row=row,
        due=callback.due(row.received_at, row.due_at, moment),
        recording=recording_state(row),
        calling=calling,
        may_call_back=(
            not calling
            and callback.dial_number(row.caller_e164) is not None
            and row.attempts < max_attempts
        ),
    )


def recording_state(row: Any) -> str:
    if not row.recording_path:
        return "none"
    return "ok" if recording_file(row.recording_path) is not None else "missing"


def recording_file(stored: str) -> Path | None:
    """Return the recording file ``stored`` names, if it exists inside the recordings folder."""
    folder = Path(settings_of().recordings_dir).resolve()
    try:
        path = (folder / stored).resolve()  # an absolute ``stored`` replaces the folder
    except (OSError, ValueError):
        return None
    if not path.is_relative_to(folder) or not path.is_file():
        return None
    return path


@bp.route("/<int:request_id>/recording")
def recording(request_id: int) -> Any:
    """Play a request's recording: staff only, found by the request, never by a path."""
    stored = get_db().scalar(
        select(SupportRequest.recording_path).where(SupportRequest.id == request_id)
    )
    path = recording_file(stored) if stored else None
    if path is None:
        abort(404)
    response = send_file(path, mimetype="audio/wav", conditional=True, max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/<int:request_id>/take", methods=("POST",))
def take(request_id: int) -> Any:
    """Take a new request into work for the signed-in user."""
    if not TakeForm().validate():
        abort(400)
    try:
        requests_core.take(current_engine(), request_id, current_user.username, now(), audit=_audit)
    except requests_core.RequestError as err:
        flash(f"Обращение №{request_id}: {err}.", "error")
    else:
        flash(f"Обращение №{request_id} у вас в работе.", "ok")
    return redirect(url_for("requests.index"))


@bp.route("/<int:request_id>/close", methods=("POST",))
def close(request_id: int) -> Any:
    """Mark a request answered or declined, with a note."""
    form = CloseForm()
    if not form.validate():
        for errors in form.errors.values():
            flash(f"Обращение №{request_id}: {errors[0]}.", "error")
        return redirect(url_for("requests.index"))
    outcome, note = form.outcome.data, (form.note.data or "").strip()
    close_with = requests_core.answer if outcome == "answered" else requests_core.decline
    try:
        close_with(current_engine(), request_id, current_user.username, now(), note, audit=_audit)
    except requests_core.RequestError as err:
        flash(f"Обращение №{request_id}: {err}.", "error")
    else:
        flash(f"Обращение №{request_id}: {labels.request_status_label(outcome).lower()}.", "ok")
    return redirect(url_for("requests.index"))


_AUDITED = {"take": "request.take", "answer": "request.answer", "decline": "request.decline"}


def _audit(conn: Connection, action: str, before: Any, after: Any) -> None:
    """Write the audit entry in the change's own transaction (onerpa.requests' hook)."""
    conn.execute(
        insert(AuditEntry).values(
            at=after.closed_at or after.taken_at or now(),
            username=current_user.username,
            action=_AUDITED.get(action, f"request.{action}"),
            target_type="request",
            target_id=str(after.id),
            details=" ".join((after.note or "").split("\n")[-1:]) if action != "take" else "",
        )
    )


@bp.route("/<int:request_id>/callback", methods=("POST",))
def call_back(request_id: int) -> Any:
    """Have Asterisk ring the signed-in agent's phone, then call the customer."""
    form = CallbackForm()
    if not form.validate():
        abort(400)
    settings = settings_of()
    spool = callback.Spool.from_settings(settings)
    moment = now()
    try:
        attempt = callback.place(
            current_engine(),
            spool,
            request_id,
            agent=current_user.username,
            interface=current_user.member_interface,
            seen_attempts=form.attempts.data,
            max_attempts=settings.callback_max_attempts,
            now=moment,
        )
    except callback.CallbackRefused as refused:
        flash(f"Обращение №{request_id}: {refused.message}", "error")
        return redirect(url_for("requests.index"))
    session = get_db()
    details = f"attempt {attempt} via {current_user.member_interface}"
    user = current_user.username
    audit(session, user, "request.callback", "request", request_id, details, at=moment)
    session.commit()
    flash(
        f"Обращение №{request_id}: сейчас зазвонит ваш телефон, снимите трубку — "
        f"затем мы наберём клиента (попытка {attempt} из {settings.callback_max_attempts}).",
        "ok",
    )
    return redirect(url_for("requests.index"))


def current_engine() -> Engine:
    """Return the app's engine: call-backs commit on their own connection, not the session."""
    engine: Engine = current_app.config["ENGINE"]
    return engine
