"""The support rules, rule by rule and boundary by boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from onerpa.entitlement import (
    CallerRecords,
    DayFact,
    DayKind,
    Grant,
    GrantFact,
    Licence,
    LicenceFact,
    Reason,
    RefusalFlag,
    RuleFact,
    State,
    Subscription,
    UpdatePlan,
    active_refusal,
    add_months,
    decide,
    end_of_day,
    last_free_day_after_purchase,
)

MSK = ZoneInfo("Europe/Moscow")
SECOND = timedelta(seconds=1)


def msk(*args: int) -> datetime:
    return datetime(*args, tzinfo=MSK)  # type: ignore[misc]


def bought(*days: date) -> CallerRecords:
    return CallerRecords(licences=tuple(Licence("OneRPA Studio", day) for day in days))


MARCH_15 = bought(date(2024, 3, 15))
LEAP_DAY = bought(date(2024, 2, 29))


@pytest.mark.parametrize(
    ("records", "at", "reason", "valid_until"),
    [
        pytest.param(
            MARCH_15,
            msk(2024, 3, 15),
            Reason.FREE_FIRST_YEAR,
            date(2025, 3, 15),
            id="purchase-day-midnight",
        ),
        pytest.param(
            MARCH_15,
            msk(2024, 3, 15) - SECOND,
            Reason.NOT_ENTITLED,
            None,
            id="second-before-purchase",
        ),
        pytest.param(
            MARCH_15,
            msk(2024, 9, 1, 12),
            Reason.FREE_FIRST_YEAR,
            date(2025, 3, 15),
            id="middle-of-year",
        ),
        pytest.param(
            MARCH_15,
            msk(2025, 3, 15, 12),
            Reason.FREE_FIRST_YEAR,
            date(2025, 3, 15),
            id="anniversary-day",
        ),
        pytest.param(
            MARCH_15,
            msk(2025, 3, 16) - SECOND,
            Reason.FREE_FIRST_YEAR,
            date(2025, 3, 15),
            id="second-before-anniversary-ends",
        ),
        pytest.param(
            MARCH_15, msk(2025, 3, 16), Reason.NOT_ENTITLED, None, id="exact-end-of-anniversary"
        ),
        pytest.param(
            MARCH_15,
            msk(2025, 3, 16) + SECOND,
            Reason.NOT_ENTITLED,
            None,
            id="second-after-anniversary",
        ),
        pytest.param(
            MARCH_15,
            datetime(2025, 3, 15, 20, 59, 59, tzinfo=UTC),
            Reason.FREE_FIRST_YEAR,
            date(2025, 3, 15),
            id="utc-just-inside",
        ),
        pytest.param(
            MARCH_15,
            datetime(2025, 3, 15, 21, 0, 0, tzinfo=UTC),
            Reason.NOT_ENTITLED,
            None,
            id="utc-midnight-moscow",
        ),
        pytest.param(
            LEAP_DAY,
            msk(2025, 2, 28, 23, 59, 59),
            Reason.FREE_FIRST_YEAR,
            date(2025, 2, 28),
            id="leap-day-purchase-last-day",
        ),
        pytest.param(
            LEAP_DAY, msk(2025, 3, 1), Reason.NOT_ENTITLED, None, id="leap-day-purchase-expired"
        ),
        pytest.param(
            bought(date(2023, 2, 28)),
            msk(2024, 2, 29),
            Reason.NOT_ENTITLED,
            None,
            id="feb-28-purchase-not-extended-by-leap-day",
        ),
    ],
)
def test_first_year_after_purchase(
    records: CallerRecords, at: datetime, reason: Reason, valid_until: date | None
) -> None:
    decision = decide(records, at)
    assert decision.reason is reason
    assert decision.valid_until == valid_until


OLD_LICENCE = Licence("OneRPA Studio", date(2020, 1, 10))


def with_updates(*plans: UpdatePlan, licence: Licence = OLD_LICENCE) -> CallerRecords:
    return CallerRecords(licences=(licence,), updates=plans)


@pytest.mark.parametrize(
    ("records", "at", "reason", "valid_until"),
    [
        pytest.param(
            with_updates(UpdatePlan(date(2024, 6, 1))),
            msk(2024, 6, 1),
            Reason.FREE_UPDATES,
            date(2025, 6, 1),
            id="updates-day-of-purchase",
        ),
        pytest.param(
            with_updates(UpdatePlan(date(2024, 6, 1))),
            msk(2024, 6, 1) - SECOND,
            Reason.NOT_ENTITLED,
            None,
            id="second-before-updates",
        ),
        pytest.param(
            with_updates(UpdatePlan(date(2024, 6, 1))),
            msk(2025, 6, 2) - SECOND,
            Reason.FREE_UPDATES,
            date(2025, 6, 1),
            id="updates-last-second",
        ),
        pytest.param(
            with_updates(UpdatePlan(date(2024, 6, 1))),
            msk(2025, 6, 2),
            Reason.NOT_ENTITLED,
            None,
            id="updates-expired",
        ),
        pytest.param(
            with_updates(UpdatePlan(date(2024, 6, 1), months=24)),
            msk(2026, 5, 30),
            Reason.FREE_UPDATES,
            date(2026, 6, 1),
            id="two-year-updates",
        ),
        pytest.param(
            with_updates(UpdatePlan(date(2024, 2, 29), months=12)),
            msk(2025, 2, 28, 23),
            Reason.FREE_UPDATES,
            date(2025, 2, 28),
            id="updates-bought-on-leap-day",
        ),
        pytest.param(
            with_updates(
                UpdatePlan(date(2024, 10, 1)), licence=Licence("OneRPA Studio", date(2024, 1, 10))
            ),
            msk(2024, 11, 1),
            Reason.FREE_UPDATES,
            date(2025, 10, 1),
            id="updates-bought-in-first-year-count-from-their-purchase",
        ),
        pytest.param(
            with_updates(
                UpdatePlan(date(2024, 10, 1)), licence=Licence("OneRPA Studio", date(2024, 1, 10))
            ),
            msk(2025, 5, 1),
            Reason.FREE_UPDATES,
            date(2025, 10, 1),
            id="updates-bought-in-first-year-outlast-it",
        ),
        pytest.param(
            with_updates(
                UpdatePlan(date(2025, 3, 1)), licence=Licence("OneRPA Studio", date(2024, 1, 10))
            ),
            msk(2025, 2, 15),
            Reason.NOT_ENTITLED,
            None,
            id="gap-between-first-year-and-later-updates",
        ),
    ],
)
def test_updates_bought_give_free_support_from_their_purchase(
    records: CallerRecords, at: datetime, reason: Reason, valid_until: date | None
) -> None:
    decision = decide(records, at)
    assert decision.reason is reason
    assert decision.valid_until == valid_until


def subscribed(sub: Subscription) -> CallerRecords:
    return CallerRecords(subscriptions=(sub,))


OPEN_ENDED = Subscription("OneRPA Cloud", date(2023, 1, 1))
ENDS_2024 = Subscription("OneRPA Cloud", date(2023, 1, 1), ends_on=date(2024, 12, 31))
CANCELLED = Subscription("OneRPA Cloud", date(2023, 1, 1), cancelled_at=msk(2024, 6, 1, 12))
ENDED_2023 = Subscription("OneRPA Cloud", date(2022, 1, 1), ends_on=date(2023, 12, 31))
NOT_STARTED = Subscription("OneRPA Cloud", date(2025, 1, 1), ends_on=date(2025, 12, 31))


@pytest.mark.parametrize(
    ("records", "at", "reason", "valid_until"),
    [
        pytest.param(
            subscribed(OPEN_ENDED), msk(2030, 1, 1), Reason.FREE_SUBSCRIPTION, None, id="open-ended"
        ),
        pytest.param(
            subscribed(OPEN_ENDED),
            msk(2023, 1, 1) - SECOND,
            Reason.NOT_ENTITLED,
            None,
            id="open-ended-before-start",
        ),
        pytest.param(
            subscribed(ENDS_2024),
            msk(2025, 1, 1) - SECOND,
            Reason.FREE_SUBSCRIPTION,
            date(2024, 12, 31),
            id="last-second-of-end-date",
        ),
        pytest.param(subscribed(ENDS_2024), msk(2025, 1, 1), Reason.NOT_ENTITLED, None, id="ended"),
        pytest.param(
            subscribed(CANCELLED),
            msk(2024, 6, 1, 12) - SECOND,
            Reason.FREE_SUBSCRIPTION,
            None,
            id="cancelled-after-the-moment",
        ),
        pytest.param(
            subscribed(CANCELLED),
            msk(2024, 6, 1, 12),
            Reason.NOT_ENTITLED,
            None,
            id="cancelled-at-the-moment",
        ),
        pytest.param(
            subscribed(CANCELLED),
            msk(2024, 7, 1),
            Reason.NOT_ENTITLED,
            None,
            id="cancelled-before-the-moment",
        ),
        pytest.param(
            subscribed(NOT_STARTED),
            msk(2025, 1, 1) - SECOND,
            Reason.NOT_ENTITLED,
            None,
            id="not-yet-started",
        ),
        pytest.param(
            subscribed(NOT_STARTED),
            msk(2025, 1, 1),
            Reason.FREE_SUBSCRIPTION,
            date(2025, 12, 31),
            id="first-day",
        ),
    ],
)
def test_subscribers_are_free_while_subscribed(
    records: CallerRecords, at: datetime, reason: Reason, valid_until: date | None
) -> None:
    decision = decide(records, at)
    assert decision.reason is reason
    assert decision.valid_until == valid_until


@pytest.mark.parametrize(
    ("records", "at", "reason", "valid_until"),
    [
        pytest.param(
            bought(date(2020, 5, 1), date(2024, 5, 1)),
            msk(2025, 1, 1),
            Reason.FREE_FIRST_YEAR,
            date(2025, 5, 1),
            id="newest-licence-counts",
        ),
        pytest.param(
            bought(date(2024, 5, 1), date(2024, 8, 1)),
            msk(2024, 9, 1),
            Reason.FREE_FIRST_YEAR,
            date(2025, 8, 1),
            id="later-of-two-first-years",
        ),
        pytest.param(
            CallerRecords(licences=MARCH_15.licences, subscriptions=(OPEN_ENDED,)),
            msk(2024, 9, 1),
            Reason.FREE_SUBSCRIPTION,
            None,
            id="open-ended-subscription-outlasts-first-year",
        ),
        pytest.param(
            CallerRecords(licences=MARCH_15.licences, subscriptions=(ENDS_2024,)),
            msk(2024, 9, 1),
            Reason.FREE_FIRST_YEAR,
            date(2025, 3, 15),
            id="first-year-outlasts-subscription",
        ),
        pytest.param(
            CallerRecords(
                licences=(OLD_LICENCE,),
                updates=(UpdatePlan(date(2023, 1, 1)), UpdatePlan(date(2024, 2, 1))),
            ),
            msk(2024, 3, 1),
            Reason.FREE_UPDATES,
            date(2025, 2, 1),
            id="latest-updates-count",
        ),
        pytest.param(
            CallerRecords(licences=(OLD_LICENCE,), subscriptions=(CANCELLED, OPEN_ENDED)),
            msk(2024, 7, 1),
            Reason.FREE_SUBSCRIPTION,
            None,
            id="active-subscription-beside-a-cancelled-one",
        ),
    ],
)
def test_most_favourable_of_several_purchases_applies(
    records: CallerRecords, at: datetime, reason: Reason, valid_until: date | None
) -> None:
    decision = decide(records, at)
    assert decision.reason is reason
    assert decision.valid_until == valid_until


@pytest.mark.parametrize(
    ("records", "critical", "reason"),
    [
        pytest.param(
            bought(date(2020, 1, 10)), True, Reason.FREE_CRITICAL_BUG, id="past-year-declared"
        ),
        pytest.param(
            bought(date(2020, 1, 10)), False, Reason.NOT_ENTITLED, id="past-year-not-declared"
        ),
        pytest.param(
            bought(date(2024, 1, 10)), True, Reason.FREE_FIRST_YEAR, id="first-year-needs-no-bug"
        ),
        pytest.param(
            bought(date(2025, 1, 10)), True, Reason.NOT_ENTITLED, id="licence-bought-after-the-call"
        ),
        pytest.param(
            subscribed(ENDED_2023),
            True,
            Reason.NOT_ENTITLED,
            id="former-subscriber-without-licence",
        ),
        pytest.param(CallerRecords(), True, Reason.NOT_ENTITLED, id="no-purchases"),
    ],
)
def test_critical_bug_is_free_only_when_declared_by_a_software_buyer(
    records: CallerRecords, critical: bool, reason: Reason
) -> None:
    assert decide(records, msk(2024, 6, 1, 10), critical_bug=critical).reason is reason


RUDE = RefusalFlag(set_at=msk(2024, 5, 1, 10), reason="оскорбления")
RUDE_UNTIL_JULY = RefusalFlag(
    set_at=msk(2024, 5, 1, 10), reason="оскорбления", expires_at=msk(2024, 7, 1)
)
RUDE_LIFTED = RefusalFlag(
    set_at=msk(2024, 5, 1, 10), reason="оскорбления", lifted_at=msk(2024, 6, 10)
)
FIRST_YEAR = date(2024, 3, 15)


def refused(*flags: RefusalFlag, **extra: object) -> CallerRecords:
    return CallerRecords(
        licences=(Licence("OneRPA Studio", FIRST_YEAR),),
        refusals=flags,
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("records", "at", "critical", "reason"),
    [
        pytest.param(
            refused(RUDE),
            msk(2024, 5, 1, 10) - SECOND,
            False,
            Reason.FREE_FIRST_YEAR,
            id="before-the-flag-was-set",
        ),
        pytest.param(
            refused(RUDE),
            msk(2024, 5, 1, 10),
            False,
            Reason.REFUSED_ETIQUETTE,
            id="from-the-moment-it-is-set",
        ),
        pytest.param(
            refused(RUDE),
            msk(2030, 1, 1),
            False,
            Reason.REFUSED_ETIQUETTE,
            id="without-expiry-stays",
        ),
        pytest.param(
            refused(RUDE_UNTIL_JULY),
            msk(2024, 7, 1) - SECOND,
            False,
            Reason.REFUSED_ETIQUETTE,
            id="second-before-expiry",
        ),
        pytest.param(
            refused(RUDE_UNTIL_JULY), msk(2024, 7, 1), False, Reason.FREE_FIRST_YEAR, id="at-expiry"
        ),
        pytest.param(
            refused(RUDE_LIFTED),
            msk(2024, 6, 10) - SECOND,
            False,
            Reason.REFUSED_ETIQUETTE,
            id="before-lifting",
        ),
        pytest.param(
            refused(RUDE_LIFTED), msk(2024, 6, 10), False, Reason.FREE_FIRST_YEAR, id="lifted"
        ),
        pytest.param(
            refused(RUDE_LIFTED, RUDE_UNTIL_JULY),
            msk(2024, 6, 20),
            False,
            Reason.REFUSED_ETIQUETTE,
            id="one-lifted-one-active",
        ),
        pytest.param(
            refused(RUDE, subscriptions=(OPEN_ENDED,)),
            msk(2024, 6, 1),
            False,
            Reason.REFUSED_ETIQUETTE,
            id="overrides-subscription",
        ),
        pytest.param(
            refused(RUDE),
            msk(2026, 1, 1),
            True,
            Reason.REFUSED_ETIQUETTE,
            id="overrides-critical-bug",
        ),
    ],
)
def test_active_etiquette_refusal_overrides_everything(
    records: CallerRecords, at: datetime, critical: bool, reason: Reason
) -> None:
    assert decide(records, at, critical_bug=critical).reason is reason


def test_refusal_with_expiry_names_its_last_day() -> None:
    decision = decide(refused(RUDE_UNTIL_JULY), msk(2024, 6, 1))
    assert decision.valid_until == date(2024, 6, 30)  # expires at 00:00 on 1 July
    assert decision.explanation == (
        "Отказ в консультации (нарушение этикета) до 30.06.2024: оскорбления"
    )
    assert decision.entitled is False


def test_active_refusal_returns_the_flag_in_force() -> None:
    assert active_refusal((RUDE_LIFTED, RUDE_UNTIL_JULY), msk(2024, 6, 20)) == RUDE_UNTIL_JULY


def test_unknown_caller_is_reported_as_such() -> None:
    decision = decide(None, msk(2024, 6, 1), critical_bug=True)
    assert decision.reason is Reason.UNKNOWN_CALLER
    assert decision.entitled is False


def test_first_year_explanation_names_the_last_free_day() -> None:
    decision = decide(LEAP_DAY, msk(2024, 6, 1))
    assert decision.explanation == (
        "Бесплатно: первый год после покупки (OneRPA Studio), до 28.02.2025"
    )
    assert decision.entitled is True


def test_not_entitled_explanation_names_when_the_free_year_ended() -> None:
    decision = decide(MARCH_15, msk(2025, 6, 1))
    assert decision.explanation.startswith("Не положено: бесплатный год истёк 15.03.2025")


def test_reason_codes_are_stable_strings() -> None:
    assert [reason.value for reason in Reason] == [
        "free_first_year",
        "free_updates",
        "free_subscription",
        "free_critical_bug",
        "free_goodwill",
        "not_entitled",
        "refused_etiquette",
        "unknown_caller",
    ]


def test_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        decide(MARCH_15, datetime(2024, 6, 1, 12))


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 3, 15), 12, date(2025, 3, 15)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 3, 31), 1, date(2024, 4, 30)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2024, 12, 31), 14, date(2026, 2, 28)),
    ],
)
def test_add_months_lands_on_the_same_day_or_the_months_last(
    start: date, months: int, expected: date
) -> None:
    assert add_months(start, months) == expected


def test_last_free_day_after_leap_day_purchase_is_28_february() -> None:
    assert last_free_day_after_purchase(date(2024, 2, 29)) == date(2025, 2, 28)


def test_term_ending_on_a_day_expires_at_moscow_midnight_after_it() -> None:
    assert end_of_day(date(2025, 2, 28)) == datetime(2025, 2, 28, 21, 0, tzinfo=UTC)


# Goodwill grants: free support given by a supervisor until a date, through its last day.
GOODWILL = Grant(
    date(2027, 3, 31), "сбой в релизе 5.2", "vera", datetime(2026, 12, 1, 9, tzinfo=UTC)
)


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        pytest.param(msk(2026, 12, 1, 12) - SECOND, Reason.NOT_ENTITLED, id="before-given"),
        pytest.param(msk(2026, 12, 1, 12), Reason.FREE_GOODWILL, id="when-given"),
        pytest.param(msk(2027, 3, 31, 23, 59, 59), Reason.FREE_GOODWILL, id="last-day-end"),
        pytest.param(msk(2027, 4, 1), Reason.NOT_ENTITLED, id="day-after-midnight"),
    ],
)
def test_goodwill_grant_holds_through_its_last_day_moscow(at: datetime, reason: Reason) -> None:
    records = CallerRecords(
        licences=(Licence("OneRPA Studio", date(2020, 1, 10)),), grants=(GOODWILL,)
    )
    assert decide(records, at).reason is reason


def test_goodwill_grant_is_explained_with_its_reason_and_giver() -> None:
    decision = decide(CallerRecords(grants=(GOODWILL,)), msk(2027, 1, 15, 10))
    assert decision.explanation == (
        "Бесплатно: жест доброй воли до 31.03.2027 — сбой в релизе 5.2 (выдал vera)"
    )
    assert decision.valid_until == date(2027, 3, 31)
    assert decision.entitled


@pytest.mark.parametrize(
    ("bought_on", "reason", "valid_until"),
    [
        # The free year runs to 10.01.2027, the grant to 31.03.2027: the grant goes further.
        pytest.param(date(2026, 1, 10), Reason.FREE_GOODWILL, date(2027, 3, 31), id="grant-longer"),
        # The free year runs to 20.06.2027: it outlasts the grant.
        pytest.param(
            date(2026, 6, 20), Reason.FREE_FIRST_YEAR, date(2027, 6, 20), id="first-year-longer"
        ),
    ],
)
def test_most_favourable_of_grant_and_first_year_wins(
    bought_on: date, reason: Reason, valid_until: date
) -> None:
    records = CallerRecords(licences=(Licence("OneRPA Studio", bought_on),), grants=(GOODWILL,))
    decision = decide(records, msk(2026, 12, 15, 10))
    assert (decision.reason, decision.valid_until) == (reason, valid_until)


def test_refusal_still_beats_a_goodwill_grant() -> None:
    refusal = RefusalFlag(msk(2026, 12, 2, 10), "оскорбления")
    records = CallerRecords(grants=(GOODWILL,), refusals=(refusal,))
    assert decide(records, msk(2026, 12, 15, 10)).reason is Reason.REFUSED_ETIQUETTE


def test_decision_evidence_names_the_applied_grant_the_other_terms_and_the_rule() -> None:
    licence = Licence("OneRPA Studio", date(2024, 3, 1), "4711")
    day = DayFact(date(2026, 12, 15), DayKind.WORKING)
    decision = decide(
        CallerRecords(licences=(licence,), grants=(GOODWILL,)), msk(2026, 12, 15, 10), day=day
    )
    assert decision.evidence == (
        day,
        GrantFact(
            date(2027, 3, 31),
            "сбой в релизе 5.2",
            "vera",
            datetime(2026, 12, 1, 9, tzinfo=UTC),
            State.IN_FORCE,
            applied=True,
        ),
        LicenceFact("OneRPA Studio", "4711", date(2024, 3, 1), date(2025, 3, 1), State.ENDED),
        RuleFact("free_goodwill"),
    )


def test_refused_decision_evidence_marks_the_refusal_and_the_grant_not_applied() -> None:
    refusal = RefusalFlag(msk(2026, 12, 2, 10), "оскорбления")
    decision = decide(CallerRecords(grants=(GOODWILL,), refusals=(refusal,)), msk(2026, 12, 15, 10))
    applied = [fact for fact in decision.evidence if getattr(fact, "applied", False)]
    assert [type(fact).__name__ for fact in applied] == ["RefusalFact"]
    grant = next(fact for fact in decision.evidence if isinstance(fact, GrantFact))
    assert (grant.state, grant.applied) == (State.IN_FORCE, False)
    assert decision.evidence[-1] == RuleFact("refused_etiquette")


def test_unknown_caller_evidence_is_only_the_rule() -> None:
    assert decide(None, msk(2026, 12, 15, 10)).evidence == (RuleFact("unknown_caller"),)
