"""Where a call is in its life: the values of ``calls.status`` and ``calls.ended_by``."""

from __future__ import annotations

from enum import StrEnum


class CallStatus(StrEnum):
    IN_IVR = "in_ivr"  # talking to the call flow
    QUEUED = "queued"  # routed to the support queue, waiting for an agent
    TALKING = "talking"  # an agent answered
    COMPLETED = "completed"  # answered and ended
    ENDED_IVR = "ended_ivr"  # ended by design in the IVR: closed, not a customer, refused...
    TRANSFERRED = "transferred"  # sent to the sales line
    ABANDONED_IVR = "abandoned_ivr"  # the caller hung up in the IVR
    ABANDONED_QUEUE = "abandoned_queue"  # the caller hung up, or timed out, before an answer
    # The queue turned the caller away: every member paused or unavailable, at entry or
    # while waiting (QUEUESTATUS JOINEMPTY, JOINUNAVAIL, LEAVEEMPTY, LEAVEUNAVAIL).
    NO_AGENTS = "no_agents"
    LOST = "lost"  # no end signal ever came; closed by the sweep, end time unknown


LIVE = frozenset({CallStatus.IN_IVR, CallStatus.QUEUED, CallStatus.TALKING})


class EndedBy(StrEnum):
    CALLER = "caller"
    AGENT = "agent"
    SYSTEM = "system"  # the IVR or the dialplan ended it (closed hours, queue timeout, no agents)
    ERROR = "error"  # the AGI connection broke
    SWEEP = "sweep"
