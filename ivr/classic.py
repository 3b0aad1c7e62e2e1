"""Classic AGI: the same call flow, run by Asterisk as a process per call.

Use from the dialplan as ``AGI(onerpa-agi)`` (the console script) for small installs; the
FastAGI server is the way to run in production. Only the AGI protocol may reach stdout:
anything else printed would corrupt it, so ``sys.stdout`` is pointed at stderr first.
The first AGI argument names the route (``call``, ``agent-connect``, ``hangup``), as the
path of the FastAGI URL does.
"""

from __future__ import annotations

import logging
import sys

from ivr import dialplan
from ivr.agi import AGIChannel, AGIError
from ivr.app import build_services, close_services
from ivr.routes import ROUTES
from ivr.runner import run_session
from onerpa import db
from onerpa.settings import Settings, SettingsError

log = logging.getLogger("ivr.classic")


def main() -> int:
    """Serve one call on stdin/stdout; the exit status is always 0 for Asterisk."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="onerpa-agi: %(message)s")
    try:
        channel = AGIChannel.from_stdio()
    except AGIError as err:
        log.error("no AGI session: %s", err)
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        # The dialplan sees no route and takes the caller to the queue by its fallback.
        log.error("configuration error: %s", err)
        channel.close()
        return 0
    engine = db.make_engine(settings.database_url)
    services = build_services(settings, engine, lookup_workers=2)
    script, channel.args = split_route(channel.args)
    try:
        run_session(channel, services, script=script)
    finally:
        close_services(services, timeout=2.0)
        channel.close()
        engine.dispose()
    return 0


def split_route(args: list[str]) -> tuple[str, list[str]]:
    """Return the route a classic AGI serves (its first argument) and the route's arguments.

    ``AGI(onerpa-agi,hangup,${ONERPA_CALL_ID},${UNIQUEID})`` gives the hang-up route the
    same arguments as ``AGI(agi://host/hangup,${ONERPA_CALL_ID},${UNIQUEID})``.
    """
    if args and args[0] in ROUTES:
        return args[0], args[1:]
    return dialplan.SCRIPT_CALL, args


if __name__ == "__main__":
    sys.exit(main())
