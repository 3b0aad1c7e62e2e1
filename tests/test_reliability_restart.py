"""The FastAGI server dies with calls in progress and comes back on the same port.

The calls in its prompts lose their connection (the dialplan's fallback takes them on),
calls in the gap find the port closed (AGI fails: the fallback again), calls after the
restart are served, and the start-up sweep closes the interrupted calls as ``lost`` with
no end time.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from ivr.app import build_services, close_services
from ivr.emulator import EmulatedCall, in_thread
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.services import Services
from onerpa import sweep
from onerpa.demo import load_demo
from onerpa.models import Call
from onerpa.settings import Settings
from tests.flowkit import Clock
from tests.reliability_figures import Figures, call_refs, count_calls, missing_records

pytest_plugins = ["tests.reliability_figures"]

AREA = "restart"
MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
ENTITLED = "+7 495 123-45-67"
EXTENSIONS = Path(__file__).resolve().parents[1] / "asterisk" / "extensions.conf"
IN_PROGRESS = 3
IN_GAP = 2
AFTER = 3


class CrashableServer(FastAGIServer):
    """A FastAGI server whose process can die: connections and recorder stop at once."""

    def __init__(self, address: tuple[str, int], services: Services) -> None:
        super().__init__(address, services, env_timeout=2.0)
        self.connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self.connections.append(request)
        super().process_request(request, client_address)

    def crash(self) -> None:
        """Stop as a killed process does: nothing more is written, every socket is closed."""
        self.shutdown()
        self.server_close()
        close_services(self.services)  # what the dead process would still have written: none
        with self._lock:
            for sock in self.connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def serve(services: Services, port: int = 0) -> CrashableServer:
    server = CrashableServer(("127.0.0.1", port), services)
    start_in_thread(server)
    return server


def test_restart_mid_call_fallback_in_the_gap_service_after_and_the_sweep_closes_the_rest(
    engine: Engine, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    figures.backend(engine)
    load_demo(engine)
    clock = Clock(THURSDAY_11)
    first = serve(build_services(Settings(), engine, clock=clock))
    address = ("127.0.0.1", first.port)
    # Callers still listening to the greeting when the server dies.
    talking = [
        in_thread(EmulatedCall(caller=ENTITLED, keys=["2"], speed=0.3).run_fastagi, address)
        for _ in range(IN_PROGRESS)
    ]
    assert _wait_until(lambda: _count(engine, step="greeting") == IN_PROGRESS, timeout=5)
    first.crash()
    interrupted = [handle.result(timeout=10) for handle in talking]
    gap = [EmulatedCall(caller=ENTITLED, keys=["2"]).run_fastagi(address) for _ in range(IN_GAP)]

    second_services = build_services(Settings(), engine, clock=clock)
    second = FastAGIServer(("127.0.0.1", first.port), second_services, env_timeout=2.0)
    start_in_thread(second)
    try:
        swept = sweep.sweep_at_start(engine, second_services.server, clock())
        after = [
            EmulatedCall(caller=ENTITLED, keys=["2"]).run_fastagi(address) for _ in range(AFTER)
        ]
        assert second_services.recorder.flush()
    finally:
        second.shutdown()
        second.server_close()
        close_services(second_services)

    for result in interrupted:
        assert result.connected and "ONERPA_ROUTE" not in result.variables  # -> fallback
        assert not result.hung_up
    for result in gap:
        assert (result.status, result.connected) == ("FAILURE", False)  # -> fallback
    for result in after:
        assert result.variables["ONERPA_ROUTE"] == "queue"
        assert result.variables["ONERPA_DECISION"] == "free_first_year"
    assert swept == IN_PROGRESS
    with engine.connect() as conn:
        rows = conn.execute(
            select(Call.status, Call.ended_at, Call.ended_by).where(
                Call.call_ref.in_(call_refs(interrupted))
            )
        ).all()
    assert rows == [("lost", None, "sweep")] * IN_PROGRESS
    assert missing_records(engine, call_refs(interrupted + after)) == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    figures.add(AREA, faults=1)
    count_calls(figures, AREA, interrupted, crashed=True)
    count_calls(figures, AREA, gap + after)


def test_dialplan_falls_back_when_the_route_stays_empty() -> None:
    """The dialplan half of the fault: an empty ONERPA_ROUTE leads to [onerpa-fallback]."""
    conf = EXTENSIONS.read_text(encoding="utf-8")
    inbound = _context(conf, "onerpa-inbound")
    agi = inbound.index("AGI(agi://${ONERPA_FASTAGI}/call)")
    route = inbound.index("GotoIf(${EXISTS(${ONERPA_ROUTE})}?onerpa-route,${ONERPA_ROUTE},1)", agi)
    assert inbound.index("Goto(onerpa-fallback,s,1)", route) > route
    fallback = _context(conf, "onerpa-fallback")
    assert "Set(ONERPA_DECISION=fallback)" in fallback
    assert "Goto(onerpa-route,queue,1)" in fallback  # in hours: to the people
    assert "Playback(onerpa-closed&onerpa-hours&onerpa-closed-email)" in fallback  # out of hours


def _context(conf: str, name: str) -> str:
    match = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", conf, re.M | re.S)
    assert match is not None, f"no [{name}] in extensions.conf"
    return match.group(1)


def _count(engine: Engine, **where: str) -> int:
    query = select(Call.id)
    for name, value in where.items():
        query = query.where(getattr(Call, name) == value)
    with engine.connect() as conn:
        return len(conn.execute(query).all())


def _wait_until(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
