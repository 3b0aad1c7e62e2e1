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
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import Engine, insert, select

from onerpa.importer import CustomerRow, write_customers
from onerpa.models import Customer, Refusal
from onerpa.phone import format_national, normalize
from onerpa.startup import load_settings, open_database

log = logging.getLogger(__name__)

MSK = ZoneInfo("Europe/Moscow")
ENTITLED_PHONE = "+74951234567"
NOT_ENTITLED_PHONE = "+79035550142"
REFUSED_PHONE = "+78465556307"
REFUSED_NUMBER_ONLY = "+79995550013"
STUDIO, ORCHESTRATOR, CLOUD = "OneRPA Studio", "OneRPA Orchestrator", "OneRPA Cloud"


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


def load_demo(engine: Engine) -> Counter[str]:
    """Write the demo set; return what changed (nothing when it is already there)."""
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
    log.info("demo data loaded: %s", dict(changes))
    return changes


@click.command("demo-data")
def demo_data_command() -> None:
    """Fill the database with demo customers (running it again changes nothing)."""
    engine = open_database(load_settings())
    try:
        changes = load_demo(engine)
    finally:
        engine.dispose()
    click.echo(
        f"demo data: {changes['customers_added']} customers added, "
        f"{sum(changes.values())} changes in all"
    )
    click.echo(
        f"try {format_national(ENTITLED_PHONE)} (entitled, first year) and "
        f"{format_national(NOT_ENTITLED_PHONE)} (not entitled)"
    )
