"""Call timing: the durations a call's stamps give, and how they compare with the targets.

Pure functions over the stamps of one call (no database, no clock). A duration is None
when one of its two stamps is unknown: a missing stamp is never replaced by a guess.

- time in the IVR: arrival to the decision (or to the end, for a caller who hung up first);
- wait for an agent: queue entry to the answer (or to the end, for a call abandoned in the
  queue);
- consultation: the agent's answer to the end of the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from onerpa.callstatus import CallStatus
from onerpa.settings import Settings


@dataclass(frozen=True)
class Targets:
    """The timing targets, in seconds: wait for an agent, consultation target and limit."""

    wait: float = 60.0
    consultation_target: float = 180.0
    consultation_limit: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Targets:
        """Return the targets ``settings`` configure."""
        return cls(
            wait=settings.wait_target.total_seconds(),
            consultation_target=settings.consultation_target.total_seconds(),
            consultation_limit=settings.consultation_limit.total_seconds(),
        )


class Grade(StrEnum):
    """Where a consultation's length falls against the 3 and 5 minute marks."""

    WITHIN_TARGET = "within_target"  # up to the target (3 min): fine
    OVER_TARGET = "over_target"  # past the target, up to the limit: a warning
    OVER_LIMIT = "over_limit"  # past the limit (5 min): a breach


class Stamped(Protocol):
    """What timing needs of a call (a ``Call`` row fits)."""

    status: str
    arrived_at: datetime
    decided_at: datetime | None
    queued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class Timing:
    """The durations of one call, in seconds; None where a stamp is missing."""

    ivr_seconds: float | None
    wait_seconds: float | None
    consultation_seconds: float | None


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    """Return the seconds from ``start`` to ``end``, None if either is unknown."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def timing(call: Stamped) -> Timing:
    """Return the IVR, wait and consultation times of ``call``."""
    return Timing(
        ivr_seconds=ivr_seconds(call),
        wait_seconds=wait_seconds(call),
        consultation_seconds=seconds(call.answered_at, call.ended_at),
    )


def ivr_seconds(call: Stamped) -> float | None:
    """Return the time from arrival to the decision, or to the end if none was made."""
    if call.decided_at is not None:
        return seconds(call.arrived_at, call.decided_at)
    if call.status == CallStatus.ABANDONED_IVR:
        return seconds(call.arrived_at, call.ended_at)
    return None


def wait_seconds(call: Stamped) -> float | None:
    """Return the wait for an agent: to the answer, or to the end of an abandoned call."""
    if call.answered_at is not None:
        return seconds(call.queued_at, call.answered_at)
    if call.status == CallStatus.ABANDONED_QUEUE:
        return seconds(call.queued_at, call.ended_at)
    return None


def grade(consultation: float, targets: Targets) -> Grade:
    """Classify a consultation of ``consultation`` seconds against the targets."""
    if consultation > targets.consultation_limit:
        return Grade.OVER_LIMIT
    if consultation > targets.consultation_target:
        return Grade.OVER_TARGET
    return Grade.WITHIN_TARGET


def answered_within(wait: float, targets: Targets) -> bool:
    """Return True when a wait counts as within the service level (Asterisk: ``<=``)."""
    return wait <= targets.wait
