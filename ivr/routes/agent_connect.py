"""The ``agent-connect`` hook: an agent answered a queued call.

Asterisk runs it from the Queue() gosub on the agent's (member) channel, after the answer and
before the bridge, so it must be quick: it reads a few variables, hands the change to the
recorder and returns. Arguments (asterisk/extensions.conf): our call id, and the caller's
uniqueid (``CHANNEL(linkedid)`` of the member channel) for calls whose id got lost.
The moment is stamped with this server's clock: the hooks are the precise signal.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ivr.agi import AGIChannel
from ivr.routes import hooks
from ivr.services import Services
from onerpa.callstatus import CallStatus
from onerpa.recorder import Change, Source

log = logging.getLogger(__name__)

VARIABLES = ("MEMBERNAME", "MEMBERINTERFACE", "QEHOLDTIME")


def run(channel: AGIChannel, services: Services) -> None:
    """Record that an agent answered the call; never touch the channel."""
    now = services.clock()
    key = hooks.call_key(channel, caller_uid_variables=("QCALLER_UID", "CHANNEL(linkedid)"))
    if key is None:
        log.warning("agent-connect without a call id or caller uniqueid: not recorded")
        return
    values = hooks.read(channel, VARIABLES)
    services.recorder.update(key, connect_change(now, values))
    log.info("call %s answered by %s", key, values.get("MEMBERNAME") or "an agent")


def connect_change(now: datetime, values: dict[str, str]) -> Change:
    """Return the change an agent's answer at ``now`` makes, from the channel ``values``."""
    interface = values.get("MEMBERINTERFACE") or None
    agent = values.get("MEMBERNAME") or interface
    fills = {}
    holdtime = hooks.number(values.get("QEHOLDTIME"))
    if holdtime is not None:
        # Whole seconds: a cross-check only, used when the queue entry was not stamped.
        fills["queued_at"] = now - timedelta(seconds=holdtime)
    return Change(
        Source.HOOK,
        fields={
            "answered_at": now,
            "agent": hooks.clip(agent),
            "agent_interface": hooks.clip(interface),
        },
        fills=fills,
        status=CallStatus.TALKING.value,
    )
