"""Read the queue recordings of a real Asterisk (``tests/data/asterisk/queue``) for replay."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

QUEUE_DIR = Path(__file__).resolve().parent / "data" / "asterisk" / "queue"
_RULE = "=" * 100


@dataclass
class Session:
    """One FastAGI session of a recording: when it was accepted, its env and variables."""

    name: str
    accepted: datetime
    env: dict[str, str]
    variables: dict[str, str] = field(default_factory=dict)  # the KEY=value arguments


@dataclass
class Scenario:
    name: str
    queue_log: list[str]
    sessions: dict[str, Session]
    ami: list[dict[str, str]]

    def ami_event(self, event: str) -> dict[str, str]:
        return next(block for block in self.ami if block.get("Event") == event)


def load(name: str) -> Scenario:
    """Return the recording ``name`` (e.g. ``scenario_6a_agi_completecaller``)."""
    text = (QUEUE_DIR / f"{name}.txt").read_text(encoding="utf-8")
    return Scenario(name, _queue_log(text), _sessions(text), _ami(text))


def queue_log_file() -> list[str]:
    """Return the lines of queue_log_all.txt below its '# ---' line, newlines kept."""
    text = (QUEUE_DIR / "queue_log_all.txt").read_text(encoding="utf-8")
    return text.split("# ---\n", 1)[1].splitlines(keepends=True)


def _section(text: str, title: str) -> str:
    start = text.find(f"\n{title}")
    if start < 0:
        return ""
    parts = text[start:].split(_RULE, 1)
    return parts[1] if len(parts) > 1 else ""


def _queue_log(text: str) -> list[str]:
    body = _section(text, "QUEUE_LOG:").split(_RULE, 1)[0]
    return [line + "\n" for line in body.splitlines() if re.match(r"^\d+\|", line)]


def _sessions(text: str) -> dict[str, Session]:
    body = _section(text, "FASTAGI SESSIONS").split(_RULE, 1)[0]
    sessions = {}
    for chunk in body.split("----- connection: ")[1:]:
        name = chunk.split(".log", 1)[0]
        accepted = float(re.search(r"ACCEPT epoch=([\d.]+)", chunk)[1])  # type: ignore[index]
        env_text = chunk.split("--- env block as received (bytes decoded as UTF-8) ---\n", 1)[1]
        env = {}
        for line in env_text.split("\n\n", 1)[0].splitlines():
            key, _, value = line.partition(": ")
            env[key] = value
        variables = {}
        for key, value in env.items():
            if key.startswith("agi_arg_") and "=" in value:
                var, _, var_value = value.partition("=")
                variables[var] = var_value
        sessions[name] = Session(name, datetime.fromtimestamp(accepted, UTC), env, variables)
    return sessions


def _ami(text: str) -> list[dict[str, str]]:
    body = _section(text, "AMI RAW EVENT BLOCKS")
    blocks = []
    for chunk in body.strip().split("\n\n"):
        block = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(": ")
            if sep:
                block[key] = value
        if "Event" in block:
            blocks.append(block)
    return blocks


def utc(epoch: str | float) -> datetime:
    """Return the moment of an epoch as Asterisk prints it (``1795696812.131103``)."""
    return datetime.fromtimestamp(float(epoch), UTC)
