"""Call history (filters, search by phone, CSV export), one call's page, and its wrap-up."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import Row

from dashboard import labels, queries
from dashboard.auth import supervisor_required
from dashboard.db import get_db, now, sessions, settings_of
from dashboard.forms import WrapupForm
from dashboard.users import audit, find_user
from onerpa import timing
from onerpa.phone import normalize
from onerpa.staff import WrapTopic, Wrapup

log = logging.getLogger(__name__)

bp = Blueprint("calls", __name__, url_prefix="/calls")

OVER_CHOICES = {"target": "дольше 3 минут", "limit": "дольше 5 минут"}
_PHONE_LIKE = re.compile(r"^[+-][\d\s()\-]*$")


@dataclass
class HistoryQuery:
    """The history page's filters as given, and what they mean."""

    args: dict[str, str]
    wanted: queries.CallFilter
    page: int = 0
    errors: list[str] = field(default_factory=list)


@bp.route("")
def index() -> Any:
    """List calls matching the filters, newest first."""
    query = parse_filters(request.args)
    rows: list[Row[Any]] = []
    more = False
    if not query.errors:
        size = current_app.config["HISTORY_PAGE_SIZE"]
        found, more = queries.history_page(
            get_db(), query.wanted, now(), page=query.page, size=size
        )
        rows = list(found)
    wrapups = queries.latest_wrapups(get_db(), [row.id for row in rows])
    today = now().astimezone(settings_of().calendar.zone).date()
    return render_template(
        "calls/index.html",
        today=today.isoformat(),
        week_ago=(today - timedelta(days=6)).isoformat(),
        month_ago=(today - timedelta(days=29)).isoformat(),
        rows=rows,
        wrapups=wrapups,
        query=query,
        more=more,
        decisions=labels.DECISIONS,
        outcomes=labels.STATUSES,
        over_choices=OVER_CHOICES,
        staff=queries.staff(get_db()),
        page_url=lambda page: url_for("calls.index", **{**query.args, "page": page}),
        csv_url=url_for("calls.export", **query.args),  # type: ignore[arg-type]
    )


@bp.route("/export.csv")
@supervisor_required
def export() -> Any:
    """Download the calls matching the filters as CSV (semicolons, UTF-8 with BOM)."""
    query = parse_filters(request.args)
    if query.errors:
        abort(400)
    moment = now()
    zone = settings_of().calendar.zone
    stamp = moment.astimezone(zone).strftime("%Y%m%d-%H%M")
    body = _csv_body(sessions(), query.wanted, moment, zone, current_app.config["CSV_MAX_ROWS"])
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="calls-{stamp}.csv"'},
    )


@bp.route("/<int:call_id>")
def detail(call_id: int) -> Any:
    """Show one call: caller, decision, timings, events and wrap-ups."""
    call = queries.call_detail(get_db(), call_id) or abort(404)
    wrapups = queries.wrapups_of(get_db(), call_id)
    form = WrapupForm(formdata=None, data=_initial_wrapup(call, wrapups))
    return _detail_page(call, wrapups, form)


@bp.route("/<int:call_id>/wrapup", methods=("POST",))
def wrapup(call_id: int) -> Any:
    """Record what the call was about, after it."""
    session = get_db()
    call = queries.call_detail(session, call_id) or abort(404)
    if not may_wrap_up(current_user, call):
        abort(403)
    form = WrapupForm()
    if not form.validate():
        return _detail_page(call, queries.wrapups_of(session, call_id), form), 400
    entry = Wrapup(
        call_id=call_id,
        username=current_user.username,
        topic=form.topic.data,
        about_onerpa=form.about_onerpa.data == "yes",
        bug_confirmed=form.bug_state(),
        notes=(form.notes.data or "").strip(),
        at=now(),
    )
    session.add(entry)
    details = f"topic={entry.topic} onerpa={entry.about_onerpa} bug={entry.bug_confirmed}"
    audit(session, current_user.username, "wrapup.record", "call", call_id, details, at=entry.at)
    session.commit()
    log.info("call %s wrapped up by %s", call.call_ref, current_user.username)
    flash("Итоги звонка сохранены.", "ok")
    return redirect(url_for("calls.detail", call_id=call_id))


def _detail_page(call: Row[Any], wrapups: Any, form: WrapupForm) -> Any:
    return render_template(
        "calls/detail.html",
        call=call,
        wrapups=wrapups,
        events=queries.call_events(get_db(), call.call_ref),
        form=form,
        can_wrap_up=may_wrap_up(current_user, call),
        timing=timing.timing(call),
        steps=ivr_steps(call.step_times),
    )


def ivr_steps(text: str | None) -> list[tuple[str, datetime]]:
    """Return the IVR steps a call reached, with their moments, from ``calls.step_times``."""
    steps = []
    for item in (text or "").split("; "):
        name, _, stamp = item.partition(" ")
        try:
            steps.append((name, datetime.fromisoformat(stamp)))
        except ValueError:
            continue  # a damaged item is left out, not shown wrongly
    return steps


def may_wrap_up(user: Any, call: Row[Any]) -> bool:
    """Return whether ``user`` may record a wrap-up: a supervisor, or the answering agent."""
    if user.is_supervisor:
        return True
    if not call.agent and not call.agent_interface:
        return True  # the exchange did not say who answered: any agent may
    mine = {user.member_interface, user.member_name, user.username} - {None, ""}
    return bool(mine & {call.agent, call.agent_interface})


def _initial_wrapup(call: Row[Any], wrapups: Any) -> dict[str, Any]:
    if wrapups:
        latest = wrapups[0]
        bug = {True: "yes", False: "no"}.get(latest.bug_confirmed, "unknown")
        return {
            "topic": latest.topic,
            "about_onerpa": "yes" if latest.about_onerpa else "no",
            "bug_confirmed": bug if latest.topic == WrapTopic.BUG else None,
            "notes": latest.notes,
        }
    topic = call.topic if call.topic in tuple(WrapTopic) else None
    return {"topic": topic}


def parse_filters(args: Any) -> HistoryQuery:
    """Read the history filters from the query string; note what cannot be understood."""
    given = {key: args.get(key, "").strip() for key in _FILTER_KEYS if args.get(key, "").strip()}
    settings = settings_of()
    zone = settings.calendar.zone
    errors: list[str] = []
    start = _date(given.get("from"), "начала периода", errors)
    end = _date(given.get("to"), "конца периода", errors)
    e164 = None
    if "phone" in given:
        e164 = normalize(given["phone"])
        if e164 is None:
            errors.append("Не похоже на номер телефона: проверьте цифры.")
    over = {
        "target": settings.consultation_target.total_seconds(),
        "limit": settings.consultation_limit.total_seconds(),
    }.get(given.get("over", ""))
    agent = find_user(get_db(), given["agent"]) if "agent" in given else None
    if "agent" in given and agent is None:
        errors.append("Нет такого сотрудника.")
    wanted = queries.CallFilter(
        start=_midnight(start, zone),
        end=_midnight(end + timedelta(days=1), zone) if end else None,
        decision=given.get("decision") or None,
        outcome=given.get("outcome") or None,
        over_seconds=over,
        agent=agent,
        e164=e164,
        customer_id=int(given["customer"]) if given.get("customer", "").isdigit() else None,
    )
    page = int(given["page"]) if given.get("page", "").isdigit() else 0
    given.pop("page", None)
    return HistoryQuery(given, wanted, min(page, 10_000), errors)


_FILTER_KEYS = ("from", "to", "decision", "outcome", "over", "agent", "phone", "customer", "page")


def _date(text: str | None, what: str, errors: list[str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.append(f"Дата {what} не распознана: нужна ГГГГ-ММ-ДД.")
        return None


def _midnight(day: date | None, zone: ZoneInfo) -> datetime | None:
    return datetime.combine(day, time(0), zone) if day else None


CSV_HEADER = (
    "№",
    "Ссылка",
    "Поступил",
    "Номер",
    "Caller ID",
    "Имя Caller ID",
    "Клиент №",
    "Организация",
    "Решение",
    "Пояснение",
    "Выбор в меню",
    "Цифры",
    "Исход",
    "Агент",
    "Ожидание, с",
    "Разговор, с",
    "Тема (итог)",
    "Про OneRPA",
    "Баг подтверждён",
    "Заметки",
)


def _csv_body(
    maker: Any, wanted: queries.CallFilter, moment: datetime, zone: ZoneInfo, limit: int
) -> Iterator[str]:
    """Yield the CSV from a session of its own, closed when the download ends or breaks."""
    with maker() as session:
        rows = queries.iter_calls(session, wanted, moment, limit=limit)
        yield from csv_lines(session, rows, zone)


def csv_lines(session: Any, rows: Iterable[Row[Any]], zone: ZoneInfo) -> Iterator[str]:
    """Yield the CSV text: header, then one line per call with its latest wrap-up."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    yield "\ufeff" + _drain(out)
    for batch in _batches(rows, 1000):
        wrapups = queries.latest_wrapups(session, [row.id for row in batch])
        for row in batch:
            writer.writerow(_csv_row(row, wrapups.get(row.id), zone))
        yield _drain(out)


def _csv_row(row: Row[Any], wrapup: Wrapup | None, zone: ZoneInfo) -> list[str]:
    spans = timing.timing(row)
    wait, talk = spans.wait_seconds, spans.consultation_seconds
    yes_no = {True: "да", False: "нет", None: ""}
    return [
        str(row.id),
        row.call_ref,
        row.arrived_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
        row.caller_e164 or "",
        cell(row.callerid_raw),
        cell(row.callerid_name),
        row.customer_number or "",
        cell(row.organisation or ""),
        labels.decision_label(row.decision) if row.decision else "",
        cell(row.explanation),
        labels.topic_label(row.topic) if row.topic else "",
        cell(row.digits),
        labels.status_label(row.status),
        cell(row.agent or row.agent_interface or ""),
        f"{wait:.0f}" if wait is not None else "",
        f"{talk:.0f}" if talk is not None else "",
        labels.topic_label(wrapup.topic) if wrapup else "",
        yes_no[wrapup.about_onerpa] if wrapup else "",
        yes_no[wrapup.bug_confirmed] if wrapup else "",
        cell(wrapup.notes) if wrapup else "",
    ]


def cell(text: str | None) -> str:
    """Return ``text`` safe to open in a spreadsheet: no formula can start it."""
    text = text or ""
    first = text[:1]
    if first in ("=", "@", "\t", "\r") or (first in ("+", "-") and not _PHONE_LIKE.match(text)):
        return "'" + text
    return text


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _batches(rows: Iterable[Row[Any]], size: int) -> Iterator[list[Row[Any]]]:
    batch: list[Row[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
