"""A faithful Asterisk for tests, benchmarks and ``simulate-call``: its side of AGI, byte for byte.

Built from the recordings of Asterisk 22.10.1 in ``tests/data/asterisk`` and from res_agi.c: the
environment block, every reply the recordings show, 510/511/520, the hang-up signs (the bare
``HANGUP`` line on FastAGI, SIGHUP for classic AGI), dead-channel rules, and the AGISTATUS the
dialplan sees afterwards. A scripted caller presses keys and may hang up. Everything is recorded
in a :class:`CallResult` for the test to assert on; a script that breaks AGI framing fails loudly
with :class:`FramingError`.

FastAGI::

    call = EmulatedCall(caller="+79161234567", keys=["1", "12345#"])
    result = call.run_fastagi(("127.0.0.1", 4573), script="call")

Classic AGI::

    result = call.run_classic([sys.executable, "-m", "ivr.classic"])

After ``ONERPA_ROUTE=queue``, :func:`answer_in_queue` plays an agent answering: the dialplan's
agent-connect gosub and hang-up handler, with the variables app_queue sets; :func:`turned_away`
plays a queue with no agent on the line (every member paused or unavailable).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
import wave
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from ivr import dialplan
from ivr.dialplan import CONTEXT_INBOUND

ASTERISK_VERSION = "22.10.1"
DEFAULT_DNID = "84997195581"  # the support line, 8 (499) 719-55-81
DEFAULT_SOUNDS_DIR = Path(__file__).resolve().parents[1] / "asterisk" / "sounds" / "ru"
MAX_ARGS = 128  # res_agi.c drops arguments beyond this

INVALID = "510 Invalid or unknown command"
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
USAGE_HEAD = "520-Invalid command syntax.  Proper usage follows:"
USAGE_TAIL = "520 End of proper usage."
NO_USAGE = "520 Invalid command syntax.  Proper usage not available."
STATE_RING, STATE_UP = 4, 6

# Every AGI command res_agi.c registers, with whether it is allowed on a dead channel.
COMMANDS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("answer",), False), (("asyncagi", "break"), True), (("channel", "status"), False),
    (("database", "del"), True), (("database", "deltree"), True), (("database", "get"), True),
    (("database", "put"), True), (("exec",), True), (("get", "data"), False),
    (("get", "full", "variable"), True), (("get", "option"), False),
    (("get", "variable"), True), (("hangup",), False), (("noop",), True),
    (("receive", "char"), False), (("receive", "text"), False), (("record", "file"), False),
    (("say", "alpha"), False), (("say", "digits"), False), (("say", "number"), False),
    (("say", "phonetic"), False), (("say", "date"), False), (("say", "time"), False),
    (("say", "datetime"), False), (("send", "image"), False), (("send", "text"), False),
    (("set", "autohangup"), False), (("set", "callerid"), False), (("set", "context"), False),
    (("set", "extension"), False), (("set", "music"), False), (("set", "priority"), False),
    (("set", "variable"), True), (("stream", "file"), False),
    (("control", "stream", "file"), False), (("tdd", "mode"), False), (("verbose",), True),
    (("wait", "for", "digit"), False),
)  # fmt: skip

# Usage texts as Asterisk 22 sends them; the first five are recorded, the rest built the same
# way from res_agi.c's documentation (one line per paragraph).
_USAGE: dict[tuple[str, ...], str] = {
    ("stream", "file"): (
        "Send the given file, allowing playback to be interrupted by the given digits, if any. "
        "Returns <literal>0</literal> if playback completes without a digit being pressed, or "
        "the ASCII numerical value of the digit if one was pressed, or <literal>-1</literal> on "
        "error or if the channel was disconnected. If musiconhold is playing before calling "
        "stream file it will be automatically stopped and will not be restarted after "
        "completion.\nIt sets the following channel variables upon completion:\n"
        "<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text "
        "string.\n    <value>SUCCESS</value>\n    <value>FAILED</value>\n"
    ),
    ("wait", "for", "digit"): (
        "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a "
        "DTMF digit. Returns <literal>-1</literal> on channel failure, <literal>0</literal> if "
        "no digit is received in the timeout, or the numerical value of the ascii of the digit "
        "if one is received. Use <literal>-1</literal> for the <replaceable>timeout</replaceable>"
        " value if you desire the call to block indefinitely.\n"
    ),
    ("verbose",): (
        "Sends <replaceable>message</replaceable> to the console via verbose message system. "
        "<replaceable>level</replaceable> is the verbose level (1-4). Always returns "
        "<literal>1</literal>\n"
    ),
    ("get", "variable"): (
        "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. "
        "Returns <literal>1</literal> if <replaceable>variablename</replaceable> is set and "
        "returns the variable in parentheses.\nExample return code: 200 result=1 (testvariable)\n"
    ),
    ("set", "variable"): "Sets a variable to the current channel.\n",
    ("get", "data"): (
        "Stream the given <replaceable>file</replaceable>, and receive DTMF data.\n"
        "Returns the digits received from the channel at the other end.\n"
    ),
    ("exec",): (
        "Executes <replaceable>application</replaceable> with given "
        "<replaceable>options</replaceable>.\nReturns whatever the "
        "<replaceable>application</replaceable> returns, or <literal>-2</literal> on failure to "
        "find <replaceable>application</replaceable>.\n"
    ),
    ("get", "full", "variable"): (
        "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set or "
        "channel does not exist. Returns <literal>1</literal> if "
        "<replaceable>variablename</replaceable> is set and returns the variable in "
        "parenthesis. Understands complex variable names and builtin variables, unlike GET "
        "VARIABLE.\nExample return code: 200 result=1 (testvariable)\n"
    ),
}

_INT_PREFIX = re.compile(r"\s*[-+]?\d+")
_EXPRESSION = re.compile(r"\$\{([^${}]*)\}")
_CALLERID = re.compile(r'\s*"?(?P<name>[^"<]*?)"?\s*<(?P<num>[^>]*)>\s*')
_SEQUENCE = itertools.count(1)  # next() on a count is atomic: safe across call threads


class EmulatorError(Exception):
    """The script under test broke the AGI contract; ``result`` holds the call so far."""

    def __init__(self, message: str, result: CallResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class FramingError(EmulatorError):
    """The script wrote two commands at once, a command without newline, or a CR."""


class EmulatorTimeout(EmulatorError):
    """The script sent nothing for the call's ``timeout`` (real Asterisk would wait forever)."""


@dataclass(frozen=True)
class Key:
    """One answer of the caller to an input command (GET DATA, WAIT FOR DIGIT, GET OPTION).

    ``barge_in`` keys are typed while a prompt plays, ``after_ms`` into it: they also
    interrupt STREAM FILE when their first digit is an escape digit. ``hangs_up`` keys are
    the caller hanging up instead of typing.
    """

    digits: str = ""
    barge_in: bool = False
    after_ms: int = 0
    hangs_up: bool = False

    @classmethod
    def of(cls, value: str | Key) -> Key:
        """Accept a plain string as a key answer typed after the prompt."""
        return value if isinstance(value, Key) else cls(value)


HANG_UP = Key(hangs_up=True)  # the caller hangs up at this input command

RECORD_RATE = 8000  # samples per second of the recorded formats (wav, gsm)
BEEP_SECONDS = 0.44  # the beep RECORD FILE plays before recording (beep.gsm, recorded)
DTMF_CUT_SAMPLES = 1600  # RECORD FILE drops the last 200 ms before an escape digit
SILENCE_KEPT_SAMPLES = 7520  # of the trailing silence, 0.94 s stays in the file (recorded)
# The formats emulated: bytes per 160-sample frame (gsm) or per sample (wav, 16-bit).
_GSM_FRAME = (160, 33)


@dataclass(frozen=True)
class Speech(Key):
    """The caller's answer to RECORD FILE: ``seconds`` of speech after the beep, then

    ``digits`` pressed (the first escape digit ends the recording; others are ignored, as
    Asterisk does), or a hang-up (``hangs_up``), or falling silent: a phone keeps sending
    silent frames (``silent``, the default), which the silence detection ends; with
    ``silent=False`` no frames come at all (a Local channel in Wait()), and only the
    maximum length ends it. Speech longer than the maximum is cut there.
    """

    seconds: float = 0.0
    silent: bool = True

    @property
    def samples(self) -> int:
        return round(self.seconds * RECORD_RATE)


@dataclass(frozen=True)
class Hangup:
    """When the caller hangs up, besides a ``HANG_UP`` key answer."""

    before_command: int | None = None  # command N finds the channel dead (1-based)
    during_prompt: str | None = None  # while this prompt plays, after_ms into it
    after_ms: int = 0
    idle_s: float | None = None  # once the script has sent nothing for this long

    @classmethod
    def before(cls, command: int) -> Hangup:
        """Hang up just as command N arrives: FastAGI sends HANGUP before its answer."""
        return cls(before_command=command)

    @classmethod
    def during(cls, prompt: str, after_ms: int = 0) -> Hangup:
        """Hang up while the named prompt plays (by name or by file name without path)."""
        return cls(during_prompt=prompt, after_ms=after_ms)

    @classmethod
    def when_idle(cls, seconds: float) -> Hangup:
        """Hang up once the script has been silent this long after an answer."""
        return cls(idle_s=seconds)


@dataclass(frozen=True)
class Recording:
    """A file RECORD FILE wrote, and how many samples it holds."""

    path: Path
    samples: int

    @property
    def seconds(self) -> float:
        return self.samples / RECORD_RATE


@dataclass
class CallResult:
    """What happened on the call, as Asterisk and the dialplan saw it."""

    status: str = "SUCCESS"  # AGISTATUS: SUCCESS, FAILURE, HANGUP, NOTFOUND
    connected: bool = True
    env: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)  # lines received, decoded, in order
    prompts: list[str] = field(default_factory=list)  # prompts that started playing
    missing_prompts: list[str] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)  # key answers the script consumed
    variables: dict[str, str] = field(default_factory=dict)  # channel variables at the end
    verbose: list[str] = field(default_factory=list)
    hung_up: bool = False
    framing_errors: list[str] = field(default_factory=list)
    wire: list[tuple[str, bytes]] = field(default_factory=list)  # ("RX"|"TX"|"SIGNAL", bytes)
    recordings: list[Recording] = field(default_factory=list)  # files RECORD FILE wrote
    sighups: int = 0  # classic: SIGHUPs sent
    returncode: int | None = None  # classic: the script's exit status

    @property
    def received(self) -> bytes:
        """Every byte the script received (RX, as the recordings call it)."""
        return b"".join(chunk for side, chunk in self.wire if side == "RX")

    @property
    def sent(self) -> bytes:
        """Every byte the script sent (TX)."""
        return b"".join(chunk for side, chunk in self.wire if side == "TX")


@dataclass
class EmulatedCall:
    """One inbound call: who calls, what they press, when they hang up, how the dialplan is."""

    caller: str = ""
    name: str = ""
    keys: Sequence[str | Key] = ()
    hangup: Hangup | None = None
    args: Sequence[str] = ()
    dnid: str = DEFAULT_DNID
    language: str = "ru"
    channel: str | None = None  # default PJSIP/trunk-<n>
    uniqueid: str | None = None
    linkedid: str | None = None
    context: str = CONTEXT_INBOUND
    extension: str = "s"
    priority: int = 1
    answered: bool = False  # the dialplan ran Answer() before AGI()
    variables: Mapping[str, str] = field(default_factory=dict)  # set by the dialplan
    dead_at_start: bool = False  # AGI from the h extension or a hang-up handler
    hangup_cause: int = 16
    hangup_source: str = ""  # CHANNEL(hangupsource): the channel whose side hung up
    agisighup: bool = True  # Set(AGISIGHUP=no) -> False
    agiexitonhangup: bool = False  # Set(AGIEXITONHANGUP=yes) -> True
    sounds_dir: Path | str = DEFAULT_SOUNDS_DIR
    # Asterisk's astdatadir: RECORD FILE puts a relative file name under its sounds/.
    data_dir: Path | str = DEFAULT_SOUNDS_DIR.parents[1]
    disk_full: bool = False  # no new file can be opened: RECORD FILE answers (writefile)
    speed: float = 0.0  # 0: prompts and timeouts take no time; 1: real time
    strict: bool = True  # framing errors raise FramingError
    timeout: float = 30.0  # the longest the script may stay silent

    def run_fastagi(
        self, address: tuple[str, int], script: str = "call", *, connect_timeout: float = 5.0
    ) -> CallResult:
        """Connect to a FastAGI server as Asterisk does and play the call."""
        try:
            sock = socket.create_connection(address, timeout=connect_timeout)
        except OSError:
            # Asterisk carries on in the dialplan with FAILURE: the place for a fallback.
            return CallResult(status="FAILURE", connected=False)
        return self._run_socket(sock, f"agi://{address[0]}:{address[1]}/{script}", script)

    def run_on_socket(self, sock: socket.socket, script: str = "call") -> CallResult:
        """Play the call as FastAGI on an already connected socket, which it then owns."""
        return self._run_socket(sock, f"agi://127.0.0.1:4573/{script}", script)

    def run_classic(
        self,
        argv: Sequence[str],
        *,
        script: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> CallResult:
        """Start a classic AGI script as Asterisk does (argv + AGI args) and play the call."""
        environ = {**os.environ, **asterisk_environ(), **(env or {})}
        try:
            proc = subprocess.Popen(
                [*argv, *self.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=environ,
                cwd=cwd,
            )
        except OSError:
            return CallResult(status="NOTFOUND", connected=False)
        transport = _PipeTransport(proc, self.timeout)
        session = _Session(self, transport)
        try:
            return session.run(script or Path(argv[-1]).name, None)
        finally:
            session.result.returncode = transport.reap(kill=session.broken)

    def _run_socket(self, sock: socket.socket, request: str, script: str) -> CallResult:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Session(self, _SocketTransport(sock)).run(request, script)


class CallHandle:
    """A call running in a background thread; ``result()`` waits and re-raises its error."""

    def __init__(self, target: Callable[..., CallResult], *args: Any, **kwargs: Any) -> None:
        self._value: CallResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(target, args, kwargs), name="emulated-call", daemon=True
        )
        self._thread.start()

    def _run(self, target: Callable[..., CallResult], args: tuple[Any, ...], kwargs: Any) -> None:
        try:
            self._value = target(*args, **kwargs)
        except BaseException as exc:  # handed to result(): the test must see it
            self._error = exc

    def result(self, timeout: float | None = None) -> CallResult:
        """Wait for the call to end and return its result (or raise its error)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise EmulatorTimeout("the emulated call is still running")
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def in_thread(target: Callable[..., CallResult], *args: Any, **kwargs: Any) -> CallHandle:
    """Run e.g. ``call.run_fastagi`` in a background thread."""
    return CallHandle(target, *args, **kwargs)


# -- the queue: an agent answers ------------------------------------------------------------

DEFAULT_QUEUE = "onerpa-support"  # ONERPA_DEFAULT_QUEUE of extensions.conf


@dataclass(frozen=True)
class AgentAnswer:
    """An agent answering a queued call: who, after how long in the queue, who hangs up."""

    interface: str  # the member's interface, e.g. PJSIP/101 (MEMBERINTERFACE)
    name: str = ""  # its name in queues.conf (MEMBERNAME); app_queue uses the interface if none
    wait: float = 0.0  # seconds in the queue before the answer
    talk: float = 0.0  # seconds of conversation
    hung_up_by: Literal["caller", "agent"] = "caller"


@dataclass
class QueueResult:
    """The two hook AGIs the dialplan ran for an answered queue call."""

    answer: AgentAnswer
    connect: CallResult  # the agent-connect gosub, on the member's channel
    hangup: CallResult  # the hang-up handler, on the caller's channel


def answer_in_queue(
    call: EmulatedCall,
    result: CallResult,
    address: tuple[str, int],
    answer: AgentAnswer,
    *,
    lived: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> QueueResult:
    """Play what follows ``ONERPA_ROUTE=queue`` as Asterisk 22 and extensions.conf do.

    ``call`` and its ``result`` are the call AGI's; ``lived`` is how long the caller's channel
    existed before Queue(). The caller waits, the agent answers (the agent-connect gosub runs
    on the member's channel), they talk, one side hangs up (the hang-up handler runs on the
    caller's channel). ``sleep`` passes the wait and the talk.
    """
    caller_channel = result.env.get("agi_channel", "")
    caller_uid = result.env.get("agi_uniqueid", "")
    linkedid = call.linkedid or caller_uid
    member_channel = f"{answer.interface}-{next(_SEQUENCE):08x}"
    variables = result.variables
    call_id = variables.get(dialplan.VAR_CALL_ID, "")
    queue = variables.get(dialplan.VAR_QUEUE) or DEFAULT_QUEUE
    member = {
        "MEMBERINTERFACE": answer.interface,
        "MEMBERNAME": answer.name or answer.interface,
        "QEHOLDTIME": str(int(answer.wait)),  # whole seconds, as app_queue counts them
        "QEORIGINALPOS": "1",
        "QUEUENAME": queue,
    }
    sleep(answer.wait)
    connect = EmulatedCall(
        # app_queue gives the member's channel the number the caller dialled as caller ID.
        caller=call.dnid,
        args=[call_id, linkedid],  # AGI(agi://${SERVER}/agent-connect,${CALL_ID},linkedid)
        channel=member_channel,
        linkedid=linkedid,
        context=dialplan.CONTEXT_AGENT_CONNECT,
        priority=6,
        answered=True,
        variables=member,
        timeout=call.timeout,
    ).run_fastagi(address, dialplan.SCRIPT_AGENT_CONNECT)
    sleep(answer.talk)
    ended = _hang_up(
        call,
        result,
        address,
        hangup_source=caller_channel if answer.hung_up_by == "caller" else member_channel,
        variables={**member, "SUPPORT_QUEUE": queue, **_queue_times(answer, lived)},
    )
    return QueueResult(answer, connect, ended)


@dataclass
class CallbackAsked:
    """The waiting caller pressed 1 for a call-back: the exit context's AGI, then the end."""

    wait: float
    ask: CallResult
    ended: CallResult | None  # the hang-up handler, when the request was accepted

    @property
    def accepted(self) -> bool:
        return self.ask.variables.get(dialplan.VAR_CALLBACK) == dialplan.CALLBACK_ACCEPTED


def ask_for_callback(
    call: EmulatedCall,
    result: CallResult,
    address: tuple[str, int],
    *,
    wait: float,
    lived: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> CallbackAsked:
    """Play a caller who waits ``wait`` seconds in the queue, then presses 1 for a call-back.

    As Asterisk 22 and extensions.conf do: app_queue leaves the queue (EXITWITHKEY) to
    ``[onerpa-queue-exit]`` on the caller's own channel, which runs the ``callback-request``
    AGI with our call id; accepted, the dialplan thanks the caller and hangs up, and the
    hang-up handler runs with the queue's variables (QUEUESTATUS is not set on this path).
    """
    sleep(wait)
    known = result.variables
    caller_uid = result.env.get("agi_uniqueid", "")
    queue_times = {
        "QUEUEWAIT": str(int(wait)),
        "QUEUEWAIT_MS": str(int(wait * 1000)),
        "ANSWEREDTIME": "0",
        "ANSWEREDTIME_MS": "0",
        "DIALEDTIME": str(int(lived + wait)),
        "DIALEDTIME_MS": str(int((lived + wait) * 1000)),
    }
    ask = EmulatedCall(
        caller=call.caller,
        name=known.get(dialplan.VAR_SUMMARY) or call.name,
        args=[known.get(dialplan.VAR_CALL_ID, "")],
        dnid=call.dnid,
        language=call.language,
        channel=result.env.get("agi_channel", ""),
        uniqueid=caller_uid,
        linkedid=call.linkedid or caller_uid,
        context="onerpa-queue-exit",
        extension="callback",
        priority=5,
        answered=True,
        variables={**known, **queue_times},
        timeout=call.timeout,
    ).run_fastagi(address, dialplan.SCRIPT_CALLBACK_REQUEST)
    done = CallbackAsked(wait, ask, None)
    if done.accepted:
        done.ended = _hang_up(
            call, result, address, hangup_source="dialplan/builtin", variables=queue_times
        )
    return done


# Queue() returned because no member could take a call (queues.conf joinempty, leavewhenempty).
NO_AGENTS_STATUSES = ("JOINEMPTY", "JOINUNAVAIL", "LEAVEEMPTY", "LEAVEUNAVAIL")
BUSY_MESSAGE_SECONDS = 10.0  # onerpa-queue-busy, read at the speed of the rendered prompts


def turned_away(
    call: EmulatedCall,
    result: CallResult,
    address: tuple[str, int],
    status: str = "JOINEMPTY",
    *,
    waited: float = 0.0,
    lived: float = 0.0,
    busy: float = BUSY_MESSAGE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> CallResult:
    """Play what follows ``ONERPA_ROUTE=queue`` when no agent is on the line; return the
    hang-up handler's result.

    ``status`` is the QUEUESTATUS Queue() returns: JOIN* at once, LEAVE* after ``waited``
    seconds in the queue. The dialplan plays the busy message (``busy`` seconds) and runs
    Hangup(16). The variables are those recorded from Asterisk 22.10.1
    (tests/data/asterisk/queue/scenario_5a_joinempty, 5b_exitempty): a caller who never
    joined gets only QUEUESTATUS; one who left gets ABANDONED=TRUE, QUEUEWAIT, an
    ANSWEREDTIME of 0 and a DIALEDTIME of the channel's whole life.
    """
    if status not in NO_AGENTS_STATUSES:
        raise ValueError(f"not a no-agents QUEUESTATUS: {status}")
    queue = result.variables.get(dialplan.VAR_QUEUE) or DEFAULT_QUEUE
    variables = {"SUPPORT_QUEUE": queue, "QUEUESTATUS": status}
    if status.startswith("LEAVE"):
        sleep(waited)
        life_ms = round((lived + waited) * 1000)
        variables |= {
            "ABANDONED": "TRUE",
            "QUEUENAME": queue,
            "QUEUEPOSITION": "1",
            "QUEUEWAIT": str(int(waited)),
            "QUEUEWAIT_MS": str(int(waited) * 1000),
            "ANSWEREDTIME": "0",
            "ANSWEREDTIME_MS": "0",
            "DIALEDTIME": str(life_ms // 1000),
            "DIALEDTIME_MS": str(life_ms),
        }
    sleep(busy)
    # Hangup() in the dialplan: Asterisk names it as the side that hung up.
    return _hang_up(call, result, address, hangup_source="dialplan/builtin", variables=variables)


def _hang_up(
    call: EmulatedCall,
    result: CallResult,
    address: tuple[str, int],
    *,
    hangup_source: str,
    variables: Mapping[str, str],
) -> CallResult:
    """Run the hang-up handler on the caller's channel, as ``[onerpa-hangup]`` does."""
    caller_uid = result.env.get("agi_uniqueid", "")
    known = result.variables
    call_id = known.get(dialplan.VAR_CALL_ID, "")
    return EmulatedCall(
        caller=call.caller,
        # The dialplan shows the summary as the caller's name before Queue().
        name=known.get(dialplan.VAR_SUMMARY) or call.name,
        args=[call_id, caller_uid],  # AGI(agi://${SERVER}/hangup,${ONERPA_CALL_ID},${UNIQUEID})
        dnid=call.dnid,
        language=call.language,
        channel=result.env.get("agi_channel", ""),
        uniqueid=caller_uid,
        linkedid=call.linkedid or caller_uid,
        context=dialplan.CONTEXT_HANGUP,
        priority=4,
        answered=True,
        dead_at_start=True,
        hangup_source=hangup_source,
        variables={
            **known,
            "FASTAGI_SERVER": f"{address[0]}:{address[1]}",
            **variables,
        },
        timeout=call.timeout,
    ).run_fastagi(address, dialplan.SCRIPT_HANGUP)


def _queue_times(answer: AgentAnswer, lived: float) -> dict[str, str]:
    """The timing variables app_queue leaves on the caller's channel of an answered call.

    As recorded from Asterisk 22: QUEUEWAIT in whole seconds and QUEUEWAIT_MS the same times
    1000; ANSWEREDTIME the talk; DIALEDTIME the caller channel's whole life, not Queue()'s.
    """
    waited = int(answer.wait)
    talk_ms = round(answer.talk * 1000)
    life_ms = round((lived + answer.wait) * 1000) + talk_ms
    return {
        "QUEUEWAIT": str(waited),
        "QUEUEWAIT_MS": str(waited * 1000),
        "ANSWEREDTIME": str(talk_ms // 1000),
        "ANSWEREDTIME_MS": str(talk_ms),
        "DIALEDTIME": str(life_ms // 1000),
        "DIALEDTIME_MS": str(life_ms),
    }


def parse_args(line: str) -> list[str]:
    """Split a command line into arguments exactly as res_agi.c's parse_args does."""
    words: list[list[str]] = []
    quoted = escaped = False
    between = True  # in whitespace between arguments
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and between:  # an opening quote starts an argument, even an empty one
                words.append([])
                between = False
            continue
        if char in " \t" and not quoted and not escaped:
            between = True
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        if between:
            if len(words) >= MAX_ARGS - 1:
                continue
            words.append([])
            between = False
        words[-1].append(char)
        escaped = False
    return ["".join(word) for word in words]


def find_command(argv: Sequence[str]) -> tuple[tuple[str, ...], bool] | None:
    """Look a command up as res_agi.c does: its words first, case-insensitively."""
    for words, dead_ok in COMMANDS:
        typed = [word.lower() for word in argv[: len(words)]]
        if typed == list(words):
            return words, dead_ok
    return None


def asterisk_environ() -> dict[str, str]:
    """The AST_* variables Asterisk puts in a classic AGI script's environment."""
    return {
        "AST_AGI_DIR": "/usr/share/asterisk/agi-bin",
        "AST_BUILD_DATE": "2026-11-26 11:27:20 UTC",
        "AST_BUILD_HOST": "vm",
        "AST_BUILD_KERNEL": "6.1.0",
        "AST_BUILD_MACHINE": "x86_64",
        "AST_BUILD_OS": "Linux",
        "AST_BUILD_USER": "root",
        "AST_CONFIG_DIR": "/etc/asterisk",
        "AST_CONFIG_FILE": "/etc/asterisk/asterisk.conf",
        "AST_DATA_DIR": "/usr/share/asterisk",
        "AST_KEY_DIR": "/usr/share/asterisk/keys",
        "AST_LOG_DIR": "/var/log/asterisk",
        "AST_MODULE_DIR": "/usr/lib/asterisk/modules",
        "AST_MONITOR_DIR": "/var/spool/asterisk/monitor",
        "AST_RUN_DIR": "/var/run/asterisk",
        "AST_SPOOL_DIR": "/var/spool/asterisk",
        "AST_SYSTEMNAME": "",
        "AST_VAR_DIR": "/var/lib/asterisk",
        "AST_VERSION": ASTERISK_VERSION,
    }


def read_string(digits: str, maximum: int) -> tuple[str, bool]:
    """Collect keys as ast_readstring does: "#" or max digits end input, else a time-out."""
    typed = ""
    for char in digits:
        if char == "#":
            return typed, False
        typed += char
        if len(typed) >= maximum:
            return typed, False
    return typed, True


def _scan_int(text: str) -> int | None:
    """Read a leading integer the way sscanf("%d") does; None when there is none."""
    match = _INT_PREFIX.match(text)
    return int(match[0]) if match else None


# -- transports -------------------------------------------------------------------------------


class _Transport(Protocol):
    fast: bool

    def send(self, data: bytes) -> None: ...

    def recv(self, timeout: float) -> bytes | None: ...  # None: nothing in time; b"": closed

    def notify_hangup(self, result: CallResult) -> None: ...

    def close(self) -> None: ...


class _SocketTransport:
    fast = True

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._gone = False

    def send(self, data: bytes) -> None:
        if self._gone:
            return
        try:
            self._sock.sendall(data)
        except OSError:
            self._gone = True  # the script closed its end; Asterisk ignores that too

    def recv(self, timeout: float) -> bytes | None:
        self._sock.settimeout(max(timeout, 0.001))
        try:
            return self._sock.recv(65536)
        except TimeoutError:
            return None
        except OSError:
            return b""

    def notify_hangup(self, result: CallResult) -> None:
        self.send(b"HANGUP\n")
        result.wire.append(("RX", b"HANGUP\n"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class _PipeTransport:
    fast = False

    def __init__(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = proc
        self._stdin = proc.stdin
        self._stdout = proc.stdout
        self._timeout = timeout

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._stdin.fileno(), view) :]
        except (OSError, ValueError):
            pass  # the script is gone; its exit status tells the rest

    def recv(self, timeout: float) -> bytes | None:
        poller = select.poll()
        poller.register(self._stdout.fileno(), select.POLLIN)
        if not poller.poll(max(1, int(timeout * 1000))):
            return None
        return os.read(self._stdout.fileno(), 65536)

    def notify_hangup(self, result: CallResult) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGHUP)
            result.sighups += 1
            result.wire.append(("SIGNAL", b"SIGHUP"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()

    def reap(self, kill: bool = False) -> int:
        """Wait for the script to exit (killed if asked, or after the timeout); its status."""
        self.close()
        if kill and self._proc.poll() is None:
            self._proc.kill()
        try:
            self._proc.wait(self._timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stdout.close()
        return self._proc.returncode


# -- the call -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    line: str
    failure: bool = False  # res_agi's RESULT_FAILURE: counts toward AGISTATUS=FAILURE
    hangup: bool = False  # the channel hung up during this command
    cause: int | None = None


@dataclass(frozen=True)
class _Played:
    endpos: int
    digit: str = ""
    hung_up: bool = False


class _Broken(Exception):
    """Hard framing error in strict mode: Asterisk would misbehave, so the call stops."""


class _Session:
    """Asterisk's side of one AGI run: the loop of res_agi.c's run_agi, and the commands."""

    def __init__(self, call: EmulatedCall, io: _Transport) -> None:
        self.call = call
        self.io = io
        self.result = CallResult()
        self.vars = dict(call.variables)
        if not call.agisighup:
            self.vars.setdefault("AGISIGHUP", "no")
        if call.agiexitonhangup:
            self.vars.setdefault("AGIEXITONHANGUP", "yes")
        self.keys = deque(Key.of(key) for key in call.keys)
        self.db: dict[tuple[str, str], str] = {}
        number = next(_SEQUENCE)
        self.channel = call.channel or f"PJSIP/trunk-{number:08x}"
        self.uniqueid = call.uniqueid or f"{int(time.time())}.{number}"
        self.linkedid = call.linkedid or self.uniqueid
        self.caller, self.caller_name, self.language = call.caller, call.name, call.language
        self.up = call.answered
        self.dead = call.dead_at_start
        self.cause = call.hangup_cause if call.dead_at_start else 0
        self.status = "SUCCESS"
        self.count = 0
        self.exit = False
        self.broken = False
        self.pending = bytearray()

    def run(self, request: str, network_script: str | None) -> CallResult:
        self._send_env(request, network_script)
        error: EmulatorError | None = None
        try:
            self._loop()
        except _Broken:
            self.broken = True
        except EmulatorTimeout as exc:
            self.broken = True  # a stuck script: no goodbye, a classic one is killed
            error = exc
        finally:
            self._finish()
        if error is None and self.result.framing_errors and self.call.strict:
            error = FramingError("; ".join(self.result.framing_errors))
        if error is not None:
            error.result = self.result
            raise error
        return self.result

    # -- the run_agi loop ------------------------------------------------------------------

    def _loop(self) -> None:
        while not self.exit:
            line = self._next_command()
            if line is None:
                return
            self.count += 1
            if self.call.hangup and self.call.hangup.before_command == self.count:
                self._hang_up()
                if self.exit:
                    return
            self._handle(line)

    def _next_command(self) -> str | None:
        """Wait for the script's next command line; None once it has closed its end."""
        started = time.monotonic()
        while True:
            end = self.pending.find(b"\n")
            if end >= 0:
                raw = bytes(self.pending[:end])
                del self.pending[: end + 1]
                return raw.decode("utf-8", "surrogateescape")
            timeout, hang_up_then = self._wait_budget(started)
            data = self.io.recv(timeout)
            if data is None and hang_up_then:
                self._hang_up()
                if self.exit:
                    return None
                continue
            if data is None:
                raise EmulatorTimeout(f"the script sent nothing for {self.call.timeout} s")
            if not data:
                if self.pending:
                    self._framing(f"the script closed mid-command {bytes(self.pending[:80])!r}")
                return None
            self.result.wire.append(("TX", data))
            self._check_framing(data)
            self.pending += data

    def _wait_budget(self, started: float) -> tuple[float, bool]:
        """How long to wait for a command, and whether the caller hangs up when it runs out."""
        now = time.monotonic()
        silent = started + self.call.timeout - now
        idle = self.call.hangup.idle_s if self.call.hangup else None
        if idle is not None and not self.dead and started + idle - now <= silent:
            return max(0.0, started + idle - now), True
        return max(0.0, silent), False

    def _check_framing(self, data: bytes) -> None:
        """One write must carry exactly one command line (what Asterisk handles reliably)."""
        shown = data[:80]
        if b"\r" in data:
            self._framing(f"carriage return in command {shown!r} (Asterisk keeps it)")
        lines = data.count(b"\n")
        if lines == 1 and data.endswith(b"\n"):
            return
        if lines:
            self._framing(f"more than one command in one write {shown!r}")
        else:
            self._framing(f"command without newline, or split across writes {shown!r}")
        if self.call.strict:
            raise _Broken

    def _framing(self, problem: str) -> None:
        self.result.framing_errors.append(problem)

    def _handle(self, line: str) -> None:
        self.result.commands.append(line)
        argv = parse_args(line)
        found = find_command(argv)
        if found is None:
            return self._send_line(INVALID)
        words, dead_ok = found
        if self.dead and not dead_ok:
            return self._send_line(DEAD)
        reply: _Reply | None = getattr(self, "_cmd_" + "_".join(words))(argv)
        if reply is None:
            return self._send_usage(words)
        self._send_line(reply.line)
        # res_agi: a failure counts unless the channel hung up during the command.
        if reply.failure and (self.dead or not reply.hangup):
            self.status = "FAILURE"
        if reply.hangup:
            self._hang_up(reply.cause)

    def _hang_up(self, cause: int | None = None) -> None:
        """The channel hangs up: dead mode, AGISTATUS, and the hang-up sign for the script."""
        if self.dead:
            return
        self.dead = True
        self.result.hung_up = True
        self.cause = self.call.hangup_cause if cause is None else cause
        if self.status == "SUCCESS":
            self.status = "HANGUP"
        self.exit = self.call.agiexitonhangup
        # With AGIEXITONHANGUP FastAGI gets both HANGUP lines in one segment, in _finish.
        if self.call.agisighup and not (self.exit and self.io.fast):
            self.io.notify_hangup(self.result)

    def _finish(self) -> None:
        """The AGI ends: Asterisk's last HANGUP (or SIGHUP), then the status for the dialplan."""
        if self.call.agisighup and not self.broken:
            if self.io.fast:
                data = b"HANGUP\n" * (2 if self.exit else 1)
                self.io.send(data)
                self.result.wire.append(("RX", data))
            elif self.exit:
                self.io.notify_hangup(self.result)  # the script still runs: Asterisk broke off
        self.io.close()
        self.result.status = self.status
        self.result.variables = dict(self.vars)

    # -- output ------------------------------------------------------------------------------

    def _send_env(self, request: str, network_script: str | None) -> None:
        pairs = self._env_pairs(request, network_script)
        self.result.env = dict(pairs)
        lines = [f"{key}: {value}\n".encode("utf-8", "surrogateescape") for key, value in pairs]
        if network_script is None:
            self._send(b"".join(lines) + b"\n")
            return
        # FastAGI: Asterisk's block arrives in two segments, split after agi_context.
        split = [key for key, _ in pairs].index("agi_context") + 1
        self._send(b"".join(lines[:split]))
        self._send(b"".join(lines[split:]) + b"\n")

    def _env_pairs(self, request: str, network_script: str | None) -> list[tuple[str, str]]:
        call = self.call
        pairs = [("agi_network", "yes"), ("agi_network_script", network_script or "")]
        pairs = pairs if network_script is not None else []
        pairs += [
            ("agi_request", request), ("agi_channel", self.channel),
            ("agi_language", self.language), ("agi_type", self.channel.split("/", 1)[0]),
            ("agi_uniqueid", self.uniqueid), ("agi_version", ASTERISK_VERSION),
            ("agi_callerid", call.caller or "unknown"),
            ("agi_calleridname", call.name or "unknown"),
            ("agi_callingpres", "0" if call.caller or call.name else "67"),
            ("agi_callingani2", "0"), ("agi_callington", "0"), ("agi_callingtns", "0"),
            ("agi_dnid", call.dnid or "unknown"), ("agi_rdnis", "unknown"),
            ("agi_context", call.context), ("agi_extension", call.extension),
            ("agi_priority", str(call.priority)), ("agi_enhanced", "0.0"),
            ("agi_accountcode", ""), ("agi_threadid", str(threading.get_ident())),
        ]  # fmt: skip
        pairs += [(f"agi_arg_{n}", arg) for n, arg in enumerate(call.args, 1)]
        return pairs

    def _send(self, data: bytes) -> None:
        self.result.wire.append(("RX", data))
        self.io.send(data)

    def _send_line(self, line: str) -> None:
        self._send(line.encode("utf-8", "surrogateescape") + b"\n")

    def _send_usage(self, words: tuple[str, ...]) -> None:
        usage = _USAGE.get(words)
        if usage is None:
            return self._send_line(NO_USAGE)
        self._send_line(USAGE_HEAD)  # Asterisk's first segment; the text follows separately
        self._send((usage + USAGE_TAIL + "\n").encode())

    # -- sounds and the caller --------------------------------------------------------------

    def _sound(self, name: str) -> tuple[int, int] | None:
        """(samples, rate) of the prompt's .wav file, or None when it is missing."""
        path = Path(name + ".wav")
        if not path.is_absolute():
            path = Path(self.call.sounds_dir) / path
        try:
            with wave.open(str(path), "rb") as sound:
                return sound.getnframes(), sound.getframerate()
        except (OSError, EOFError, wave.Error):
            return None

    def _missing(self, name: str) -> None:
        self.result.missing_prompts.append(name)

    def _play(self, name: str, sound: tuple[int, int], key: Key | None, offset: int = 0) -> _Played:
        """Play to the end, until the barge-in ``key``, or until the caller hangs up."""
        frames, rate = sound
        self.result.prompts.append(name)
        start = min(max(offset, 0), frames)
        stop_ms = self._hangup_ms(name)
        if key is not None and (stop_ms is None or key.after_ms < stop_ms):
            position = min(frames, start + key.after_ms * rate // 1000)
            self._pause((position - start) / rate)
            return _Played(position, digit=key.digits[:1])
        if stop_ms is not None:
            position = min(frames, start + stop_ms * rate // 1000)
            self._pause((position - start) / rate)
            return _Played(position, hung_up=True)
        self._pause((frames - start) / rate)
        return _Played(frames)

    def _hangup_ms(self, name: str) -> int | None:
        hangup = self.call.hangup
        if hangup is None or hangup.during_prompt is None or self.dead:
            return None
        if hangup.during_prompt in (name, Path(name).name):
            return hangup.after_ms
        return None

    def _take_key(self) -> Key | None:
        """The caller's next answer, consumed by an input command."""
        if not self.keys:
            return None
        key = self.keys.popleft()
        if not key.hangs_up:
            self.result.digits.append(key.digits)
        return key

    def _barge_key(self, escape: str) -> Key | None:
        """Take the next answer if it is typed during the prompt and may interrupt it."""
        key = self.keys[0] if self.keys else None
        if key is None or not key.barge_in or not key.digits or key.digits[0] not in escape:
            return None
        return self._take_key()

    def _pause(self, seconds: float) -> None:
        if self.call.speed > 0 and seconds > 0:
            time.sleep(seconds * self.call.speed)

    # -- variables ---------------------------------------------------------------------------

    def _lookup(self, name: str) -> str | None:
        """Value of a variable or of a function such as CALLERID(num); None when unset."""
        if name.endswith(")"):
            function, _, argument = name[:-1].partition("(")
            return self._function(function.upper(), argument)
        builtins = {
            "CHANNEL": self.channel,
            "UNIQUEID": self.uniqueid,
            "CONTEXT": self.call.context,
            "EXTEN": self.call.extension,
            "PRIORITY": str(self.call.priority),
            "HANGUPCAUSE": str(self.cause),
            "EPOCH": str(int(time.time())),
            "SYSTEMNAME": "",
        }
        return builtins[name] if name in builtins else self.vars.get(name)

    def _function(self, function: str, argument: str) -> str | None:
        part = argument.strip().lower()
        if function == "CALLERID":
            values = {"num": self.caller, "number": self.caller, "name": self.caller_name}
            values["all"] = _callerid_all(self.caller_name, self.caller)
            return values.get(part)
        if function == "CHANNEL":
            values = {
                "language": self.language,
                "name": self.channel,
                "uniqueid": self.uniqueid,
                "linkedid": self.linkedid,
                "channeltype": self.channel.split("/", 1)[0],
                "state": "Up" if self.up else "Ring",
                "hangupsource": self.call.hangup_source,
            }
            return values.get(part)
        if function == "DB":
            family, _, key = argument.partition("/")
            return self.db.get((family, key))
        return None

    def _set(self, name: str, value: str) -> None:
        if not name.endswith(")"):
            self.vars[name] = value
            return
        function, _, argument = name[:-1].partition("(")
        target = (function.upper(), argument.strip().lower())
        if target in (("CALLERID", "num"), ("CALLERID", "number")):
            self.caller = value
        elif target == ("CALLERID", "name"):
            self.caller_name = value
        elif target == ("CALLERID", "all"):
            self.caller_name, self.caller = _parse_callerid(value)
        elif target == ("CHANNEL", "language"):
            self.language = value
        elif target[0] == "DB":
            family, _, key = argument.partition("/")
            self.db[(family, key)] = value

    def _substitute(self, text: str) -> str:
        return _EXPRESSION.sub(lambda match: self._lookup(match[1]) or "", text)

    # -- commands: each returns its reply, or None for a usage error ------------------------

    def _cmd_answer(self, argv: list[str]) -> _Reply:
        self.up = True
        return _Reply("200 result=0")

    def _cmd_asyncagi_break(self, argv: list[str]) -> _Reply:
        return _Reply("200 result=0")

    def _cmd_channel_status(self, argv: list[str]) -> _Reply | None:
        state = STATE_UP if self.up else STATE_RING
        if len(argv) == 2:
            return _Reply(f"200 result={state}")
        if len(argv) == 3:
            return _Reply(f"200 result={state}" if argv[2] == self.channel else "200 result=-1")
        return None

    def _cmd_database_get(self, argv: list[str]) -> _Reply | None:
        if len(argv) != 4:
            return None
        value = self.db.get((argv[2], argv[3]))
        return _Reply("200 result=0" if value is None else f"200 result=1 ({value})")

    def _cmd_database_put(self, argv: list[str]) -> _Reply | None:
        if len(argv) != 5:
            return None
        self.db[(argv[2], argv[3])] = argv[4]
        return _Reply("200 result=1")

    def _cmd_database_del(self, argv: list[str]) -> _Reply | None:
        if len(argv) != 4:
            return None
        return _Reply(f"200 result={int(self.db.pop((argv[2], argv[3]), None) is not None)}")

    def _cmd_database_deltree(self, argv: list[str]) -> _Reply | None:
        if not 3 <= len(argv) <= 4:
            return None
        prefix = argv[3] if len(argv) == 4 else ""
        doomed = [k for k in self.db if k[0] == argv[2] and k[1].startswith(prefix)]
        for key in doomed:
            del self.db[key]
        return _Reply(f"200 result={int(bool(doomed))}")

    def _cmd_exec(self, argv: list[str]) -> _Reply | None:
        if len(argv) < 2:
            return None
        options = argv[2] if len(argv) > 2 else ""
        app = argv[1].lower()
        if app in ("playback", "background"):
            return self._app_playback(options)
        if app == "set":
            name, sep, value = options.partition("=")
            if sep:
                self._set(name.strip(), value)
        elif app == "wait":
            self._pause(float(_scan_int(options) or 0))
        elif app == "answer":
            self.up = True
        elif app not in ("noop", "verbose", "log"):
            return _Reply("200 result=-2")  # res_agi: no such application
        return _Reply("200 result=0")

    def _app_playback(self, options: str) -> _Reply:
        if self.dead:
            return _Reply("200 result=0")  # recorded: accepted on a dead channel, plays nothing
        status = "SUCCESS"
        for name in options.split(",", 1)[0].split("&"):
            sound = self._sound(name)
            if sound is None:
                self._missing(name)
                status = "FAILED"
                break
            if self._play(name, sound, None).hung_up:
                self.vars["PLAYBACKSTATUS"] = "SUCCESS"  # recorded: it stays SUCCESS
                return _Reply("200 result=-1", hangup=True)
        self.vars["PLAYBACKSTATUS"] = status
        return _Reply("200 result=0")

    def _cmd_get_data(self, argv: list[str]) -> _Reply | None:
        if len(argv) < 3:
            return None
        timeout = (_scan_int(argv[3]) or 0) if len(argv) > 3 else 0
        maximum = (_scan_int(argv[4]) or 0) if len(argv) > 4 else 1024
        sound = self._sound(argv[2])
        if sound is None:
            self._missing(argv[2])
            return _Reply("200 result=-1")  # and RESULT_SUCCESS: no FAILURE status for GET DATA
        key = self._take_key()
        played = self._play(argv[2], sound, key if key and key.barge_in else None)
        if played.hung_up or (key is not None and key.hangs_up):
            return _Reply("200 result=-1", hangup=True)
        typed, timed_out = read_string(key.digits if key else "", maximum if maximum > 0 else 1024)
        if timed_out:
            self._pause(max(timeout, 0) / 1000)
            return _Reply(f"200 result={typed} (timeout)")
        return _Reply(f"200 result={typed}")

    def _cmd_wait_for_digit(self, argv: list[str]) -> _Reply | None:
        timeout = _scan_int(argv[3]) if len(argv) == 4 else None
        if timeout is None:
            return None
        key = self._take_key()
        if key is None and timeout < 0:
            return _Reply("200 result=-1", failure=True, hangup=True)  # no caller waits forever
        if key is not None and key.hangs_up:
            return _Reply("200 result=-1", failure=True, hangup=True)
        if key is None or not key.digits:
            self._pause(timeout / 1000)
            return _Reply("200 result=0")
        return _Reply(f"200 result={ord(key.digits[0])}")

    def _cmd_stream_file(self, argv: list[str]) -> _Reply | None:
        offset = _scan_int(argv[4]) if len(argv) == 5 else 0
        if not 4 <= len(argv) <= 5 or offset is None:
            return None
        sound = self._sound(argv[2])
        if sound is None:
            self._missing(argv[2])
            return _Reply(f"200 result=-1 endpos={offset}", failure=True)
        played = self._play(argv[2], sound, self._barge_key(argv[3]), offset)
        if played.hung_up:
            return _Reply(f"200 result=-1 endpos={played.endpos}", failure=True, hangup=True)
        code = ord(played.digit) if played.digit else 0
        return _Reply(f"200 result={code} endpos={played.endpos}")

    def _cmd_get_option(self, argv: list[str]) -> _Reply | None:
        if not 4 <= len(argv) <= 5:
            return None
        sound = self._sound(argv[2])
        if sound is None:
            self._missing(argv[2])
            return _Reply("200 result=-1 endpos=0", failure=True)
        played = self._play(argv[2], sound, self._barge_key(argv[3]))
        hung_up = _Reply(f"200 result=-1 endpos={played.endpos}", failure=True, hangup=True)
        if played.hung_up:
            return hung_up
        digit = played.digit
        if not digit:
            key = self._take_key()  # GET OPTION then waits for one digit
            if key is not None and key.hangs_up:
                return hung_up
            digit = key.digits[:1] if key and key.digits[:1] in argv[3] else ""
        return _Reply(f"200 result={ord(digit) if digit else 0} endpos={played.endpos}")

    def _cmd_control_stream_file(self, argv: list[str]) -> _Reply | None:
        if not 5 <= len(argv) <= 9 or (len(argv) > 5 and _scan_int(argv[5]) is None):
            return None
        sound = self._sound(argv[3])
        if sound is None:
            self._missing(argv[3])
            return _Reply("200 result=-1 endpos=0", failure=True)  # not recorded: a best guess
        key = self._barge_key(argv[4])
        played = self._play(argv[3], sound, key)
        if played.hung_up:
            return _Reply("200 result=-1 endpos=-1", failure=True, hangup=True)
        if played.digit and key is not None:
            return _Reply(f"200 result={ord(played.digit)} endpos={key.after_ms}")
        return _Reply("200 result=0 endpos=-1")  # recorded: -1 once played to the end

    def _cmd_get_variable(self, argv: list[str]) -> _Reply | None:
        if len(argv) != 3:
            return None
        value = self._lookup(argv[2])
        return _Reply("200 result=0" if value is None else f"200 result=1 ({value})")

    def _cmd_get_full_variable(self, argv: list[str]) -> _Reply | None:
        if len(argv) not in (4, 5):
            return None
        if len(argv) == 5 and argv[4] != self.channel:
            return _Reply("200 result=0")
        return _Reply(f"200 result=1 ({self._substitute(argv[3])})")

    def _cmd_set_variable(self, argv: list[str]) -> _Reply | None:
        if len(argv) != 4:
            return None
        self._set(argv[2], argv[3])
        return _Reply("200 result=1")

    def _cmd_hangup(self, argv: list[str]) -> _Reply | None:
        if len(argv) == 1 or (len(argv) == 2 and argv[1] == self.channel):
            return _Reply("200 result=1", hangup=True, cause=0)
        return _Reply("200 result=-1") if len(argv) == 2 else None

    def _cmd_noop(self, argv: list[str]) -> _Reply:
        return _Reply("200 result=0")

    def _cmd_verbose(self, argv: list[str]) -> _Reply | None:
        if len(argv) < 2:
            return None
        self.result.verbose.append(argv[1])
        return _Reply("200 result=1")

    def _cmd_receive_char(self, argv: list[str]) -> _Reply | None:
        # Recorded on a live channel that cannot carry text: -1 and a FAILURE status.
        return _Reply("200 result=-1 (hangup)", failure=True) if len(argv) == 3 else None

    def _cmd_receive_text(self, argv: list[str]) -> _Reply | None:
        return _Reply("200 result=-1") if len(argv) == 3 else None

    def _cmd_record_file(self, argv: list[str]) -> _Reply | None:
        """RECORD FILE as recorded (tests/data/asterisk/record): the beep, then the caller's
        ``Speech``; the file written as Asterisk writes it, or ``(writefile)``."""
        max_ms = _scan_int(argv[5]) if len(argv) >= 6 else None
        if max_ms is None:
            return None
        options = argv[7:]
        beep = bool(options) and "=" not in options[0]
        silence = next((_scan_int(o[2:]) for o in options if o.startswith("s=")), None) or 0
        if beep:
            self.result.prompts.append("beep")
            self._pause(BEEP_SECONDS)
        path = self._recording_path(argv[2], argv[3])
        if path is None:
            return _Reply("200 result=-1 (writefile)", failure=True)
        key = self._take_key()
        ended, result, endpos = _record_outcome(key, argv[4], max_ms, silence * 1000)
        _write_recording(path, argv[3], endpos)
        self.result.recordings.append(Recording(path, endpos))
        at_most = ended == "timeout" and result == 0 and max_ms > 0
        self._pause(max_ms / 1000 if at_most else endpos / RECORD_RATE)
        if ended == "hangup":
            return _Reply(f"200 result=-1 (hangup) endpos={endpos}", hangup=True)
        return _Reply(f"200 result={result} ({ended}) endpos={endpos}")

    def _recording_path(self, name: str, fmt: str) -> Path | None:
        """Where RECORD FILE writes; None when Asterisk could not open the file."""
        path = Path(f"{name}.{fmt}")
        if not path.is_absolute():
            path = Path(self.call.data_dir) / "sounds" / path
        if self.call.disk_full or fmt not in ("wav", "gsm") or not path.parent.is_dir():
            return None  # file.c: "Unable to open file ...: No such file or directory"
        return path

    def _cmd_say_number(self, argv: list[str]) -> _Reply | None:
        valid = 4 <= len(argv) <= 5 and _scan_int(argv[2]) is not None
        return _Reply("200 result=0") if valid else None

    def _cmd_say_digits(self, argv: list[str]) -> _Reply | None:
        valid = len(argv) == 4 and _scan_int(argv[2]) is not None
        return _Reply("200 result=0") if valid else None

    _cmd_say_date = _cmd_say_time = _cmd_say_digits

    def _cmd_say_alpha(self, argv: list[str]) -> _Reply | None:
        return _Reply("200 result=0") if len(argv) == 4 else None

    _cmd_say_phonetic = _cmd_say_alpha

    def _cmd_say_datetime(self, argv: list[str]) -> _Reply | None:
        return _Reply("200 result=0") if len(argv) >= 4 else None

    def _cmd_send_text(self, argv: list[str]) -> _Reply | None:
        return _Reply("200 result=0") if len(argv) == 3 else None

    _cmd_send_image = _cmd_tdd_mode = _cmd_set_context = _cmd_set_extension = _cmd_send_text

    def _cmd_set_priority(self, argv: list[str]) -> _Reply | None:
        return _Reply("200 result=0") if len(argv) == 3 else None

    def _cmd_set_autohangup(self, argv: list[str]) -> _Reply | None:
        valid = len(argv) == 3 and re.match(r"\s*[-+]?\d*\.?\d", argv[2]) is not None
        return _Reply("200 result=0") if valid else None

    def _cmd_set_music(self, argv: list[str]) -> _Reply | None:
        return _Reply("200 result=0") if len(argv) >= 3 else None

    def _cmd_set_callerid(self, argv: list[str]) -> _Reply:
        if len(argv) > 2:
            self.caller_name, self.caller = _parse_callerid(argv[2])
        return _Reply("200 result=1")


def _record_outcome(
    key: Key | None, escape: str, max_ms: int, silence_ms: int
) -> tuple[str, int, int]:
    """How RECORD FILE ends for the caller's answer: (word, result, endpos)."""
    most = max_ms * RECORD_RATE // 1000 if max_ms > 0 else None
    if isinstance(key, Speech):
        speech = key
    elif key is not None:
        speech = Speech(key.digits, hangs_up=key.hangs_up)
    else:
        speech = Speech(silent=False)  # nobody there: no frames at all
    spoken = speech.samples if most is None else min(speech.samples, most)
    if most is not None and speech.samples >= most:
        return "timeout", 0, most
    if speech.hangs_up:
        return "hangup", -1, spoken
    digit = next((d for d in speech.digits if d in escape), "")
    if digit:
        return "dtmf", ord(digit), max(0, spoken - DTMF_CUT_SAMPLES)
    if speech.silent and silence_ms > 0:
        kept = spoken + SILENCE_KEPT_SAMPLES
        if most is None or kept < most:
            # The reply's result is what was left of the maximum (25601 of 30000, recorded
            # after 1.42 s of speech and s=3): not a number anyone should rely on.
            elapsed = speech.samples * 1000 // RECORD_RATE + silence_ms - 21
            return "timeout", max(max_ms - elapsed, 0), kept
    if speech.silent:
        return "timeout", 0, most if most is not None else spoken
    return "timeout", 0, spoken


def _write_recording(path: Path, fmt: str, samples: int) -> None:
    """Write ``samples`` of silence as Asterisk's format module would: a 44-byte WAV header
    (format_wav) or bare 33-byte GSM frames (format_gsm)."""
    if fmt == "gsm":
        frame_samples, frame_bytes = _GSM_FRAME
        path.write_bytes(b"\0" * (samples // frame_samples * frame_bytes))
        return
    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(RECORD_RATE)
        sound.writeframes(b"\0\0" * samples)


def _callerid_all(name: str, number: str) -> str:
    if name and number:
        return f'"{name}" <{number}>'
    return name or number


def _parse_callerid(text: str) -> tuple[str, str]:
    """Split ``"Name" <number>`` (or a bare number or name) into (name, number)."""
    match = _CALLERID.fullmatch(text)
    if match:
        return match["name"].strip(), match["num"].strip()
    stripped = text.strip()
    return ("", stripped) if re.fullmatch(r"[+\d*#]+", stripped) else (stripped, "")
