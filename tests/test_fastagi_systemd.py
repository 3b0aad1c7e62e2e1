"""A hung FastAGI process is noticed: the health check fails and systemd stops hearing from it.

The ``fastagi`` command runs as a process of its own, as systemd starts it (``Type=notify``,
``WatchdogSec``): the test binds the notification socket systemd would. Stopped with
SIGSTOP, the process still has its port (the kernel accepts connections for it), so only
a check that waits for an AGI answer tells it is not serving.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = Path(sys.executable).with_name("onerpa-support")
BEAT = 0.5  # WATCHDOG_USEC of 1 s: a WATCHDOG=1 every half second


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONERPA_")}
    env.pop("NOTIFY_SOCKET", None)
    env.update(
        ONERPA_DATABASE_URL=f"sqlite:///{tmp_path / 'support.sqlite3'}",
        ONERPA_SECRET_KEY="k" * 40,
        ONERPA_FASTAGI_PORT=str(free_port()),
        ONERPA_FASTAGI_METRICS_PORT="0",
    )
    env.update(extra)
    return env


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """The datagram socket systemd listens on for sd_notify messages."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        yield sock


def messages(sock: socket.socket, seconds: float) -> list[str]:
    """Every notification line that arrives within ``seconds``."""
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            lines += sock.recv(4096).decode().splitlines()
        except TimeoutError:
            break
    return lines


def wait_for(sock: socket.socket, line: str, seconds: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while line not in seen and time.monotonic() < deadline:
        seen += messages(sock, min(1.0, deadline - time.monotonic()))
    assert line in seen, f"no {line} in {seconds} s: {seen}"
    return seen


def health(env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "fastagi-health", "--timeout", str(timeout)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_stopped_server_fails_its_health_check_and_stops_its_watchdog_beats(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    env = settings_env(tmp_path)
    server_env = {
        **env,
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "WATCHDOG_USEC": str(int(BEAT * 2 * 1_000_000)),
    }
    log = (tmp_path / "fastagi.log").open("wb")
    proc = subprocess.Popen([str(CLI), "fastagi"], env=server_env, stdout=log, stderr=log)
    try:
        seen = wait_for(notify_socket, "READY=1", 60)
        assert any(line.startswith("STATUS=звонки принимаются") for line in seen)
        beats = messages(notify_socket, BEAT * 5).count("WATCHDOG=1")
        assert beats >= 2
        serving = health(env, 5)
        assert serving.returncode == 0, serving.stderr
        assert "база данных доступна" in serving.stdout

        proc.send_signal(signal.SIGSTOP)
        stopped = health(env, 2)  # also lets the beats sent before the stop arrive
        messages(notify_socket, 0.2)  # drop them
        assert stopped.returncode == 1
        assert "принял соединение, но не ответил за 2 с" in stopped.stderr
        assert "WATCHDOG=1" not in messages(notify_socket, BEAT * 4)

        proc.send_signal(signal.SIGCONT)
        wait_for(notify_socket, "WATCHDOG=1", 30)
        again = health(env, 5)
        assert again.returncode == 0, again.stderr

        proc.send_signal(signal.SIGTERM)
        wait_for(notify_socket, "STOPPING=1", 30)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()
        log.close()
