"""A support line on loopback for tests: demo customers, a FastAGI server, a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from ivr.app import build_services, close_services
from ivr.emulator import CallResult, EmulatedCall
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.services import Services
from onerpa.demo import load_demo
from onerpa.models import Call
from onerpa.settings import Settings


@dataclass
class Clock:
    """A clock the test sets; the flow reads it like the system clock."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Line:
    """The support line under test."""

    engine: Engine
    services: Services
    server: FastAGIServer
    clock: Clock
    results: list[CallResult] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server.port)

    def call(self, caller: str = "", **options: Any) -> CallResult:
        """Place one emulated call and wait until its record is written."""
        result = EmulatedCall(caller=caller, **options).run_fastagi(self.address)
        assert self.services.recorder.flush(), "call record not written in time"
        self.results.append(result)
        return result

    def record(self, result: CallResult) -> Call:
        """Return the stored call that ``result`` was."""
        ref = result.variables.get("ONERPA_CALL_ID") or _ref_from_commands(result)
        with self.engine.connect() as conn:
            row = conn.execute(select(Call.__table__).where(Call.call_ref == ref)).one()
        return row  # type: ignore[return-value]


def _ref_from_commands(result: CallResult) -> str:
    for command in result.commands:
        if command.startswith("SET VARIABLE") and "ONERPA_CALL_ID" in command:
            return command.split('"')[3]
    raise AssertionError("the call never said its call id")


@contextmanager
def support_line(engine: Engine, at: datetime, settings: Settings | None = None) -> Iterator[Line]:
    """Run a FastAGI server with the demo customers, its clock stopped at ``at``."""
    load_demo(engine)
    clock = Clock(at)
    settings = settings or Settings()
    services = build_services(settings, engine, clock=clock)
    server = FastAGIServer(("127.0.0.1", 0), services, env_timeout=2.0)
    start_in_thread(server)
    try:
        yield Line(engine, services, server, clock)
    finally:
        server.shutdown()
        server.server_close()
        close_services(services)


def with_sales(settings: Settings, extension: str = "200") -> Settings:
    return replace(settings, sales_extension=extension)
