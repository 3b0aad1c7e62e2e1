"""``onerpa-support what-if``: how the recorded calls would have gone under other rules.

The database read streams the period's calls newest first (``yield_per``: a server-side
cursor on PostgreSQL), so memory stays flat however many calls there are; the re-decision
itself is ``onerpa.whatif``. The dashboard's what-if page uses ``run`` too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import click
from sqlalchemy import Engine, select

from onerpa import startup, whatif
from onerpa.models import Call
from onerpa.settings import SettingsError

BATCH = 5000  # rows fetched per round trip
_OPTION_OF = {
    "ONERPA_HOURS": "--hours",
    "ONERPA_CLOSED_DATES": "--closed-dates",
    "ONERPA_WORKING_DATES": "--working-dates",
}
_DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Period:
    """Whole days of the line's calendar, ``first`` to ``last`` inclusive."""

    first: date
    last: date


def stored_calls(engine: Engine, start: datetime, end: datetime) -> Iterator[Any]:
    """Yield the calls that arrived in [start, end), newest first, a batch at a time."""
    query = (
        select(
            Call.id,
            Call.arrived_at,
            Call.caller_e164,
            Call.customer_id,
            Call.decision,
            Call.evidence,
        )
        .where(Call.arrived_at >= start, Call.arrived_at < end)
        .order_by(Call.arrived_at.desc(), Call.id.desc())
    )
    with engine.connect() as conn:
        yield from conn.execution_options(yield_per=BATCH).execute(query)


def run(engine: Engine, rules: whatif.Rules, period: Period, limit: int) -> whatif.Result:
    """Re-decide the period's calls under ``rules``."""
    zone = rules.calendar.zone
    start = datetime.combine(period.first, time(0), zone)
    end = datetime.combine(period.last + timedelta(days=1), time(0), zone)
    return whatif.redecide(stored_calls(engine, start, end), rules, limit=limit)


def as_json(result: whatif.Result, rules: whatif.Rules, period: Period) -> dict[str, Any]:
    """Return the result with stable English keys (documented in docs/dashboard.md)."""
    zone = rules.calendar.zone
    return {
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat()},
        "rules": rules_json(rules),
        "calls": result.calls,
        "changed": result.changed,
        "not_redecidable": result.not_redecidable,
        "transitions": [
            {"from": old, "to": new, "count": count}
            for (old, new), count in result.transitions.most_common()
        ],
        "changes": [
            {
                "call_id": c.call_id,
                "arrived_at": c.arrived_at.astimezone(zone).isoformat(),
                "caller": c.caller,
                "from": c.old,
                "to": c.new,
            }
            for c in result.changes
        ],
    }


def rules_json(rules: whatif.Rules) -> dict[str, Any]:
    """Return the rules re-decided under: weekly hours, free months, extra dates."""
    calendar = rules.calendar
    weekly = {}
    for index, key in enumerate(_DAY_KEYS):
        hours = calendar.weekly.get(index)
        weekly[key] = f"{hours[0]:%H:%M}-{hours[1]:%H:%M}" if hours else None
    return {
        "hours": weekly,
        "free_months": rules.free_months,
        "closed_dates": sorted(d.isoformat() for d in calendar.extra_closed),
        "working_dates": sorted(d.isoformat() for d in calendar.extra_working),
    }


def label(code: str) -> str:
    """Return an outcome in Russian words (the code itself when it is unknown)."""
    return whatif.OUTCOMES.get(code, code)


def print_result(result: whatif.Result, rules: whatif.Rules, period: Period) -> None:
    """Print the result for a person, in Russian."""
    zone = rules.calendar.zone
    click.echo(f"Период: {period.first:%d.%m.%Y} — {period.last:%d.%m.%Y}")
    click.echo(f"Звонков: {result.calls}, изменилось бы: {result.changed}")
    if result.not_redecidable:
        click.echo(f"Не пересчитать (нет сохранённых оснований): {result.not_redecidable}")
    for (old, new), count in result.transitions.most_common():
        click.echo(f"  {label(old)} → {label(new)}: {count}")
    if not result.changes:
        return
    shown = f"первые {len(result.changes)} из {result.changed}"
    click.echo(f"\nЗвонки ({shown}; время московское):")
    for c in result.changes:
        moment = c.arrived_at.astimezone(zone)
        click.echo(
            f"  № {c.call_id}  {moment:%d.%m.%Y %H:%M}  {c.caller or 'номер скрыт'}  "
            f"{label(c.old)} → {label(c.new)}"
        )


def _rules(
    calendar: Any,
    hours_text: str | None,
    closed: str | None,
    working: str | None,
    free_months: int,
) -> whatif.Rules:
    try:
        changed = whatif.changed_calendar(
            calendar, hours_text=hours_text, closed_dates=closed, working_dates=working
        )
    except SettingsError as err:
        option = _OPTION_OF.get(err.name, err.name)
        problem = str(err).removeprefix(f"{err.name}: ")
        raise startup.StartupError(f"Ошибка в {option}: {problem}") from None
    return whatif.Rules(changed, free_months)


@click.command("what-if")
@click.option(
    "--hours", "hours_text", help="Часы работы, как в ONERPA_HOURS: 'mon-fri 10:00-18:00'."
)
@click.option(
    "--free-months",
    type=click.IntRange(1, 120),
    default=whatif.FREE_MONTHS_AFTER_PURCHASE,
    show_default=True,
    help="Срок бесплатной поддержки после покупки, месяцев.",
)
@click.option(
    "--from", "first", type=click.DateTime(["%Y-%m-%d"]), help="Первый день [30 дней назад]."
)
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="Последний день [сегодня].")
@click.option(
    "--closed-dates", help="Дополнительные выходные, как ONERPA_CLOSED_DATES: 2026-12-31,..."
)
@click.option("--working-dates", help="Дополнительные рабочие дни, как ONERPA_WORKING_DATES.")
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=whatif.DEFAULT_LIMIT,
    show_default=True,
    help="Сколько изменившихся звонков перечислить (считаются все).",
)
@click.option(
    "--json", "as_json_", is_flag=True, help="Вывести JSON (ключи — постоянные английские коды)."
)
def what_if_command(
    hours_text: str | None,
    free_months: int,
    first: datetime | None,
    last: datetime | None,
    closed_dates: str | None,
    working_dates: str | None,
    limit: int,
    as_json_: bool,
) -> None:
    """Заново решить записанные звонки при других часах или сроке; показать, что изменится."""
    settings = startup.load_settings()
    rules = _rules(settings.calendar, hours_text, closed_dates, working_dates, free_months)
    today = datetime.now(UTC).astimezone(rules.calendar.zone).date()
    to_day = last.date() if last else today
    from_day = first.date() if first else to_day - timedelta(days=29)
    if to_day < from_day:
        raise startup.StartupError("Ошибка в --to: день раньше, чем в --from")
    period = Period(from_day, to_day)
    engine = startup.open_database(settings)
    try:
        result = run(engine, rules, period, limit)
    finally:
        engine.dispose()
    if as_json_:
        click.echo(json.dumps(as_json(result, rules, period), ensure_ascii=False, indent=2))
    else:
        print_result(result, rules, period)
