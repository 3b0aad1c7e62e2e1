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

# Contexts and the extension the dialplan uses.
CONTEXT_INBOUND = "onerpa-inbound"
CONTEXT_ROUTE = "onerpa-route"
CONTEXT_AGENT_CONNECT = "onerpa-agent-connect"
CONTEXT_HANGUP = "onerpa-hangup"

# FastAGI script names (the path part of agi://host/NAME).
SCRIPT_CALL = "call"
SCRIPT_AGENT_CONNECT = "agent-connect"
SCRIPT_HANGUP = "hangup"


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
