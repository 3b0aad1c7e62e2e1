"""Resource bounds of the FastAGI server: abrupt drops and idle peers leave nothing behind.

10,000 connections are opened and reset at once (SO_LINGER 0), and 1,000 connections are
held open without a word. Threads and memory come back to where they started, every idle
connection is closed by the server after its ``env_timeout``, and a real call is served
afterwards.
"""

from __future__ import annotations

import gc
import logging
import resource
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.app import build_services, close_services
from ivr.emulator import CallResult, EmulatedCall
from ivr.fastagi import FastAGIServer, start_in_thread
from onerpa import db
from onerpa.settings import Settings
from tests.flowkit import Clock
from tests.reliability_figures import Figures, count_calls

pytest_plugins = ["tests.reliability_figures"]

AREA = "resources"
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=ZoneInfo("Europe/Moscow"))  # line open
DROPPED = 10_000
IDLE = 1_000
BATCH = 250
ENV_TIMEOUT = 1.0
THREAD_SLACK = 3  # a look-up worker or two may start for the closing call
RSS_SLACK_KB = 40 * 1024  # allocator arenas; a leak of 4 kB per connection would show


@pytest.fixture
def server(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[FastAGIServer]:
    """A FastAGI server with a short environment timeout, on an empty SQLite database."""
    # Each dropped or silent peer is a warning by design; thousands of them are noise here.
    caplog.set_level(logging.ERROR, logger="ivr.fastagi")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'resources.sqlite3'}")
    db.migrate(engine)
    services = build_services(Settings(), engine, clock=Clock(THURSDAY_11), lookup_workers=2)
    fastagi = FastAGIServer(("127.0.0.1", 0), services, env_timeout=ENV_TIMEOUT)
    start_in_thread(fastagi)
    yield fastagi
    fastagi.shutdown()
    fastagi.server_close()
    close_services(services)
    engine.dispose()


def rss_kb() -> int:
    """Return this process's resident memory in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def baseline() -> tuple[int, int]:
    gc.collect()
    return threading.active_count(), rss_kb()


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def settled(server: FastAGIServer, threads: int) -> bool:
    return server.active == 0 and threading.active_count() <= threads + THREAD_SLACK


def a_call_is_served(server: FastAGIServer) -> list[CallResult]:
    result = EmulatedCall(caller="", keys=["", ""]).run_fastagi(("127.0.0.1", server.port))
    assert result.variables["ONERPA_ROUTE"] == "unknown"
    return [result]


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.slow
def test_ten_thousand_abrupt_drops_leave_threads_and_memory_at_baseline(
    server: FastAGIServer, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    a_call_is_served(server)  # warm up: first-call imports and pools are not a leak
    threads, rss = baseline()
    address = ("127.0.0.1", server.port)
    for _ in range(DROPPED // BATCH):
        batch = [socket.create_connection(address, timeout=5) for _ in range(BATCH)]
        for sock in batch:
            _reset(sock)
        wait_until(lambda: server.active < BATCH, timeout=5)  # keep the backlog bounded
    assert wait_until(lambda: settled(server, threads), timeout=15), (
        f"{server.active} sessions, {threading.active_count()} threads (was {threads})"
    )
    grown = baseline()[1] - rss
    print(f"\n{DROPPED} drops: threads {threads} -> {threading.active_count()}, RSS +{grown} kB")
    assert grown < RSS_SLACK_KB
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    results = a_call_is_served(server)
    figures.add(AREA, faults=DROPPED)
    count_calls(figures, AREA, results * 2)


@pytest.mark.slow
def test_a_thousand_idle_connections_are_timed_out_and_leave_nothing_behind(
    server: FastAGIServer, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3 * IDLE + 256  # both ends of every connection, and the rest of the process
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    a_call_is_served(server)
    threads, rss = baseline()
    address = ("127.0.0.1", server.port)
    idle: list[socket.socket] = []
    try:
        idle.extend(socket.create_connection(address, timeout=5) for _ in range(IDLE))
        opened = time.monotonic()
        peak = Peak(server)
        closed, last_close = _wait_for_closes(idle, timeout=ENV_TIMEOUT + 10, tick=peak.sample)
    finally:
        for sock in idle:
            sock.close()
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert closed == IDLE  # every silent peer was hung up on by the server
    assert last_close - opened >= ENV_TIMEOUT * 0.8  # ...after its timeout, not before
    assert wait_until(lambda: settled(server, threads), timeout=10), (
        f"{server.active} sessions, {threading.active_count()} threads (was {threads})"
    )
    grown = baseline()[1] - rss
    now = threading.active_count()
    print(
        f"\n{IDLE} idle: up to {peak.sessions} held at once; "
        f"threads {threads} -> {peak.threads} -> {now}, RSS +{grown} kB"
    )
    assert peak.sessions >= IDLE // 2  # they really were held open together
    assert grown < RSS_SLACK_KB
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    results = a_call_is_served(server)
    figures.add(AREA, faults=IDLE, refused=closed)
    count_calls(figures, AREA, results * 2)


class Peak:
    """The most sessions and threads seen at once."""

    def __init__(self, server: FastAGIServer) -> None:
        self.server = server
        self.sessions = 0
        self.threads = 0

    def sample(self) -> None:
        self.sessions = max(self.sessions, self.server.active)
        self.threads = max(self.threads, threading.active_count())


def _wait_for_closes(
    socks: list[socket.socket], timeout: float, tick: Callable[[], None]
) -> tuple[int, float]:
    """Wait until the server has closed every socket; return how many it did, and when last."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP)
    closed, last = 0, time.monotonic()
    deadline = time.monotonic() + timeout
    while by_fd and time.monotonic() < deadline:
        tick()
        for fd, _ in poller.poll(20):
            sock = by_fd.pop(fd, None)
            if sock is None:
                continue
            poller.unregister(fd)
            try:
                data = sock.recv(1)
            except OSError:
                data = b""
            if data == b"":
                closed += 1
                last = time.monotonic()
    return closed, last
