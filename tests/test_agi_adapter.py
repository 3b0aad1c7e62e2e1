"""The AGI adapter: literal Asterisk lines, pyst2's traps, hang-up signs, hostile peers."""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asterisk.agi as pyst2
import pytest

from ivr.agi import (
    AGIChannel,
    AGIDeadChannel,
    AGIError,
    AGIHangup,
    AGIInvalidCommand,
    AGIProtocolError,
    AGIReply,
    AGITimeout,
    AGIUsageError,
    parse_reply,
)
from ivr.emulator import HANG_UP, CallHandle, EmulatedCall, Hangup, in_thread
from tests.agi_transcripts import load, reply_lines

PROJECT = Path(__file__).resolve().parents[1]
FASTAGI = load("fastagi_01_greet_full_command_set")  # FastAGI env with Cyrillic and 5 args
CLASSIC = load("classic_01_hangup_during_wait_for_digit")
DEAD = b"511 Command Not Permitted on a dead channel or intercept routine\n"
NOTE = 'two words "quoted" и кириллица'
CALLER = "+79161234567"


def channel(
    replies: bytes = b"", env: bytes = FASTAGI.env_block, **kwargs: Any
) -> tuple[AGIChannel, io.BytesIO]:
    """A channel reading the env block and then the given replies; and what it wrote."""
    sent = io.BytesIO()
    return AGIChannel(io.BytesIO(env + replies), sent, **kwargs), sent


@pytest.fixture
def ru(tmp_path: Path) -> Path:
    """Russian prompts with the recorded sample counts."""
    for name, frames in {"hello": 7040, "beep": 3520}.items():
        with wave.open(str(tmp_path / f"{name}.wav"), "wb") as sound:
            sound.setnchannels(1)
            sound.setsampwidth(2)
            sound.setframerate(8000)
            sound.writeframes(b"\0\0" * frames)
    return tmp_path


@contextmanager
def emulated(call: EmulatedCall) -> Iterator[tuple[AGIChannel, CallHandle]]:
    """A channel talking FastAGI to the emulator over a socketpair."""
    left, right = socket.socketpair()
    handle = in_thread(call.run_on_socket, right, "call")
    with AGIChannel.from_socket(left, env_timeout=5, command_timeout=5) as chan:
        yield chan, handle


# -- the environment block ------------------------------------------------------------------


def test_recorded_env_block_is_parsed() -> None:
    chan, _ = channel()
    assert len(chan.env) == 27
    assert chan.env["agi_calleridname"] == "Иван Петров"
    assert chan.env["agi_request"] == "agi://127.0.0.1:4573/greet?line=support&lang=ru"
    assert chan.env["agi_accountcode"] == ""
    assert chan.args == ["arg one", "", "арг3", "quoted, comma", "last"]
    assert chan.script == "greet"
    assert chan.hung_up is False


def test_classic_script_is_the_request_basename() -> None:
    env = CLASSIC.env_block.replace(b": classic_recorder.py", b": /agi-bin/onerpa.py")
    chan, _ = channel(env=env)
    assert chan.script == "onerpa.py"
    assert chan.args == ["main", "arg 2"]


def test_env_block_in_two_segments_over_a_socket() -> None:
    first, second = [event.data for event in FASTAGI.events[:2]]
    left, right = socket.socketpair()
    with right:
        right.sendall(first)
        threading.Timer(0.05, right.sendall, args=(second,)).start()
        with AGIChannel.from_socket(left, env_timeout=5) as chan:
            assert chan.args[-1] == "last"


# -- pyst2's traps --------------------------------------------------------------------------


def test_channel_opens_outside_the_main_thread_without_touching_sighup() -> None:
    before = signal.getsignal(signal.SIGHUP)
    errors: list[BaseException] = []

    def open_both() -> None:
        try:
            for classic in (False, True):
                channel(classic=classic)[0].close()
        except BaseException as exc:  # pyst2's AGI() raises ValueError here
            errors.append(exc)

    worker = threading.Thread(target=open_both)
    worker.start()
    worker.join(5)
    assert errors == []
    assert signal.getsignal(signal.SIGHUP) is before


def test_fastagi_channel_leaves_sighup_alone() -> None:
    before = signal.getsignal(signal.SIGHUP)
    chan, _ = channel()
    assert signal.getsignal(signal.SIGHUP) is before
    chan.close()


def test_classic_channel_turns_sighup_into_hung_up() -> None:
    before = signal.getsignal(signal.SIGHUP)
    chan, _ = channel(env=CLASSIC.env_block, classic=True)
    handler = signal.getsignal(signal.SIGHUP)
    assert handler == chan._on_sighup  # checked first: the default action would end pytest

    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(0.01)

    assert chan.hung_up is True
    chan.close()
    assert signal.getsignal(signal.SIGHUP) is before


def test_nothing_is_written_to_stdout_or_stderr(
    ru: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    call = EmulatedCall(caller=CALLER, keys=["12#"], sounds_dir=ru, timeout=5)
    with emulated(call) as (chan, _):
        chan.answer()
        chan.play("hello")
        chan.get_data("beep", 3000, 4)
        chan.set_variable("ONERPA_CUSTOMER", CALLER)
        chan.get_variable("CALLERID(num)")
        chan.verbose("call from " + CALLER)

    assert capfd.readouterr() == ("", "")


def test_each_command_is_one_bytes_write(ru: Path) -> None:
    call = EmulatedCall(caller=CALLER, keys=["12#"], sounds_dir=ru, timeout=5)  # strict
    with emulated(call) as (chan, handle):
        chan.answer()
        chan.play("hello", "12")
        chan.get_data("beep", 3000, 4)
        chan.set_variable("ONERPA_ROUTE", "queue")
        chan.exec_app("NoOp", "x y")
        chan.verbose("done", 3)
    result = handle.result(timeout=5)  # raises FramingError on a split or merged write

    assert [data for side, data in result.wire if side == "TX"] == [
        b"ANSWER\n",
        b'STREAM FILE hello "12"\n',
        b"GET DATA beep 3000 4\n",
        b'SET VARIABLE ONERPA_ROUTE "queue"\n',
        b'EXEC NoOp "x y"\n',
        b'VERBOSE "done" 3\n',
    ]


def test_pyst2_alone_fails_on_the_hangup_line() -> None:
    bare = types.SimpleNamespace(stdin=io.BytesIO(b"HANGUP\n"), stderr=io.StringIO())
    with pytest.raises(ValueError):
        pyst2.AGI.get_result(bare)


def test_hangup_line_before_a_reply_marks_the_call_and_is_skipped() -> None:
    chan, _ = channel(b"HANGUP\n200 result=1 (free)\n")
    assert chan.get_variable("SUPPORT_DECISION") == "free"
    assert chan.hung_up is True


def test_hangup_line_then_511_as_recorded() -> None:
    chan, _ = channel(b"HANGUP\n" + DEAD)
    with pytest.raises(AGIDeadChannel):
        chan.answer()
    assert chan.hung_up is True


def test_quotes_are_escaped_exactly_like_the_recorded_command() -> None:
    recorded = next(e.data for e in FASTAGI.events if e.data.startswith(b"SET VARIABLE SUPPORT_N"))
    chan, sent = channel(b"200 result=1\n")
    chan.set_variable("SUPPORT_NOTE", NOTE)
    assert sent.getvalue() == recorded


@pytest.mark.parametrize("value", [NOTE, 'C:\\dir\\ "x" \\', "a (b) c)", "", "  spaced  "])
def test_values_round_trip_through_asterisk_parsing(value: str) -> None:
    with emulated(EmulatedCall(timeout=5)) as (chan, handle):
        chan.set_variable("ONERPA_SUMMARY", value)
        assert chan.get_variable("ONERPA_SUMMARY") == value
    assert handle.result(timeout=5).variables["ONERPA_SUMMARY"] == value


def test_line_breaks_in_a_value_cannot_start_a_second_command() -> None:
    chan, sent = channel(b"200 result=1\n")
    chan.set_variable("X", "a\nNOOP\r")
    assert sent.getvalue() == b'SET VARIABLE X "a NOOP "\n'


def test_pyst2_fastagi_module_is_not_imported() -> None:
    code = "import sys, ivr.agi; print('asterisk.fastagi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_inherited_pyst2_helpers_use_the_safe_transport() -> None:
    chan, sent = channel(b"200 result=0\n")
    assert chan.say_digits("123") == ""
    assert sent.getvalue() == b'SAY DIGITS "123" ""\n'


# -- replies, as Asterisk writes them -------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("200 result=0", AGIReply("0")),
        ("200 result=1 ()", AGIReply("1", "")),
        ("200 result=1 (Иван Петров)", AGIReply("1", "Иван Петров")),
        ('200 result=1 ("Petr" <+79990000000>)', AGIReply("1", '"Petr" <+79990000000>')),
        ("200 result=0 endpos=7040", AGIReply("0", None, 7040)),
        ("200 result=-1 endpos=0", AGIReply("-1", None, 0)),
        ("200 result=0 endpos=-1", AGIReply("0", None, -1)),
        ("200 result=49 endpos=13760", AGIReply("49", None, 13760)),
        ("200 result= (timeout)", AGIReply("", "timeout")),
        ("200 result=67 (timeout)", AGIReply("67", "timeout")),
        ("200 result=-1 (hangup)", AGIReply("-1", "hangup")),
        ("200 result=1 (x) endpos=5)", AGIReply("1", "x) endpos=5")),
        ("200 result=0 (timeout) endpos=1600", AGIReply("0", "timeout", 1600)),
    ],
)
def test_parse_reply(line: str, reply: AGIReply) -> None:
    assert parse_reply(line) == reply


def test_every_recorded_200_line_parses() -> None:
    lines = [line.decode() for line in reply_lines() if line.startswith(b"200 ")]
    assert len(lines) > 30
    for line in lines:
        parse_reply(line)


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        (b"200 result=1 (\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd \xd0\x9f\xd0\xb5\xd1\x82\xd1\x80\xd0"
         b"\xbe\xd0\xb2)\n", "Иван Петров"),
        (b"200 result=0\n", None),
        (b"200 result=1 ()\n", ""),
        (b'200 result=1 ("Petr" <+79990000000>)\n', '"Petr" <+79990000000>'),
        (b"200 result=1 (a (b) c))\n", "a (b) c)"),
    ],
)  # fmt: skip
def test_get_variable_reads_recorded_replies(reply: bytes, value: str | None) -> None:
    chan, _ = channel(reply)
    assert chan.get_variable("X") == value


@pytest.mark.parametrize(
    ("reply", "digit"),
    [(b"200 result=0 endpos=7040\n", ""), (b"200 result=49 endpos=13760\n", "1")],
)
def test_play_returns_the_digit(reply: bytes, digit: str) -> None:
    assert channel(reply)[0].play("hello", "0123456789*#") == digit


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b"200 result= (timeout)\n", ("", True)),
        (b"200 result=67 (timeout)\n", ("67", True)),
        (b"200 result=345\n", ("345", False)),
    ],
)
def test_get_data_returns_digits_and_timeout(reply: bytes, expected: tuple[str, bool]) -> None:
    assert channel(reply)[0].get_data("beep", 5000, 4) == expected


def test_wait_for_digit() -> None:
    chan, _ = channel(b"200 result=0\n200 result=50\n200 result=-1\n")
    assert chan.wait_for_digit(100) == ""
    assert chan.wait_for_digit(5000) == "2"
    with pytest.raises(AGIHangup):
        chan.wait_for_digit(-1)
    assert chan.hung_up is True


def test_exec_returns_the_application_result() -> None:
    chan, sent = channel(b"200 result=-2\n200 result=0\n")
    assert chan.exec_app("NoSuchApplication", "foo") == -2
    assert chan.exec_app("Set", "EXECVAR=a,b") == 0
    assert sent.getvalue() == b'EXEC NoSuchApplication "foo"\nEXEC Set "EXECVAR=a,b"\n'


def recorded_reply_to(command: bytes) -> bytes:
    """The RX bytes Asterisk sent right after the first recorded write of command."""
    events = FASTAGI.after_env
    start = next(n for n, e in enumerate(events) if e.kind == "TX" and e.data == command)
    reply = b""
    for event in events[start + 1 :]:
        if event.kind != "RX":
            break
        reply += event.data
    return reply


def test_usage_block_is_read_to_its_end() -> None:
    chan, _ = channel(recorded_reply_to(b"GET VARIABLE\n") + b"200 result=1 (x)\n")
    with pytest.raises(AGIUsageError) as caught:
        chan.execute("GET VARIABLE")
    assert "Example return code: 200 result=1 (testvariable)" in caught.value.usage
    assert caught.value.usage.endswith("520 End of proper usage.")
    assert chan.get_variable("X") == "x"


def test_510_and_511_raise_typed_errors() -> None:
    chan, _ = channel(b"510 Invalid or unknown command\n" + DEAD)
    with pytest.raises(AGIInvalidCommand):
        chan.execute("FOOBAR")
    assert chan.hung_up is False
    with pytest.raises(AGIDeadChannel):
        chan.play("hello")
    assert chan.hung_up is True


def test_close_is_idempotent_and_final() -> None:
    chan, _ = channel()
    chan.close()
    chan.close()
    with pytest.raises(AGIError):
        chan.answer()


# -- hang-up or missing prompt: decided by CHANNEL STATUS -----------------------------------


def test_missing_prompt_is_logged_without_the_caller_number(
    ru: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ivr.agi")
    call = EmulatedCall(caller=CALLER, sounds_dir=ru, timeout=5)
    with emulated(call) as (chan, handle):
        assert chan.play("no-such-sound-file") == ""
        assert chan.get_data("no-such-prompt", 3000, 4) == ("", True)
        assert chan.hung_up is False
        chan.set_variable("ONERPA_CUSTOMER", CALLER)
    result = handle.result(timeout=5)

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2
    assert "no-such-sound-file" in warnings[0] and "no-such-prompt" in warnings[1]
    assert not [r for r in caplog.records if CALLER[1:] in r.getMessage()]
    assert result.commands[1] == "CHANNEL STATUS"
    assert result.status == "FAILURE"  # Asterisk's verdict on the missing STREAM FILE


def test_hangup_during_a_prompt_raises(ru: Path) -> None:
    call = EmulatedCall(hangup=Hangup.during("hello", after_ms=300), sounds_dir=ru, timeout=5)
    with emulated(call) as (chan, handle), pytest.raises(AGIHangup):
        chan.play("hello")
    assert chan.hung_up is True
    result = handle.result(timeout=5)
    assert result.commands == ['STREAM FILE hello ""', "CHANNEL STATUS"]
    assert result.status == "HANGUP"


def test_hangup_during_a_prompt_without_hangup_lines(ru: Path) -> None:
    call = EmulatedCall(hangup=Hangup.during("beep"), agisighup=False, sounds_dir=ru, timeout=5)
    with emulated(call) as (chan, handle), pytest.raises(AGIDeadChannel):
        chan.get_data("beep", 3000, 4)
    assert chan.hung_up is True
    assert b"HANGUP" not in handle.result(timeout=5).received


def test_hangup_while_typing_raises(ru: Path) -> None:
    call = EmulatedCall(keys=["1", HANG_UP], sounds_dir=ru, timeout=5)
    with emulated(call) as (chan, _):
        assert chan.get_data("beep", 3000, 1) == ("1", False)
        with pytest.raises(AGIHangup):
            chan.get_data("beep", 3000, 4)


def test_hangup_while_idle_still_allows_variables(ru: Path) -> None:
    call = EmulatedCall(caller=CALLER, hangup=Hangup.before(2), sounds_dir=ru, timeout=5)
    with emulated(call) as (chan, handle):
        chan.answer()
        assert chan.get_variable("CALLERID(num)") == CALLER  # after the pushed HANGUP line
        assert chan.hung_up is True
        chan.set_variable("ONERPA_ROUTE", "hangup")
        with pytest.raises(AGIDeadChannel):
            chan.play("hello")
    result = handle.result(timeout=5)
    assert (result.status, result.variables["ONERPA_ROUTE"]) == ("HANGUP", "hangup")


def test_agiexitonhangup_ends_in_a_hangup_not_a_hang() -> None:
    call = EmulatedCall(hangup=Hangup.before(2), agiexitonhangup=True, timeout=5)
    with emulated(call) as (chan, handle):
        chan.answer()
        with pytest.raises(AGIHangup):
            chan.get_variable("X")  # HANGUP, HANGUP, then Asterisk closes
    assert handle.result(timeout=5).received.endswith(b"HANGUP\nHANGUP\n")


def test_fastagi_over_tcp(ru: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(5)
        call = EmulatedCall(caller=CALLER, keys=["2"], sounds_dir=ru, timeout=5)
        handle = in_thread(call.run_fastagi, server.getsockname(), "call?line=support")
        with AGIChannel.from_socket(server.accept()[0], env_timeout=5) as chan:
            assert chan.script == "call"
            assert chan.wait_for_digit(5000) == "2"
    assert handle.result(timeout=5).status == "SUCCESS"


CLASSIC_SCRIPT = """
from ivr.agi import AGIChannel, AGIHangup

channel = AGIChannel.from_stdio()
print("stray output")  # must reach stderr, never Asterisk
channel.answer()
digits, _ = channel.get_data("beep", 3000, 5)
channel.set_variable("ONERPA_TOPIC", digits)
try:
    channel.wait_for_digit(5000)
except AGIHangup:
    channel.set_variable("ONERPA_ROUTE", "hangup" if channel.hung_up else "?")
channel.close()
"""


def test_classic_call_end_to_end(ru: Path, tmp_path: Path) -> None:
    script = tmp_path / "classic.py"
    script.write_text(CLASSIC_SCRIPT)
    call = EmulatedCall(caller=CALLER, keys=["42#", HANG_UP], sounds_dir=ru, timeout=5)
    with (tmp_path / "stderr").open("w+") as stderr:
        result = call.run_classic(
            [sys.executable, str(script)], env={"PYTHONPATH": str(PROJECT)}, stderr=stderr
        )
        stderr.seek(0)
        assert stderr.read() == "stray output\n"

    assert result.commands == [
        "ANSWER",
        "GET DATA beep 3000 5",
        'SET VARIABLE ONERPA_TOPIC "42"',
        "WAIT FOR DIGIT 5000",
        'SET VARIABLE ONERPA_ROUTE "hangup"',
    ]
    assert (result.sighups, result.status, result.returncode) == (1, "HANGUP", 0)
    assert result.variables["ONERPA_TOPIC"] == "42"


# -- hostile peers: typed errors, never a hang ----------------------------------------------


def test_truncated_env_block() -> None:
    with pytest.raises(AGIProtocolError, match="truncated"):
        AGIChannel(io.BytesIO(b"agi_network: yes\nagi_request: agi://x/call\n"), io.BytesIO())


def test_connection_closed_before_the_env_block_is_a_hangup() -> None:
    left, right = socket.socketpair()
    right.close()
    with pytest.raises(AGIHangup):
        AGIChannel.from_socket(left, env_timeout=1)


def test_silent_peer_times_out() -> None:
    left, right = socket.socketpair()
    started = time.monotonic()
    with right, pytest.raises(AGITimeout):
        AGIChannel.from_socket(left, env_timeout=0.2)
    assert time.monotonic() - started < 2


def test_slow_partial_env_block_times_out_as_a_whole() -> None:
    left, right = socket.socketpair()
    with right, pytest.raises(AGITimeout):
        right.sendall(b"agi_network: yes\nagi_request: agi://x/call\nagi_chan")
        AGIChannel.from_socket(left, env_timeout=0.3)


def test_silent_asterisk_during_a_command_times_out() -> None:
    left, right = socket.socketpair()
    with right:
        right.sendall(FASTAGI.env_block)
        with AGIChannel.from_socket(left, env_timeout=1, command_timeout=0.2) as chan:
            with pytest.raises(AGITimeout):
                chan.answer()
            assert right.recv(100) == b"ANSWER\n"


def test_a_reply_trickling_in_is_read_whole_within_the_deadline() -> None:
    left, right = socket.socketpair()
    with right:
        right.sendall(FASTAGI.env_block)
        with AGIChannel.from_socket(left, env_timeout=1, command_timeout=2) as chan:
            writer = threading.Thread(target=_trickle, args=(right, b"200 result=0\n", 0.02))
            writer.start()
            chan.answer()  # thirteen reads, each waiting for the next byte
            writer.join()


def test_a_reply_trickling_past_the_deadline_times_out() -> None:
    left, right = socket.socketpair()
    with right:
        right.sendall(FASTAGI.env_block)
        with AGIChannel.from_socket(left, env_timeout=1, command_timeout=0.3) as chan:
            writer = threading.Thread(target=_trickle, args=(right, b"200 result=0\n", 0.1))
            writer.start()
            started = time.monotonic()
            with pytest.raises(AGITimeout):
                chan.answer()  # every byte comes well within 0.3 s, the line does not
            assert time.monotonic() - started < 0.6
            writer.join()


def _trickle(sock: socket.socket, data: bytes, pause: float) -> None:
    """Send ``data`` a byte at a time, ``pause`` seconds apart; stop if the reader left."""
    for byte in data:
        time.sleep(pause)
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def test_connection_closed_during_a_command_is_a_hangup() -> None:
    left, right = socket.socketpair()
    right.sendall(FASTAGI.env_block)
    with AGIChannel.from_socket(left, env_timeout=1) as chan:
        right.close()
        with pytest.raises(AGIHangup):
            chan.answer()
        assert chan.hung_up is True


def test_an_over_long_caller_name_is_cut_and_the_session_goes_on() -> None:
    left, right = socket.socketpair()
    name = "Иван".encode() + b"x" * 10_000
    right.sendall(b"agi_request: x\nagi_calleridname: " + name + b"\nagi_callerid: 123\n\n")
    with AGIChannel.from_socket(left, env_timeout=1) as chan:
        assert chan.env["agi_calleridname"].startswith("Иванxxx")
        assert len(chan.env["agi_calleridname"].encode()) < 8192
        assert chan.env["agi_callerid"] == "123"
    right.close()


@pytest.mark.parametrize(
    "env",
    [
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"\n",
    ],
)
def test_garbage_env_blocks_are_protocol_errors(env: bytes) -> None:
    with pytest.raises(AGIProtocolError):
        AGIChannel(io.BytesIO(env), io.BytesIO())


def test_long_but_sane_values_are_fine_and_over_long_lines_are_not() -> None:
    value = "x" * 5_000
    chan, _ = channel(f"200 result=1 ({value})\n".encode() + b"200 result=1 (" + b"y" * 10_000)
    assert chan.get_variable("X") == value
    with pytest.raises(AGIProtocolError, match="longer than"):
        chan.get_variable("Y")


def test_non_utf8_caller_name_is_replaced_not_fatal() -> None:
    env = FASTAGI.env_block.replace(b"\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd", b"\xff\xfe\xd0")
    chan, _ = channel(env=env)
    assert chan.env["agi_calleridname"] == "\ufffd\ufffd\ufffd \u041f\u0435\u0442\u0440\u043e\u0432"


def test_non_utf8_caller_name_from_the_emulator() -> None:
    with emulated(EmulatedCall(name="\udcffИван", timeout=5)) as (chan, _):
        assert chan.env["agi_calleridname"] == "\ufffdИван"


@pytest.mark.parametrize("reply", [b"299 what\n", b"garbage\n", b"200result=0\n", b"\n"])
def test_unknown_replies_are_protocol_errors(reply: bytes) -> None:
    with pytest.raises(AGIProtocolError):
        channel(reply)[0].answer()


def test_non_numeric_results_are_protocol_errors() -> None:
    chan, _ = channel(b"200 result=x endpos=1\n200 result=abc\n")
    with pytest.raises(AGIProtocolError):
        chan.play("hello")
    with pytest.raises(AGIProtocolError):
        chan.exec_app("NoOp")
