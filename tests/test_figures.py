"""Call-centre figures on hand-made call sets, with the values worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from onerpa import figures, timing
from onerpa.callstatus import CallStatus
from onerpa.figures import OUTCOME_OF, Figures, Outcome
from onerpa.models import Call
from onerpa.settings import Settings
from onerpa.timing import Targets

DAY = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Moscow
TARGETS = Targets()
S = timedelta(seconds=1)

# (status, decision, wait, talk, agent); waits and talks in seconds, None = never happened.
CALLS = [
    ("completed", "free_first_year", 20, 100, "Agent A"),
    ("completed", "free_first_year", 60, 180, "Agent A"),  # exactly on both marks: within
    ("completed", "free_updates", 61, 240, "Agent B"),
    ("completed", "free_updates", 90, 301, "Agent B"),
    ("completed", "free_updates", 10, 600, "Agent A"),
    ("abandoned_queue", "free_first_year", 30, None, None),
    ("abandoned_queue", "free_updates", 75, None, None),
    ("abandoned_ivr", None, None, None, None),
    ("ended_ivr", "closed", None, None, None),
    ("transferred", "not_entitled", None, None, None),
    ("talking", "free_first_year", 5, None, "Agent B"),  # answered, still talking
    ("lost", "free_first_year", None, None, None),  # queued, then swept
]


def make_call(n: int, arrived: datetime, spec: tuple) -> Call:
    status, decision, wait, talk, agent = spec
    call = Call(call_ref=f"c{n}", arrived_at=arrived, status=status, decision=decision)
    if decision is not None:
        call.decided_at = arrived + 15 * S
    if status == "abandoned_ivr":
        call.ended_at = arrived + 8 * S
    if status in ("ended_ivr", "transferred"):
        call.ended_at = arrived + 40 * S
    if status in ("completed", "abandoned_queue", "talking", "lost"):
        call.queued_at = arrived + 15 * S
    if wait is not None and status != "abandoned_queue":
        call.answered_at = call.queued_at + wait * S
        call.agent = agent
    if status == "abandoned_queue":
        call.ended_at = call.queued_at + wait * S
    if talk is not None:
        call.ended_at = call.answered_at + talk * S
    return call


@pytest.fixture
def calls(session: Session) -> Session:
    for n, spec in enumerate(CALLS, 1):
        session.add(make_call(n, DAY + timedelta(minutes=10 * n), spec))
    # The day before, outside every period asked for below.
    session.add(make_call(99, DAY - timedelta(days=1), CALLS[0]))
    session.commit()
    return session


def period() -> tuple[datetime, datetime]:
    return DAY, DAY + timedelta(hours=3)


def test_figures_of_a_period_match_the_hand_count(calls: Session) -> None:
    result = figures.compute(calls, *period(), targets=TARGETS)
    assert result == Figures(
        offered=12,
        answered=6,  # five completed and the one still talking
        abandoned_queue=2,
        abandoned_ivr=1,
        ended_by_rules=2,  # closed, and the one sent to sales
        lost=1,
        in_progress=0,
        transferred=1,
        service_level=pytest.approx(4 / 6),  # waits 20, 60, 10, 5 of six answered
        service_level2=pytest.approx(5 / 8),  # plus the one abandoned after 30 s, of eight
        asa_seconds=pytest.approx(246 / 6),
        consultation_avg_seconds=pytest.approx(1421 / 5),
        consultation_p90_seconds=pytest.approx(600),  # rank ceil(0.9 * 5) = 5
        within_target_share=pytest.approx(2 / 5),
        within_limit_share=pytest.approx(3 / 5),
        over_target=3,
        over_limit=2,
    )


def test_figures_per_agent_count_only_their_calls(calls: Session) -> None:
    result = figures.per_agent(calls, *period(), targets=TARGETS)
    assert set(result) == {"Agent A", "Agent B"}
    a, b = result["Agent A"], result["Agent B"]
    assert (a.answered, a.service_level, a.asa_seconds) == (3, 1.0, pytest.approx(30))
    assert a.consultation_avg_seconds == pytest.approx(880 / 3)
    assert a.consultation_p90_seconds == pytest.approx(600)
    assert (b.answered, b.service_level, b.asa_seconds) == (3, pytest.approx(1 / 3), 52)
    assert (b.consultation_avg_seconds, b.consultation_p90_seconds) == (270.5, 301)
    assert figures.compute(calls, *period(), targets=TARGETS, agent="Agent B") == b


def test_figures_per_decision_include_calls_ended_before_one(calls: Session) -> None:
    result = figures.per_decision(calls, *period(), targets=TARGETS)
    assert set(result) == {"free_first_year", "free_updates", "closed", "not_entitled", "undecided"}
    first, updates = result["free_first_year"], result["free_updates"]
    assert (first.offered, first.answered, first.abandoned_queue) == (5, 3, 1)
    assert (first.service_level, first.service_level2) == (1.0, 1.0)
    assert (updates.offered, updates.service_level, updates.service_level2) == (
        4,
        pytest.approx(1 / 3),
        pytest.approx(1 / 4),
    )
    assert result["undecided"].abandoned_ivr == 1
    assert result["undecided"].service_level is None
    assert result["closed"].ended_by_rules == 1
    assert (result["not_entitled"].ended_by_rules, result["not_entitled"].transferred) == (1, 1)
    undecided = figures.compute(calls, *period(), targets=TARGETS, decision="undecided")
    assert undecided == result["undecided"]


def test_empty_period_gives_zeros_and_no_ratios(calls: Session) -> None:
    empty = figures.compute(
        calls, DAY + timedelta(days=5), DAY + timedelta(days=6), targets=TARGETS
    )
    assert empty == Figures()
    assert empty.service_level is None and empty.consultation_p90_seconds is None


def test_consultation_bands_put_a_mark_in_the_band_below_it(calls: Session) -> None:
    assert figures.consultation_histogram(calls, *period()) == [
        ("0-60", 0),
        ("60-120", 1),
        ("120-180", 1),  # exactly 180 s: within the target
        ("180-240", 1),
        ("240-300", 0),
        ("300-420", 1),
        ("420-600", 1),
        ("600+", 0),
    ]


def test_hours_are_local_including_half_hour_zones(calls: Session) -> None:
    moscow = figures.hourly(calls, *period(), ZoneInfo("Europe/Moscow"))
    assert [(h.hour, offered, answered) for h, offered, answered in moscow] == [
        (10, 5, 5),
        (11, 6, 1),
        (12, 1, 0),
    ]
    kolkata = figures.hourly(calls, *period(), ZoneInfo("Asia/Kolkata"))
    assert [(h.hour, h.minute, o, a) for h, o, a in kolkata] == [
        (12, 0, 2, 2),
        (13, 0, 6, 3),
        (14, 0, 4, 1),
        (15, 0, 0, 0),
    ]


def test_the_repeated_hour_of_a_dst_change_is_two_hours(session: Session) -> None:
    start = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # Berlin: 02:00 CEST, then 02:00 CET
    for n, minutes in enumerate((30, 90), 1):
        session.add(make_call(n, start + timedelta(minutes=minutes), CALLS[0]))
    session.commit()
    hours = figures.hourly(session, start, start + timedelta(hours=3), ZoneInfo("Europe/Berlin"))
    assert [(h.hour, h.utcoffset(), o) for h, o, _ in hours] == [
        (2, timedelta(hours=2), 1),
        (2, timedelta(hours=1), 1),
        (3, timedelta(hours=1), 0),
    ]


def test_timing_of_one_call_and_its_grade() -> None:
    call = make_call(1, DAY, CALLS[3])
    got = timing.timing(call)
    assert (got.ivr_seconds, got.wait_seconds, got.consultation_seconds) == (15, 90, 301)
    assert timing.grade(got.consultation_seconds, TARGETS) is timing.Grade.OVER_LIMIT
    assert timing.grade(180, TARGETS) is timing.Grade.WITHIN_TARGET
    assert timing.grade(180.5, TARGETS) is timing.Grade.OVER_TARGET
    assert timing.answered_within(60, TARGETS) and not timing.answered_within(60.001, TARGETS)
    abandoned = timing.timing(make_call(2, DAY, CALLS[7]))
    assert (abandoned.ivr_seconds, abandoned.wait_seconds) == (8, None)
    lost = timing.timing(make_call(3, DAY, CALLS[11]))
    assert lost == timing.Timing(15, None, None)  # no end is invented


def test_targets_come_from_the_settings() -> None:
    settings = Settings.from_env({"ONERPA_WAIT_TARGET_SECONDS": "45"})
    assert Targets.from_settings(settings) == Targets(wait=45, consultation_target=180)


# --- outcomes: every offered call in exactly one ---------------------------------------


def test_every_status_has_one_outcome() -> None:
    assert set(OUTCOME_OF) == set(CallStatus)
    assert {OUTCOME_OF[s] for s in CallStatus} == set(Outcome)


def test_a_call_swept_after_an_answer_is_answered_not_lost(session: Session) -> None:
    swept = make_call(1, DAY, ("talking", "free_updates", 30, None, "Agent A"))
    swept.status = "lost"
    session.add_all([swept, make_call(2, DAY, CALLS[11])])  # and one lost in the queue
    session.commit()
    result = figures.compute(session, *period(), targets=TARGETS)
    assert (result.offered, result.answered, result.lost) == (2, 1, 1)
    assert (result.service_level, result.asa_seconds) == (1.0, 30)


def _stamp(draw: st.DrawFn, base: datetime) -> datetime | None:
    seconds = draw(st.none() | st.floats(0, 1800, allow_nan=False))
    return None if seconds is None else base + seconds * S


@st.composite
def any_call(draw: st.DrawFn) -> dict[str, object]:
    """A call in any status with any stamps: the outcome must follow the status alone."""
    arrived = DAY + draw(st.integers(0, 3 * 3600 - 1)) * S
    return {
        "status": draw(st.sampled_from(CallStatus)).value,
        "decision": draw(st.sampled_from([None, "closed", "free_updates", "not_entitled"])),
        "arrived_at": arrived,
        "queued_at": _stamp(draw, arrived),
        "answered_at": _stamp(draw, arrived + 1800 * S),
        "ended_at": _stamp(draw, arrived + 3600 * S),
        "agent": draw(st.sampled_from([None, "Agent 101", "Agent 102"])),
    }


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(any_call(), max_size=30))
def test_outcome_cards_add_up_to_offered(engine: Engine, calls: list[dict[str, object]]) -> None:
    with Session(engine) as session:
        session.execute(delete(Call))
        session.add_all(Call(call_ref=f"g{n}", **call) for n, call in enumerate(calls))
        session.commit()
        total = figures.compute(session, *period(), targets=TARGETS)
        decisions = figures.per_decision(session, *period(), targets=TARGETS)
    expected = {outcome: 0 for outcome in Outcome}
    for call in calls:
        expected[figures.outcome_of(call["status"], call["answered_at"])] += 1
    assert dict(total.outcomes()) == expected
    assert sum(count for _, count in total.outcomes()) == total.offered == len(calls)
    for part in decisions.values():
        assert sum(count for _, count in part.outcomes()) == part.offered
    assert total.answered == expected[Outcome.ANSWERED]
