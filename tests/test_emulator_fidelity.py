"""The emulator against a real Asterisk: replay each recording's commands, compare the bytes.

For every recording in tests/data/asterisk the emulator is set up like the recorded call (caller,
channel, arguments, hang-up point, AGISIGHUP...), the recorded TX bytes are written to it one
write at a time, and what it answers must equal the recorded RX bytes. Only the values that
differ per run are normalised: agi_threadid and the FastAGI port in agi_request. The sound
files are made with the recorded sample counts, so even endpos must match.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any

import pytest

from ivr.agi import AGIChannel
from ivr.emulator import (
    DEFAULT_DNID,
    HANG_UP,
    CallResult,
    EmulatedCall,
    FramingError,
    Hangup,
    Key,
    Speech,
    find_command,
    in_thread,
    parse_args,
)
from tests.agi_transcripts import Transcript, load, parse_env, record_runs

# Sample counts of the recorded GSM prompts, per language (Asterisk looks them up that way).
SOUNDS = {"ru": {"hello": 7040, "beep": 3520}, "en": {"hello": 6400, "beep": 3520}}
LONG_PROMPT = "run/data/moh/macroform-cold_day"  # under <run-dir>; long enough to hang up in
NOTE = 'two words "quoted" и кириллица'

FASTAGI_CASES: dict[str, dict[str, Any]] = {
    "fastagi_01_greet_full_command_set": {},
    "fastagi_02_h_extension_report_dead_channel": {
        "dead_at_start": True,
        "hangup_cause": 0,
        "variables": {"AGISTATUS": "FAILURE", "SUPPORT_DECISION": "free", "SUPPORT_NOTE": NOTE},
    },
    "fastagi_03_hangup_during_stream_file": {
        "hangup": Hangup.during("macroform-cold_day", after_ms=3500)
    },
    "fastagi_04_hangup_during_wait_for_digit_softhangup_on_agi_channel": {"keys": [HANG_UP]},
    "fastagi_05_hangup_during_wait_for_digit_caller_hangup": {"keys": [HANG_UP]},
    "fastagi_06_hangup_during_get_data": {"keys": [HANG_UP]},
    "fastagi_07_hangup_during_exec_playback": {
        "hangup": Hangup.during("macroform-cold_day", after_ms=3500)
    },
    "fastagi_08_hangup_while_idle": {"hangup": Hangup.when_idle(0.05)},
    "fastagi_09_agiexitonhangup_yes": {
        "hangup": Hangup.when_idle(0.05),
        "agiexitonhangup": True,
    },
    # No HANGUP line tells the replayer when the caller has gone, so the hang-up is tied to
    # the command that finds the channel dead; on the wire that is the same conversation.
    "fastagi_10_agisighup_no": {"hangup": Hangup.before(2), "agisighup": False},
    "fastagi_11_hangup_handler_dead_channel": {
        "dead_at_start": True,
        "variables": {"SUPPORT_DECISION": "paid"},
    },
    "fastagi_12_dtmf_stream_wait_getdata": {
        "keys": [Key("1", barge_in=True, after_ms=1720), "2", "345#", "67"]
    },
    "fastagi_14_close_without_commands_and_connect_failures": {},
    "fastagi_15_hangup_command_then_close": {},
    "fastagi_16_normal_close_live_channel": {},
    "fastagi_18_missing_file_sets_agistatus_failure": {},
}
# fastagi_13 (queues) and fastagi_17 (pipelining, CRLF) are not replayed as conversations:
# queues are the dialplan's business, and the framing cases are tested on their own below.
STATUS_NOT_LOGGED = {"fastagi_09_agiexitonhangup_yes": "HANGUP"}  # Asterisk broke off early

CLASSIC_CASES: dict[str, dict[str, Any]] = {
    "classic_01_hangup_during_wait_for_digit": {"keys": ["", HANG_UP], "answered": True},
    "classic_02_idle_sighup": {"hangup": Hangup.before(1), "answered": True},
    "classic_03_idle_agisighup_no": {
        "hangup": Hangup.before(1),
        "answered": True,
        "agisighup": False,
    },
    "classic_04_in_hangup_handler": {"dead_at_start": True},
}

# A classic AGI script that replays a plan of writes and line reads, and reports back.
REPLAYER = """
import json, os, signal, sys
hangups = []
signal.signal(signal.SIGHUP, lambda signum, frame: hangups.append(signum))
with open(os.environ["REPLAY_PLAN"]) as plan_file:
    plan = json.load(plan_file)
stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
received = bytearray()
while True:
    line = stdin.readline()
    received += line
    if line in (b"\\n", b""):
        break
for step in plan:
    if "tx" in step:
        stdout.write(bytes.fromhex(step["tx"]))
        stdout.flush()
    else:
        for _ in range(step["rx"]):
            received += stdin.readline()
with open(os.environ["REPLAY_OUT"], "w") as out:
    json.dump({"received": received.hex(), "sighups": len(hangups)}, out)
"""


def _write_wav(path: Path, frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\0\0" * frames)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """What <run-dir> stands for in the recordings: prompts and the long music file."""
    for language, prompts in SOUNDS.items():
        for name, frames in prompts.items():
            _write_wav(tmp_path / "sounds" / language / f"{name}.wav", frames)
    _write_wav(tmp_path / f"{LONG_PROMPT}.wav", 40000)
    return tmp_path


@pytest.fixture
def ru(run_dir: Path) -> Path:
    """The Russian prompts directory."""
    return run_dir / "sounds" / "ru"


def call_like(transcript: Transcript, run_dir: Path, **extra: Any) -> EmulatedCall:
    """An emulated call set up like the recorded one (its env block says how)."""
    env = transcript.env

    def known(key: str) -> str:
        return "" if env[key] == "unknown" else env[key]

    args = [env[f"agi_arg_{n}"] for n in range(1, 100) if f"agi_arg_{n}" in env]
    return EmulatedCall(
        caller=known("agi_callerid"),
        name=known("agi_calleridname"),
        args=args,
        dnid=known("agi_dnid"),
        language=env["agi_language"],
        channel=env["agi_channel"],
        uniqueid=env["agi_uniqueid"],
        context=env["agi_context"],
        extension=env["agi_extension"],
        priority=int(env["agi_priority"]),
        sounds_dir=run_dir / "sounds" / env["agi_language"],
        timeout=5,
        **extra,
    )


def normalise(data: bytes) -> list[bytes]:
    """Lines with the per-run values replaced: thread id and the FastAGI port."""
    data = re.sub(rb"agi_threadid: \d+", b"agi_threadid: N", data)
    data = re.sub(rb"agi://127\.0\.0\.1:\d+/", b"agi://127.0.0.1:PORT/", data)
    return data.split(b"\n")


def _read_lines(reader: Any, count: int) -> bytes:
    lines = [reader.readline() for _ in range(count)]
    assert all(line.endswith(b"\n") for line in lines), lines
    return b"".join(lines)


def replay_fastagi(transcript: Transcript, call: EmulatedCall, run_dir: Path) -> tuple[bytes, Any]:
    """Play the recorded FastAGI peer against the emulator; return what it received."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(5)
        script = transcript.env["agi_network_script"]
        handle = in_thread(call.run_fastagi, server.getsockname(), script)
        conn, _ = server.accept()
    with conn, conn.makefile("rb") as reader:
        conn.settimeout(5)
        received = _read_lines(reader, transcript.env_block.count(b"\n"))
        for event in transcript.after_env:
            if event.kind == "TX":
                conn.sendall(event.data.replace(b"<run-dir>", str(run_dir).encode()))
            elif event.kind == "RX":
                received += _read_lines(reader, event.data.count(b"\n"))
            elif event.kind == "SHUT_WR":
                conn.shutdown(socket.SHUT_WR)
            elif event.kind == "EOF":
                assert reader.read() == b""
    return received, handle.result(timeout=10)


@pytest.mark.parametrize("name", sorted(FASTAGI_CASES))
def test_fastagi_replies_match_the_recording(name: str, run_dir: Path) -> None:
    transcript = load(name)
    call = call_like(transcript, run_dir, **FASTAGI_CASES[name])

    received, result = replay_fastagi(transcript, call, run_dir)

    assert normalise(received) == normalise(transcript.received)
    # The emulator's own record agrees (it may end with the HANGUP sent after the close).
    assert b"\n".join(normalise(result.received)).startswith(b"\n".join(normalise(received)))
    assert result.status == (transcript.agistatus() or STATUS_NOT_LOGGED[name])
    assert result.framing_errors == []


def test_fastagi_variables_reach_the_dialplan_like_recorded(run_dir: Path) -> None:
    transcript = load("fastagi_01_greet_full_command_set")
    _, result = replay_fastagi(transcript, call_like(transcript, run_dir), run_dir)

    # From the log: HEXT test-in AGISTATUS=FAILURE SUPPORT_DECISION=free SUPPORT_NOTE=...
    assert f"SUPPORT_DECISION=free SUPPORT_NOTE={NOTE} HANGUPCAUSE=0" in transcript.text
    assert result.variables["SUPPORT_DECISION"] == "free"
    assert result.variables["SUPPORT_NOTE"] == NOTE
    assert result.missing_prompts == ["no-such-sound-file"] * 4
    assert result.prompts[:3] == ["hello", "beep", "hello"]


def test_fastagi_dtmf_recording_consumes_each_key_once(run_dir: Path) -> None:
    transcript = load("fastagi_12_dtmf_stream_wait_getdata")
    call = call_like(transcript, run_dir, **FASTAGI_CASES[transcript.name])

    _, result = replay_fastagi(transcript, call, run_dir)

    assert result.digits == ["1", "2", "345#", "67"]
    assert result.prompts[0].endswith("macroform-cold_day")


def replay_classic(
    transcript: Transcript, call: EmulatedCall, tmp_path: Path
) -> tuple[dict[str, Any], CallResult]:
    """Run the replayer as a classic AGI script under the emulator."""
    plan = [
        {"tx": event.data.hex()} if event.kind == "TX" else {"rx": event.data.count(b"\n")}
        for event in transcript.after_env
        if event.kind in ("TX", "RX")
    ]
    replayer, plan_path, out = tmp_path / "replayer.py", tmp_path / "plan.json", tmp_path / "out"
    replayer.write_text(REPLAYER)
    plan_path.write_text(json.dumps(plan))
    result = call.run_classic(
        [sys.executable, str(replayer)],
        script=transcript.env["agi_request"],
        env={"REPLAY_PLAN": str(plan_path), "REPLAY_OUT": str(out)},
    )
    return json.loads(out.read_text()), result


@pytest.mark.parametrize("name", sorted(CLASSIC_CASES))
def test_classic_replies_and_sighup_match_the_recording(
    name: str, run_dir: Path, tmp_path: Path
) -> None:
    transcript = load(name)
    call = call_like(transcript, run_dir, **CLASSIC_CASES[name])

    report, result = replay_classic(transcript, call, tmp_path)

    assert normalise(bytes.fromhex(report["received"])) == normalise(transcript.received)
    assert report["sighups"] == result.sighups == transcript.sighups
    assert result.status == transcript.agistatus()
    assert result.returncode == 0


def test_classic_script_gets_the_agi_args_as_argv(run_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "argv.py"
    script.write_text(
        "import sys, os\nprint(sys.argv[1:], os.environ['AST_VERSION'], file=sys.stderr)"
    )
    with (tmp_path / "stderr").open("w+") as stderr:
        result = EmulatedCall(args=["main", "arg 2"]).run_classic(
            [sys.executable, str(script)], stderr=stderr
        )
        stderr.seek(0)
        assert stderr.read().strip() == "['main', 'arg 2'] 22.10.1"
    assert result.returncode == 0
    assert result.received.endswith(b"agi_arg_1: main\nagi_arg_2: arg 2\n\n")
    assert not result.received.startswith(b"agi_network")


# -- the environment block ------------------------------------------------------------------


def test_default_call_env_block_has_asterisks_key_order(run_dir: Path) -> None:
    recorded_keys = list(load("fastagi_16_normal_close_live_channel").env)
    left, right = socket.socketpair()
    with left:
        handle = in_thread(EmulatedCall().run_on_socket, right, "call")
        left.settimeout(5)
        left.shutdown(socket.SHUT_WR)
        result = handle.result(timeout=5)

    chunks = [data for side, data in result.wire if side == "RX"]
    env = parse_env(chunks[0] + chunks[1])
    assert list(env) == recorded_keys
    assert chunks[0].endswith(b"agi_context: onerpa-inbound\n")  # two segments, like Asterisk
    assert env["agi_dnid"] == DEFAULT_DNID
    assert env["agi_language"] == "ru"
    assert (env["agi_callerid"], env["agi_calleridname"], env["agi_callingpres"]) == (
        "unknown",
        "unknown",
        "67",
    )
    assert re.fullmatch(r"\d+\.\d+", env["agi_uniqueid"])
    assert env["agi_type"] == "PJSIP"
    assert result.status == "SUCCESS"


def test_env_block_sends_names_raw_utf8_and_empty_args() -> None:
    call = EmulatedCall(caller="+79161234567", name="Иван Петров", args=["a", "", "арг3"])
    left, right = socket.socketpair()
    with left:
        handle = in_thread(call.run_on_socket, right, "call?line=support")
        left.shutdown(socket.SHUT_WR)
        received = handle.result(timeout=5).received

    assert b"agi_calleridname: \xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd \xd0\x9f" in received
    assert b"agi_callingpres: 0\n" in received
    assert b"agi_network_script: call?line=support\n" in received
    args = b"agi_arg_1: a\nagi_arg_2: \nagi_arg_3: \xd0\xb0\xd1\x80\xd0\xb33\n\n"
    assert received.endswith(args + b"HANGUP\n")  # the script closed: Asterisk's last HANGUP


# -- parsing commands like res_agi.c --------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        ('STREAM FILE hello ""', ["STREAM", "FILE", "hello", ""]),
        (
            'SET VARIABLE SUPPORT_NOTE "two words \\"quoted\\" и кириллица"',
            ["SET", "VARIABLE", "SUPPORT_NOTE", NOTE],
        ),
        ('EXEC Set "EXECVAR=a,b"', ["EXEC", "Set", "EXECVAR=a,b"]),
        ('SET CALLERID "Petr <+79990000000>"', ["SET", "CALLERID", "Petr <+79990000000>"]),
        ("NOOP\r", ["NOOP\r"]),
        ("", []),
        ('a\\ b "c\\\\d"e', ["a b", "c\\de"]),
    ],
)
def test_parse_args_splits_like_asterisk(line: str, argv: list[str]) -> None:
    assert parse_args(line) == argv


@pytest.mark.parametrize("line", ["FOOBAR", "foobar baz", "", "NOOP\r", "GET", "STREAM"])
def test_unknown_commands_are_not_found(line: str) -> None:
    assert find_command(parse_args(line)) is None


# -- framing --------------------------------------------------------------------------------


def _raw_session(call: EmulatedCall) -> tuple[socket.socket, Any]:
    """A raw client socket talking to the emulator; the env block is read already."""
    left, right = socket.socketpair()
    left.settimeout(5)
    handle = in_thread(call.run_on_socket, right, "call")
    data = b""
    while b"\n\n" not in data:
        data += left.recv(65536)
    return left, handle


def test_two_commands_in_one_write_fail_loudly() -> None:
    client, handle = _raw_session(EmulatedCall(timeout=5))
    with client:
        client.sendall(b"NOOP\nGET VARIABLE CALLERID(num)\n")
        assert client.recv(100) == b""  # the emulator hangs up on the script: no hang

    with pytest.raises(FramingError, match="more than one command") as caught:
        handle.result(timeout=5)
    assert caught.value.result is not None
    assert caught.value.result.commands == []


def test_command_without_newline_fails_loudly() -> None:
    client, handle = _raw_session(EmulatedCall(timeout=5))
    with client:
        client.sendall(b"GET VAR")
        assert client.recv(100) == b""

    with pytest.raises(FramingError, match="without newline"):
        handle.result(timeout=5)


def test_crlf_is_answered_like_asterisk_and_still_reported() -> None:
    # fastagi_17: the \r stays part of the last word, so NOOP\r is unknown and the variable
    # looked up is "CALLERID(num)\r", which is not set.
    client, handle = _raw_session(EmulatedCall(caller="+79161234567", strict=False, timeout=5))
    with client:
        client.sendall(b"GET VARIABLE CALLERID(num)\r\n")
        first = client.recv(100)
        client.sendall(b"NOOP\r\n")
        second = client.recv(100)

    assert (first, second) == (b"200 result=0\n", b"510 Invalid or unknown command\n")
    assert len(handle.result(timeout=5).framing_errors) == 2


def test_crlf_fails_loudly_in_strict_mode() -> None:
    client, handle = _raw_session(EmulatedCall(timeout=5))
    with client:
        client.sendall(b"NOOP\r\n")
        assert client.recv(100) == b"510 Invalid or unknown command\n"

    with pytest.raises(FramingError, match="carriage return"):
        handle.result(timeout=5)


# -- the caller and AGISTATUS ---------------------------------------------------------------


def _converse(call: EmulatedCall, *lines: str) -> tuple[list[bytes], CallResult]:
    """Send each command line, collect each reply line (HANGUP lines separately)."""
    client, handle = _raw_session(call)
    replies = []
    with client, client.makefile("rb") as reader:
        for line in lines:
            client.sendall(line.encode() + b"\n")
            reply = reader.readline()
            while reply == b"HANGUP\n":
                replies.append(reply)
                reply = reader.readline()
            replies.append(reply)
    return replies, handle.result(timeout=5)


def test_get_data_stops_at_max_digits_and_hash(ru: Path) -> None:
    call = EmulatedCall(keys=["123456", "#", "9#1"], sounds_dir=ru, timeout=5)

    replies, result = _converse(
        call, "GET DATA beep 3000 4", "GET DATA beep 3000 4", "GET DATA beep"
    )

    assert replies == [b"200 result=1234\n", b"200 result=\n", b"200 result=9\n"]
    assert result.digits == ["123456", "#", "9#1"]


def test_stream_file_is_interrupted_only_by_barge_in_escape_digits(ru: Path) -> None:
    keys: list[str | Key] = [
        "5",
        Key("7", barge_in=True, after_ms=100),
        Key("1", barge_in=True, after_ms=100),
    ]
    call = EmulatedCall(keys=keys, sounds_dir=ru, timeout=5)

    replies, result = _converse(
        call,
        'STREAM FILE hello "1"',  # "5" is typed after the prompt: no interruption
        "WAIT FOR DIGIT 100",  # takes "5"
        'STREAM FILE hello "1"',  # "7" is not an escape digit
        'STREAM FILE hello "17"',
        "WAIT FOR DIGIT 100",  # takes "1"
    )

    assert replies == [
        b"200 result=0 endpos=7040\n",
        b"200 result=53\n",
        b"200 result=0 endpos=7040\n",
        b"200 result=55 endpos=800\n",
        b"200 result=49\n",
    ]


def test_waiting_forever_without_keys_means_the_caller_hangs_up() -> None:
    replies, result = _converse(EmulatedCall(timeout=5), "WAIT FOR DIGIT -1", "WAIT FOR DIGIT 1")

    assert replies == [b"200 result=-1\n", b"HANGUP\n", b"511 Command Not Permitted on a dead "
                       b"channel or intercept routine\n"]  # fmt: skip
    assert result.status == "HANGUP"


def test_get_data_on_a_missing_prompt_does_not_fail_the_agi(ru: Path) -> None:
    # res_agi.c answers -1 but returns RESULT_SUCCESS for GET DATA; STREAM FILE fails.
    call = EmulatedCall(sounds_dir=ru, timeout=5)
    replies, result = _converse(call, "GET DATA nothing 100 4")
    assert (replies, result.status) == ([b"200 result=-1\n"], "SUCCESS")

    replies, result = _converse(call, 'STREAM FILE nothing ""')
    assert (replies, result.status) == ([b"200 result=-1 endpos=0\n"], "FAILURE")


def test_failure_stays_after_a_later_hang_up(ru: Path) -> None:
    call = EmulatedCall(sounds_dir=ru, timeout=5)
    _, result = _converse(call, 'STREAM FILE nothing ""', "HANGUP")
    assert (result.status, result.hung_up) == ("FAILURE", True)


def test_connection_refused_is_agistatus_failure() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        address = server.getsockname()
    result = EmulatedCall().run_fastagi(address, connect_timeout=1)
    assert (result.status, result.connected) == ("FAILURE", False)


def test_speed_factor_makes_prompts_take_their_time(ru: Path) -> None:
    _write_wav(ru / "short.wav", 800)  # 0.1 s at 8 kHz
    call = EmulatedCall(sounds_dir=ru, speed=1.0, timeout=5)
    started = time.monotonic()
    replies, _ = _converse(call, 'STREAM FILE short ""')
    assert replies == [b"200 result=0 endpos=800\n"]
    assert time.monotonic() - started >= 0.09


def test_many_calls_can_be_open_at_once() -> None:
    calls = 100
    everyone_connected = threading.Barrier(calls, timeout=10)

    def serve(conn: socket.socket) -> None:
        with AGIChannel.from_socket(conn, env_timeout=5) as channel:
            channel.answer()
            everyone_connected.wait()  # all calls are open at this point
            channel.set_variable("ONERPA_ROUTE", channel.env["agi_callerid"])

    with socket.create_server(("127.0.0.1", 0), backlog=calls) as server:
        server.settimeout(10)
        handles = [
            in_thread(EmulatedCall(caller=f"+7916000{n:04d}", timeout=10).run_fastagi,
                      server.getsockname())
            for n in range(calls)
        ]  # fmt: skip
        servers = [threading.Thread(target=serve, args=(server.accept()[0],)) for _ in handles]
        for thread in servers:
            thread.start()
        results = [handle.result(timeout=20) for handle in handles]
        for thread in servers:
            thread.join(timeout=10)

    assert {result.status for result in results} == {"SUCCESS"}
    routes = {result.variables["ONERPA_ROUTE"] for result in results}
    assert routes == {f"+7916000{n:04d}" for n in range(calls)}


# -- RECORD FILE (tests/data/asterisk/record) -------------------------------------------------

# What the recorded caller did after the beep, as the emulator's Speech. A Local channel sends
# no frames while it waits, so "silent=False" wherever the caller side ran Wait().
RECORD_CASES: dict[tuple[str, str], list[Any]] = {
    ("record_01_dtmf_end", "dtmf"): [Key("#")],
    ("record_01_dtmf_end", "dtmfspeech"): [Speech("#", seconds=1.42, silent=False)],
    ("record_02_silence_end", "silwait"): [],  # no frames at all: only the maximum ends it
    ("record_02_silence_end", "silplay"): [Speech(seconds=1.42)],
    ("record_03_max_time", "maxtime"): [Speech(seconds=40)],
    ("record_04_caller_hangup", "hang"): [Speech(seconds=3.16, hangs_up=True)],
    ("record_05_other_digit", "digit"): [
        Speech("5*#", seconds=1.42, silent=False),
        Speech("5", seconds=1.42, silent=False),
    ],
    ("record_06_missing_directory", "nodir"): [],
    ("record_07_relative_path_gsm", "rel"): [Key("#")],
}
_PRODUCED = re.compile(r"^  <run-dir>/(?P<path>\S+): (?:(?P<size>\d+) bytes|DOES NOT EXIST)$", re.M)
_HEADER = re.compile(r"^  header \(first 44 bytes, hex\): (?P<hex>[0-9a-f]+)$", re.M)
_FINAL_STATUS = re.compile(r"HANGUPEXT \S+ AGISTATUS=(?P<status>[A-Z]+)")


def produced(transcript: Transcript) -> dict[str, int | None]:
    """The files the recorded run left, by path under <run-dir>: size, or None if absent."""
    part = transcript.text.split("FILE(S) PRODUCED", 1)[1].split("ASTERISK LOG", 1)[0]
    return {
        m["path"]: int(m["size"]) if m["size"] else None
        for m in _PRODUCED.finditer(part)
        if not m["path"].endswith(("/no", "dir/no"))
    }


@pytest.mark.parametrize("case", sorted(RECORD_CASES), ids=lambda case: f"{case[0]}:{case[1]}")
def test_record_file_replies_and_files_match_the_recording(
    case: tuple[str, str], run_dir: Path
) -> None:
    transcript = record_runs(case[0])[case[1]]
    (run_dir / "recordings").mkdir()
    (run_dir / "data" / "sounds").mkdir(parents=True)
    call = call_like(transcript, run_dir, keys=RECORD_CASES[case], data_dir=run_dir / "data")

    received, result = replay_fastagi(transcript, call, run_dir)

    assert normalise(received) == normalise(transcript.received)
    assert result.status == _FINAL_STATUS.search(transcript.text)["status"]  # type: ignore[index]
    files = produced(transcript)
    assert files, "the recording lists the files it produced"
    headers = [m["hex"] for m in _HEADER.finditer(transcript.text)]
    for path, size in files.items():
        made = run_dir / path
        if size is None:
            assert not made.exists()
            continue
        assert made.stat().st_size == size
        if path.endswith(".wav"):
            assert made.read_bytes()[:44].hex() == headers.pop(0)
    assert sorted(r.path for r in result.recordings) == sorted(
        run_dir / p for p, s in files.items() if s is not None
    )


def test_record_file_hang_up_sends_hangup_after_the_reply_in_its_own_segment(
    run_dir: Path,
) -> None:
    transcript = record_runs("record_04_caller_hangup")["hang"]
    (run_dir / "recordings").mkdir()
    call = call_like(transcript, run_dir, keys=RECORD_CASES[("record_04_caller_hangup", "hang")])

    _, result = replay_fastagi(transcript, call, run_dir)

    chunks = [chunk for side, chunk in result.wire if side == "RX"]
    reply = chunks.index(b"200 result=-1 (hangup) endpos=25280\n")
    assert chunks[reply + 1] == b"HANGUP\n"
    assert result.hung_up


def test_record_file_beep_is_played_unless_the_slot_says_silence(tmp_path: Path) -> None:
    def commands(*lines: str) -> list[str]:
        def script(conn: socket.socket) -> None:
            with AGIChannel.from_socket(conn, env_timeout=5) as channel:
                for line in lines:
                    channel.send_command(line)
                    channel.get_result()

        with socket.create_server(("127.0.0.1", 0)) as server:
            handle = in_thread(
                EmulatedCall(keys=["#"] * len(lines)).run_fastagi, server.getsockname()
            )
            conn, _ = server.accept()
            script(conn)
        return handle.result(timeout=5).prompts

    path = tmp_path / "m"
    assert commands(f"RECORD FILE {path} wav # 1000 0 BEEP s=3") == ["beep"]
    assert commands(f"RECORD FILE {path} wav # 1000 0 s=3") == []
    assert commands(f"RECORD FILE {path} wav # 1000") == []


def test_agi_record_file_reads_every_recorded_ending(run_dir: Path) -> None:
    """The adapter's record_file against the emulator, for each way a recording ends."""
    (run_dir / "recordings").mkdir()
    target = str(run_dir / "recordings" / "m")
    answers = [
        Speech("#", seconds=2),
        Speech(seconds=2),
        Speech(seconds=200),
        Speech("5", seconds=1, silent=False),
        Speech(seconds=3.16, hangs_up=True),
    ]
    ended = []

    def script(conn: socket.socket) -> None:
        with AGIChannel.from_socket(conn, env_timeout=5) as channel:
            for _ in answers:
                ended.append(channel.record_file(target, max_ms=120_000, silence_s=3))
            ended.append(channel.hung_up)

    with socket.create_server(("127.0.0.1", 0)) as server:
        handle = in_thread(EmulatedCall(keys=answers).run_fastagi, server.getsockname())
        conn, _ = server.accept()
        script(conn)
    result = handle.result(timeout=5)

    assert [(r.ended_by, r.endpos, r.digit) for r in ended[:-1]] == [
        ("dtmf", 16000 - 1600, "#"),
        ("timeout", 16000 + 7520, ""),
        ("timeout", 960_000, ""),
        ("timeout", 8000, ""),  # "5" is no escape digit: the maximum ends it
        ("hangup", 25280, ""),
    ]
    assert ended[-1] is True
    assert result.commands[0] == f'RECORD FILE {target} wav "#" 120000 0 BEEP s=3'


def test_agi_record_file_into_a_missing_directory_is_writefile(tmp_path: Path) -> None:
    found = []

    def script(conn: socket.socket) -> None:
        with AGIChannel.from_socket(conn, env_timeout=5) as channel:
            found.append(channel.record_file(str(tmp_path / "no" / "such" / "m")))

    with socket.create_server(("127.0.0.1", 0)) as server:
        handle = in_thread(EmulatedCall(keys=["#"]).run_fastagi, server.getsockname())
        conn, _ = server.accept()
        script(conn)
    result = handle.result(timeout=5)

    assert found[0].ended_by == "writefile" and not found[0].written
    assert result.status == "FAILURE"
    assert not (tmp_path / "no").exists()
