"""The FastAGI scripts this server answers, listed in one place."""

from __future__ import annotations

from collections.abc import Callable

from ivr import dialplan
from ivr.agi import AGIChannel
from ivr.routes import agent_connect, call, callback, callback_request, hangup
from ivr.services import Services

Route = Callable[[AGIChannel, Services], None]

ROUTES: dict[str, Route] = {
    dialplan.SCRIPT_CALL: call.run,
    dialplan.SCRIPT_AGENT_CONNECT: agent_connect.run,
    dialplan.SCRIPT_HANGUP: hangup.run,
    dialplan.SCRIPT_CALLBACK_REQUEST: callback_request.run,
    dialplan.SCRIPT_CALLBACK: callback.run,
}
