"""A small Asterisk Manager Interface (AMI) client: framing, actions, lists, events.

Written to the bytes of a real Asterisk 22 (tests/data/asterisk/ami/): the banner is one
line; every message ends with an empty line, and one ``recv()`` may hold half a message or
several; a response echoes our ``ActionID`` as its second line and the events an action
causes come after it; QueueStatus/QueueSummary answer with ``EventList: start``, list events
that carry the ActionID last, and a ``...Complete`` event. ``Authentication failed`` and
``Logoff`` are followed by the socket closing, and so is ``Event: Shutdown``.

pyst2's ``asterisk.manager`` was the first choice and was tried against the same bytes: it
merges a whole QueueStatus list into one message (it waits for "StatusComplete" across empty
lines, so every member but the last is lost), pairs responses with actions by order rather
than ActionID, and waits for a response without any timeout. Hence this thin client.

Every read has a deadline and stops at end-of-stream. One action at a time per client (a
lock); after a lost connection the next call connects and logs in again.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_PORT = 5038
BANNER = "Asterisk Call Manager/"
_END = re.compile(rb"\r?\n\r?\n")
_KEPT_EVENTS = 1000  # events read while waiting for a response, kept for next_event()

Headers = Mapping[str, object] | Iterable[tuple[str, object]]


class AmiError(Exception):
    """Something went wrong talking to Asterisk's manager interface."""


class AmiConnectionError(AmiError):
    """No connection: refused, timed out, closed by Asterisk (Logoff, shutdown, restart)."""


class AmiAuthError(AmiError):
    """Asterisk refused the user name or secret (and closed the connection)."""


class AmiActionError(AmiError):
    """Asterisk answered an action with ``Response: Error``; ``message`` is its text."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message

    @property
    def permission_denied(self) -> bool:
        """True when the AMI user lacks the write class the action needs."""
        return self.message == "Permission denied"


@dataclass(frozen=True)
class Message:
    """One AMI message (response or event): its headers in the order they came."""

    headers: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        """Return the first value of ``key`` (any case), or ``default``."""
        wanted = key.lower()
        for name, value in self.headers:
            if name.lower() == wanted:
                return value
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get_all(self, key: str) -> list[str]:
        """Return every value of ``key`` (``Variable`` may repeat)."""
        wanted = key.lower()
        return [value for name, value in self.headers if name.lower() == wanted]

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def integer(self, key: str, default: int = 0) -> int:
        """Return ``key`` as a whole number (``default`` if absent or not a number)."""
        value = self.get(key)
        try:
            return int(value) if value is not None else default
        except ValueError:
            return default


def parse_message(block: bytes) -> Message:
    """Parse the lines of one message (without its empty line) into a ``Message``."""
    headers = []
    for raw in block.decode("utf-8", "replace").split("\n"):
        line = raw.removesuffix("\r")
        name, colon, value = line.partition(":")
        if not colon or not name:
            continue  # not a header (stray text): nothing in the actions we use sends it
        headers.append((name.strip(), value[1:] if value.startswith(" ") else value))
    return Message(tuple(headers))


class FrameReader:
    """Turn bytes as they arrive (any split) into the banner and whole messages."""

    def __init__(self) -> None:
        self.banner: str | None = None
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return the messages it completes, in order."""
        self._buffer += data
        if self.banner is None:
            end = self._buffer.find(b"\n")
            if end < 0:
                return []
            self.banner = self._buffer[:end].decode("utf-8", "replace").rstrip("\r")
            del self._buffer[: end + 1]
        messages = []
        while found := _END.search(self._buffer):
            block = bytes(self._buffer[: found.start()])
            del self._buffer[: found.end()]
            if block.strip():
                messages.append(parse_message(block))
        return messages


def encode_action(action: str, headers: Headers, action_id: str) -> bytes:
    """Return the bytes of one action: ``Action``, ``ActionID``, headers, one empty line."""
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    lines = [f"Action: {action}", f"ActionID: {action_id}"]
    for name, value in pairs:
        text = str(value)
        if any(c in text for c in "\r\n") or any(c in name for c in "\r\n:"):
            raise ValueError(f"AMI header {name!r} would break the message framing")
        lines.append(f"{name}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


# -- what the queue actions return ---------------------------------------------------------


@dataclass(frozen=True)
class QueueMember:
    """A queue member as QueueStatus (``QueueMember``) or a QueueMember* event shows it."""

    queue: str
    name: str
    interface: str
    state_interface: str
    membership: str
    penalty: int
    calls_taken: int
    last_call: int  # epoch seconds, 0 = never
    last_pause: int
    login_time: int
    in_call: bool
    status: int  # the state interface's device state: 1 not in use, 2 in use, 6 ringing ...
    paused: bool
    paused_reason: str

    @classmethod
    def from_message(cls, message: Message) -> QueueMember:
        # QueueStatus says Name/Location where the QueueMember* events say MemberName/Interface.
        interface = message.get("Interface") or message.get("Location") or ""
        return cls(
            queue=message.get("Queue", "") or "",
            name=message.get("MemberName") or message.get("Name") or "",
            interface=interface,
            state_interface=message.get("StateInterface") or interface,
            membership=message.get("Membership", "") or "",
            penalty=message.integer("Penalty"),
            calls_taken=message.integer("CallsTaken"),
            last_call=message.integer("LastCall"),
            last_pause=message.integer("LastPause"),
            login_time=message.integer("LoginTime"),
            in_call=message.get("InCall") == "1",
            status=message.integer("Status"),
            paused=message.get("Paused") == "1",
            paused_reason=message.get("PausedReason", "") or "",
        )


@dataclass(frozen=True)
class QueueEntry:
    """A caller waiting in a queue."""

    queue: str
    position: int
    channel: str
    uniqueid: str
    caller_number: str
    caller_name: str
    wait: int  # whole seconds since the caller joined

    @classmethod
    def from_message(cls, message: Message) -> QueueEntry:
        return cls(
            queue=message.get("Queue", "") or "",
            position=message.integer("Position"),
            channel=message.get("Channel", "") or "",
            uniqueid=message.get("Uniqueid", "") or "",
            caller_number=message.get("CallerIDNum", "") or "",
            caller_name=message.get("CallerIDName", "") or "",
            wait=message.integer("Wait"),
        )


@dataclass(frozen=True)
class QueueParams:
    """A queue's own figures from QueueStatus."""

    queue: str
    calls: int
    holdtime: int
    talktime: int
    completed: int
    abandoned: int
    service_level: int

    @classmethod
    def from_message(cls, message: Message) -> QueueParams:
        return cls(
            queue=message.get("Queue", "") or "",
            calls=message.integer("Calls"),
            holdtime=message.integer("Holdtime"),
            talktime=message.integer("TalkTime"),
            completed=message.integer("Completed"),
            abandoned=message.integer("Abandoned"),
            service_level=message.integer("ServiceLevel"),
        )


@dataclass(frozen=True)
class QueueStatus:
    """What QueueStatus listed: the queues, their members and their waiting callers."""

    queues: tuple[QueueParams, ...]
    members: tuple[QueueMember, ...]
    entries: tuple[QueueEntry, ...]

    @classmethod
    def from_list(cls, items: Iterable[Message]) -> QueueStatus:
        queues, members, entries = [], [], []
        for item in items:
            if item.event == "QueueParams":
                queues.append(QueueParams.from_message(item))
            elif item.event == "QueueMember":
                members.append(QueueMember.from_message(item))
            elif item.event == "QueueEntry":
                entries.append(QueueEntry.from_message(item))
        return cls(tuple(queues), tuple(members), tuple(entries))


@dataclass(frozen=True)
class QueueSummary:
    """QueueSummary of one queue: members logged in and available, callers, longest wait."""

    queue: str
    logged_in: int
    available: int
    callers: int
    hold_time: int
    talk_time: int
    longest_hold_time: int

    @classmethod
    def from_message(cls, message: Message) -> QueueSummary:
        return cls(
            queue=message.get("Queue", "") or "",
            logged_in=message.integer("LoggedIn"),
            available=message.integer("Available"),
            callers=message.integer("Callers"),
            hold_time=message.integer("HoldTime"),
            talk_time=message.integer("TalkTime"),
            longest_hold_time=message.integer("LongestHoldTime"),
        )


# -- the client ------------------------------------------------------------------------------

Connector = Callable[[tuple[str, int], float], socket.socket]


def _connect(address: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


class AmiClient:
    """One AMI session, logged in on first use and again after the connection is lost.

    ``events`` is the Login ``Events:`` header: ``off`` (the default: only our own responses
    and lists, all a poller needs) or a class list such as ``agent``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        timeout: float = 5.0,
        events: str = "off",
        connector: Connector = _connect,
    ) -> None:
        self.address = (host, port)
        self.username = username
        self._secret = secret
        self.timeout = timeout
        self.events = events
        self._connector = connector
        self._sock: socket.socket | None = None
        self._reader = FrameReader()
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._prefix = f"onerpa-{id(self):x}"
        self._events: deque[Message] = deque(maxlen=_KEPT_EVENTS)
        self._inbox: deque[Message] = deque()  # read but not yet looked at
        self.shutdown_seen = False

    # -- connection ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> Message:
        """Connect and log in; return Asterisk's ``Authentication accepted`` response."""
        with self._lock:
            self._drop()
            try:
                self._sock = self._connector(self.address, self.timeout)
            except OSError as err:
                raise AmiConnectionError(f"no connection to {self.address}: {err}") from err
            self._reader = FrameReader()
            self._inbox.clear()
            self.shutdown_seen = False
            deadline = time.monotonic() + self.timeout
            while self._reader.banner is None:
                try:
                    self._events.extend(self._receive(deadline))
                except TimeoutError:
                    self._drop()
                    raise AmiConnectionError("no banner from Asterisk in time") from None
            if not self._reader.banner.startswith(BANNER):
                self._drop()
                raise AmiConnectionError(f"not an Asterisk manager: {self._reader.banner!r}")
            headers = {"Username": self.username, "Secret": self._secret, "Events": self.events}
            try:
                return self._request("Login", headers)
            except AmiActionError as err:
                self._drop()
                raise AmiAuthError(err.message) from None
            except AmiConnectionError:
                # Asterisk closes the socket after a refused login; should the reply lack our
                # ActionID, it is still the reason.
                if any(m.get("Message") == "Authentication failed" for m in self._events):
                    raise AmiAuthError("Authentication failed") from None
                raise

    def close(self) -> None:
        """Log off (if connected) and close the socket."""
        with self._lock:
            if self._sock is None:
                return
            with contextlib.suppress(AmiError):
                self._request("Logoff", {}, goodbye=True)
            self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None

    def _ensure(self) -> None:
        if self._sock is None:
            self.connect()

    # -- actions ---------------------------------------------------------------------------

    def action(self, action: str, headers: Headers = ()) -> Message:
        """Send ``action``; return its ``Response: Success`` (raise on ``Error``)."""
        with self._lock:
            self._ensure()
            return self._request(action, headers)

    def list_action(self, action: str, headers: Headers = ()) -> list[Message]:
        """Send a list action (``EventList: start``); return the list events in order."""
        with self._lock:
            self._ensure()
            action_id = self._send(action, headers)
            deadline = time.monotonic() + self.timeout
            self._check(action, self._response_to(action_id, deadline))
            items: list[Message] = []
            while True:
                message = self._next_for(action_id, deadline)
                if (message.get("EventList") or "").lower() == "complete":
                    return items
                items.append(message)

    def next_event(self, timeout: float) -> Message | None:
        """Return the next event (one kept from earlier reads first), or None by ``timeout``."""
        with self._lock:
            if not self._events:
                self._ensure()
            self._events.extend(self._inbox)
            self._inbox.clear()
            if self._events:
                return self._events.popleft()
            deadline = time.monotonic() + timeout
            while not self._events:
                try:
                    self._events.extend(self._receive(deadline))
                except TimeoutError:
                    return None
            return self._events.popleft()

    def ping(self) -> Message:
        """Ping Asterisk; return ``Ping: Pong`` with Asterisk's timestamp."""
        return self.action("Ping")

    def queue_status(self, queue: str | None = None) -> QueueStatus:
        """Return the members and callers of ``queue`` (every queue if None)."""
        return QueueStatus.from_list(self.list_action("QueueStatus", _queue(queue)))

    def queue_summary(self, queue: str | None = None) -> list[QueueSummary]:
        """Return the summary of ``queue`` (every queue if None); unknown queue: empty."""
        items = self.list_action("QueueSummary", _queue(queue))
        return [QueueSummary.from_message(m) for m in items if m.event == "QueueSummary"]

    def queue_add(
        self,
        queue: str,
        interface: str,
        member_name: str,
        state_interface: str,
        *,
        paused: bool = False,
        reason: str = "",
        penalty: int = 0,
    ) -> Message:
        """Add a dynamic member (needs write class ``agent``)."""
        headers = [
            ("Queue", queue),
            ("Interface", interface),
            ("MemberName", member_name),
            ("StateInterface", state_interface),
            ("Penalty", penalty),
            ("Paused", "true" if paused else "false"),
        ]
        if paused and reason:
            headers.append(("Reason", reason))
        return self.action("QueueAdd", headers)

    def queue_pause(self, queue: str, interface: str, paused: bool, reason: str = "") -> Message:
        """Pause (with ``reason``, written to queue_log) or unpause a member of ``queue``."""
        headers = [("Queue", queue), ("Interface", interface)]
        headers.append(("Paused", "true" if paused else "false"))
        if paused and reason:
            headers.append(("Reason", reason))
        return self.action("QueuePause", headers)

    def queue_remove(self, queue: str, interface: str) -> Message:
        """Remove a dynamic member from ``queue``."""
        return self.action("QueueRemove", [("Queue", queue), ("Interface", interface)])

    def originate(
        self,
        channel: str,
        context: str,
        exten: str,
        priority: int = 1,
        *,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        timeout_ms: int = 30000,
    ) -> Message:
        """Place a call (Async) and return its ``OriginateResponse`` event.

        ``Response: Success`` with ``Reason: 4`` is answered; ``Failure`` with Reason 0 (no
        such extension or technology), 3 (no answer in ``timeout_ms``), 5 (busy). A missing
        dialplan target raises ``AmiActionError`` ("Extension does not exist.") at once.
        """
        headers: list[tuple[str, object]] = [
            ("Channel", channel),
            ("Context", context),
            ("Exten", exten),
            ("Priority", priority),
            ("Timeout", timeout_ms),
        ]
        if caller_id:
            headers.append(("CallerID", caller_id))
        headers += [("Variable", f"{k}={v}") for k, v in (variables or {}).items()]
        headers.append(("Async", "true"))
        with self._lock:
            self._ensure()
            action_id = self._send("Originate", headers)
            deadline = time.monotonic() + self.timeout + timeout_ms / 1000
            self._check("Originate", self._response_to(action_id, deadline))
            while True:
                message = self._next_for(action_id, deadline)
                if message.event == "OriginateResponse":
                    return message

    # -- the wire --------------------------------------------------------------------------

    def _request(self, action: str, headers: Headers, *, goodbye: bool = False) -> Message:
        action_id = self._send(action, headers)
        response = self._response_to(action_id, time.monotonic() + self.timeout)
        if goodbye or response.response == "Goodbye":
            self._drop()
        return self._check(action, response)

    @staticmethod
    def _check(action: str, response: Message) -> Message:
        if (response.response or "").lower() == "error":
            raise AmiActionError(action, response.get("Message", "") or "")
        return response

    def _send(self, action: str, headers: Headers) -> str:
        assert self._sock is not None
        action_id = f"{self._prefix}-{next(self._ids)}"
        data = encode_action(action, headers, action_id)
        try:
            self._sock.sendall(data)
        except OSError as err:
            self._drop()
            raise AmiConnectionError(f"sending {action}: {err}") from err
        return action_id

    def _response_to(self, action_id: str, deadline: float) -> Message:
        while True:
            message = self._next_for(action_id, deadline)
            if message.response is not None:
                return message

    def _next_for(self, action_id: str, deadline: float) -> Message:
        """Return the next message carrying ``action_id``; keep the others as events."""
        while True:
            while self._inbox:
                message = self._inbox.popleft()
                if message.action_id == action_id:
                    return message
                self._events.append(message)
            try:
                self._inbox.extend(self._receive(deadline))
            except TimeoutError:
                self._drop()  # a late reply would pair with the wrong request: start afresh
                raise AmiConnectionError("Asterisk did not answer in time") from None

    def _receive(self, deadline: float) -> list[Message]:
        """Read once (until ``deadline``); return the messages completed. EOF: connection lost."""
        if self._sock is None:
            raise AmiConnectionError("not connected")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        try:
            self._sock.settimeout(left)
            data = self._sock.recv(65536)
        except TimeoutError:
            raise
        except OSError as err:
            self._drop()
            raise AmiConnectionError(f"connection lost: {err}") from err
        if not data:
            self._drop()
            reason = (
                "Asterisk shut down" if self.shutdown_seen else "Asterisk closed the connection"
            )
            raise AmiConnectionError(reason)
        messages = self._reader.feed(data)
        if any(m.event == "Shutdown" for m in messages):
            self.shutdown_seen = True
        return messages


def _queue(queue: str | None) -> list[tuple[str, object]]:
    return [("Queue", queue)] if queue else []
