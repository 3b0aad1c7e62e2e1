"""The ``callback-request`` script: a caller waiting in the queue pressed 1 for a call-back.

The queue's exit context (queues.conf ``context = onerpa-queue-exit``) runs it on the
caller's channel, with our call id as the argument. A caller whose number is withheld (the
caller ID is not a phone number: "anonymous", empty, as the call flow sees it) is refused:
nobody could call them back. Otherwise a call-back request
is recorded that keeps their place (the moment their call arrived), due by
``onerpa.requests.callback_due`` from that moment, and sets
``ONERPA_CALLBACK`` to ``accepted``; the dialplan then thanks them and hangs up. Anything else
leaves it ``refused`` (or unset, when this fails), and the dialplan returns them to the queue.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ivr import dialplan
from ivr.agi import AGIChannel
from ivr.services import Services
from onerpa import callback, requests
from onerpa.phone import normalize

log = logging.getLogger(__name__)

STEP = "callback_requested"


def run(channel: AGIChannel, services: Services) -> None:
    """Record the call-back request, or refuse it for a withheld number."""
    call_ref = (channel.args[0].strip() if channel.args else "")[:36]
    raw = channel.env.get("agi_callerid", "")
    e164 = normalize(raw)
    if not call_ref or e164 is None or callback.dial_number(e164) is None:
        log.info("call %s: call-back refused (number withheld or unusable)", call_ref or "?")
        channel.set_variable(dialplan.VAR_CALLBACK, dialplan.CALLBACK_REFUSED)
        return
    now = services.clock()
    settings = services.settings

    def due(place_at: datetime) -> datetime:
        return requests.callback_due(
            settings.calendar,
            place_at,
            within=settings.callback_due,
            after_hours=settings.callback_after_hours,
        )

    # The request goes where the calls are recorded (a private simulation's scratch database
    # too), once this call's own record is written: its arrival is the caller's place.
    services.recorder.flush(2.0)
    with services.recorder.engine.begin() as conn:
        request_id = callback.request_callback(
            conn,
            call_ref,
            callerid_raw=raw.replace("\x00", ""),
            e164=e164,
            now=now,
            due=due,
        )
    services.recorder.record(call_ref, step=STEP)
    channel.set_variable(dialplan.VAR_CALLBACK, dialplan.CALLBACK_ACCEPTED)
    log.info("call %s: call-back request %s recorded", call_ref, request_id)
