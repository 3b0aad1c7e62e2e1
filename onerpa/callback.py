"""Call-backs: a request's caller called back by an agent, through an Asterisk call file.

Placing one (``place``): one conditional UPDATE counts the attempt, and only the agent whose
UPDATE changed the row writes the call file, so two agents pressing «Перезвонить» at once
place one call. The call file is written whole in a folder beside the spool, on the same file
system, then renamed into ``outgoing/`` (tests/data/asterisk/record/callfile_01_success.txt):
Asterisk never reads half a file. It rings the agent's phone first (``Channel:``); when the
agent answers, ``[onerpa-callback]`` dials the customer from the support number.

``MaxRetries: 0``: this module counts the attempts itself. ``Archive: yes``: Asterisk moves
the finished file to ``outgoing_done/`` with a ``Status:`` line, which ``collect`` reads:
``Completed`` (the agent answered; the customer answered only if the request was closed by
the ``callback`` AGI meanwhile), ``Expired`` (the agent's phone did not answer: the attempt
is given back, the customer was never called) or ``Failed`` (an unusable file; given back).
A call-back is in progress while its file is in ``outgoing/`` or in ``outgoing_done/`` unread.

Deadlines: ``due`` says how much time a request has left; amber with 24 hours left (or a
third of its whole time, for the short call-back deadlines), red when overdue.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, case, insert, select, update

from onerpa.models import Call, SupportRequest
from onerpa.settings import Settings

log = logging.getLogger(__name__)

REQUESTS = SupportRequest.__table__
OPEN = ("new", "in_work")
CONTEXT = "onerpa-callback"  # ivr/dialplan.py CONTEXT_CALLBACK; the core may not import ivr
PREFIX = "onerpa-request-"
_NAME = re.compile(r"^onerpa-request-(?P<id>\d+)-(?P<attempt>\d+)\.call$")
_INTERFACE = re.compile(r"^[A-Za-z]+/[A-Za-z0-9_.@:+-]{1,80}$")
_AGENT = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_UNSAFE_NAME = re.compile(r'["<>\\\r\n\x00-\x1f]')
AMBER_LEFT = timedelta(hours=24)


class CallbackRefused(Exception):
    """The call-back was not placed; ``message`` says why, in words for the agent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Spool:
    """Where call files go: written in ``tmp``, renamed into ``outgoing``, archived in ``done``."""

    outgoing: Path
    done: Path
    tmp: Path
    ring_seconds: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> Spool:
        return cls(
            Path(settings.outgoing_spool),
            Path(settings.outgoing_done),
            Path(settings.outgoing_tmp),
            int(settings.callback_ring.total_seconds()),
        )


@dataclass(frozen=True)
class Due:
    """How a request stands against its deadline: ``ok``, ``amber`` or ``red`` (overdue)."""

    state: str
    seconds_left: int


def amber_from(received_at: datetime, due_at: datetime) -> datetime:
    """Return when a request turns amber: 24 hours before its deadline, or a third of its
    whole time before it when that is shorter (a call-back's two hours)."""
    return due_at - min(AMBER_LEFT, (due_at - received_at) / 3)


def due(received_at: datetime, due_at: datetime, now: datetime) -> Due:
    """Return the standing of a request received at ``received_at`` and due at ``due_at``."""
    if now > due_at:
        state = "red"
    elif now >= amber_from(received_at, due_at):
        state = "amber"
    else:
        state = "ok"
    return Due(state, int((due_at - now).total_seconds()))


def dial_number(e164: str | None) -> str | None:
    """Return the digits the trunk dials for ``e164`` (``+74951234567`` -> ``74951234567``)."""
    digits = (e164 or "").removeprefix("+")
    return digits if re.fullmatch(r"\d{6,15}", digits) else None


# --- the call file ---------------------------------------------------------------------------


def call_file(
    request_id: int,
    *,
    interface: str,
    number: str,
    agent: str,
    shown_name: str,
    ring_seconds: int,
) -> str:
    """Return the call file that rings ``interface``, then calls ``number`` for the request."""
    name = _UNSAFE_NAME.sub(" ", shown_name).strip()[:60] or "Перезвон"
    lines = [
        f"Channel: {interface}",
        f"Context: {CONTEXT}",
        "Extension: s",
        "Priority: 1",
        # What the agent's phone shows while it rings: whom they are about to call.
        f'CallerID: "{name}" <{number}>',
        f"WaitTime: {ring_seconds}",
        "MaxRetries: 0",
        "RetryTime: 60",
        "Archive: yes",
        f"Setvar: ONERPA_REQUEST_ID={request_id}",
        f"Setvar: ONERPA_CALLBACK_NUMBER={number}",
        f"Setvar: ONERPA_CALLBACK_AGENT={agent}",
    ]
    return "\n".join(lines) + "\n"


def write_call_file(spool: Spool, name: str, text: str) -> Path:
    """Write ``text`` whole under ``spool.tmp``, then rename it into ``spool.outgoing``."""
    temporary = spool.tmp / name
    target = spool.outgoing / name
    with open(temporary, "x", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.rename(temporary, target)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    return target


def in_progress(spool: Spool, request_id: int) -> bool:
    """Return True while a call-back of the request is in the spool or its result unread."""
    pattern = f"{PREFIX}{request_id}-*.call"
    return any(
        next(folder.glob(pattern), None) is not None
        for folder in (spool.outgoing, spool.done)
        if folder.is_dir()
    )


# --- placing ---------------------------------------------------------------------------------


def place(
    engine: Engine,
    spool: Spool,
    request_id: int,
    *,
    agent: str,
    interface: str | None,
    seen_attempts: int,
    max_attempts: int,
    now: datetime,
) -> int:
    """Place a call-back of the request for ``agent``; return the attempt number.

    ``seen_attempts`` is the count the agent saw: a press on a stale page, or the second of
    two presses at once, changes no row and places nothing. Raise ``CallbackRefused``.
    """
    if not interface or not _INTERFACE.match(interface):
        raise CallbackRefused(
            "no_phone", "У вас не указан телефон: попросите руководителя указать его."
        )
    if not _AGENT.match(agent):
        raise CallbackRefused("agent", "Имя пользователя не подходит для звонка.")
    with engine.connect() as conn:
        row = conn.execute(select(REQUESTS).where(REQUESTS.c.id == request_id)).mappings().first()
    if row is None or row["status"] not in OPEN:
        raise CallbackRefused("closed", "Обращение уже закрыто.")
    number = dial_number(row["caller_e164"])
    if number is None:
        raise CallbackRefused("no_number", "Номер скрыт или не распознан: перезвонить нельзя.")
    if in_progress(spool, request_id):
        raise CallbackRefused("busy", "Перезвон по этому обращению уже идёт.")
    attempt = seen_attempts + 1
    name = f"{PREFIX}{request_id}-{attempt}.call"
    text = call_file(
        request_id,
        interface=interface,
        number=number,
        agent=agent,
        shown_name=f"Перезвон №{request_id}",
        ring_seconds=spool.ring_seconds,
    )
    with engine.begin() as conn:
        if not _count_attempt(conn, request_id, agent, seen_attempts, max_attempts, now):
            raise CallbackRefused(
                "changed", "Обращение только что изменилось (возможно, уже перезваивают)."
            )
        try:
            write_call_file(spool, name, text)
        except OSError as err:
            log.error("call-back of request %s not placed: %s", request_id, err)
            raise CallbackRefused(
                "spool",
                "Не удалось передать звонок телефонной станции (папка звонков недоступна). "
                "Обращение осталось как было; сообщите администратору.",
            ) from err
    log.info("call-back %s of request %s placed by %s", attempt, request_id, agent)
    return attempt


def _count_attempt(
    conn: Connection, request_id: int, agent: str, seen: int, max_attempts: int, now: datetime
) -> bool:
    """Count one attempt if nobody else did since the agent looked; say if this did."""
    taken = REQUESTS.c.status == "new"
    result = conn.execute(
        update(REQUESTS)
        .where(
            REQUESTS.c.id == request_id,
            REQUESTS.c.status.in_(OPEN),
            REQUESTS.c.attempts == seen,
            REQUESTS.c.attempts < max_attempts,
        )
        .values(
            attempts=REQUESTS.c.attempts + 1,
            last_attempt_at=now,
            taken_by=case((taken, agent), else_=REQUESTS.c.taken_by),
            taken_at=case((taken, now), else_=REQUESTS.c.taken_at),
            status="in_work",
        )
    )
    return result.rowcount == 1


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One archived call file: which request and attempt, and Asterisk's ``Status:``."""

    request_id: int
    attempt: int
    status: str  # Completed, Expired, Failed (or "" when the line is missing)
    variables: Mapping[str, str]


def parse_archive(name: str, text: str) -> Result | None:
    """Return what an archived call file says, or None when it is not one of ours."""
    match = _NAME.match(name)
    if match is None:
        return None
    status = ""
    variables: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "Status":
            status = value.strip()
        elif key == "Setvar":
            var, _, var_value = value.strip().partition("=")
            variables[var] = var_value
    return Result(int(match["id"]), int(match["attempt"]), status, variables)


def collect(engine: Engine, spool: Spool) -> list[Result]:
    """Read the archived call-backs, settle their requests, and delete the files read."""
    if not spool.done.is_dir():
        return []
    results = []
    for path in sorted(spool.done.glob(f"{PREFIX}*.call")):
        try:
            result = parse_archive(path.name, path.read_text(encoding="utf-8", errors="replace"))
        except OSError as err:
            log.warning("archived call file %s not read: %s", path, err)
            continue
        if result is None:
            continue
        if result.status in ("Expired", "Failed"):
            # The agent's phone never answered (or the file was unusable): the customer was
            # not called, so the attempt does not count against them.
            with engine.begin() as conn:
                conn.execute(
                    update(REQUESTS)
                    .where(REQUESTS.c.id == result.request_id, REQUESTS.c.attempts > 0)
                    .values(attempts=REQUESTS.c.attempts - 1)
                )
        log.info(
            "call-back %s of request %s: %s",
            result.attempt,
            result.request_id,
            result.status or "no status",
        )
        path.unlink(missing_ok=True)
        results.append(result)
    return results


# --- the call flow's side --------------------------------------------------------------------


def answered(
    conn: Connection, request_id: int, agent: str, now: datetime, call_ref: str
) -> Mapping[str, Any] | None:
    """Close the request as answered by a call-back; return it (None if it is not stored)."""
    row = conn.execute(select(REQUESTS).where(REQUESTS.c.id == request_id)).mappings().first()
    if row is None:
        return None
    said = f"Перезвонили, клиент ответил (звонок {call_ref})."
    conn.execute(
        update(REQUESTS)
        .where(REQUESTS.c.id == request_id, REQUESTS.c.status.in_(OPEN))
        .values(
            status="answered",
            closed_by=agent[:64] or None,
            closed_at=now,
            note=f"{row['note']}\n{said}" if row["note"] else said,
        )
    )
    return row


def request_callback(
    conn: Connection,
    call_ref: str,
    *,
    callerid_raw: str,
    e164: str,
    now: datetime,
    due: Callable[[datetime], datetime],
) -> int:
    """Record a waiting caller's call-back request, keeping their place; return its id.

    The place is when their call arrived; ``due`` gives the deadline from it. Pressing
    again on the same call gives the same request.
    """
    calls = Call.__table__
    call = conn.execute(select(calls).where(calls.c.call_ref == call_ref)).mappings().first()
    call_row = dict(call) if call is not None else {}
    if call is not None:
        existing = conn.scalar(
            select(REQUESTS.c.id).where(
                REQUESTS.c.call_id == call_row["id"],
                REQUESTS.c.kind == "callback",
                REQUESTS.c.status.in_(OPEN),
            )
        )
        if existing is not None:
            return int(existing)
    place_at = call_row.get("arrived_at") or now
    inserted = conn.execute(
        insert(REQUESTS).values(
            kind="callback",
            status="new",
            call_id=call_row.get("id"),
            caller_e164=e164,
            callerid_raw=callerid_raw[:80],
            customer_id=call_row.get("customer_id"),
            decision=call_row.get("decision"),
            explanation=call_row.get("explanation") or "",
            received_at=now,
            place_at=place_at,
            due_at=due(place_at),
        )
    ).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def new_call_ref() -> str:
    """Return a reference for the call record of an answered call-back."""
    return str(uuid.uuid4())
