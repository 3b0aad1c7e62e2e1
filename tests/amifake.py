"""Fake Asterisk manager interfaces for tests, built on the recorded bytes in data/asterisk/ami.

- ``read_session`` reads one recorded session of a transcript: what Asterisk sent (RX, one
  item per ``recv()``), what the recording client sent (TX), and where Asterisk closed (EOF).
- ``ScriptedAmi`` replays recorded sessions over a real socket, one per connection: it sends
  the RX chunks exactly as recorded, waits at each TX for one whole message from the client
  (recorded in ``received``), and swaps the recorded ActionID for the client's in what
  follows. A client that sends another action than the recording ends the session.
- ``QueueAsterisk`` keeps queue state (members, pauses, callers) and answers Login, Ping,
  QueueStatus, QueueSummary, QueueAdd, QueuePause, QueueRemove and Logoff in the byte format of
  the recordings (tests/test_ami.py checks it reproduces them), so the dashboard can be
  driven through whole scenarios. ``down()`` makes it refuse connections like a stopped PBX.
"""

from __future__ import annotations

import ast
import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from onerpa.ami import FrameReader, Message

DATA = Path(__file__).parent / "data" / "asterisk" / "ami"
_RAW = re.compile(r"^\+\s*[\d.]+\s+(RX|TX) (b(['\"]).*\3)$")
BANNER = b"Asterisk Call Manager/11.0.0\r\n"

Step = tuple[str, bytes]  # ("RX", bytes) | ("TX", bytes) | ("EOF", b"")


def read_session(name: str, session: str, nth: int = 0) -> list[Step]:
    """Return the RAW steps of the ``nth`` ``session`` (e.g. "A") in transcript ``name``."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    starts = [
        i for i, line in enumerate(lines) if re.match(rf"^SESSION {re.escape(session)}[: ]", line)
    ]
    start = starts[nth]
    steps: list[Step] = []
    for line in lines[start + 1 :]:
        if line.startswith("DECODED VIEW") or (steps and line.startswith("=====")):
            break
        if "## EOF" in line:
            steps.append(("EOF", b""))
            continue
        match = _RAW.match(line)
        if match:
            steps.append((match[1], ast.literal_eval(match[2])))
    assert steps, f"no RAW bytes for session {session} in {name}"
    return steps


def received_bytes(steps: list[Step]) -> bytes:
    """Return everything Asterisk sent in ``steps``, joined."""
    return b"".join(data for kind, data in steps if kind == "RX")


class _Server:
    """A listening socket on 127.0.0.1 served by one thread per connection."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self.clients: list = []  # clients of the test, closed with the server
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.append(conn)
            thread = threading.Thread(target=self._serve_safely, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve_safely(self, conn: socket.socket) -> None:
        try:
            self.serve(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def drop_connections(self) -> None:
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._conns.clear()

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self._stop = True
        self._listener.close()
        self.drop_connections()
        for thread in self._threads:
            thread.join(timeout=5)


def _read_message(conn: socket.socket, reader: FrameReader, pending: list[Message]) -> Message:
    """Return the client's next whole message (EOF: ConnectionError)."""
    while not pending:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("client closed")
        pending.extend(reader.feed(data))
    return pending.pop(0)


class ScriptedAmi(_Server):
    """Replay recorded sessions; each new connection plays the next one."""

    def __init__(self, *scripts: list[Step], split: int | None = None) -> None:
        self.scripts = list(scripts)
        self.split = split
        self.received: list[Message] = []
        self.finished = threading.Event()
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        if not self.scripts:
            return
        steps = self.scripts.pop(0)
        reader = FrameReader()
        reader.banner = ""  # the client sends no banner
        pending: list[Message] = []
        ids: dict[bytes, bytes] = {}
        for kind, data in steps:
            if kind == "RX":
                self._send(conn, _swap_ids(data, ids))
            elif kind == "TX":
                recorded = FrameReader()
                recorded.banner = ""
                [expected] = recorded.feed(data)
                got = _read_message(conn, reader, pending)
                self.received.append(got)
                if (got.get("Action") or "").lower() != (expected.get("Action") or "").lower():
                    break  # not what Asterisk was asked in the recording: end the session
                if expected.action_id:
                    ids[expected.action_id.encode()] = (got.action_id or "").encode()
            else:
                break
        if not self.scripts:
            self.finished.set()

    def _send(self, conn: socket.socket, data: bytes) -> None:
        if not self.split:
            conn.sendall(data)
            return
        for start in range(0, len(data), self.split):
            conn.sendall(data[start : start + self.split])


def _swap_ids(data: bytes, ids: dict[bytes, bytes]) -> bytes:
    for recorded, ours in ids.items():
        data = data.replace(b"ActionID: " + recorded + b"\r\n", b"ActionID: " + ours + b"\r\n")
    return data


# -- a stateful queue ------------------------------------------------------------------------


@dataclass
class FakeMember:
    name: str
    interface: str
    state_interface: str
    login_time: int
    penalty: int = 0
    paused: bool = False
    reason: str = ""
    last_pause: int = 0
    status: int = 1
    in_call: bool = False
    calls_taken: int = 0
    last_call: int = 0


@dataclass
class FakeCaller:
    channel: str
    uniqueid: str
    number: str
    name: str
    joined: int


@dataclass
class FakeQueue:
    name: str
    strategy: str = "rrmemory"
    service_level: int = 60
    members: dict[str, FakeMember] = field(default_factory=dict)
    callers: list[FakeCaller] = field(default_factory=list)


class QueueAsterisk(_Server):
    """Answer the queue actions from state, in the bytes of the recorded Asterisk 22."""

    def __init__(
        self,
        queues: tuple[str, ...] = ("onerpa-support",),
        *,
        users: dict[str, tuple[str, set[str]]] | None = None,
        clock: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        self.queues = {name: FakeQueue(name) for name in queues}
        # user -> (secret, write classes)
        self.users = users or {"onerpa": ("s3cret-for-tests", {"agent", "originate"})}
        self.clock = clock
        self.actions: list[Message] = []
        self._refuse = False
        self.state_lock = threading.Lock()
        super().__init__()

    # -- what the test does to Asterisk ----------------------------------------------------

    def down(self) -> None:
        """Stop answering: drop every session and close new connections at once."""
        self._refuse = True
        self.drop_connections()

    def up(self) -> None:
        self._refuse = False

    def member(self, interface: str, queue: str = "onerpa-support") -> FakeMember:
        return self.queues[queue].members[interface]

    def ring(self, interface: str, queue: str = "onerpa-support") -> None:
        """The member's phone rings (a SIP phone's device state: 6, ringing)."""
        with self.state_lock:
            self.member(interface, queue).status = 6

    def connect(self, interface: str, queue: str = "onerpa-support") -> None:
        """The member answers the first caller: in call, in use; the caller leaves the queue."""
        with self.state_lock:
            member = self.member(interface, queue)
            member.status, member.in_call = 2, True
            if self.queues[queue].callers:
                self.queues[queue].callers.pop(0)

    def hang_up(self, interface: str, queue: str = "onerpa-support") -> None:
        with self.state_lock:
            member = self.member(interface, queue)
            member.status, member.in_call = 1, False
            member.calls_taken += 1
            member.last_call = self.clock()

    def add_caller(self, number: str, name: str = "", *, waited: int = 0) -> FakeCaller:
        with self.state_lock:
            queue = self.queues["onerpa-support"]
            serial = len(queue.callers) + 1
            caller = FakeCaller(
                f"PJSIP/trunk-{serial:08x}",
                f"1796431546.{serial}",
                number,
                name or number,
                self.clock() - waited,
            )
            queue.callers.append(caller)
            return caller

    # -- the protocol ----------------------------------------------------------------------

    def serve(self, conn: socket.socket) -> None:
        if self._refuse:
            return
        conn.sendall(BANNER)
        reader = FrameReader()
        reader.banner = ""
        pending: list[Message] = []
        session = {"user": None}
        while not self._refuse:
            message = _read_message(conn, reader, pending)
            self.actions.append(message)
            with self.state_lock:
                reply, close = self._answer(message, session)
            conn.sendall(reply)
            if close:
                return

    def _answer(self, message: Message, session: dict) -> tuple[bytes, bool]:
        action = (message.get("Action") or "").lower()
        aid = message.action_id
        if not action:
            return _response("Error", aid, "Missing action in request"), False
        if action == "logoff":
            return _response("Goodbye", aid, "Thanks for all the fish."), True
        if action == "login":
            user = self.users.get(message.get("Username") or "")
            if user is None or user[0] != message.get("Secret"):
                return _response("Error", aid, "Authentication failed"), True
            session["user"] = message.get("Username")
            return _response("Success", aid, "Authentication accepted"), False
        if session["user"] is None:
            return _response("Error", aid, "Permission denied"), False
        classes = self.users[session["user"]][1]
        handler = getattr(self, f"_{action}", None)
        if handler is None:
            text = f"Invalid/unknown command: {message.get('Action')}. "
            return _response(
                "Error", aid, text + "Use Action: ListCommands to show available commands."
            ), False
        needs_agent = action in ("queueadd", "queuepause", "queueremove")
        if needs_agent and "agent" not in classes:
            return _response("Error", aid, "Permission denied"), False
        return handler(message, aid), False

    def _ping(self, message: Message, aid: str | None) -> bytes:
        return _lines(
            [
                ("Response", "Success"),
                ("ActionID", aid),
                ("Ping", "Pong"),
                ("Timestamp", f"{self.clock()}.000000"),
            ]
        )

    def _queueadd(self, message: Message, aid: str | None) -> bytes:
        interface = message.get("Interface")
        if not interface:
            return _response("Error", aid, "'Interface' not specified.")
        queue = self.queues.get(message.get("Queue") or "")
        if queue is None:
            return _response("Error", aid, "Unable to add interface to queue: No such queue")
        if interface in queue.members:
            return _response("Error", aid, "Unable to add interface: Already there")
        now = self.clock()
        paused = (message.get("Paused") or "").lower() in ("true", "yes", "1")
        queue.members[interface] = FakeMember(
            name=message.get("MemberName") or interface,
            interface=interface,
            state_interface=message.get("StateInterface") or interface,
            login_time=now,
            penalty=message.integer("Penalty"),
            paused=paused,
            reason=(message.get("Reason") or "") if paused else "",
            last_pause=now if paused else 0,
        )
        return _response("Success", aid, "Added interface to queue")

    def _queuepause(self, message: Message, aid: str | None) -> bytes:
        interface, paused = message.get("Interface"), message.get("Paused")
        if not interface or paused is None:
            return _response("Error", aid, "Need 'Interface' and 'Paused' parameters.")
        names = [message.get("Queue")] if message.get("Queue") else list(self.queues)
        members = [
            self.queues[n].members[interface]
            for n in names
            if n in self.queues and interface in self.queues[n].members
        ]
        if not members:
            return _response("Error", aid, "Interface not found")
        on = paused.lower() in ("true", "yes", "1")
        for member in members:
            member.paused = on
            member.reason = (message.get("Reason") or "") if on else ""
            if on:
                member.last_pause = self.clock()
        text = "Interface paused successfully" if on else "Interface unpaused successfully"
        return _response("Success", aid, text)

    def _queueremove(self, message: Message, aid: str | None) -> bytes:
        queue = self.queues.get(message.get("Queue") or "")
        if queue is None:
            return _response("Error", aid, "Unable to remove interface from queue: No such queue")
        if queue.members.pop(message.get("Interface") or "", None) is None:
            return _response("Error", aid, "Unable to remove interface: Not there")
        return _response("Success", aid, "Removed interface from queue")

    def _queuestatus(self, message: Message, aid: str | None) -> bytes:
        wanted = message.get("Queue")
        items = []
        for queue in self.queues.values():
            if wanted and queue.name != wanted:
                continue
            items.append(self._params(queue, aid))
            items += [_queue_member(queue.name, m, aid) for m in queue.members.values()]
            items += [
                self._entry(queue.name, position, caller, aid)
                for position, caller in enumerate(queue.callers, 1)
            ]
        start = _lines(
            [
                ("Response", "Success"),
                ("ActionID", aid),
                ("EventList", "start"),
                ("Message", "Queue status will follow"),
            ]
        )
        return start + b"".join(items) + _complete("QueueStatusComplete", aid, len(items))

    def _queuesummary(self, message: Message, aid: str | None) -> bytes:
        wanted = message.get("Queue")
        items = []
        for queue in self.queues.values():
            if wanted and queue.name != wanted:
                continue
            members = queue.members.values()
            available = sum(1 for m in members if not m.paused and m.status == 1 and not m.in_call)
            longest = max((self.clock() - c.joined for c in queue.callers), default=0)
            items.append(
                _lines(
                    [
                        ("Event", "QueueSummary"),
                        ("Queue", queue.name),
                        ("LoggedIn", len(queue.members)),
                        ("Available", available),
                        ("Callers", len(queue.callers)),
                        ("HoldTime", 0),
                        ("TalkTime", 0),
                        ("LongestHoldTime", longest),
                        ("ActionID", aid),
                    ]
                )
            )
        start = _lines(
            [
                ("Response", "Success"),
                ("ActionID", aid),
                ("EventList", "start"),
                ("Message", "Queue summary will follow"),
            ]
        )
        return start + b"".join(items) + _complete("QueueSummaryComplete", aid, len(items))

    def _params(self, queue: FakeQueue, aid: str | None) -> bytes:
        return _lines(
            [
                ("Event", "QueueParams"),
                ("Queue", queue.name),
                ("Max", 0),
                ("Strategy", queue.strategy),
                ("Calls", len(queue.callers)),
                ("Holdtime", 0),
                ("TalkTime", 0),
                ("Completed", 0),
                ("Abandoned", 0),
                ("ServiceLevel", queue.service_level),
                ("ServicelevelPerf", "0.0"),
                ("ServicelevelPerf2", "0.0"),
                ("Weight", 0),
                ("ActionID", aid),
            ]
        )

    def _entry(self, queue: str, position: int, caller: FakeCaller, aid: str | None) -> bytes:
        return _lines(
            [
                ("Event", "QueueEntry"),
                ("Queue", queue),
                ("Position", position),
                ("Channel", caller.channel),
                ("Uniqueid", caller.uniqueid),
                ("CallerIDNum", caller.number),
                ("CallerIDName", caller.name),
                ("ConnectedLineNum", "unknown"),
                ("ConnectedLineName", "unknown"),
                ("Wait", self.clock() - caller.joined),
                ("Priority", 0),
                ("ActionID", aid),
            ]
        )


def _queue_member(queue: str, member: FakeMember, aid: str | None) -> bytes:
    return _lines(
        [
            ("Event", "QueueMember"),
            ("Queue", queue),
            ("Name", member.name),
            ("Location", member.interface),
            ("StateInterface", member.state_interface),
            ("Membership", "dynamic"),
            ("Penalty", member.penalty),
            ("CallsTaken", member.calls_taken),
            ("LastCall", member.last_call),
            ("LastPause", member.last_pause),
            ("LoginTime", member.login_time),
            ("InCall", int(member.in_call)),
            ("Status", member.status),
            ("Paused", int(member.paused)),
            ("PausedReason", member.reason),
            ("Wrapuptime", 0),
            ("ActionID", aid),
        ]
    )


def _complete(event: str, aid: str | None, count: int) -> bytes:
    return _lines(
        [("Event", event), ("ActionID", aid), ("EventList", "Complete"), ("ListItems", count)]
    )


def _response(kind: str, aid: str | None, text: str) -> bytes:
    return _lines([("Response", kind), ("ActionID", aid), ("Message", text)])


def _lines(pairs: list[tuple[str, object]]) -> bytes:
    """One message: the pairs in order (an ActionID of None is left out), then an empty line."""
    lines = [f"{k}: {v}" for k, v in pairs if not (k == "ActionID" and v is None)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
