"""A believable demo set: Russian organisations, contacts and +7 numbers in every situation
the support rules know. Loading it twice changes nothing the second time.

Dates are fixed, so the set behaves the same whenever it is loaded; the situations below hold
on every day of 2026 unless a date is given. Numbers to call:

- ``+7 495 123-45-67`` (also ``+7 916 555-12-34``): ООО «Альфа-Логистик», customer 100101,
  licence bought 31.12.2025 — entitled, first year, through 31.12.2026 (``free_first_year``).
- ``+7 903 555-01-42``: ИП Орлов Д. С., customer 100103, licence bought in 2021, no updates,
  no subscription — not entitled (``not_entitled``; free only for a declared critical bug).
- ``+7 812 555-20-30``: АО «СеверСервис», 100102, licence of 2022 and updates bought
  20.12.2025 for 24 months (``free_updates``).
- ``+7 343 555-77-10``: ООО «Вектор Плюс», 100104, open-ended OneRPA Cloud subscription
  (``free_subscription``).
- ``+7 383 555-44-21``: ООО «Ромашка Трейд», 100105, subscription cancelled 15.10.2025
  (``not_entitled``).
- ``+7 495 555-90-00``: ПАО «ТехноИнвест», 100106, licences of 2019 and 02.03.2026: not
  entitled before 02.03.2026, then first year (the newer purchase applies).
- ``+375 29 555-12-34``: Belarus Logistic Group, 100107, first year until 15.05.2026.
- ``+7 843 555-18-90``: ООО «Гранит-Строй», 100108, updates that ran out in 2024
  (``not_entitled``).
- ``+7 846 555-63-07``: ООО «Волга-Софт», 100109, etiquette refusal without expiry since
  20.11.2025 (``refused_etiquette``, although still in its first year until 01.06.2026).
- ``+7 391 555-27-40``: ООО «Сибирь-Транс», 100110, subscription ended 30.06.2025
  (``not_entitled``).
- ``+7 861 555-72-15``: ООО «ЮгАгро», 100111, licence of 2024 and a subscription to
  31.03.2027 (``free_subscription``).
- ``+7 999 555-00-13``: no customer; a refusal on the number itself until 01.01.2027.

Forty more customers (numbers 100200-100239, phones ``+7 977 700-..-..``) fill the lists:
first-year, with updates, lapsed, subscribed and cancelled, their dates drawn from a fixed seed.

With ``calls=True`` (``run`` and ``demo-data`` do, unless ``--no-demo-calls``) a month of past
calls up to the moment of loading is added too, so the figures, history and per-agent tables
have something to show on the first run: about 1,500 calls from these customers and a few
unknown numbers, mostly in the line's hours, answered by the three demo agents (``AGENTS``,
the members of ``asterisk/queues.conf`` and the demo staff users), with waits, consultations
around the 3-5 minute target (some longer), calls abandoned in the menu and the queue, ended by
the rules, sent to sales and lost. They are drawn from a fixed seed and written with the
fields and events the call flow and the hooks write; only into a database with no calls.
"""

from __future__ import annotations

import json
import logging
import math
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import Connection, Engine, insert, select

from onerpa import directory, entitlement, hours
from onerpa.callstatus import CallStatus, EndedBy
from onerpa.entitlement import Reason
from onerpa.hours import SupportCalendar
from onerpa.importer import CustomerRow, write_customers
from onerpa.models import Call, CallEvent, Customer, PhoneNumber, Refusal
from onerpa.phone import format_national, normalize
from onerpa.startup import load_settings, open_database

log = logging.getLogger(__name__)

MSK = ZoneInfo("Europe/Moscow")
ENTITLED_PHONE = "+74951234567"
NOT_ENTITLED_PHONE = "+79035550142"
REFUSED_PHONE = "+78465556307"
REFUSED_NUMBER_ONLY = "+79995550013"
STUDIO, ORCHESTRATOR, CLOUD = "OneRPA Studio", "OneRPA Orchestrator", "OneRPA Cloud"


@dataclass(frozen=True)
class DemoAgent:
    """A demo agent: a staff user tied to a queue member of ``asterisk/queues.conf``."""

    username: str
    display_name: str
    interface: str  # the member interface: calls.agent_interface, users.member_interface
    member_name: str  # the member name the queue logs: calls.agent


AGENTS = (
    DemoAgent("demo-agent", "Демо-агент", "PJSIP/101", "Agent 101"),
    DemoAgent("demo-agent-2", "Павел Зуев", "PJSIP/102", "Agent 102"),
    DemoAgent("demo-agent-3", "Ирина Дронова", "PJSIP/103", "Agent 103"),
)


def _customer(
    number: str, organisation: str, contact: str, email: str, phones: str, **purchase: Any
) -> CustomerRow:
    """Return one demo row; ``phones`` as a person would write them, comma-separated."""
    e164 = tuple(_e164(phone) for phone in phones.split(","))
    return CustomerRow(0, number, organisation, contact, email, e164, **purchase)


def _e164(phone: str) -> str:
    e164 = normalize(phone)
    if e164 is None:
        raise ValueError(f"demo number {phone!r} is not a phone number")
    return e164


def _studio(number: str, bought: date) -> dict[str, object]:
    return {"product": STUDIO, "licence_number": number, "purchased_on": bought}


def _cloud(
    starts: date, ends: date | None = None, cancelled: datetime | None = None
) -> dict[str, object]:
    return {
        "subscription_service": CLOUD,
        "subscription_starts_on": starts,
        "subscription_ends_on": ends,
        "subscription_cancelled_at": cancelled,
    }


def featured() -> list[list[CustomerRow]]:
    """Return the customers named in the module docstring, each as its rows."""
    c = _customer
    return [
        [
            c(
                "100101",
                "ООО «Альфа-Логистик»",
                "Смирнова Анна Викторовна",
                "a.smirnova@alfa-logistic.example",
                "+7 495 123-45-67, 8 (916) 555-12-34",
                **_studio("4410001", date(2025, 12, 31)),
            )
        ],
        [
            c(
                "100102",
                "АО «СеверСервис»",
                "Кузнецов Игорь Петрович",
                "kuznetsov@severservice.example",
                "8 (812) 555-20-30",
                product=ORCHESTRATOR,
                licence_number="4410002",
                purchased_on=date(2022, 4, 15),
                updates_purchased_on=date(2025, 12, 20),
                updates_months=24,
            )
        ],
        [
            c(
                "100103",
                "ИП Орлов Дмитрий Сергеевич",
                "Орлов Дмитрий Сергеевич",
                "orlov.ds@mail.example",
                "89035550142",
                **_studio("4410003", date(2021, 6, 10)),
            )
        ],
        [
            c(
                "100104",
                "ООО «Вектор Плюс»",
                "Павлова Елена Игоревна",
                "pavlova@vector-plus.example",
                "+7 (343) 555-77-10",
                **_cloud(date(2024, 9, 1)),
            )
        ],
        [
            c(
                "100105",
                "ООО «Ромашка Трейд»",
                "Фёдоров Алексей Николаевич",
                "fedorov@romashka-trade.example",
                "+7 383 555-44-21",
                **_cloud(
                    date(2024, 2, 1), date(2026, 1, 31), datetime(2025, 10, 15, 14, 30, tzinfo=MSK)
                ),
            )
        ],
        [
            c(
                "100106",
                "ПАО «ТехноИнвест»",
                "Белова Мария Андреевна",
                "belova@technoinvest.example",
                "+7 495 555-90-00, +7 495 555-90-01",
                product=ORCHESTRATOR,
                licence_number="4410006",
                purchased_on=date(2019, 11, 20),
            ),
            c(
                "100106",
                "ПАО «ТехноИнвест»",
                "Белова Мария Андреевна",
                "belova@technoinvest.example",
                "+7 926 555-31-08",
                **_studio("4410017", date(2026, 3, 2)),
            ),
        ],
        [
            c(
                "100107",
                "Belarus Logistic Group",
                "Иванов Сергей",
                "s.ivanov@blg.example",
                "+375 29 555-12-34",
                product=STUDIO,
                purchased_on=date(2025, 5, 15),
            )
        ],
        [
            c(
                "100108",
                "ООО «Гранит-Строй»",
                "Сафин Рустам Ильдарович",
                "safin@granit-stroy.example",
                "+7 843 555-18-90",
                **_studio("4410008", date(2020, 3, 1)),
                updates_purchased_on=date(2023, 5, 10),
                updates_months=12,
            )
        ],
        [
            c(
                "100109",
                "ООО «Волга-Софт»",
                "Никитина Ольга Сергеевна",
                "nikitina@volga-soft.example",
                "+7 846 555-63-07",
                **_studio("4410009", date(2025, 6, 1)),
            )
        ],
        [
            c(
                "100110",
                "ООО «Сибирь-Транс»",
                "Ковалёв Павел Андреевич",
                "kovalev@sib-trans.example",
                "+7 391 555-27-40",
                **_cloud(date(2023, 7, 1), date(2025, 6, 30)),
            )
        ],
        [
            c(
                "100111",
                "ООО «ЮгАгро»",
                "Ткаченко Наталья Викторовна",
                "tkachenko@yugagro.example",
                "+7 861 555-72-15",
                **_studio("4410011", date(2024, 5, 15)),
                **_cloud(date(2025, 4, 1), date(2027, 3, 31)),
            )
        ],
    ]


_ROOTS = (
    ("Меридиан", "meridian"),
    ("Техностиль", "technostyle"),
    ("Балтика", "baltika"),
    ("Уралхим", "uralchem"),
    ("Инфолайн", "infoline"),
    ("Стройком", "stroycom"),
    ("Агротех", "agrotech"),
    ("Медсервис", "medservice"),
    ("Энергия", "energia"),
    ("Логос", "logos"),
)
_ENDINGS = (("", ""), ("-Трейд", "-trade"), (" Групп", "-group"), ("-Сервис", "-service"))
_FORMS = ("ООО", "ООО", "АО", "ПАО", "ООО НПП")
_PEOPLE = (
    "Соколова Ирина Петровна",
    "Морозов Андрей Викторович",
    "Волкова Татьяна Сергеевна",
    "Лебедев Константин Олегович",
    "Новикова Светлана Александровна",
    "Егоров Максим Дмитриевич",
    "Козлова Юлия Николаевна",
    "Степанов Артём Игоревич",
    "Попова Екатерина Андреевна",
    "Васильев Михаил Юрьевич",
)
_SITUATIONS = ("first_year", "updates", "lapsed", "subscribed", "cancelled")


def generated(count: int = 40, seed: int = 2026) -> list[list[CustomerRow]]:
    """Return ``count`` more customers, the same ones for the same ``seed``."""
    rng = random.Random(seed)
    names = [(root + end, latin + tail) for root, latin in _ROOTS for end, tail in _ENDINGS]
    customers = []
    for k in range(count):
        name, latin = names[k % len(names)]
        customers.append(
            [
                _customer(
                    str(100200 + k),
                    f"{rng.choice(_FORMS)} «{name}»",
                    rng.choice(_PEOPLE),
                    f"it@{latin}.example",
                    f"+7 977 700-{k:02d}-{(k * 37) % 100:02d}",
                    **_purchases(_SITUATIONS[k % len(_SITUATIONS)], k, rng),
                )
            ]
        )
    return customers


def _purchases(situation: str, k: int, rng: random.Random) -> dict[str, object]:
    def day(first: date, last: date) -> date:
        return first + timedelta(days=rng.randrange((last - first).days + 1))

    licence = f"44102{k:02d}"
    if situation == "first_year":
        return _studio(licence, day(date(2025, 12, 31), date(2026, 10, 31)))
    if situation == "updates":
        bought = {"updates_purchased_on": day(date(2026, 1, 1), date(2026, 10, 31))}
        return {**_studio(licence, day(date(2019, 1, 1), date(2023, 12, 31))), **bought}
    if situation == "lapsed":
        return _studio(licence, day(date(2019, 1, 1), date(2024, 12, 31)))
    starts = day(date(2023, 1, 1), date(2025, 6, 30))
    if situation == "subscribed":
        return _cloud(starts)
    cancelled = datetime.combine(day(starts, date(2025, 12, 31)), datetime.min.time(), MSK)
    return _cloud(starts, cancelled=cancelled + timedelta(hours=rng.randrange(9, 18)))


def _refusals(refused_customer: int) -> list[dict[str, object]]:
    return [
        {
            "customer_id": refused_customer,
            "phone_e164": None,
            "reason": "Грубость и оскорбления в адрес специалиста (звонок 20.11.2025)",
            "set_by": "demo-supervisor",
            "set_at": datetime(2025, 11, 20, 10, 15, tzinfo=MSK),
            "expires_at": None,
        },
        {
            "customer_id": None,
            "phone_e164": REFUSED_NUMBER_ONLY,
            "reason": "Угрозы специалисту поддержки (звонок 15.12.2025)",
            "set_by": "demo-supervisor",
            "set_at": datetime(2025, 12, 15, 16, 40, tzinfo=MSK),
            "expires_at": datetime(2027, 1, 1, tzinfo=MSK),
        },
    ]


def load_demo(
    engine: Engine,
    *,
    calls: bool = False,
    now: datetime | None = None,
    calendar: SupportCalendar | None = None,
) -> Counter[str]:
    """Write the demo set; return what changed (nothing when it is already there).

    With ``calls``, also a month of past calls up to ``now`` (default: the present moment),
    on ``calendar``'s hours, unless the database already has calls.
    """
    changes = write_customers(engine, featured() + generated())
    with engine.begin() as conn:
        query = select(Customer.id).where(Customer.customer_number == "100109")
        for refusal in _refusals(conn.execute(query).scalar_one()):
            found = select(Refusal.id).where(
                Refusal.reason == refusal["reason"], Refusal.set_by == refusal["set_by"]
            )
            if conn.execute(found).first() is None:
                conn.execute(insert(Refusal), refusal)
                changes["refusals_added"] += 1
    if calls:
        moment = now or datetime.now(UTC)
        added = add_demo_calls(engine, moment, calendar or SupportCalendar())
        if added:
            changes["calls_added"] += added
    log.info("demo data loaded: %s", dict(changes))
    return changes


# --- a month of calls ----------------------------------------------------------------------

DEMO_SERVER = "demo"
DECISION_CLOSED = "closed"  # as the call flow records a call outside the hours
CLOSED_EXPLANATION = "Звонок вне часов работы"
QUEUE_TIMEOUT_SECONDS = 180  # asterisk/queues.conf: timeout of the support queue
_UNKNOWN_CALLERS = 12
# How often a number calls, relative to an entitled customer's (4): those who may not have
# free support call less, and strangers rarely.
_CALLS_PER_NUMBER = {
    Reason.NOT_ENTITLED.value: 1.5,
    Reason.REFUSED_ETIQUETTE.value: 0.5,
    Reason.UNKNOWN_CALLER.value: 0.5,
}


@dataclass(frozen=True)
class Caller:
    """A number that calls the demo line, with what the rules say about it."""

    e164: str
    customer_id: int | None
    reason: str
    explanation: str
    bug_reason: str = ""  # the decision after the caller declares a critical bug
    bug_explanation: str = ""


def add_demo_calls(engine: Engine, now: datetime, calendar: SupportCalendar) -> int:
    """Insert a month of calls up to ``now``, with their events; return how many (0 when the
    database already has calls)."""
    with engine.begin() as conn:
        if conn.execute(select(Call.id).limit(1)).first() is not None:
            return 0
        rows = demo_calls(callers(conn, now), now, calendar)
        conn.execute(insert(Call), rows)
        conn.execute(insert(CallEvent), [event for row in rows for event in _events(row)])
    return len(rows)


def callers(conn: Connection, now: datetime) -> list[Caller]:
    """Return the demo customers' numbers with the rules' decisions at ``now``, and a few
    numbers the directory does not know."""
    found = []
    for e164, customer_id in conn.execute(
        select(PhoneNumber.e164, PhoneNumber.customer_id).order_by(PhoneNumber.e164)
    ):
        card = directory.find_by_phone(conn, e164)
        records = card.records if card else None
        decision = entitlement.decide(records, now)
        bug = entitlement.decide(records, now, critical_bug=True)
        found.append(
            Caller(
                e164,
                customer_id,
                decision.reason.value,
                decision.explanation,
                bug.reason.value,
                bug.explanation,
            )
        )
    unknown = entitlement.decide(None, now)
    for k in range(_UNKNOWN_CALLERS):
        e164 = f"+7915{(k * 7919) % 10_000_000:07d}"
        found.append(Caller(e164, None, unknown.reason.value, unknown.explanation))
    return found


def demo_calls(
    numbers: Sequence[Caller],
    now: datetime,
    calendar: SupportCalendar,
    *,
    days: int = 30,
    seed: int = 2026,
) -> list[dict[str, Any]]:
    """Return the rows of the ``days`` local days up to ``now``, the same for the same input.

    Every call has ended by ``now``: none is live, so the board starts empty.
    """
    rng = random.Random(seed)
    today = now.astimezone(calendar.zone).date()
    weights = list(accumulate(_CALLS_PER_NUMBER.get(caller.reason, 4) for caller in numbers))
    rows: list[dict[str, Any]] = []
    for offset in range(days - 1, -1, -1):  # today and the days before: the 30-day figures
        for arrived in _arrivals(rng, today - timedelta(days=offset), calendar):
            if arrived > now - timedelta(minutes=40):  # long enough ago to have ended
                continue
            caller = rng.choices(numbers, cum_weights=weights)[0]
            rows.append(_call(rng, len(rows), arrived, caller, calendar))
    return rows


def _arrivals(rng: random.Random, day: date, calendar: SupportCalendar) -> list[datetime]:
    """Return the moments calls arrive on ``day``: many in the hours, a few outside them."""
    zone = calendar.zone
    window = hours.opening_on(calendar, day)
    moments = []
    if window is not None:
        opens, closes = window
        span = (closes - opens).total_seconds()
        for _ in range(rng.randint(42, 72)):
            moments.append(opens + timedelta(seconds=rng.uniform(0, span - 60)))
        for _ in range(rng.randint(0, 3)):  # early birds and late callers
            evening = rng.random() < 0.6
            start = closes if evening else opens - timedelta(hours=2)
            moments.append(start + timedelta(seconds=rng.uniform(0, 7200)))
    else:
        for _ in range(rng.randint(1, 5)):
            moments.append(
                datetime.combine(day, time(10), zone) + timedelta(hours=rng.uniform(0, 8))
            )
    return sorted(moment.astimezone(UTC) for moment in moments)


def _call(
    rng: random.Random, n: int, arrived: datetime, caller: Caller, calendar: SupportCalendar
) -> dict[str, Any]:
    """Return one call's row: the call flow's fields, then the queue's and the hang-up's."""
    row = _blank(rng, n, arrived, caller)
    steps = [("greeting", arrived)]
    at = arrived + _s(rng.uniform(6, 9))  # the greeting
    if not hours.is_open(calendar, arrived):
        steps.append(("closed", at))
        _ended_ivr(row, steps, at, DECISION_CLOSED, None, CLOSED_EXPLANATION, "closed")
        row["ended_at"] = at + _s(rng.uniform(12, 20))  # the hours message
        return row
    steps.append(("identify", at))
    if caller.customer_id is None:
        steps.append(("enter_number", at))
        at += _s(rng.uniform(15, 40))
        row["digits"] = str(rng.randrange(100000, 999999))
    if rng.random() < 0.04:  # hung up in the menu
        end = at + _s(rng.uniform(1, 10))
        row.update(status=CallStatus.ABANDONED_IVR.value, ended_at=end)
        row.update(ended_by=EndedBy.CALLER.value, step=steps[-1][0])
        row["step_times"] = _step_times(steps)
        return row
    row.update(identified_by="caller_id" if caller.customer_id else None)
    reason = caller.reason
    if reason == Reason.UNKNOWN_CALLER:
        return _ended_ivr(row, steps, at, reason, reason, caller.explanation, "unknown")
    if reason == Reason.REFUSED_ETIQUETTE:
        steps.append(("refused", at))
        return _ended_ivr(row, steps, at, reason, reason, caller.explanation, "refused")
    explanation = caller.explanation
    if reason == Reason.NOT_ENTITLED:
        steps.append(("not_entitled", at))
        at += _s(rng.uniform(10, 25))
        choice = rng.random()
        if choice < 0.45:
            return _ended_ivr(row, steps, at, reason, reason, explanation, "not_entitled")
        if choice < 0.7:
            return _to_sales(rng, row, steps, at, caller)
        reason, explanation, topic = caller.bug_reason, caller.bug_explanation, "bug"
        row["digits"] = "1"
    else:
        steps.append(("topic", at))
        at += _s(rng.uniform(4, 12))
        topic = rng.choices(("bug", "howto", "licensing", "none"), (2, 6, 2, 1))[0]
        row["digits"] = {"bug": "1", "howto": "2", "licensing": "3", "none": ""}[topic]
    steps.append(("routed", at))
    row.update(decision=reason, reason=reason, explanation=explanation, topic=topic)
    row.update(route="queue", step="routed", step_times=_step_times(steps))
    row.update(decided_at=at, left_ivr_at=at, queued_at=at, status=CallStatus.QUEUED.value)
    _in_queue(rng, row, at)
    return row


def _in_queue(rng: random.Random, row: dict[str, Any], queued: datetime) -> None:
    """Wait, then be answered and talk, give up, time out, or be lost."""
    busy = rng.random() < 0.2  # now and then every agent is on a call
    wait = rng.expovariate(1 / (130 if busy else 25))
    patience = rng.uniform(20, 600)
    if rng.random() < 0.012:  # no end signal ever came: the sweep closed it
        row.update(status=CallStatus.LOST.value, ended_by=EndedBy.SWEEP.value)
        if rng.random() < 0.5:
            _answer(rng, row, queued + _s(wait))
            row["status"] = CallStatus.LOST.value
        return
    if min(patience, wait) >= QUEUE_TIMEOUT_SECONDS:
        row.update(status=CallStatus.ABANDONED_QUEUE.value, ended_by=EndedBy.SYSTEM.value)
        row["ended_at"] = queued + _s(QUEUE_TIMEOUT_SECONDS + rng.uniform(5, 9))  # busy message
        return
    if patience < wait:
        row.update(status=CallStatus.ABANDONED_QUEUE.value, ended_by=EndedBy.CALLER.value)
        row["ended_at"] = queued + _s(patience)
        return
    _answer(rng, row, queued + _s(wait))
    talk = min(rng.lognormvariate(math.log(200), 0.45), 1500)  # ~1 in 5 past 5 minutes
    row["ended_at"] = row["answered_at"] + _s(talk)
    row["status"] = CallStatus.COMPLETED.value
    row["ended_by"] = rng.choice((EndedBy.CALLER.value, EndedBy.AGENT.value))


def _answer(rng: random.Random, row: dict[str, Any], at: datetime) -> None:
    agent = rng.choices(AGENTS, (5, 4, 3))[0]
    row.update(answered_at=at, agent=agent.member_name, agent_interface=agent.interface)
    row["status"] = CallStatus.TALKING.value


def _ended_ivr(
    row: dict[str, Any],
    steps: list[tuple[str, datetime]],
    at: datetime,
    decision: str,
    reason: str | None,
    explanation: str,
    route: str,
) -> dict[str, Any]:
    steps.append(("routed", at))
    row.update(decision=decision, reason=reason, explanation=explanation, route=route)
    row.update(topic="none", step="routed", step_times=_step_times(steps))
    row.update(decided_at=at, left_ivr_at=at, status=CallStatus.ENDED_IVR.value)
    row.update(ended_at=at + timedelta(seconds=8), ended_by=EndedBy.SYSTEM.value)
    return row


def _to_sales(
    rng: random.Random,
    row: dict[str, Any],
    steps: list[tuple[str, datetime]],
    at: datetime,
    caller: Caller,
) -> dict[str, Any]:
    _ended_ivr(row, steps, at, caller.reason, caller.reason, caller.explanation, "sales")
    row.update(status=CallStatus.TRANSFERRED.value, topic="licensing", digits="2")
    row.update(ended_at=at + _s(rng.uniform(60, 420)), ended_by=EndedBy.CALLER.value)
    return row


def _blank(rng: random.Random, n: int, arrived: datetime, caller: Caller) -> dict[str, Any]:
    """Return the fields the call flow writes as the call arrives, the rest empty."""
    uniqueid = f"{arrived.timestamp():.0f}.{n + 1}"
    empty = dict.fromkeys(
        ("identified_by", "decision", "reason", "topic", "route", "decided_at", "left_ivr_at"),
    )
    empty.update(dict.fromkeys(("queued_at", "answered_at", "agent", "agent_interface")))
    return {
        **empty,
        "call_ref": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "uniqueid": uniqueid,
        "linkedid": uniqueid,
        "channel": f"PJSIP/provider-{n + 1:08x}",
        "callerid_raw": caller.e164,
        "callerid_name": "",
        "caller_e164": caller.e164,
        "customer_id": caller.customer_id,
        "digits": "",
        "explanation": "",
        "step": "greeting",
        "step_times": "",
        "status": CallStatus.IN_IVR.value,
        "degraded": False,
        "server": DEMO_SERVER,
        "arrived_at": arrived,
        "ended_at": None,
        "ended_by": None,
    }


def _events(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the ``call_events`` rows the recorder would have appended for ``row``."""
    events = [_event(row, "arrived", row["arrived_at"], "ivr")]
    if row["decided_at"] is not None:
        events.append(_event(row, "decided", row["decided_at"], "ivr", decision=row["decision"]))
    if row["queued_at"] is not None:
        events.append(_event(row, "queued", row["queued_at"], "ivr"))
    if row["answered_at"] is not None:
        events.append(_event(row, "answered", row["answered_at"], "hook", agent=row["agent"]))
    if row["status"] == CallStatus.LOST:
        last = row["answered_at"] or row["queued_at"] or row["arrived_at"]
        swept_at = last + timedelta(hours=4 if row["answered_at"] else 2)
        events.append(_event(row, "swept", swept_at, "sweep", status=row["status"]))
    else:
        source = "ivr" if row["status"] == CallStatus.ENDED_IVR else "hook"
        events.append(_event(row, "ended", row["ended_at"], source, status=row["status"]))
    return events


def _event(
    row: dict[str, Any], kind: str, at: datetime, source: str, agent: str | None = None, **data: Any
) -> dict[str, Any]:
    return {
        "call_ref": row["call_ref"],
        "kind": kind,
        "at": at,
        "source": source,
        "agent": agent,
        "data": json.dumps(data, separators=(",", ":")) if data else "",
    }


def _step_times(steps: list[tuple[str, datetime]]) -> str:
    return "; ".join(
        f"{step} {moment.astimezone(UTC).isoformat(timespec='milliseconds')}"
        for step, moment in steps
    )


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=round(seconds, 3))


@click.command("demo-data")
@click.option("--no-demo-calls", is_flag=True, help="Не добавлять месяц прошлых звонков.")
def demo_data_command(no_demo_calls: bool) -> None:
    """Заполнить базу демо-клиентами и месяцем звонков (повторный запуск ничего не меняет)."""
    settings = load_settings()
    engine = open_database(settings)
    try:
        changes = load_demo(engine, calls=not no_demo_calls, calendar=settings.calendar)
    finally:
        engine.dispose()
    click.echo(
        f"демо-данные: клиентов добавлено {changes['customers_added']}, "
        f"прошлых звонков {changes['calls_added']}, всего изменений {sum(changes.values())}"
    )
    click.echo(
        f"позвоните с {format_national(ENTITLED_PHONE)} (первый год, поддержка бесплатна) и "
        f"с {format_national(NOT_ENTITLED_PHONE)} (поддержка не положена)"
    )
