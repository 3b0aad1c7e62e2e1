"""Read the AGI recordings of a real Asterisk (tests/data/asterisk): events, environment."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TRANSCRIPTS = Path(__file__).resolve().parent / "data" / "asterisk"

_EVENT = re.compile(r"^\+\s+\d+\.\d+\s+(?P<kind>RX|TX|SIGNAL|##) (?P<rest>.*)$")
_COMPLETED = re.compile(r"AGI Script (?P<request>\S+) completed, returning (?P<code>-?\d+)")
# res_agi.c's enum agi_result as Asterisk 22 logs it.
_STATUS_CODES = {"-1": "FAILURE", "0": "SUCCESS", "4": "HANGUP"}


@dataclass(frozen=True)
class Event:
    """One line of a raw peer log: RX/TX bytes, EOF, SHUT_WR (our half-close) or SIGHUP."""

    kind: str
    data: bytes = b""


@dataclass(frozen=True)
class Transcript:
    """One recording: its full text and the byte-level events of the AGI peer."""

    name: str
    text: str
    events: tuple[Event, ...]

    @property
    def received(self) -> bytes:
        """Every byte Asterisk sent, in order."""
        return b"".join(event.data for event in self.events if event.kind == "RX")

    @property
    def env_block(self) -> bytes:
        """The environment block, up to and including its empty line."""
        received = self.received
        return received[: received.index(b"\n\n") + 2]

    @property
    def env(self) -> dict[str, str]:
        """The environment block as a dict."""
        return parse_env(self.env_block)

    @property
    def after_env(self) -> list[Event]:
        """The events after the environment block (which always ends an RX chunk)."""
        seen, size = 0, len(self.env_block)
        for index, event in enumerate(self.events):
            if event.kind == "RX":
                seen += len(event.data)
            if seen >= size:
                assert seen == size, "the environment block shares a chunk with a reply"
                return list(self.events[index + 1 :])
        raise AssertionError(f"{self.name}: no complete environment block")

    @property
    def sighups(self) -> int:
        """SIGHUPs the classic script received."""
        return sum(event.kind == "SIGHUP" for event in self.events)

    def agistatus(self) -> str | None:
        """The AGISTATUS Asterisk logged for this AGI (from 'completed, returning N')."""
        request = self.env["agi_request"]
        for match in _COMPLETED.finditer(self.text):
            if match["request"] == request:
                return _STATUS_CODES[match["code"]]
        return None


def parse_env(block: bytes) -> dict[str, str]:
    """Parse 'key: value' lines of an environment block."""
    env = {}
    for line in block.decode("utf-8").split("\n"):
        if line:
            key, _, value = line.partition(": ")
            env[key] = value
    return env


@cache
def load(name: str) -> Transcript:
    """Load one transcript by its file name (with or without .txt)."""
    path = TRANSCRIPTS / (name if name.endswith(".txt") else name + ".txt")
    text = path.read_text(encoding="utf-8")
    raw_log = text.split("ASTERISK LOG EXCERPT", 1)[0]
    events = [event for line in raw_log.splitlines() if (event := _event(line))]
    return Transcript(path.stem, text, tuple(events))


def _event(line: str) -> Event | None:
    match = _EVENT.match(line)
    if match is None:
        return None
    kind, rest = match["kind"], match["rest"]
    if kind in ("RX", "TX") and rest.startswith("b"):
        return Event(kind, ast.literal_eval(rest))
    if kind == "RX" and rest.startswith("EOF"):
        return Event("EOF")
    if kind == "SIGNAL" and rest.startswith("SIGHUP"):
        return Event("SIGHUP")
    if kind == "##" and rest.startswith("shutdown(SHUT_WR)"):
        return Event("SHUT_WR")
    return None


def names(prefix: str) -> list[str]:
    """Names of the recordings whose file name starts with prefix."""
    return sorted(path.stem for path in TRANSCRIPTS.glob(f"{prefix}*.txt"))


def reply_lines() -> list[bytes]:
    """Every distinct line Asterisk sent after the environment blocks, across recordings."""
    lines: set[bytes] = set()
    for name in names("fastagi_") + names("classic_"):
        transcript = load(name)
        rest = transcript.received[len(transcript.env_block) :]
        lines.update(line for line in rest.split(b"\n") if line)
    return sorted(lines)


RECORD_TRANSCRIPTS = TRANSCRIPTS / "record"
_RUN = re.compile(r"^RUN '(?P<name>[^']+)'", re.MULTILINE)


@cache
def record_runs(name: str) -> dict[str, Transcript]:
    """The runs of one RECORD FILE recording (tests/data/asterisk/record), by run name.

    Each file holds one or more calls, each under a ``RUN '<name>'`` heading.
    """
    path = RECORD_TRANSCRIPTS / (name if name.endswith(".txt") else name + ".txt")
    text = path.read_text(encoding="utf-8")
    heads = list(_RUN.finditer(text))
    runs = {}
    for head, following in zip(heads, [*heads[1:], None], strict=True):
        part = text[head.start() : following.start() if following else len(text)]
        events = [event for line in part.splitlines() if (event := _event(line))]
        runs[head["name"]] = Transcript(f"{path.stem}:{head['name']}", part, tuple(events))
    return runs
