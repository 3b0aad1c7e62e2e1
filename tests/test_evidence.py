"""The evidence behind every decision: in words, stored with the call, frozen at that moment."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from dashboard.testing import Clock as WebClock
from dashboard.testing import add_user, make_app, signed_in
from onerpa import entitlement, evidence
from onerpa.entitlement import (
    CallerRecords,
    DayFact,
    DayKind,
    Grant,
    Licence,
    RefusalFlag,
    Subscription,
    UpdatePlan,
)
from onerpa.hours import SupportCalendar
from onerpa.models import Customer
from onerpa.models import Grant as GrantRow
from onerpa.models import Licence as LicenceRow
from tests.flowkit import support_line

MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
LAPSED = "+79035550142"  # ИП Орлов, customer 100103: a licence of 2021, nothing since
GOODWILL = Grant(
    date(2027, 3, 31), "сбой в релизе 5.2", "vera", datetime(2026, 11, 20, 9, tzinfo=UTC)
)


def _texts(decision: entitlement.Decision) -> list[str]:
    return [line.text for line in evidence.lines(decision.evidence)]


def test_licence_in_force_reads_with_its_number_and_last_free_day() -> None:
    records = CallerRecords(licences=(Licence("OneRPA Studio", date(2026, 3, 1), "4711"),))
    decision = entitlement.decide(records, datetime(2026, 11, 26, 11, tzinfo=MSK))
    assert _texts(decision) == [
        "Лицензия OneRPA Studio № 4711, куплена 01.03.2026 — бесплатная поддержка до 01.03.2027",
        "Правило: бесплатно — первый год после покупки (free_first_year)",
    ]
    assert [line.applied for line in evidence.lines(decision.evidence)] == [True, False]


def test_every_kind_of_record_reads_in_words_with_its_state() -> None:
    records = CallerRecords(
        licences=(Licence("OneRPA Studio", date(2021, 4, 2)),),
        updates=(UpdatePlan(date(2024, 6, 1), 12),),
        subscriptions=(
            Subscription(
                "OneRPA Cloud", date(2025, 1, 1), None, datetime(2025, 10, 15, 9, tzinfo=MSK)
            ),
        ),
        refusals=(
            RefusalFlag(
                datetime(2025, 2, 1, 10, tzinfo=MSK),
                "грубость",
                lifted_at=datetime(2025, 2, 3, 10, tzinfo=MSK),
            ),
        ),
        grants=(GOODWILL,),
    )
    day = DayFact(date(2027, 4, 2), DayKind.WORKING)
    decision = entitlement.decide(records, datetime(2027, 4, 2, 11, tzinfo=MSK), day=day)
    assert decision.reason is entitlement.Reason.NOT_ENTITLED
    assert _texts(decision) == [
        "День звонка 02.04.2027 — рабочий день",
        "Жест доброй воли до 31.03.2027 — сбой в релизе 5.2 (выдал vera, 20.11.2026): срок истёк",
        "Лицензия OneRPA Studio, куплена 02.04.2021 — бесплатный год истёк 02.04.2022",
        "Обновления, куплены 01.06.2024 на 12 мес. — срок истёк 01.06.2025",
        "Подписка на OneRPA Cloud с 01.01.2025 бессрочно — отменена 15.10.2025",
        "Отказ в консультации с 01.02.2025 до снятия: грубость — снят 03.02.2025",
        "Правило: не положено — нет действующих прав на бесплатную поддержку (not_entitled)",
    ]


def test_evidence_json_has_the_documented_format_and_reads_back() -> None:
    records = CallerRecords(
        licences=(Licence("OneRPA Studio", date(2024, 3, 1), "4711"),), grants=(GOODWILL,)
    )
    at = datetime(2026, 11, 26, 8, tzinfo=UTC)
    day = DayFact(date(2026, 11, 26), DayKind.WORKING)
    decision = entitlement.decide(records, at, day=day)
    stored = evidence.to_json(decision.reason.value, at, decision.evidence)
    assert json.loads(stored) == {
        "version": 1,
        "decision": "free_goodwill",
        "at": "2026-11-26T08:00:00+00:00",
        "facts": [
            {"kind": "day", "on": "2026-11-26", "day_type": "working"},
            {
                "kind": "grant",
                "until": "2027-03-31",
                "reason": "сбой в релизе 5.2",
                "granted_by": "vera",
                "granted_at": "2026-11-20T09:00:00+00:00",
                "state": "in_force",
                "applied": True,
            },
            {
                "kind": "licence",
                "product": "OneRPA Studio",
                "number": "4711",
                "purchased_on": "2024-03-01",
                "last_day": "2025-03-01",
                "state": "ended",
                "applied": False,
            },
            {"kind": "rule", "reason": "free_goodwill"},
        ],
    }
    back = evidence.from_json(stored)
    assert back == evidence.Evidence("free_goodwill", at, decision.evidence)


@pytest.mark.parametrize("text", [None, "", "not json", '{"version": 1}', '{"facts": [{}]}'])
def test_unreadable_stored_evidence_shows_nothing(text: str | None) -> None:
    assert evidence.stored_lines(text) == []


@pytest.mark.parametrize(
    ("moment", "kind", "words"),
    [
        (datetime(2026, 11, 26, 11, tzinfo=MSK), DayKind.WORKING, "рабочий день"),
        (datetime(2026, 11, 28, 11, tzinfo=MSK), DayKind.DAY_OFF, "выходной или праздничный день"),
        (datetime(2025, 3, 7, 11, tzinfo=MSK), DayKind.SHORT, "сокращённый предпраздничный день"),
    ],
)
def test_day_type_comes_from_the_line_calendar(moment: datetime, kind: DayKind, words: str) -> None:
    fact = evidence.day_fact(SupportCalendar(), moment)
    assert fact == DayFact(moment.date(), kind)
    assert evidence.lines([fact])[0].text.endswith(words)


def _give_goodwill(engine: Engine, customer_number: str = "100103") -> None:
    with Session(engine) as session, session.begin():
        customer = session.scalars(
            select(Customer).where(Customer.customer_number == customer_number)
        ).one()
        session.add(
            GrantRow(
                customer_id=customer.id,
                until=GOODWILL.until,
                reason=GOODWILL.reason,
                granted_by=GOODWILL.granted_by,
                granted_at=GOODWILL.granted_at,
            )
        )


def test_customer_with_a_grant_is_routed_free_goodwill_and_the_call_keeps_why(
    engine: Engine,
) -> None:
    with support_line(engine, THURSDAY_11) as line:
        _give_goodwill(engine)
        result = line.call(LAPSED, keys=["2"])
        row = line.record(result)
    assert result.variables["ONERPA_ROUTE"] == "queue"
    assert result.variables["ONERPA_DECISION"] == "free_goodwill"
    assert "жест доброй воли до 31.03.2027" in result.variables["ONERPA_SUMMARY"]
    assert (row.decision, row.reason) == ("free_goodwill", "free_goodwill")
    stored = json.loads(row.evidence)
    assert stored["decision"] == "free_goodwill"
    assert stored["facts"][0] == {"kind": "day", "on": "2026-11-26", "day_type": "working"}
    assert stored["facts"][1]["kind"] == "grant" and stored["facts"][1]["applied"] is True
    assert stored["facts"][1]["granted_by"] == "vera"
    assert stored["facts"][-1] == {"kind": "rule", "reason": "free_goodwill"}
    assert [line.text for line in evidence.stored_lines(row.evidence)][:2] == [
        "День звонка 26.11.2026 — рабочий день",
        "Жест доброй воли до 31.03.2027 — сбой в релизе 5.2 (выдал vera, 20.11.2026): "
        "бесплатная поддержка",
    ]


def test_closed_hours_call_stores_the_day_type(engine: Engine) -> None:
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=MSK)
    with support_line(engine, saturday) as line:
        row = line.record(line.call(LAPSED))
    assert row.decision == "closed"
    assert json.loads(row.evidence)["facts"] == [
        {"kind": "day", "on": "2026-11-28", "day_type": "day_off"},
        {"kind": "rule", "reason": "closed"},
    ]


def test_changing_the_directory_after_the_call_does_not_change_what_the_call_shows(
    engine: Engine,
) -> None:
    with support_line(engine, THURSDAY_11) as line:
        _give_goodwill(engine)
        row = line.record(line.call(LAPSED, keys=["2"]))
    with Session(engine) as session, session.begin():
        add_user(session, "anna", "agent", "correct horse")
        customer_id = session.scalars(
            select(Customer.id).where(Customer.customer_number == "100103")
        ).one()
        session.execute(delete(GrantRow).where(GrantRow.customer_id == customer_id))
        session.execute(
            update(LicenceRow)
            .where(LicenceRow.customer_id == customer_id)
            .values(product="OneRPA Переименованная")
        )
    agent = signed_in(make_app(engine, WebClock(THURSDAY_11)), "anna", "correct horse")
    page = agent.get(f"/calls/{row.id}").get_data(as_text=True)
    assert "На чём основано решение" in page
    assert "Жест доброй воли до 31.03.2027 — сбой в релизе 5.2 (выдал vera, 20.11.2026)" in page
    assert "Лицензия OneRPA Studio" in page and "Переименованная" not in page
    # The customer page, by contrast, decides anew on today's directory.
    card = agent.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert "Не положено" in card and "Переименованная" in card


def test_screen_pop_json_carries_the_evidence_lines(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        _give_goodwill(engine)
        row = line.record(line.call(LAPSED, keys=["2"]))
    with Session(engine) as session, session.begin():
        add_user(session, "anna", "agent", "correct horse")
    agent = signed_in(make_app(engine, WebClock(THURSDAY_11)), "anna", "correct horse")
    calls = agent.get("/api/board").get_json()["calls"]
    shown = next(call for call in calls if call["id"] == row.id)
    lines = shown["decision"]["evidence"]
    assert lines[0] == {
        "kind": "day",
        "text": "День звонка 26.11.2026 — рабочий день",
        "applied": False,
    }
    assert lines[1]["kind"] == "grant" and lines[1]["applied"] is True
    assert lines[1]["text"].startswith("Жест доброй воли до 31.03.2027 — сбой в релизе 5.2")
    assert lines[-1]["text"] == "Правило: бесплатно — жест доброй воли (free_goodwill)"
    assert shown["decision"]["label"] == "Бесплатно: жест доброй воли"
