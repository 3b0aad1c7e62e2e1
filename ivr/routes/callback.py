"""The ``callback`` hook: the customer answered a call-back.

A call-back (onerpa/callback.py) rings the agent first; once the agent answers,
``[onerpa-callback]`` dials the customer, and Dial()'s ``U()`` gosub runs this on the
customer's channel when they answer, before the two are bridged. Arguments
(asterisk/extensions.conf): the request id and the agent's user name.

It makes the conversation a normal call in the figures: a call record that starts answered
now (timed against the 3–5 minute target from here; no queue wait), with the request's
caller, customer and decision, ``route`` = ``callback`` and the request named in the
explanation. It sets ``ONERPA_CALL_ID`` on the customer's channel, whose hang-up handler then
ends the record as for any call. And it closes the request as answered by that agent.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from ivr import dialplan
from ivr.agi import AGIChannel
from ivr.services import Services
from onerpa import callback
from onerpa.callstatus import CallStatus
from onerpa.staff import User

log = logging.getLogger(__name__)

ROUTE = "callback"


def run(channel: AGIChannel, services: Services) -> None:
    """Record the answered call-back and close its request; never delays the customer long."""
    args = [arg.strip() for arg in channel.args]
    request_id = args[0] if args else ""
    agent = args[1][:64] if len(args) > 1 else ""
    if not request_id.isdecimal():
        log.warning("callback without a request id: not recorded")
        return
    now = services.clock()
    call_ref = callback.new_call_ref()
    with services.directory.engine.begin() as conn:
        request = callback.answered(conn, int(request_id), agent, now, call_ref)
        user = conn.execute(
            select(User.member_interface, User.member_name).where(User.username == agent)
        ).first()
    if request is None:
        log.warning("callback for request %s, which is not stored: not recorded", request_id)
        return
    env = channel.env
    interface = user.member_interface if user is not None else None
    services.recorder.record(
        call_ref,
        uniqueid=env.get("agi_uniqueid", "")[:64],
        linkedid=env.get("agi_uniqueid", "")[:64],
        channel=env.get("agi_channel", "").replace("\x00", ""),
        callerid_raw=request["callerid_raw"] or "",
        caller_e164=request["caller_e164"],
        customer_id=request["customer_id"],
        decision=request["decision"],
        explanation=f"Перезвон по обращению №{request_id}",
        route=ROUTE,
        arrived_at=now,
        decided_at=now,
        answered_at=now,
        agent=(user.member_name if user is not None and user.member_name else agent) or None,
        agent_interface=interface,
        server=services.server,
        step=ROUTE,
        status=CallStatus.TALKING.value,
    )
    channel.set_variable(dialplan.VAR_CALL_ID, call_ref)
    log.info("call-back of request %s answered: call %s, agent %s", request_id, call_ref, agent)
