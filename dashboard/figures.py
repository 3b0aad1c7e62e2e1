"""The figures page: how the line is doing today, over 7 or 30 days, or any period.

The numbers come from ``onerpa.figures``; this module only picks the period and draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, render_template, request

from dashboard import charts, labels, queries
from dashboard.auth import supervisor_required
from dashboard.db import get_db, now, settings_of
from onerpa import figures as calc

bp = Blueprint("figures", __name__, url_prefix="/figures")

PERIODS = {"today": ("Сегодня", 1), "7d": ("7 дней", 7), "30d": ("30 дней", 30)}
MAX_DAYS = 400


@dataclass(frozen=True)
class Period:
    """A run of whole local days: ``first`` to ``last`` inclusive."""

    key: str
    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), self.zone)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


@bp.route("")
@supervisor_required
def index() -> Any:
    """Show the line's figures for the chosen period."""
    settings = settings_of()
    period, error = choose_period(request.args, now(), settings.calendar.zone)
    session = get_db()
    targets = calc.Targets.from_settings(settings)
    agent = request.args.get("agent", "").strip() or None
    decision = request.args.get("decision", "").strip() or None
    totals = calc.compute(
        session, period.start, period.end, targets=targets, agent=agent, decision=decision
    )
    hours = calc.hourly(session, period.start, period.end, period.zone)
    bands = calc.consultation_histogram(session, period.start, period.end)
    return render_template(
        "figures/index.html",
        period=period,
        periods=PERIODS,
        error=error,
        totals=totals,
        targets=targets,
        agent=agent,
        decision=decision,
        per_agent=sorted(
            calc.per_agent(session, period.start, period.end, targets=targets).items()
        ),
        per_decision=sorted(
            calc.per_decision(session, period.start, period.end, targets=targets).items(),
            key=lambda item: -item[1].offered,
        ),
        staff=queries.staff(session),
        decisions=labels.DECISIONS,
        hourly_chart=hourly_chart(hours, period),
        consultation_chart=consultation_chart(bands, targets),
    )


def choose_period(args: Any, moment: datetime, zone: ZoneInfo) -> tuple[Period, str | None]:
    """Return the period the query string asks for (today when it asks for nothing valid)."""
    today = moment.astimezone(zone).date()
    key = args.get("period", "today")
    if key in PERIODS:
        return Period(key, today - timedelta(days=PERIODS[key][1] - 1), today, zone), None
    try:
        first = date.fromisoformat(args.get("from", ""))
        last = date.fromisoformat(args.get("to", "") or today.isoformat())
    except ValueError:
        return Period("today", today, today, zone), "Даты периода не распознаны: нужна ГГГГ-ММ-ДД."
    if last < first:
        first, last = last, first
    if (last - first).days >= MAX_DAYS:
        return Period("today", today, today, zone), f"Период не длиннее {MAX_DAYS} дней."
    return Period("custom", first, last, zone), None


def hourly_chart(hours: list[tuple[datetime, int, int]], period: Period) -> Any:
    """Draw calls per hour: each hour for one day, else per hour of the day, summed."""
    if period.days == 1:
        bars = [
            charts.Bar(f"{start:%H}", offered, answered, tip=_tip(start, offered, answered))
            for start, offered, answered in hours
        ]
        return charts.bar_chart(bars, title="Звонки по часам", every=2)
    sums = {hour: [0, 0] for hour in range(24)}
    for start, offered, answered in hours:
        sums[start.hour][0] += offered
        sums[start.hour][1] += answered
    bars = [
        charts.Bar(f"{hour:02d}", offered, answered, tip=_tip(hour, offered, answered))
        for hour, (offered, answered) in sums.items()
    ]
    return charts.bar_chart(bars, title="Звонки по часам суток за период", every=2)


def consultation_chart(bands: list[tuple[str, int]], targets: calc.Targets) -> Any:
    """Draw consultations per length band, past the target amber and past the limit red."""
    bars = []
    for label, count in bands:
        low = float(label.split("-")[0].rstrip("+"))
        tone = ""
        if low >= targets.consultation_limit:
            tone = "bar-red"
        elif low >= targets.consultation_target:
            tone = "bar-amber"
        minutes = _minutes_label(label)
        bars.append(charts.Bar(minutes, count, tone=tone, tip=f"{minutes} мин: {count}"))
    return charts.bar_chart(bars, title="Длительность консультаций")


def _minutes_label(label: str) -> str:
    low, _, high = label.partition("-")
    if low.endswith("+"):
        return f"{int(low[:-1]) // 60}+"
    return f"{int(low) / 60:g}–{int(high) / 60:g}"


def _tip(hour: Any, offered: int, answered: int) -> str:
    start = f"{hour:%H}:00" if isinstance(hour, datetime) else f"{hour:02d}:00"
    return f"{start}: поступило {offered}, отвечено {answered}"
