"""A call whose thread hangs is let go: Asterisk gets its socket back and the dialplan falls back.

The call flow is made to hang for real: the call recorder blocks forever, on a thread that
nothing will ever wake, when the call reaches its second step (after the greeting played).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from ivr.app import build_services, close_services
from ivr.emulator import EmulatedCall, in_thread
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.routes import ROUTES
from onerpa.demo import load_demo
from onerpa.metrics import ProcessMetrics
from onerpa.recorder import CallRecorder
from onerpa.settings import Settings
from tests.flowkit import Clock

MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
ENTITLED = "+7 495 123-45-67"
STALL = 1.0  # the watchdog's limit here; the greeting alone plays longer (speed below)
SPEED = 0.5  # prompts in half real time: the greeting lasts about 2.5 s


class HangingRecorder:
    """The call recorder, except that the first call to reach ``step`` hangs there for good."""

    def __init__(self, real: CallRecorder, step: str) -> None:
        self.real = real
        self.step = step
        self.hanging = threading.Event()
        self.release = threading.Event()  # set only when the test is over

    def record(self, call_ref: str, **fields: Any) -> None:
        if fields.get("step") == self.step and not self.hanging.is_set():
            self.hanging.set()
            self.release.wait()
        self.real.record(call_ref, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def line(engine: Engine) -> Iterator[tuple[FastAGIServer, HangingRecorder, CollectorRegistry]]:
    load_demo(engine)
    registry = CollectorRegistry()
    metrics = ProcessMetrics(registry=registry, scripts=ROUTES)
    services = build_services(Settings(), engine, clock=Clock(THURSDAY_11), metrics=metrics)
    hanging = HangingRecorder(services.recorder, "identify")
    services.recorder = hanging  # type: ignore[assignment]
    server = FastAGIServer(("127.0.0.1", 0), services, env_timeout=2.0, stall_seconds=STALL)
    start_in_thread(server)
    try:
        yield server, hanging, registry
    finally:
        hanging.release.set()
        server.shutdown()
        server.server_close()
        close_services(services)  # type: ignore[arg-type]


def test_a_hung_call_is_closed_so_the_dialplan_falls_back_and_the_next_call_is_served(
    line: tuple[FastAGIServer, HangingRecorder, CollectorRegistry],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, hanging, registry = line
    address = ("127.0.0.1", server.port)
    # Without the watchdog Asterisk would wait for the next command until the caller gave up:
    # the emulated Asterisk gives up after 20 s with EmulatorTimeout.
    call = EmulatedCall(caller=ENTITLED, keys=["2"], speed=SPEED, timeout=20)
    with caplog.at_level(logging.ERROR, logger="ivr.fastagi"):
        stuck = in_thread(call.run_fastagi, address).result(timeout=30)
    assert hanging.hanging.is_set()  # the flow really hung, and is hanging still
    assert "onerpa-greeting" in " ".join(stuck.prompts)  # a prompt longer than STALL is no stall
    assert stuck.connected and not stuck.hung_up
    assert stuck.status == "SUCCESS"  # AGI() returns as after a normal close...
    assert "ONERPA_ROUTE" not in stuck.variables  # ...with no route: [onerpa-fallback]
    uniqueid = stuck.env["agi_uniqueid"]
    assert f"uniqueid={uniqueid}" in caplog.text
    assert "без движения" in caplog.text
    stalled = registry.get_sample_value(
        "onerpa_support_agi_sessions_stalled_total", {"script": "call"}
    )
    assert stalled == 1.0

    # The hung thread is still held; the next caller gets a thread of their own.
    served = EmulatedCall(caller=ENTITLED, keys=["2"], speed=SPEED, timeout=20).run_fastagi(address)
    assert served.variables["ONERPA_ROUTE"] == "queue"
    assert not hanging.release.is_set()
