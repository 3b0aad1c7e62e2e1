"""Agents on the line: "На линии", "Перерыв", "Уйти с линии", and the live queue as JSON.

Every change goes to Asterisk over AMI first (QueueAdd/QueuePause/QueueRemove) and is
recorded only once Asterisk has made it; when AMI is down the agent reads why and nothing
is recorded. ``/api/line`` is what the board's queue panel draws: callers waiting, agents
by state, read from Asterisk at most every ``AMI_CACHE_SECONDS`` per process.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import RadioField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from dashboard import labels
from dashboard.auth import supervisor_required
from dashboard.db import get_db, now, settings_of
from dashboard.users import audit
from onerpa import agents, phone
from onerpa.agents import Line, LineError, LineMonitor
from onerpa.models import AgentPause, AgentSession, Call
from onerpa.staff import User

bp = Blueprint("agents", __name__)
log = logging.getLogger(__name__)

EXTENSION = "onerpa_line"
WAIT_RED_FACTOR = 2  # as the board: amber past the answer target, red past twice it


class LineForm(FlaskForm):
    """A line button: only the CSRF token."""


class PauseForm(FlaskForm):
    reason = RadioField(
        "Причина",
        choices=[SelectChoice(code, label) for code, label in agents.PAUSE_REASONS.items()],
        validators=[InputRequired("Выберите причину перерыва")],
    )


def monitor(app: Flask | None = None) -> LineMonitor:
    """Return the app's AMI link, made on first use (``AMI_CACHE_SECONDS``: its cache)."""
    app = app or current_app
    found = app.extensions.get(EXTENSION)
    if found is None:
        made = LineMonitor(settings_of(app), ttl=app.config.get("AMI_CACHE_SECONDS", 1.5))
        found = app.extensions.setdefault(EXTENSION, made)
    return found


def current_line(session: Session) -> Line:
    """Return the live queue, reconciling the stored sessions when it was read afresh."""
    line = monitor().line()
    state = current_app.extensions.setdefault(EXTENSION + "_seen", {"line": None})
    if line.ok and state["line"] is not line:
        state["line"] = line
        users = session.scalars(select(User).where(User.member_interface.is_not(None))).all()
        if agents.reconcile(session, line, users, now()):
            session.commit()
    return line


# -- the agent's own buttons ------------------------------------------------------------------


@bp.route("/agents")
def index() -> Any:
    """Show the signed-in agent's line state and buttons (and, to supervisors, everyone)."""
    session = get_db()
    line = current_line(session)
    user = session.get(User, current_user.id)
    team = _team(session, line) if current_user.is_supervisor else []
    return render_template(
        "agents/index.html",
        line=line,
        line_error=labels.LINE_ERRORS.get(line.error or "", ""),
        me=_agent_view(session, user, line),
        team=team,
        form=LineForm(),
        pause_form=PauseForm(),
        reasons=agents.PAUSE_REASONS,
    )


@bp.route("/agents/on", methods=("POST",))
def on_line() -> Any:
    """Go on the line: Asterisk adds the agent's phone to the support queue."""
    return _act(LineForm(), lambda s, u, m: agents.go_on_line(s, m, u, now()), "Вы на линии.")


@bp.route("/agents/pause", methods=("POST",))
def pause() -> Any:
    """Take a break with a reason: Asterisk stops ringing the agent's phone."""
    form = PauseForm()
    if not form.validate_on_submit():
        flash("Выберите причину перерыва.", "error")
        return redirect(url_for("agents.index"))
    reason = form.reason.data
    text = f"Перерыв: {agents.PAUSE_REASONS[reason]}."
    return _act(form, lambda s, u, m: agents.pause(s, m, u, reason, now()), text)


@bp.route("/agents/back", methods=("POST",))
def back() -> Any:
    """End the break."""
    return _act(LineForm(), lambda s, u, m: agents.resume(s, m, u, now()), "Вы снова на линии.")


@bp.route("/agents/off", methods=("POST",))
def off_line() -> Any:
    """Leave the line: Asterisk removes the agent's phone from the queue."""

    def leave(session: Session, user: User, line: LineMonitor) -> None:
        if not user.member_interface:
            raise LineError("У вас не указан телефон (интерфейс в очереди).")
        agents.go_off_line(session, line, user.member_interface, now(), by="agent")

    return _act(LineForm(), leave, "Вы ушли с линии.")


@bp.route("/agents/<int:user_id>/off", methods=("POST",))
@supervisor_required
def take_off(user_id: int) -> Any:
    """Take an agent off the line (a supervisor); written to the audit log."""
    if not LineForm().validate_on_submit():
        abort(400)
    session = get_db()
    agent = session.get(User, user_id)
    if agent is None or not agent.member_interface:
        abort(404)
    try:
        agents.go_off_line(session, monitor(), agent.member_interface, now(), by="supervisor")
    except LineError as err:
        session.rollback()
        flash(str(err), "error")
        return redirect(url_for("agents.index"))
    audit(session, current_user.username, "agent.off_line", "user", agent.id, agent.username)
    session.commit()
    flash(f"{agent.display_name or agent.username}: снят(а) с линии.", "ok")
    return redirect(url_for("agents.index"))


def _act(form: FlaskForm, change: Any, done: str) -> Any:
    if not form.validate_on_submit():
        abort(400)
    session = get_db()
    user = session.get(User, current_user.id)
    try:
        change(session, user, monitor())
    except LineError as err:
        session.rollback()
        flash(str(err), "error")
        return redirect(url_for("agents.index"))
    session.commit()
    flash(done, "ok")
    return redirect(url_for("agents.index"))


# -- the live queue, for the board ------------------------------------------------------------


@bp.route("/api/line")
def line_data() -> Any:
    """Return the queue now: callers waiting, agents and their states, as JSON."""
    session = get_db()
    line = current_line(session)
    moment = now()
    body: dict[str, Any] = {
        "now_ms": _ms(moment),
        "queue": line.queue,
        "ok": line.ok,
        "error": line.error,
        "error_text": labels.LINE_ERRORS.get(line.error or "", ""),
    }
    if not line.ok:
        return jsonify(body)
    target = settings_of().wait_target.total_seconds()
    free = line.counts()[agents.FREE]
    body["callers"] = [_caller(entry, target) for entry in line.entries]
    body["agents"] = _team(session, line)
    body["summary"] = {
        "waiting": len(line.entries),
        "longest_wait_seconds": line.longest_wait,
        "longest_wait_state": _wait_state(line.longest_wait, target),
        "free_agents": free,
        "callers_per_free_agent": round(len(line.entries) / free, 1) if free else None,
        "by_state": line.counts(),
    }
    return jsonify(body)


def _caller(entry: Any, target: float) -> dict[str, Any]:
    return {
        "position": entry.position,
        "number": labels.caller_number(phone.normalize(entry.caller_number), entry.caller_number),
        "name": labels.caller_name(
            entry.caller_name if entry.caller_name != entry.caller_number else ""
        ),
        "wait_seconds": entry.wait,
        "wait_state": _wait_state(entry.wait, target),
    }


def _wait_state(seconds: float, target: float) -> str:
    if seconds > target * WAIT_RED_FACTOR:
        return "red"
    if seconds > target:
        return "amber"
    return "ok"


def _team(session: Session, line: Line) -> list[dict[str, Any]]:
    """Every agent with a phone, and any other member Asterisk lists, with their state."""
    users = session.scalars(
        select(User).where(User.member_interface.is_not(None), User.active.is_(True))
    ).all()
    rows = [_agent_view(session, user, line) for user in users]
    ours = {user.member_interface for user in users}
    for member in line.members:
        if member.interface not in ours:
            rows.append(_member_view(session, None, member, line))
    order = {state: i for i, state in enumerate(agents.STATES)}
    return sorted(rows, key=lambda r: (order.get(r["state"], 99), r["name"].lower()))


def _agent_view(session: Session, user: User | None, line: Line) -> dict[str, Any]:
    if user is None:
        return {"state": agents.OFF, "name": "", "linked": False}
    member = line.member(user.member_interface)
    if member is None:
        view = _base(user.id, agents.member_name(user), user.member_interface or "", agents.OFF)
        view["linked"] = bool(user.member_interface)
        view["on_record"] = _on_record(session, user.member_interface)
        return view
    return _member_view(session, user, member, line)


def _member_view(session: Session, user: User | None, member: Any, line: Line) -> dict[str, Any]:
    state = agents.member_state(member)
    name = agents.member_name(user) if user else member.name
    view = _base(user.id if user else None, name, member.interface, state)
    view["linked"] = True
    if state == agents.PAUSED:
        code = agents.reason_code(member.paused_reason)
        view["reason"] = {"code": code, "label": agents.PAUSE_REASONS[code]}
        view["since_ms"] = _ms(_pause_start(session, member))
    elif state == agents.TALKING:
        view.update(_talking_with(session, member.interface))
    elif state == agents.FREE and member.last_call:
        view["since_ms"] = member.last_call * 1000
    return view


def _base(user_id: int | None, name: str, interface: str, state: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "name": name,
        "interface": interface,
        "state": state,
        "state_label": labels.agent_state_label(state),
    }


def _pause_start(session: Session, member: Any) -> datetime:
    found = agents.open_session(session, member.interface)
    pause = agents.open_pause(session, found) if found is not None else None
    if pause is not None:
        return pause.started_at
    return agents._epoch(member.last_pause) or now()  # noqa: SLF001


def _talking_with(session: Session, interface: str) -> dict[str, Any]:
    """Return whom the agent is talking to and since when, from the call records."""
    call = session.execute(
        select(Call.id, Call.callerid_raw, Call.caller_e164, Call.answered_at)
        .where(Call.agent_interface == interface, Call.status == "talking")
        .order_by(Call.answered_at.desc())
        .limit(1)
    ).first()
    if call is None:
        return {}
    return {
        "with": labels.caller_number(call.caller_e164, call.callerid_raw),
        "call_url": url_for("calls.detail", call_id=call.id) if _has_detail() else "",
        "since_ms": _ms(call.answered_at) if call.answered_at else None,
    }


def _has_detail() -> bool:
    return "calls.detail" in current_app.view_functions


def _on_record(session: Session, interface: str | None) -> bool:
    """True when the record still shows the interface on the line (Asterisk does not)."""
    return interface is not None and agents.open_session(session, interface) is not None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


__all__ = ["AgentPause", "AgentSession", "bp", "monitor"]
