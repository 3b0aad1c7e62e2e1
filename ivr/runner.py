"""Run one AGI session: pick the route by script name and make sure nothing escapes."""

from __future__ import annotations

import logging

from ivr import dialplan
from ivr.agi import AGIChannel, AGIError, AGIHangup
from ivr.routes import ROUTES
from ivr.services import Services

log = logging.getLogger(__name__)


def run_session(channel: AGIChannel, services: Services, script: str | None = None) -> None:
    """Serve one AGI session on ``channel``; never raises."""
    script = script or channel.script or dialplan.SCRIPT_CALL
    with services.metrics.session(script):
        _serve(channel, services, script)


def _serve(channel: AGIChannel, services: Services, script: str) -> None:
    route = ROUTES.get(script)
    try:
        if route is None:
            log.warning("unknown AGI script %r; letting the call through", script)
            services.metrics.agi_error(script, "unknown_script")
            let_through(channel)
            return
        route(channel, services)
    except AGIHangup:
        log.info("AGI session %s ended by hang-up", script)
    except AGIError as err:
        log.warning("AGI session %s closed: %s", script, err)
        services.metrics.agi_error(script, "protocol")
    except Exception:
        log.exception("AGI session %s failed; letting the call through", script)
        services.metrics.agi_error(script, "exception")
        let_through(channel)


def let_through(channel: AGIChannel) -> None:
    """Send the caller to the queue as degraded, if the channel still listens."""
    try:
        channel.set_variable(dialplan.VAR_DECISION, "degraded")
        channel.set_variable(dialplan.VAR_ROUTE, dialplan.Route.QUEUE.value)
    except Exception as err:  # the dialplan's own fallback takes over from here
        log.warning("could not set the fallback route: %s", err)
