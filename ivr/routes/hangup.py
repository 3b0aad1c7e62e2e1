"""The ``hangup`` hook: the call is over.

Asterisk runs it from the hang-up handler on the caller's channel, wherever the call ended
(IVR, queue, talking to an agent, sales). Channel commands get 511 there; reading variables
works, and that is all this route does. Arguments (asterisk/extensions.conf): our call id,
and the caller's uniqueid. The end is stamped with this server's clock.

The final status depends on where the call was, which the stored record knows: the
recorder resolves it (talking -> completed, queued -> abandoned_queue, in the IVR ->
abandoned_ivr; an end already recorded stays). A QUEUESTATUS that says no member could take
a call (JOINEMPTY, JOINUNAVAIL, LEAVEEMPTY, LEAVEUNAVAIL) ends it as ``no_agents``. The
queue's own variables refine the record when this Asterisk sets them (QUEUEWAIT,
ANSWEREDTIME and their _MS forms, from 22.x; ABANDONED); older releases leave them unset and
the record stands without them. DIALEDTIME is read for nothing: in 22.10.1 it is the
channel's whole life (IVR included), not Queue()'s.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ivr.agi import AGIChannel
from ivr.routes import hooks
from ivr.services import Services
from onerpa.callstatus import EndedBy
from onerpa.recorder import Change, End, Source

log = logging.getLogger(__name__)

VARIABLES = (
    "CHANNEL(hangupsource)",
    "MEMBERINTERFACE",
    "MEMBERNAME",
    "ABANDONED",
    "QUEUESTATUS",
    "QUEUEWAIT",
    "QUEUEWAIT_MS",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "HANGUPCAUSE",
)
# Set on the caller's channel by app_queue only (not by Dial()).
QUEUE_ONLY = frozenset({"MEMBERINTERFACE", "QUEUEWAIT", "QUEUEWAIT_MS", "ABANDONED", "QUEUESTATUS"})
# Queue() returned without an answer; the dialplan then plays the busy message and hangs up.
UNANSWERED_QUEUESTATUS = frozenset(
    {"TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL", "WITHDRAW"}
)
# Of those, the ones that say no member could take a call (queues.conf joinempty and
# leavewhenempty: every member paused, unavailable or invalid). Asterisk writes no queue_log
# line for the JOIN ones; the caller hears the busy message at once.
NO_AGENTS_QUEUESTATUS = frozenset({"JOINEMPTY", "JOINUNAVAIL", "LEAVEEMPTY", "LEAVEUNAVAIL"})


def run(channel: AGIChannel, services: Services) -> None:
    """Record the end of the call; never touch the channel."""
    now = services.clock()
    key = hooks.call_key(channel, own_id=True, caller_uid=channel.env.get("agi_uniqueid", ""))
    if key is None:
        log.warning("hang-up without a call id or uniqueid: not recorded")
        return
    values = hooks.read(channel, VARIABLES)
    change = hangup_change(now, values, caller_channel=channel.env.get("agi_channel", ""))
    services.recorder.update(key, change)
    log.info("call %s ended (%s)", key, change.fields.get("ended_by") or "ender unknown")


def hangup_change(now: datetime, values: dict[str, str], *, caller_channel: str) -> Change:
    """Return the change a hang-up at ``now`` makes, from the caller channel's ``values``."""
    answered = was_answered(values)
    fills: dict[str, object] = {}
    if answered:
        talk = _milliseconds(values, "ANSWEREDTIME")
        if talk:
            fills["answered_at"] = now - timedelta(milliseconds=talk)
        fills["agent_interface"] = hooks.clip(values.get("MEMBERINTERFACE"))
        fills["agent"] = hooks.clip(values.get("MEMBERNAME") or values.get("MEMBERINTERFACE"))
    fills["queued_at"] = queue_entry(now, values)
    return Change(
        Source.HOOK,
        fields={
            "ended_at": now,
            "ended_by": ended_by(values, caller_channel, answered),
            "hangup_cause": hooks.cause(values.get("HANGUPCAUSE")),
        },
        fills={k: v for k, v in fills.items() if v is not None},
        end=End(answered=answered, no_agents=values.get("QUEUESTATUS") in NO_AGENTS_QUEUESTATUS),
    )


def queue_entry(now: datetime, values: dict[str, str]) -> datetime | None:
    """Return when the caller entered the queue, for a hang-up at ``now``; None if unsure.

    Asterisk 22 sets QUEUEWAIT to the time from entering the queue to the answer (or to
    leaving it unanswered) and ANSWEREDTIME to the talk, so the entry is ``now`` less both.
    Only for a call that ended inside Queue() (no QUEUESTATUS): when Queue() returns, the
    dialplan plays the busy message before the hang-up. A fill only: the call flow's own
    moment of routing the call is precise and wins.
    """
    if values.get("QUEUESTATUS"):
        return None
    wait = _milliseconds(values, "QUEUEWAIT")
    talk = _milliseconds(values, "ANSWEREDTIME")
    if wait is None or talk is None:
        return None
    return now - timedelta(milliseconds=wait + talk)


def was_answered(values: dict[str, str]) -> bool | None:
    """Return whether an agent answered, by the queue's variables; None if they don't say.

    ANSWEREDTIME (and DIALEDTIME) are also set by Dial() (a transfer to sales): they count
    only next to a variable that app_queue alone sets.
    """
    if not QUEUE_ONLY.intersection(values):
        return None
    if values.get("MEMBERINTERFACE") or (_milliseconds(values, "ANSWEREDTIME") or 0) > 0:
        return True
    if values.get("ABANDONED") == "TRUE" or values.get("QUEUESTATUS") in UNANSWERED_QUEUESTATUS:
        return False
    if _milliseconds(values, "ANSWEREDTIME") == 0:
        return False
    return None


def ended_by(values: dict[str, str], caller_channel: str, answered: bool | None) -> str | None:
    """Return who ended the call, or None when the channel does not tell.

    A caller the queue turned away (no agents) was ended by the system, even if they hung up
    during the busy message. With Local channels CHANNEL(hangupsource) is empty, and nothing
    else on the caller's channel tells who hung up an answered call: BRIDGEPEER is cleared
    when the bridge breaks, before the handler runs, and the rest reads the same whichever
    side hung up (recorded: tests/data/asterisk/queue/scenario_6a, 6b). Then the answer is
    None and the queue_log's COMPLETECALLER/COMPLETEAGENT fills it in.
    """
    if values.get("QUEUESTATUS") in NO_AGENTS_QUEUESTATUS:
        return EndedBy.SYSTEM.value
    source = values.get("CHANNEL(hangupsource)", "")
    if source:
        if source == caller_channel:
            return EndedBy.CALLER.value
        if source.startswith("dialplan/"):
            return EndedBy.SYSTEM.value
        return EndedBy.AGENT.value if answered else None
    if values.get("QUEUESTATUS") in UNANSWERED_QUEUESTATUS:
        return EndedBy.SYSTEM.value
    if values.get("ABANDONED") == "TRUE":
        return EndedBy.CALLER.value
    return None


def _milliseconds(values: dict[str, str], name: str) -> float | None:
    """Return ``name`` in ms, from ``name_MS`` if set, else from whole seconds."""
    precise = hooks.number(values.get(f"{name}_MS"))
    if precise is not None:
        return precise
    whole = hooks.number(values.get(name))
    return None if whole is None else whole * 1000
