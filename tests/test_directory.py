"""The customer directory: find a caller by phone or typed number, with what the rules need."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from onerpa import directory, entitlement
from onerpa.models import (
    Customer,
    Grant,
    Licence,
    PhoneNumber,
    Refusal,
    Subscription,
    UpdatePurchase,
)

MSK = ZoneInfo("Europe/Moscow")


@pytest.fixture
def vector(session: Session) -> Customer:
    """A customer with two numbers, a licence, updates, a subscription and a lifted refusal."""
    customer = Customer(
        customer_number="100234",
        organisation="ООО «Вектор»",
        contact_name="Ирина Петровна Соколова",
        email="sokolova@vector.example",
        phones=[
            PhoneNumber(e164="+74951234567", label="офис"),
            PhoneNumber(e164="+79161234567"),
        ],
        licences=[
            Licence(licence_number="770011", product="OneRPA Studio", purchased_on=date(2023, 5, 4))
        ],
        updates=[UpdatePurchase(purchased_on=date(2024, 6, 1), months=12)],
        subscriptions=[
            Subscription(
                service="OneRPA Cloud",
                starts_on=date(2024, 1, 1),
                ends_on=date(2024, 12, 31),
                cancelled_at=datetime(2024, 9, 1, 9, tzinfo=MSK),
            )
        ],
    )
    session.add(customer)
    session.flush()
    session.add(
        Refusal(
            customer_id=customer.id,
            reason="грубость",
            set_by="ivanova",
            set_at=datetime(2024, 2, 1, 10, tzinfo=MSK),
            lifted_at=datetime(2024, 2, 2, 10, tzinfo=MSK),
            lifted_by="petrov",
        )
    )
    session.commit()
    return customer


def test_find_by_phone_returns_the_card_with_all_records(
    session: Session, vector: Customer
) -> None:
    card = directory.find_by_phone(session, "+79161234567")
    assert card is not None
    assert card.customer_id == vector.id
    assert (card.customer_number, card.organisation) == ("100234", "ООО «Вектор»")
    assert (card.contact_name, card.email) == ("Ирина Петровна Соколова", "sokolova@vector.example")
    assert card.records.licences == (entitlement.Licence("OneRPA Studio", date(2023, 5, 4)),)
    assert card.records.updates == (entitlement.UpdatePlan(date(2024, 6, 1), 12),)
    assert card.records.subscriptions == (
        entitlement.Subscription(
            "OneRPA Cloud",
            date(2024, 1, 1),
            date(2024, 12, 31),
            datetime(2024, 9, 1, 6, tzinfo=UTC),
        ),
    )
    assert card.records.refusals == (
        entitlement.RefusalFlag(
            set_at=datetime(2024, 2, 1, 7, tzinfo=UTC),
            reason="грубость",
            expires_at=None,
            lifted_at=datetime(2024, 2, 2, 7, tzinfo=UTC),
        ),
    )


def test_card_feeds_the_rules(session: Session, vector: Customer) -> None:
    card = directory.find_by_phone(session, "+74951234567")
    assert card is not None
    decision = entitlement.decide(card.records, datetime(2025, 1, 15, 12, tzinfo=MSK))
    assert decision.reason is entitlement.Reason.FREE_UPDATES


def test_find_by_phone_returns_none_for_an_unknown_number(
    session: Session, vector: Customer
) -> None:
    assert directory.find_by_phone(session, "+74997195581") is None


@pytest.mark.parametrize("digits", ["100234", "770011"])
def test_find_by_number_accepts_customer_or_licence_number(
    session: Session, vector: Customer, digits: str
) -> None:
    card = directory.find_by_number(session, digits)
    assert card is not None
    assert card.customer_id == vector.id


@pytest.mark.parametrize("digits", ["", "999999", "10023*", "１００２３４", "100234 "])
def test_find_by_number_returns_none_for_unknown_or_non_digit_input(
    session: Session, vector: Customer, digits: str
) -> None:
    assert directory.find_by_number(session, digits) is None


def test_refusal_on_a_number_is_found_without_a_customer(session: Session) -> None:
    session.add(
        Refusal(
            phone_e164="+78125550000",
            reason="угрозы",
            set_by="ivanova",
            set_at=datetime(2024, 3, 1, 12, tzinfo=MSK),
            expires_at=datetime(2024, 6, 1, tzinfo=MSK),
        )
    )
    session.commit()
    assert directory.refusals_for_phone(session, "+78125550000") == (
        entitlement.RefusalFlag(
            set_at=datetime(2024, 3, 1, 9, tzinfo=UTC),
            reason="угрозы",
            expires_at=datetime(2024, 5, 31, 21, tzinfo=UTC),
            lifted_at=None,
        ),
    )
    assert directory.refusals_for_phone(session, "+78125550001") == ()


def test_refusal_on_the_calling_number_joins_the_customers_card(
    session: Session, vector: Customer
) -> None:
    session.add(Refusal(phone_e164="+79161234567", reason="угрозы", set_by="ivanova"))
    session.commit()
    mobile = directory.find_by_phone(session, "+79161234567")
    office = directory.find_by_phone(session, "+74951234567")
    assert mobile is not None and office is not None
    assert sorted(flag.reason for flag in mobile.records.refusals) == ["грубость", "угрозы"]
    assert [flag.reason for flag in office.records.refusals] == ["грубость"]


def test_load_card_of_a_missing_customer_is_none(session: Session) -> None:
    assert directory.load_card(session, 424242) is None


def test_a_phone_look_up_is_one_statement_on_a_plain_connection(
    engine: Engine, session: Session, vector: Customer
) -> None:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.connect() as conn:
            found = directory.look_up_phone(conn, "+79161234567")
            by_number = directory.find_by_number(conn, "770011")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert found.card is not None and by_number is not None
    assert found.card.records == by_number.records  # the same customer, two ways in
    assert len(statements) == 2


def test_a_stranger_s_look_up_brings_the_refusals_on_the_number(session: Session) -> None:
    session.add(Refusal(phone_e164="+78125550000", reason="угрозы", set_by="ivanova"))
    session.add(Refusal(phone_e164="+78125550001", reason="другой номер", set_by="ivanova"))
    session.commit()

    found = directory.look_up_phone(session, "+78125550000")

    assert found.card is None
    assert [flag.reason for flag in found.number_refusals] == ["угрозы"]
    assert directory.look_up_phone(session, "+78125550002") == directory.PhoneLookup(None, ())


def test_a_customer_s_look_up_separates_refusals_on_the_number(
    session: Session, vector: Customer
) -> None:
    session.add(Refusal(phone_e164="+79161234567", reason="угрозы", set_by="ivanova"))
    session.commit()

    found = directory.look_up_phone(session, "+79161234567")

    assert found.card is not None
    assert sorted(flag.reason for flag in found.card.records.refusals) == ["грубость", "угрозы"]
    assert [flag.reason for flag in found.number_refusals] == ["угрозы"]


def test_every_record_of_each_kind_is_loaded(session: Session, vector: Customer) -> None:
    vector.licences.append(
        Licence(licence_number="770012", product="OneRPA Robot", purchased_on=date(2025, 2, 3))
    )
    vector.updates.append(UpdatePurchase(purchased_on=date(2025, 6, 1), months=24))
    vector.subscriptions.append(
        Subscription(service="OneRPA Orchestrator", starts_on=date(2025, 1, 1))
    )
    session.commit()

    card = directory.find_by_number(session, "770012")

    assert card is not None and card.customer_id == vector.id
    assert sorted(lic.product for lic in card.records.licences) == ["OneRPA Robot", "OneRPA Studio"]
    assert sorted(plan.months for plan in card.records.updates) == [12, 24]
    assert sorted((s.service, s.ends_on) for s in card.records.subscriptions) == [
        ("OneRPA Cloud", date(2024, 12, 31)),
        ("OneRPA Orchestrator", None),
    ]


def test_look_up_brings_goodwill_grants_and_licence_numbers(
    session: Session, vector: Customer
) -> None:
    given = datetime(2026, 12, 1, 9, 30, tzinfo=MSK)
    session.add(
        Grant(
            customer_id=vector.id,
            until=date(2027, 3, 31),
            reason="сбой в релизе 5.2",
            granted_by="vera",
            granted_at=given,
        )
    )
    session.commit()
    for card in (
        directory.find_by_phone(session, "+74951234567"),
        directory.find_by_number(session, "770011"),
        directory.load_card(session, vector.id),
    ):
        assert card is not None
        assert card.records.grants == (
            entitlement.Grant(date(2027, 3, 31), "сбой в релизе 5.2", "vera", given),
        )
        assert card.records.licences[0].number == "770011"
        decision = entitlement.decide(card.records, datetime(2027, 3, 31, 12, tzinfo=MSK))
        assert decision.reason is entitlement.Reason.FREE_GOODWILL


def test_look_up_of_a_customer_without_grants_has_none(session: Session, vector: Customer) -> None:
    card = directory.find_by_phone(session, "+74951234567")
    assert card is not None and card.records.grants == ()
