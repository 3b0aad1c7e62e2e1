"""The contract with the dialplan: channel variables, routes and contexts, in one place.

The AGI decides and sets these variables, then returns; the dialplan in
``asterisk/extensions.conf`` reads them and acts. A test checks that both sides use the
same names, so change them here and there together.
"""

from __future__ import annotations

from enum import StrEnum

# Channel variables the AGI sets for the dialplan.
VAR_DECISION = "ONERPA_DECISION"  # reason code, or "degraded" / "closed"
VAR_ROUTE = "ONERPA_ROUTE"  # one of Route
VAR_CALL_ID = "ONERPA_CALL_ID"  # our call reference (a UUID), for later hooks
VAR_SUMMARY = "ONERPA_SUMMARY"  # one line for the agent (organisation, decision, topic)
VAR_TOPIC = "ONERPA_TOPIC"  # what the caller chose: bug / howto / licensing / none
VAR_CUSTOMER = "ONERPA_CUSTOMER"  # customer number, empty when unidentified
VAR_QUEUE = "ONERPA_QUEUE"  # the queue to enter when the route is "queue"
VAR_SALES = "ONERPA_SALES_EXT"  # the sales extension when the route is "sales"

SET_VARIABLES = (
    VAR_DECISION,
    VAR_ROUTE,
    VAR_CALL_ID,
    VAR_SUMMARY,
    VAR_TOPIC,
    VAR_CUSTOMER,
    VAR_QUEUE,
    VAR_SALES,
)

# Call-backs (docs/callbacks.md). The call file the dashboard writes (onerpa/callback.py)
# sets these on the agent's channel; [onerpa-callback] reads them.
VAR_REQUEST_ID = "ONERPA_REQUEST_ID"  # the request called back (requests.id)
VAR_CALLBACK_NUMBER = "ONERPA_CALLBACK_NUMBER"  # the customer's number, digits only
VAR_CALLBACK_AGENT = "ONERPA_CALLBACK_AGENT"  # the agent's dashboard user name

CALL_FILE_VARIABLES = (VAR_REQUEST_ID, VAR_CALLBACK_NUMBER, VAR_CALLBACK_AGENT)

# Set by the callback-request AGI in the queue's exit context: "accepted" or "refused".
VAR_CALLBACK = "ONERPA_CALLBACK"
CALLBACK_ACCEPTED = "accepted"
CALLBACK_REFUSED = "refused"

CALLBACK_VARIABLES = (VAR_CALLBACK,)

# The key a waiting caller presses for a call-back (an extension of CONTEXT_QUEUE_EXIT).
CALLBACK_KEY = "1"

# Contexts and the extension the dialplan uses.
CONTEXT_INBOUND = "onerpa-inbound"
CONTEXT_ROUTE = "onerpa-route"
CONTEXT_AGENT_CONNECT = "onerpa-agent-connect"
CONTEXT_HANGUP = "onerpa-hangup"
CONTEXT_QUEUE_EXIT = "onerpa-queue-exit"  # queues.conf context=: the caller pressed a key
CONTEXT_CALLBACK = "onerpa-callback"  # the call file's Context: the agent's leg
CONTEXT_CALLBACK_ANSWERED = "onerpa-callback-answered"  # Dial U() on the customer's answer

# FastAGI script names (the path part of agi://host/NAME).
SCRIPT_CALL = "call"
SCRIPT_AGENT_CONNECT = "agent-connect"
SCRIPT_HANGUP = "hangup"
SCRIPT_CALLBACK_REQUEST = "callback-request"  # a waiting caller asks for a call-back
SCRIPT_CALLBACK = "callback"  # the customer answered a call-back


class Route(StrEnum):
    """Where the dialplan sends the call after the AGI returns."""

    QUEUE = "queue"  # to the support queue
    CLOSED = "closed"  # hours message already played; hang up politely
    REFUSED = "refused"  # etiquette refusal already played; hang up
    UNKNOWN = "unknown"  # not a customer; message already played; hang up
    NOT_ENTITLED = "not_entitled"  # explained; hang up
    SALES = "sales"  # to the sales line
    HANGUP = "hangup"  # the caller already hung up: nothing to do


class Topic(StrEnum):
    """Why the caller calls, chosen from the IVR menu."""

    BUG = "bug"
    HOWTO = "howto"
    LICENSING = "licensing"
    NONE = "none"
