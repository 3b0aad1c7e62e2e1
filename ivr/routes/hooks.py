"""What the two dialplan hooks share: finding the call, and reading channel variables."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ivr import dialplan
from ivr.agi import AGIChannel, AGIError
from onerpa.recorder import CallKey

log = logging.getLogger(__name__)

_LENGTH = 100  # calls.agent and calls.agent_interface
_MAX_CAUSE = 127  # Q.850 cause values are 7 bits


def call_key(
    channel: AGIChannel,
    *,
    own_id: bool = False,
    caller_uid_variables: Iterable[str] = (),
    caller_uid: str = "",
) -> CallKey | None:
    """Return how to find the call: our id (argument 1), else the caller's uniqueid.

    With ``own_id`` the channel is the caller's and ``ONERPA_CALL_ID`` is read when the
    argument is empty. The caller's uniqueid is argument 2, else the first of
    ``caller_uid_variables`` that is set, else ``caller_uid``.
    """
    args = [arg.strip() for arg in channel.args]
    call_ref = args[0] if args else ""
    if not call_ref and own_id:
        call_ref = get(channel, dialplan.VAR_CALL_ID) or ""
    if call_ref:
        return CallKey(call_ref=call_ref[:36])
    uid = args[1] if len(args) > 1 else ""
    for name in caller_uid_variables:
        if uid:
            break
        uid = get(channel, name) or ""
    uid = uid or caller_uid
    return CallKey(uniqueid=uid[:64]) if uid else None


def read(channel: AGIChannel, names: Iterable[str]) -> dict[str, str]:
    """Return the set, non-empty values of the variables ``names``."""
    values = {}
    for name in names:
        value = get(channel, name)
        if value:
            values[name] = value
    return values


def get(channel: AGIChannel, name: str) -> str | None:
    """Return variable ``name``, or None when unset or unreadable."""
    try:
        return channel.get_variable(name)
    except AGIError as err:  # AGIHangup too: whatever is readable is used
        log.info("variable %s not read: %s", name, err)
        return None


def number(value: str | None) -> float | None:
    """Return ``value`` as a number of the unit it is in, None if it is not one."""
    try:
        return float(value) if value else None
    except ValueError:
        return None


def cause(value: str | None) -> int | None:
    """Return a HANGUPCAUSE as its Q.850 code (0-127), None when it is not one."""
    text = (value or "").strip()
    return int(text) if text.isdecimal() and int(text) <= _MAX_CAUSE else None


def clip(value: str | None) -> str | None:
    """Return ``value`` cut to the length of the agent columns."""
    return value[:_LENGTH] if value else None
