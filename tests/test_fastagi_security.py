"""FastAGI has no authentication: only configured Asterisk addresses are answered.

The server refuses, and logs, a peer outside ONERPA_FASTAGI_ALLOWED before reading a byte;
the ``fastagi`` command refuses to listen beyond loopback while only loopback is allowed.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from ivr.app import build_services, close_services
from ivr.cli import exposure_problem
from ivr.emulator import EmulatedCall
from ivr.fastagi import FastAGIServer, start_in_thread
from onerpa import db
from onerpa.models import Call
from onerpa.settings import Settings
from tests.flowkit import Clock

CLI = Path(sys.executable).with_name("onerpa-support")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=ZoneInfo("Europe/Moscow"))
LOOPBACK = ("127.0.0.1", "::1")


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'security.sqlite3'}")
    db.migrate(engine)
    yield engine
    engine.dispose()


@contextmanager
def fastagi(engine: Engine, host: str, allowed: tuple[str, ...]) -> Iterator[FastAGIServer]:
    services = build_services(Settings(), engine, clock=Clock(THURSDAY_11))
    server = FastAGIServer((host, 0), services, allowed=allowed, env_timeout=2.0)
    start_in_thread(server)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        close_services(services)


def calls_stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Call)).scalar_one()


def test_peer_outside_the_allowed_networks_is_refused_and_logged(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="ivr.fastagi"),
        fastagi(sqlite_engine, "127.0.0.1", ("10.0.0.0/8",)) as server,
    ):
        result = EmulatedCall(caller="+74951234567", keys=["2"]).run_fastagi(
            ("127.0.0.1", server.port)
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            assert sock.recv(1) == b""  # closed at once, before any AGI line
    assert result.commands == []
    assert "ONERPA_ROUTE" not in result.variables  # the dialplan would fall back
    assert "FastAGI connection from 127.0.0.1 refused: not an allowed address" in caplog.text
    assert calls_stored(sqlite_engine) == 0


def test_allowed_peer_is_served(sqlite_engine: Engine) -> None:
    with fastagi(sqlite_engine, "127.0.0.1", ("10.0.0.0/8", "127.0.0.1")) as server:
        result = EmulatedCall(caller="+74951234567", keys=["2"]).run_fastagi(
            ("127.0.0.1", server.port)
        )
        assert server.services.recorder.flush()
    assert result.variables["ONERPA_ROUTE"]
    assert calls_stored(sqlite_engine) == 1


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 on this machine")
def test_ipv4_peer_on_a_dual_stack_socket_is_matched_by_its_ipv4_address(
    sqlite_engine: Engine,
) -> None:
    with fastagi(sqlite_engine, "::", ("127.0.0.1",)) as server:
        result = EmulatedCall(caller="+74951234567", keys=["2"]).run_fastagi(
            ("127.0.0.1", server.port)
        )
    assert result.variables["ONERPA_ROUTE"]


@pytest.mark.parametrize(
    ("host", "allowed", "safe"),
    [
        ("127.0.0.1", LOOPBACK, True),
        ("::1", LOOPBACK, True),
        ("localhost", LOOPBACK, True),
        ("0.0.0.0", LOOPBACK, False),
        ("::", LOOPBACK, False),
        ("", LOOPBACK, False),
        ("10.0.0.5", ("127.0.0.0/8",), False),
        ("pbx-host.example", LOOPBACK, False),
        ("0.0.0.0", ("10.0.0.7",), True),
        ("10.0.0.5", ("127.0.0.1", "10.0.0.0/24"), True),
    ],
)
def test_exposure_is_judged_by_bind_address_and_allowed_peers(
    host: str, allowed: tuple[str, ...], safe: bool
) -> None:
    assert (exposure_problem(host, allowed) is None) is safe


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONERPA_")}
    env.pop("DATABASE_URL", None)
    env["ONERPA_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    env["ONERPA_FASTAGI_METRICS_PORT"] = "0"
    env.update(settings)
    return env


@pytest.mark.parametrize("allowed", [None, "127.0.0.1"])
def test_command_refuses_to_listen_beyond_loopback_with_only_loopback_allowed(
    tmp_path: Path, allowed: str | None
) -> None:
    env = _env(tmp_path, ONERPA_FASTAGI_HOST="0.0.0.0")
    if allowed:
        env["ONERPA_FASTAGI_ALLOWED"] = allowed
    done = subprocess.run(
        [str(CLI), "fastagi"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "Ошибка настройки: ONERPA_FASTAGI_HOST=0.0.0.0" in done.stderr
    assert "ONERPA_FASTAGI_ALLOWED допускает только loopback" in done.stderr
    assert not (tmp_path / "cli.sqlite3").exists()  # stopped before touching the database


def test_command_listens_beyond_loopback_once_asterisk_is_named(tmp_path: Path) -> None:
    env = _env(tmp_path, ONERPA_FASTAGI_HOST="0.0.0.0", ONERPA_FASTAGI_ALLOWED="10.0.0.7")
    port = _free_port()
    command = [str(CLI), "fastagi", "--port", str(port)]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 60
            line = ""
            while time.monotonic() < deadline and "FastAGI listening" not in line:
                line = proc.stderr.readline()
                assert line or proc.poll() is None, "the server stopped"
            assert f"FastAGI listening on 0.0.0.0:{port}" in line
        finally:
            proc.terminate()  # may come before the handler is installed: not what is tested
            proc.wait(timeout=30)
