"""The AGI adapter: pyst2's ``AGI`` made safe for FastAGI sockets and classic pipes.

pyst2 knows the AGI commands; its transport has traps that this subclass closes:

* its constructor installs a SIGHUP handler, which raises outside the main thread: here only
  classic mode installs one, and only from the main thread;
* it writes debug chatter (caller numbers included) to stderr on every command: here nothing;
* it writes ``str`` where a socket wants bytes: here every command is one ``bytes`` write,
  because Asterisk misreads a command split across writes or two commands in one write;
* it fails on the bare ``HANGUP`` line FastAGI sends on hang-up: here the line marks the
  call as hung up and the real reply is read after it;
* it does not escape ``"`` or ``\\`` inside arguments: here they are escaped;
* its ``asterisk.fastagi`` module is Python 2 only: it is not used.

Every read has a deadline on a socket and stops at end-of-stream, so a silent or vanished
peer gives a typed error instead of a stuck call.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, BinaryIO, cast

import asterisk.agi as pyst2

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 8192  # longer lines are garbage, not AGI
MAX_ENV_LINES = 512  # 22 keys plus at most 127 agi_arg_N in real Asterisk
DEFAULT_ENV_TIMEOUT = 10.0
DEFAULT_COMMAND_TIMEOUT = 120.0  # generous: a prompt plus a caller thinking
_TIMEOUT_SLACK = 0.005  # seconds a socket read may end early or late against its deadline

_COMMAND_NAMES = frozenset(
    {
        "ANSWER", "ASYNCAGI BREAK", "CHANNEL STATUS", "CONTROL STREAM FILE", "DATABASE DEL",
        "DATABASE DELTREE", "DATABASE GET", "DATABASE PUT", "EXEC", "GET DATA",
        "GET FULL VARIABLE", "GET OPTION", "GET VARIABLE", "GOSUB", "HANGUP", "NOOP",
        "RECEIVE CHAR", "RECEIVE TEXT", "RECORD FILE", "SAY ALPHA", "SAY DATE", "SAY DATETIME",
        "SAY DIGITS", "SAY NUMBER", "SAY PHONETIC", "SAY TIME", "SEND IMAGE", "SEND TEXT",
        "SET AUTOHANGUP", "SET CALLERID", "SET CONTEXT", "SET EXTENSION", "SET MUSIC",
        "SET PRIORITY", "SET VARIABLE", "STREAM FILE", "TDD MODE", "VERBOSE", "WAIT FOR DIGIT",
    }
)  # fmt: skip
_NEEDS_QUOTES = re.compile(r'[\s"\\]')
_ARG_KEY = re.compile(r"agi_arg_(\d+)")
_DATA_AND_TAIL = re.compile(r"\((?P<data>.*)\)(?P<tail>(?: [a-z_]+=\S*)*)", re.DOTALL)
_KEY_VALUE = re.compile(r" ([a-z_]+)=(\S*)")


class AGIError(Exception):
    """Base of every AGI failure."""


class AGIHangup(AGIError):
    """The caller hung up (HANGUP line, SIGHUP, end of stream, or result=-1 on a dead channel)."""


class AGIDeadChannel(AGIHangup):
    """Asterisk refused a channel command with 511: the channel is gone."""


class AGIInvalidCommand(AGIError):
    """Asterisk answered 510: unknown or empty command."""


class AGIUsageError(AGIError):
    """Asterisk answered with a 520 usage block; ``usage`` holds its text."""

    def __init__(self, usage: str) -> None:
        super().__init__(usage.split("\n", 1)[0])
        self.usage = usage


class AGIProtocolError(AGIError):
    """Asterisk's side made no sense: unknown code, over-long line, truncated block."""


class AGITimeout(AGIProtocolError):
    """Asterisk did not answer in time."""


@dataclass(frozen=True)
class Recorded:
    """How RECORD FILE ended, as Asterisk reported it.

    ``ended_by``: ``dtmf`` (an escape digit, in ``digit``), ``timeout`` (the maximum length
    or the silence, Asterisk says the same for both), ``hangup`` (the caller hung up; the
    file is kept), ``writefile`` (the file could not be created: nothing recorded) or
    ``error`` (``randomerror``/``waitfor``: the recording broke off). ``endpos`` is the
    number of samples in the file (0 for ``writefile``).
    """

    ended_by: str
    endpos: int = 0
    digit: str = ""

    @property
    def written(self) -> bool:
        """Return True when Asterisk created the file (it may still hold no sound)."""
        return self.ended_by != "writefile"


_RECORD_ENDINGS = frozenset({"dtmf", "timeout", "hangup", "writefile"})
RECORD_SLACK_SECONDS = 30.0  # beyond the maximum length: the beep, a slow disk


@dataclass(frozen=True)
class AGIReply:
    """One ``200`` reply: the ``result=`` value, the text in parentheses, ``endpos=``."""

    result: str
    data: str | None = None
    endpos: int | None = None


def parse_reply(line: str) -> AGIReply:
    """Parse a ``200 result=...`` line, e.g. ``200 result=1 (value)`` or ``... endpos=7040``."""
    if not line.startswith("200 result="):
        raise AGIProtocolError(f"not a 200 reply: {line[:80]!r}")
    result, _, rest = line[len("200 result=") :].partition(" ")
    data: str | None = None
    tail = " " + rest if rest else ""
    if rest.startswith("("):
        # Greedy: a value may itself hold ")" and "(", only trailing key=value pairs follow it.
        match = _DATA_AND_TAIL.fullmatch(rest)
        if match is None:
            raise AGIProtocolError(f"unbalanced parentheses in reply: {line[:80]!r}")
        data, tail = match["data"], match["tail"]
    fields = dict(_KEY_VALUE.findall(tail))
    try:
        endpos = int(fields["endpos"]) if "endpos" in fields else None
    except ValueError:
        raise AGIProtocolError(f"bad endpos in reply: {line[:80]!r}") from None
    return AGIReply(result, data, endpos)


def quote(value: str) -> str:
    """Quote an argument for Asterisk, escaping backslashes and double quotes."""
    value = _one_line(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bare(value: str) -> str:
    """Format a name-like argument: as it is when plain, quoted when it needs to be."""
    value = _one_line(value)
    return value if value and not _NEEDS_QUOTES.search(value) else quote(value)


def _one_line(value: str) -> str:
    # AGI is line-based: a line break (or NUL) inside an argument would start a new command.
    return value.replace("\r", " ").replace("\n", " ").replace("\0", " ")


def _digit(result: str) -> str:
    """Turn an ASCII-code result (0 = none) into the digit pressed."""
    try:
        code = int(result)
    except ValueError:
        raise AGIProtocolError(f"expected a digit code, got {result[:20]!r}") from None
    if code < 0 or code > 0x10FFFF:
        raise AGIProtocolError(f"expected a digit code, got {code}")
    return chr(code) if code else ""


def _command_name(line: str) -> str:
    """Name the command for debug logs without its arguments (which may hold caller data)."""
    words = line.split(" ", 3)
    for count in (3, 2, 1):
        name = " ".join(words[:count]).upper()
        if name in _COMMAND_NAMES:
            return name
    return "?"


class _Discard:
    """Stands in for pyst2's stderr: any inherited code path that writes to it says nothing."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


class _Wire:
    """Bounded line reads, and one write per command line; subclasses move the bytes."""

    def __init__(self, max_line: int) -> None:
        self._max_line = max_line
        self._buffer = bytearray()
        self._eof = False

    def read_line(self, deadline: float | None, *, truncate: bool = False) -> bytes | None:
        """Return the next line without its newline, or None at end of stream.

        A line over the limit is an error, or with ``truncate`` cut to the limit (the rest
        is read and dropped, within the same deadline).
        """
        kept: bytes | None = None
        while True:
            end = self._buffer.find(b"\n", 0, self._max_line + 1)
            if end >= 0:
                line = kept if kept is not None else bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > self._max_line:
                if not truncate:
                    raise AGIProtocolError(f"line longer than {self._max_line} bytes")
                if kept is None:
                    kept = bytes(self._buffer[: self._max_line])
                    logger.warning("environment line over %d bytes cut short", self._max_line)
                newline = self._buffer.find(b"\n")
                if newline >= 0:
                    del self._buffer[: newline + 1]
                    return kept
                self._buffer.clear()  # all of it belongs to the over-long line
            if self._eof:
                if self._buffer:
                    raise AGIProtocolError("stream ended in the middle of a line")
                return None
            chunk = self._receive(deadline)
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    def write_line(self, line: str) -> None:
        """Write one command line with its newline in a single write."""
        if "\n" in line or "\r" in line:
            raise ValueError("an AGI command is a single line without CR or LF")
        try:
            self._send(line.encode("utf-8") + b"\n")
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise AGIHangup("Asterisk closed the connection") from exc

    def close(self) -> None:
        raise NotImplementedError

    def _receive(self, deadline: float | None) -> bytes:
        """Return the next bytes from Asterisk within ``deadline``; b"" at end of stream."""
        raise NotImplementedError

    def _send(self, data: bytes) -> None:
        raise NotImplementedError


class _StreamWire(_Wire):
    """Lines over byte streams: classic AGI's stdin and stdout, which have no deadlines.

    Asterisk is the parent of a classic script and ends it with SIGHUP or end of stream.
    """

    def __init__(self, reader: BinaryIO, writer: BinaryIO, max_line: int) -> None:
        super().__init__(max_line)
        self._reader = reader
        self._writer = writer
        # read1 returns what is there instead of waiting for a full buffer; raw streams lack it.
        self._read_some = getattr(reader, "read1", None) or reader.read

    def close(self) -> None:
        for stream in (self._writer, self._reader):
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    def _receive(self, deadline: float | None) -> bytes:
        try:
            return self._read_some(65536)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._writer.write(view)
            if not written:
                raise AGIProtocolError("the AGI stream accepted no bytes")
            view = view[written:]
        self._writer.flush()


class _SocketWire(_Wire):
    """The same lines over a FastAGI socket, every read within the caller's deadline.

    The socket stays in blocking mode and the kernel enforces the deadline (SO_RCVTIMEO),
    so a reply costs one ``recv`` and a command one ``send``: no ``poll`` before each read,
    no file object in between. On a busy server every call into the kernel hands the GIL
    to another thread, so this halves the hand-overs per AGI command.
    """

    def __init__(self, sock: socket.socket, max_line: int, send_timeout: float | None) -> None:
        super().__init__(max_line)
        sock.settimeout(None)
        self._sock = sock
        self._receive_timeout: float | None = None
        if send_timeout is not None:
            _set_kernel_timeout(sock, socket.SO_SNDTIMEO, send_timeout)

    def close(self) -> None:
        _close_socket(self._sock)

    def _receive(self, deadline: float | None) -> bytes:
        if deadline is None:
            if self._receive_timeout is not None:
                self._arm(None)
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AGITimeout("no data from Asterisk in time")
            armed = self._receive_timeout
            # One setsockopt per change of deadline, not per read: a timeout within a few
            # milliseconds of the one armed stands.
            if armed is None or abs(armed - remaining) > _TIMEOUT_SLACK:
                self._arm(remaining)
        try:
            return self._sock.recv(65536)
        except BlockingIOError as exc:  # SO_RCVTIMEO ran out: EAGAIN
            raise AGITimeout("no data from Asterisk in time") from exc
        except (ConnectionResetError, BrokenPipeError):
            return b""

    def _arm(self, timeout: float | None) -> None:
        self._receive_timeout = timeout
        _set_kernel_timeout(self._sock, socket.SO_RCVTIMEO, timeout)

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except BlockingIOError as exc:  # SO_SNDTIMEO ran out: Asterisk reads nothing
            raise AGITimeout("Asterisk took no command in time") from exc


def _set_kernel_timeout(sock: socket.socket, option: int, timeout: float | None) -> None:
    """Set SO_RCVTIMEO or SO_SNDTIMEO; None (or a zero timeval) means no limit."""
    micros = 0 if timeout is None else max(1000, math.ceil(timeout * 1_000_000))
    seconds, micros = divmod(micros, 1_000_000)
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("@ll", seconds, micros))


class AGIChannel(pyst2.AGI):
    """One AGI session with Asterisk, over a FastAGI socket or classic stdin/stdout."""

    def __init__(
        self,
        reader: BinaryIO,
        writer: BinaryIO,
        *,
        classic: bool = False,
        env_timeout: float | None = None,
        command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        max_line: int = MAX_LINE_BYTES,
        _wire: _Wire | None = None,
    ) -> None:
        # pyst2's own constructor is skipped on purpose: it installs SIGHUP unconditionally
        # and writes the environment to stderr. Its attributes are set for inherited methods.
        self.stdin, self.stdout, self.stderr = reader, writer, _Discard()
        self.classic = classic
        self.hung_up = False
        self.env: dict[str, str] = {}
        self.args: list[str] = []
        self.script = ""
        self._wire = _wire or _StreamWire(reader, writer, max_line)
        self._command_timeout = command_timeout
        self._closed = False
        self._previous_sighup: Any = None
        self._sighup_installed = False
        try:
            if classic:
                self._install_sighup()
            self.env = self._read_env(env_timeout)
        except BaseException:
            self.close()
            raise
        self.args = _args(self.env)
        self.script = _script(self.env)

    @classmethod
    def from_socket(
        cls,
        sock: socket.socket,
        *,
        env_timeout: float | None = DEFAULT_ENV_TIMEOUT,
        command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        max_line: int = MAX_LINE_BYTES,
    ) -> AGIChannel:
        """Open a FastAGI channel on a connected socket; the channel then owns the socket."""
        try:
            wire = _SocketWire(sock, max_line, command_timeout)
        except BaseException:
            _close_socket(sock)
            raise
        # pyst2's inherited code never reaches the socket: every path goes through the wire.
        unused = cast(BinaryIO, None)
        return cls(
            unused,
            unused,
            env_timeout=env_timeout,
            command_timeout=command_timeout,
            _wire=wire,
        )

    @classmethod
    def from_stdio(cls) -> AGIChannel:
        """Open a classic AGI channel on stdin/stdout, moving every other output to stderr."""
        sys.stdout.flush()
        agi_fd = os.dup(1)
        # A stray print, a C library or a child process writing to fd 1 would corrupt the
        # protocol, so fd 1 becomes stderr and only the channel keeps the real stdout.
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        writer = os.fdopen(agi_fd, "wb", buffering=0)
        return cls(sys.stdin.buffer, cast(BinaryIO, writer), classic=True)

    def __enter__(self) -> AGIChannel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the commands the call flow uses ---------------------------------------------------

    def answer(self) -> None:
        """Answer the channel."""
        if self._command("ANSWER").result.startswith("-"):
            self._raise_hangup("ANSWER failed")

    def play(self, name: str, escape_digits: str = "") -> str:
        """Play a prompt (STREAM FILE); return the escape digit pressed, or ""."""
        reply = self._command(f"STREAM FILE {_bare(name)} {quote(escape_digits)}")
        if reply.result == "-1":
            self._missing_prompt_or_hangup(name)
            return ""
        return _digit(reply.result)

    def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        """Play a prompt and collect digits; return (digits, timed_out), "#" not included."""
        reply = self._command(f"GET DATA {_bare(prompt)} {int(timeout_ms)} {int(max_digits)}")
        if reply.result == "-1":
            self._missing_prompt_or_hangup(prompt)
            # GET DATA does not listen when its prompt is missing: listen key by key instead.
            return self._collect_digits(timeout_ms, max_digits)
        return reply.result, reply.data == "timeout"

    def _collect_digits(self, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        """Collect up to ``max_digits`` keys as GET DATA would: "#" ends, silence times out."""
        digits = ""
        while len(digits) < max_digits:
            key = self.wait_for_digit(timeout_ms)
            if not key:
                return digits, True
            if key == "#":
                return digits, False
            digits += key
        return digits, False

    def wait_for_digit(self, timeout_ms: int) -> str:
        """Wait for one digit; return it, or "" on timeout."""
        reply = self._command(f"WAIT FOR DIGIT {int(timeout_ms)}")
        if reply.result == "-1":
            self._raise_hangup("WAIT FOR DIGIT ended by a hang-up")
        return _digit(reply.result)

    def record_file(
        self,
        path: str,
        fmt: str = "wav",
        escape_digits: str = "#",
        max_ms: int = 120_000,
        *,
        beep: bool = True,
        silence_s: int | None = None,
    ) -> Recorded:
        """Record the caller into ``path`` + ``.fmt`` (RECORD FILE); return how it ended.

        ``path`` is taken as it is: Asterisk puts a relative one under its own
        ``<astdatadir>/sounds`` and creates no directories. A hang-up ends the recording
        without raising (what was said is kept); ``hung_up`` is then set.
        """
        line = (
            f"RECORD FILE {_bare(path)} {_bare(fmt)} {quote(escape_digits)} {int(max_ms)} 0"
            + (" BEEP" if beep else "")
            + (f" s={int(silence_s)}" if silence_s else "")
        )
        self.send_command(line)
        # The recording is Asterisk's time: the reply comes after it, however long it is.
        reply = self._read_reply(max_ms / 1000 + RECORD_SLACK_SECONDS)
        return _recorded(reply, self)

    def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable for the dialplan."""
        self._command(f"SET VARIABLE {_bare(name)} {quote(value)}")

    def get_variable(self, name: str) -> str | None:
        """Read a channel variable or function; None when it is not set."""
        reply = self._command(f"GET VARIABLE {_bare(name)}")
        if reply.result == "0":
            return None
        return reply.data or ""

    def verbose(self, message: str, level: int = 1) -> None:
        """Write a message to the Asterisk console."""
        self._command(f"VERBOSE {quote(message)} {int(level)}")

    def exec_app(self, app: str, options: str = "") -> int:
        """Run a dialplan application; return its result (-2: no such application)."""
        line = f"EXEC {_bare(app)}" + (f" {quote(options)}" if options else "")
        result = self._command(line).result
        try:
            return int(result)
        except ValueError:
            raise AGIProtocolError(f"EXEC gave a non-numeric result {result[:20]!r}") from None

    def close(self) -> None:
        """Close the channel (FastAGI: the socket); calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._restore_sighup()
        self._wire.close()

    # -- pyst2's interface, kept working for the inherited helpers -------------------------

    def send_command(self, command: str, *args: object) -> None:
        """Send one command line (pyst2's interface); arguments must already be quoted."""
        if self._closed:
            raise AGIError("the AGI channel is closed")
        line = " ".join([command.strip(), *map(str, args)]).strip()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("AGI command %s", _command_name(line))
        try:
            self._wire.write_line(line)
        except AGIHangup:
            self.hung_up = True
            raise

    def get_result(self, stdin: object = None) -> dict[str, tuple[str, str]]:
        """Read one reply in pyst2's shape: {"result": (value, data), ...}."""
        reply = self._read_reply()
        result = {"result": (reply.result, reply.data or "")}
        if reply.endpos is not None:
            result["endpos"] = (str(reply.endpos), "")
        return result

    def execute(self, command: str, *args: object) -> dict[str, tuple[str, str]]:
        """Send a command and read its reply (pyst2's interface)."""
        self.send_command(command, *args)
        return self.get_result()

    def _quote(self, string: object) -> str:
        return quote(str(string))

    def test_hangup(self) -> None:
        """Raise AGIHangup once a hang-up has been seen (pyst2's interface)."""
        if self.hung_up:
            raise AGIHangup("the caller hung up")

    # -- internals ---------------------------------------------------------------------------

    def _command(self, line: str) -> AGIReply:
        self.send_command(line)
        return self._read_reply()

    def _read_reply(self, timeout: float | None = None) -> AGIReply:
        """Read the reply to the command just sent, skipping HANGUP lines that come first.

        ``timeout`` replaces the channel's command timeout for this one reply.
        """
        if timeout is None or self._command_timeout is None:
            timeout = self._command_timeout
        else:
            timeout = max(timeout, self._command_timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            line = self._read_text(deadline)
            if line == "HANGUP":
                # From an earlier interruption or pushed while idle; the real reply follows.
                self.hung_up = True
                continue
            code = line[:4]
            if code == "200 ":
                return parse_reply(line)
            if code == "510 ":
                raise AGIInvalidCommand(line)
            if code == "511 ":
                self.hung_up = True
                raise AGIDeadChannel(line)
            if code in ("520-", "520 "):
                raise AGIUsageError(self._read_usage(line, deadline))
            raise AGIProtocolError(f"unexpected reply from Asterisk: {line[:80]!r}")

    def _read_usage(self, first: str, deadline: float | None) -> str:
        """Read a 520 block to its end; one of its lines may look like a 200 reply."""
        lines = [first]
        if first.startswith("520-"):
            while not lines[-1].startswith("520 "):
                lines.append(self._read_text(deadline))
        return "\n".join(lines)

    def _read_text(self, deadline: float | None) -> str:
        raw = self._wire.read_line(deadline)
        if raw is None:
            self.hung_up = True
            raise AGIHangup("Asterisk closed the connection")
        return raw.decode("utf-8", "replace")

    def _read_env(self, timeout: float | None) -> dict[str, str]:
        """Read the agi_* block up to its empty line, within one deadline for the whole block."""
        deadline = None if timeout is None else time.monotonic() + timeout
        env: dict[str, str] = {}
        while True:
            # Asterisk sends caller names as they come; a very long one is cut, not fatal.
            raw = self._wire.read_line(deadline, truncate=True)
            if raw is None and not env:
                self.hung_up = True
                raise AGIHangup("the connection closed before the environment block")
            if raw is None:
                raise AGIProtocolError("the environment block is truncated")
            if not raw:
                break
            key, sep, value = raw.decode("utf-8", "replace").partition(":")
            if not sep or not key.startswith("agi_") or len(env) >= MAX_ENV_LINES:
                raise AGIProtocolError(f"unexpected line in environment block: {key[:40]!r}")
            env[key] = value[1:] if value.startswith(" ") else value
        if not env:
            raise AGIProtocolError("empty environment block")
        return env

    def _missing_prompt_or_hangup(self, prompt: str) -> None:
        """Tell a hang-up from a missing prompt after result=-1, by asking for the status."""
        self._command("CHANNEL STATUS")  # a dead channel answers 511 -> AGIDeadChannel
        if self.hung_up:
            raise AGIHangup(f"the caller hung up during {prompt}")
        logger.warning("Prompt %s is missing; carrying on as if no key was pressed", prompt)

    def _raise_hangup(self, message: str) -> None:
        self.hung_up = True
        raise AGIHangup(message)

    def _install_sighup(self) -> None:
        """Catch SIGHUP, classic AGI's hang-up sign; Python allows it in the main thread only."""
        if threading.current_thread() is not threading.main_thread():
            logger.debug("Classic AGI outside the main thread: SIGHUP is left alone")
            return
        self._previous_sighup = signal.signal(signal.SIGHUP, self._on_sighup)
        self._sighup_installed = True

    def _restore_sighup(self) -> None:
        if self._sighup_installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._sighup_installed = False

    def _on_sighup(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag: logging from a signal handler can deadlock on the logging lock.
        self.hung_up = True


def _recorded(reply: AGIReply, channel: AGIChannel) -> Recorded:
    """Turn a RECORD FILE reply into how the recording ended."""
    word = reply.data or ""
    if word not in _RECORD_ENDINGS:
        if reply.result == "-1" and not word:
            raise AGIProtocolError("RECORD FILE failed without saying why")
        return Recorded("error" if word else "timeout", reply.endpos or 0)
    if word == "hangup":
        channel.hung_up = True
    digit = _digit(reply.result) if word == "dtmf" else ""
    return Recorded(word, reply.endpos or 0, digit)


def _args(env: dict[str, str]) -> list[str]:
    numbered = {}
    for key, value in env.items():
        match = _ARG_KEY.fullmatch(key)
        if match:
            numbered[int(match[1])] = value
    return [numbered[n] for n in sorted(numbered)]


def _script(env: dict[str, str]) -> str:
    if "agi_network_script" in env:
        return env["agi_network_script"].split("?", 1)[0]
    return os.path.basename(env.get("agi_request", ""))


def _close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
