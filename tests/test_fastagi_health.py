"""``onerpa-support fastagi-health``: a real AGI round trip, as Asterisk makes one.

It passes against a serving FastAGI server (and says whether its database answers), fails
with a reason in Russian against one that is not there or accepts and never answers, and
never creates a call record.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, select

from ivr.app import build_services, close_services
from ivr.emulator import EmulatedCall
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.health import DatabaseState, Liveness
from ivr.routes import ROUTES
from onerpa.metrics import ProcessMetrics
from onerpa.models import Call
from onerpa.settings import Settings
from onerpa_support.cli import main
from tests.flowkit import Clock

MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)


@contextmanager
def fastagi(
    engine: Engine, *, allowed: tuple[str, ...] = ("127.0.0.1",), database_up: bool = True
) -> Iterator[tuple[FastAGIServer, CollectorRegistry]]:
    registry = CollectorRegistry()
    metrics = ProcessMetrics(registry=registry, scripts=ROUTES)
    services = build_services(Settings(), engine, clock=Clock(THURSDAY_11), metrics=metrics)
    database = DatabaseState()
    if database_up:
        database.mark_ready()
    server = FastAGIServer(
        ("127.0.0.1", 0), services, allowed=allowed, env_timeout=2.0, database=database
    )
    start_in_thread(server)
    try:
        yield server, registry
    finally:
        server.shutdown()
        server.server_close()
        close_services(services)


def health(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["fastagi-health", "--host", "127.0.0.1", *args])
    return result.exit_code, result.stdout, result.stderr


def calls_stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Call)).scalar_one()


def test_health_check_passes_against_a_serving_server_and_records_no_call(engine: Engine) -> None:
    with fastagi(engine) as (server, registry):
        code, out, err = health("--port", str(server.port))
        assert server.services.recorder.flush()
        sessions = registry.get_sample_value(
            "onerpa_support_agi_sessions_total", {"script": "call"}
        )
    assert (code, err) == (0, "")
    assert out == f"FastAGI-сервер 127.0.0.1:{server.port} отвечает; база данных доступна\n"
    assert calls_stored(engine) == 0
    assert not sessions  # not a call: the line's figures do not see it


def test_health_check_says_when_the_server_serves_without_its_database(engine: Engine) -> None:
    with fastagi(engine, database_up=False) as (server, _):
        code, out, _err = health("--port", str(server.port))
    assert code == 0  # degraded service is still service: nothing to restart
    assert "база данных недоступна: звонки решаются упрощённо" in out


def test_this_machine_may_check_health_where_only_asterisk_may_call(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # As in the compose stack: Asterisk arrives from the Docker gateway, the check from inside.
    with (
        caplog.at_level(logging.WARNING, logger="ivr.fastagi"),
        fastagi(engine, allowed=("172.30.0.1",)) as (server, _),
    ):
        code, _out, _err = health("--port", str(server.port))
        call = EmulatedCall(caller="+74951234567", keys=["2"]).run_fastagi(
            ("127.0.0.1", server.port)
        )
    assert code == 0
    assert call.commands == [] and "ONERPA_ROUTE" not in call.variables  # a call is refused
    assert "FastAGI connection from 127.0.0.1 refused: not an allowed address" in caplog.text
    assert calls_stored(engine) == 0


def test_health_check_fails_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out, err = health("--port", str(port), "--timeout", "2")
    assert (code, out) == (1, "")
    assert err.startswith(f"FastAGI-сервер 127.0.0.1:{port} не принимает соединения: ")


def test_health_check_fails_against_a_server_that_accepts_and_never_answers() -> None:
    # The kernel completes the connection for a listening socket nobody serves: a hung or
    # stopped process looks like this, and only a real AGI round trip tells.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        port = hung.getsockname()[1]
        code, out, err = health("--port", str(port), "--timeout", "1")
    assert (code, out) == (1, "")
    assert err == (
        f"FastAGI-сервер 127.0.0.1:{port} принял соединение, но не ответил за 1 с "
        "(процесс остановлен или завис; или адрес проверки не разрешён)\n"
    )


def test_a_server_whose_call_threads_deadlock_fails_its_checks_and_gives_up(
    engine: Engine,
) -> None:
    gave_up: list[str] = []
    with fastagi(engine) as (server, _):
        healthy = Liveness(
            lambda: server.self_check(1.0), lambda: "", environ={}, on_hung=gave_up.append
        )
        healthy.beat()
        assert (healthy.failures, gave_up) == (0, [])
        # A lock of the call pool that is never released: no call can be handed a thread.
        server.workers._lock.acquire()
        try:
            code, _out, err = health("--port", str(server.port), "--timeout", "1")
            hung = Liveness(
                lambda: server.self_check(1.0),
                lambda: "",
                environ={},
                on_hung=gave_up.append,
                interval=0.1,
                check_timeout=2.0,
            )
            hung.start()
            assert wait_until(lambda: bool(gave_up), timeout=30)
            hung.stop()
        finally:
            server.workers._lock.release()
    assert code == 1 and "не ответил за 1 с" in err
    assert gave_up == ["самопроверка не закончилась за 2 с"]


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)
    return condition()
