"""The figures page: how the line is doing today, over 7 or 30 days, or any period.

The numbers come from ``onerpa.figures``; this module only picks the period and draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, current_app, render_template, request
from sqlalchemy.orm import Session

from dashboard import charts, labels, queries
from dashboard.auth import supervisor_required
from dashboard.db import get_db, now, sessions, settings_of
from onerpa import agents, whatif, whatif_command
from onerpa import figures as calc
from onerpa.hours import SupportCalendar
from onerpa.settings import SettingsError

bp = Blueprint("figures", __name__, url_prefix="/figures")

REQUEST_KINDS = {"message": "Голосовые сообщения", "callback": "Перезвоны"}
PERIODS = {"today": ("Сегодня", 1), "7d": ("7 дней", 7), "30d": ("30 дней", 30)}
# One card per outcome (``onerpa.figures.OUTCOME_OF`` says which status is which).
OUTCOME_LABELS = {
    calc.Outcome.ANSWERED: "отвечено",
    calc.Outcome.ABANDONED_QUEUE: "брошено в очереди",
    calc.Outcome.NO_AGENTS: "нет агентов на линии",
    calc.Outcome.ABANDONED_IVR: "брошено в меню",
    calc.Outcome.ENDED_BY_RULES: "завершено правилами",
    calc.Outcome.LOST: "потеряно",
    calc.Outcome.IN_PROGRESS: "ещё идут",
}
MAX_DAYS = 400
WHATIF_LIMIT = 50  # changed calls listed on the what-if page (all are counted)
DEFAULT_FREE_MONTHS = whatif.FREE_MONTHS_AFTER_PURCHASE
POOL = "onerpa_figures_pool"


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
    """Show the line's figures and charts for the chosen period."""
    view = _request_view()
    found = _figures(view)
    if not request.args and not found["totals"].offered:
        # Nobody has called yet today: the week says more than a page of zeros.
        view["period"], _ = choose_period({"period": "7d"}, now(), view["period"].zone)
        view["notice"] = "Сегодня звонков ещё не было — показаны последние 7 дней."
        found = _figures(view)
    targets, period, agent = view["targets"], view["period"], view["agent"]
    return render_template(
        "figures/index.html",
        line_time=found["line_time"],
        requests=found["requests"],
        request_kinds=REQUEST_KINDS,
        pause_reasons=agents.PAUSE_REASONS,
        **view,
        outcome_labels=OUTCOME_LABELS,
        agent_name=agent_names(queries.staff(get_db()), {}).get(agent, agent) if agent else None,
        totals=found["totals"],
        hourly_chart=hourly_chart(found["hours"], period),
        consultation_chart=consultation_chart(found["bands"], targets),
        agents=agent_choices(agent),
        show_filters=True,
    )


def _figures(view: dict[str, Any]) -> dict[str, Any]:
    """Read the view's period: totals, calls per hour, consultation lengths, line time."""
    targets, period = view["targets"], view["period"]
    agent, decision = view["agent"], view["decision"]
    moment = now()  # read here: the tasks run on other threads
    return gather(
        {
            "totals": lambda s: calc.compute(
                s, period.start, period.end, targets=targets, agent=agent, decision=decision
            ),
            "hours": lambda s: calc.hourly(s, period.start, period.end, period.zone),
            "bands": lambda s: calc.consultation_histogram(s, period.start, period.end),
            "line_time": _line_time(period),
            "requests": lambda s: calc.requests(s, period.start, period.end, moment),
        }
    )


def _line_time(period: Period) -> Callable[[Session], Any]:
    """Return the task that reads each agent's time on the line (onerpa.agents)."""
    moment = now()
    return lambda s: agents.line_figures(s, period.start, period.end, moment)


@bp.route("/breakdown")
@supervisor_required
def breakdown() -> Any:
    """Show the period's figures per agent and per IVR decision."""
    view = _request_view()
    targets, period = view["targets"], view["period"]
    found = gather(
        {
            "agents": lambda s: calc.per_agent(s, period.start, period.end, targets=targets),
            "interfaces": lambda s: calc.agent_interfaces(s, period.start, period.end),
            "decisions": lambda s: calc.per_decision(s, period.start, period.end, targets=targets),
        }
    )
    names = agent_names(queries.staff(get_db()), found["interfaces"])
    per_agent = [(agent, names.get(agent, agent), f) for agent, f in found["agents"].items()]
    return render_template(
        "figures/breakdown.html",
        **view,
        show_filters=False,
        per_agent=sorted(per_agent, key=lambda row: (row[1].casefold(), row[0])),
        per_decision=sorted(found["decisions"].items(), key=lambda item: -item[1].offered),
    )


@bp.route("/what-if")
@supervisor_required
def what_if() -> Any:
    """Re-decide the period's recorded calls under other hours or free term; show changes."""
    calendar = settings_of().calendar
    asked = "from" in request.args
    picked = {"period": "custom", **request.args} if asked else {"period": "30d"}
    period, error = choose_period(picked, now(), calendar.zone)
    hours_text = request.args.get("hours", "").strip()
    free_months = request.args.get("free_months", "").strip() or str(DEFAULT_FREE_MONTHS)
    rules, rules_error = whatif_rules(calendar, hours_text, free_months)
    result = None
    if asked and error is None and rules is not None:
        span = whatif_command.Period(period.first, period.last)
        result = whatif_command.run(current_app.config["ENGINE"], rules, span, WHATIF_LIMIT)
    return render_template(
        "figures/whatif.html",
        period=period,
        error=error or rules_error,
        hours_text=hours_text,
        free_months=free_months,
        result=result,
        outcomes=whatif.OUTCOMES,
    )


def whatif_rules(
    calendar: SupportCalendar, hours_text: str, free_months: str
) -> tuple[whatif.Rules | None, str | None]:
    """Return the what-if rules the form asks for, or None and what is wrong, in Russian."""
    if not free_months.isdigit() or not 1 <= int(free_months) <= 120:
        return None, "Бесплатный срок после покупки — целое число месяцев от 1 до 120."
    try:
        changed = whatif.changed_calendar(calendar, hours_text=hours_text or None)
    except SettingsError as err:
        return None, f"Часы работы: {str(err).removeprefix(err.name + ': ')}"
    return whatif.Rules(changed, int(free_months)), None


def _request_view() -> dict[str, Any]:
    settings = settings_of()
    period, error = choose_period(request.args, now(), settings.calendar.zone)
    return {
        "period": period,
        "periods": PERIODS,
        "error": error,
        "targets": calc.Targets.from_settings(settings),
        "agent": request.args.get("agent", "").strip() or None,
        "decision": request.args.get("decision", "").strip() or None,
        "decisions": labels.DECISIONS,
    }


def agent_choices(chosen: str | None) -> list[tuple[str, str]]:
    """Return (value, label) of each agent as the queue names them in ``calls.agent``."""
    choices = {}
    for user in queries.staff(get_db()):
        name = user.member_name or user.member_interface
        if name:
            choices[name] = f"{user.label} ({name})" if name != user.label else name
    if chosen and chosen not in choices:
        choices[chosen] = chosen
    return sorted(choices.items(), key=lambda item: item[1])


def agent_names(users: Sequence[Any], interfaces: Mapping[str, str]) -> dict[str, str]:
    """Return the staff name of each agent, as ``calls.agent`` names them.

    The queue logs its member name (``Agent 101``) or, without one, the phone interface
    (``PJSIP/101``); a user is matched by member name, then by the interface the agent
    answered on. An agent no user matches keeps the queue's name.
    """
    by_name = {user.member_name: user.label for user in users if user.member_name}
    by_interface = {user.member_interface: user.label for user in users if user.member_interface}
    names = {}
    for agent in {*by_name, *by_interface, *interfaces}:
        name = by_name.get(agent) or by_interface.get(agent)
        name = name or by_interface.get(interfaces.get(agent, ""))
        if name:
            names[agent] = name
    return names


def gather(tasks: dict[str, Callable[[Session], Any]]) -> dict[str, Any]:
    """Run independent read-only queries side by side, each in a session of its own.

    Each figure scans the period's calls once; run one after the other they add up, run
    together they take about as long as the slowest (the database works in parallel, and
    both drivers release the GIL while a query runs).
    """
    maker = sessions()
    pool: ThreadPoolExecutor = current_app.extensions[POOL]

    def run(work: Callable[[Session], Any]) -> Any:
        with maker() as session:
            return work(session)

    futures = {name: pool.submit(run, work) for name, work in tasks.items()}
    return {name: future.result() for name, future in futures.items()}


def init_app(app: Flask) -> None:
    """Give the app the small thread pool the figures pages query with."""
    app.extensions[POOL] = ThreadPoolExecutor(max_workers=4, thread_name_prefix="figures")


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
