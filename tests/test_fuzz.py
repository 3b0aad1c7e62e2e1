"""Property-based fuzzing of what reads from the outside: the AGI reader and the phone parser.

Whatever bytes arrive, the AGI reader either parses them or raises one of its own typed
errors (``AGIError``), and always within its deadline; the phone parser maps anything to
None or to an E.164 number that it maps to itself. The live FastAGI server survives any
byte sequence and serves the next call.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.agi import AGIChannel, AGIError, AGIReply, parse_reply
from onerpa import db
from onerpa.phone import normalize
from tests.flowkit import Line, support_line
from tests.reliability_figures import Figures, count_calls

pytest_plugins = ["tests.reliability_figures"]

AREA = "fuzz"
WIRE_TIMEOUT = 0.5  # env and command deadlines of the channels under test
NEVER_HANGS = 2.0  # any one example, deadlines included, ends well within this
E164 = re.compile(r"\+[1-9]\d{4,14}")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=ZoneInfo("Europe/Moscow"))

FUZZ = settings(
    max_examples=300,
    deadline=NEVER_HANGS * 1000,
    database=None,  # no example store in the work tree
    suppress_health_check=[HealthCheck.too_slow],
)

ENV_KEYS = ["agi_network", "agi_request", "agi_channel", "agi_callerid", "agi_calleridname"]
env_line = st.one_of(
    st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(ENV_KEYS), st.text(max_size=40)),
    st.text(max_size=60),
).map(lambda line: line.replace("\n", " ").encode("utf-8", "surrogatepass"))
reply_line = st.one_of(
    st.from_regex(
        r"200 result=-?[0-9]{0,4}( \([^\n]{0,20}\))?( endpos=[0-9a-z]{0,6})?", fullmatch=True
    ),
    st.sampled_from(["HANGUP", "510 Invalid or unknown command", "511 Command Not Permitted"]),
    st.from_regex(r"520[- ][^\n]{0,30}", fullmatch=True),
    st.text(max_size=40).map(lambda text: text.replace("\n", " ")),
).map(lambda line: line.encode("utf-8", "surrogatepass"))
session_bytes = st.one_of(
    st.binary(max_size=2048),
    st.builds(
        lambda env, replies: b"\n".join(env) + b"\n\n" + b"".join(r + b"\n" for r in replies),
        st.lists(env_line, min_size=1, max_size=8),
        st.lists(reply_line, max_size=12),
    ),
)


class Tally:
    """How many fuzzed inputs were parsed, and how many rejected with a typed error."""

    def __init__(self) -> None:
        self.parsed = 0
        self.rejected = 0


@pytest.fixture(scope="module")
def tally(figures: Figures) -> Iterator[Tally]:
    counts = Tally()
    yield counts
    figures.add(AREA, faults=counts.parsed + counts.rejected, refused=counts.rejected)


@FUZZ
@given(st.one_of(st.text(max_size=200), reply_line.map(lambda raw: raw.decode("utf-8", "replace"))))
def test_reply_parser_parses_or_rejects_with_a_typed_error(tally: Tally, line: str) -> None:
    try:
        reply = parse_reply(line)
    except AGIError:
        tally.rejected += 1
        return
    tally.parsed += 1
    assert isinstance(reply, AGIReply) and line.startswith("200 result=")


def _drive(channel: AGIChannel) -> None:
    """Run the commands the call flow uses until the peer's bytes run out."""
    channel.answer()
    channel.play("onerpa-greeting", escape_digits="12")
    channel.get_data("onerpa-topic-menu", 5000, 1)
    channel.set_variable("ONERPA_ROUTE", "queue")
    channel.get_variable("CHANNEL(language)")
    channel.wait_for_digit(100)
    channel.exec_app("Playback", "onerpa-goodbye")


@FUZZ
@given(session_bytes)
def test_agi_channel_reads_any_bytes_within_its_deadlines(tally: Tally, data: bytes) -> None:
    asterisk, ours = socket.socketpair()
    started = time.monotonic()
    try:
        asterisk.sendall(data)
        asterisk.shutdown(socket.SHUT_WR)  # then silence: the stream ends
        try:
            channel = AGIChannel.from_socket(
                ours, env_timeout=WIRE_TIMEOUT, command_timeout=WIRE_TIMEOUT
            )
        except AGIError:
            tally.rejected += 1
            return
        with channel:
            try:
                _drive(channel)
            except AGIError:
                tally.rejected += 1
                return
        tally.parsed += 1
    finally:
        ours.close()
        asterisk.close()
        assert time.monotonic() - started < NEVER_HANGS


@settings(max_examples=10, deadline=None, database=None)
@given(st.binary(max_size=200).filter(lambda data: b"\n\n" not in data))
def test_a_peer_that_stops_mid_environment_times_out(tally: Tally, data: bytes) -> None:
    asterisk, ours = socket.socketpair()
    try:
        asterisk.sendall(data)  # and then nothing, but the connection stays open
        started = time.monotonic()
        with pytest.raises(AGIError):
            AGIChannel.from_socket(ours, env_timeout=0.1)
        assert time.monotonic() - started < NEVER_HANGS
        tally.rejected += 1
    finally:
        ours.close()
        asterisk.close()


phone_like = st.from_regex(r"[+0 ]?[0-9 ()\-./]{4,24}", fullmatch=True)
russian = st.from_regex(r"(\+7|8|7)?[0-9]{10}", fullmatch=True)


@FUZZ
@given(st.one_of(st.text(max_size=80), st.binary(max_size=80), phone_like, russian))
def test_phone_parser_gives_none_or_a_stable_e164(tally: Tally, raw: str | bytes) -> None:
    e164 = normalize(raw)
    if e164 is None:
        tally.rejected += 1
        return
    tally.parsed += 1
    assert E164.fullmatch(e164), e164
    assert normalize(e164) == e164


# --- the live server -------------------------------------------------------------------------


class ErrorLog(logging.Handler):
    """Keeps every record at ERROR or above, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory, errors: ErrorLog) -> Iterator[Line]:
    engine = db.make_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'db.sqlite3'}")
    db.migrate(engine)
    with support_line(engine, THURSDAY_11) as support:
        yield support
    engine.dispose()


@settings(max_examples=60, deadline=None, database=None)
@given(session_bytes)
def test_fastagi_server_survives_any_bytes(line: Line, tally: Tally, data: bytes) -> None:
    with socket.create_connection(line.address, timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 5
        while sock.recv(65536):  # the server answers what it can, then hangs up
            assert time.monotonic() < deadline
    tally.rejected += 1


def test_fastagi_server_serves_a_call_after_the_fuzzing(
    line: Line, errors: ErrorLog, figures: Figures
) -> None:
    result = line.call("+7 495 123-45-67", keys=["2"])
    assert result.variables["ONERPA_ROUTE"] == "queue"
    assert [r.getMessage() for r in errors.records] == []
    count_calls(figures, AREA, [result])
