"""Is the FastAGI server serving? Its health check, its database, and systemd's watchdog.

- **The health check** is a real AGI round trip: ``onerpa-support fastagi-health`` connects
  as Asterisk does, asks for the script ``health``, and answers the server's commands as
  Asterisk would. The server answers it on a call thread like any call, but records
  nothing: it sets ``ONERPA_HEALTH=ok`` and ``ONERPA_HEALTH_DATABASE=up|down``. A process
  that accepts connections but answers none (stopped, its threads stuck) fails it, which
  a TCP connect alone would not notice: the kernel accepts for a stopped process too.
- **The database** may be away when the server starts, or later: the server still decides
  calls (degraded: hours and the production calendar apply, the caller goes to an agent
  unchecked) and keeps the records in memory. ``DatabaseWatch`` connects and checks the
  schema in the background, then lets the records be written and the sweeps start.
- **Liveness**: the server checks itself (the accept loop turns, a health session completes
  on a call thread). systemd (``Type=notify``, ``WatchdogSec=``) hears ``READY=1`` and then
  ``WATCHDOG=1`` only while that passes, and kills a process that stops sending; a process
  whose self-check fails three times in a row ends itself, for Docker's restart policy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, text

from ivr.agi import AGIChannel
from ivr.emulator import EmulatedCall, EmulatorError
from onerpa import startup

log = logging.getLogger(__name__)

HEALTH_SCRIPT = "health"  # agi://host:port/health
VAR_HEALTH = "ONERPA_HEALTH"  # "ok"
VAR_HEALTH_DATABASE = "ONERPA_HEALTH_DATABASE"  # "up" or "down"
UP, DOWN = "up", "down"


# --- the database ------------------------------------------------------------------------


class DatabaseState:
    """Whether the server's database is usable: schema checked once, and answering now."""

    def __init__(self) -> None:
        self.ready = threading.Event()  # schema checked and start-up sweep done: records may go
        self._answering = False

    @property
    def up(self) -> bool:
        return self.ready.is_set() and self._answering

    @property
    def label(self) -> str:
        return UP if self.up else DOWN

    def mark_ready(self) -> None:
        self._answering = True
        self.ready.set()

    def mark_answering(self, answering: bool) -> None:
        self._answering = answering


class DatabaseWatch:
    """Connect and check the schema in the background, then keep checking the database answers.

    Tries again after ``first_delay`` seconds, doubling up to ``max_delay``. Once the schema
    is checked, ``on_ready`` runs (the start-up sweep) before the state says ready.
    """

    def __init__(
        self,
        engine: Engine,
        state: DatabaseState,
        *,
        on_ready: Callable[[], None],
        stop: threading.Event,
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        ping_every: float = 15.0,
    ) -> None:
        self.engine = engine
        self.state = state
        self.on_ready = on_ready
        self.stop = stop
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.ping_every = ping_every
        self._thread = threading.Thread(target=self._run, name="database-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def try_once(self) -> None:
        """Migrate (or check) the schema and run ``on_ready``; raise what failed."""
        startup.migrate_database(self.engine)
        self.on_ready()
        self.state.mark_ready()

    def _run(self) -> None:
        delay, tries, started = self.first_delay, 0, time.monotonic()
        while not self.state.ready.is_set():
            if self.stop.wait(delay):
                return
            tries += 1
            try:
                self.try_once()
            except Exception as err:  # the database away, or wrong: retried either way
                _log_failure(err, tries, time.monotonic() - started)
                delay = min(delay * 2, self.max_delay)
                continue
            log.warning(
                "база данных доступна (через %.0f с, попыток: %d): схема проверена, записи "
                "звонков пишутся, звонки снова проверяются по базе",
                time.monotonic() - started,
                tries,
            )
        while not self.stop.wait(self.ping_every):
            self._ping()

    def _ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as err:  # noted, and seen in the metrics and the health check
            if self.state.up:
                log.warning("база данных не отвечает: %s", _first_line(err))
            self.state.mark_answering(False)
        else:
            if not self.state.up:
                log.warning("база данных снова отвечает")
            self.state.mark_answering(True)


def _log_failure(err: BaseException, tries: int, elapsed: float) -> None:
    if not startup.database_unreachable(err):
        log.error("база данных отвечает, но не годится (попытка %d): %s", tries, _first_line(err))
    elif tries == 1 or tries % 10 == 0:
        log.warning(
            "база данных всё ещё недоступна (%.0f с, попыток: %d): %s",
            elapsed,
            tries,
            _first_line(err),
        )


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


# --- the health check: the server's side and the checker's ---------------------------------


def answer(channel: AGIChannel, database: DatabaseState | None) -> None:
    """Answer a health check on ``channel``: a round trip per variable, nothing recorded."""
    channel.set_variable(VAR_HEALTH, "ok")
    channel.set_variable(VAR_HEALTH_DATABASE, database.label if database else UP)


@dataclass(frozen=True)
class Probe:
    """What a health check found: ``ok``, why not, and the database's state."""

    ok: bool
    reason: str
    database: str | None = None


def probe(address: tuple[str, int], timeout: float) -> Probe:
    """Check the FastAGI server at ``address`` as Asterisk would reach it, within ``timeout``."""
    where = f"{address[0]}:{address[1]}"
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection(address, timeout=timeout)
    except OSError as err:
        return Probe(
            False, f"FastAGI-сервер {where} не принимает соединения: {err.strerror or err}"
        )
    return probe_socket(sock, max(0.01, deadline - time.monotonic()), where)


def probe_socket(sock: socket.socket, timeout: float, where: str) -> Probe:
    """Play Asterisk asking for ``health`` on a connected ``sock``; it ends by ``timeout``."""
    # Whatever the server does, the check ends in time: the socket is shut at the deadline.
    cut = threading.Timer(timeout, _shut, (sock,))
    cut.daemon = True
    cut.start()
    try:
        result = EmulatedCall(timeout=timeout + 1).run_on_socket(sock, script=HEALTH_SCRIPT)
    except EmulatorError as err:
        return Probe(False, f"FastAGI-сервер {where} ответил не по протоколу AGI: {err}")
    finally:
        cut.cancel()
    if result.variables.get(VAR_HEALTH) == "ok":
        return Probe(
            True, f"FastAGI-сервер {where} отвечает", result.variables.get(VAR_HEALTH_DATABASE)
        )
    if result.commands:
        return Probe(False, f"FastAGI-сервер {where} ответил не на проверку: {result.commands[0]}")
    return Probe(
        False,
        f"FastAGI-сервер {where} принял соединение, но не ответил за {round(timeout, 1):g} с "
        "(процесс остановлен или завис; или адрес проверки не разрешён)",
    )


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# --- systemd ------------------------------------------------------------------------------


def sd_notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``message`` to systemd's $NOTIFY_SOCKET; return False when there is none."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(message.encode("utf-8"), address)
        except OSError as err:
            log.warning("systemd не получил уведомление %r: %s", message.split("\n")[0], err)
            return False
    return True


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """Return how often to send WATCHDOG=1 (half of WatchdogSec), or None without a watchdog."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = environ.get("WATCHDOG_PID", "")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000


SELF_CHECK_SECONDS = 15.0  # without systemd's watchdog, how often the server checks itself
HUNG_AFTER_FAILURES = 3  # self-checks failed in a row before the process gives up


def _exit_hung(problem: str) -> None:
    log.critical("FastAGI-сервер не обслуживает звонки (%s): процесс завершается", problem)
    logging.shutdown()
    os._exit(70)  # EX_SOFTWARE; threads that hang cannot be joined, so no clean exit


class Liveness:
    """Check the server now and then; tell systemd it lives only while it serves.

    ``check`` returns None when the server serves, else why not; ``status`` is the one line
    ``systemctl status`` shows. Under systemd (``$NOTIFY_SOCKET``) the first pass sends
    READY=1 and every later one WATCHDOG=1 (half of ``WatchdogSec``): a process that stops
    passing is killed by systemd. After ``HUNG_AFTER_FAILURES`` failures in a row the process
    ends itself (``on_hung``), so that a restart policy without a watchdog (Docker's
    ``restart:``) brings it back too.
    """

    def __init__(
        self,
        check: Callable[[], str | None],
        status: Callable[[], str],
        *,
        environ: Mapping[str, str] = os.environ,
        on_hung: Callable[[str], None] = _exit_hung,
        interval: float | None = None,
        check_timeout: float = 10.0,
    ) -> None:
        self.check = check
        self.status = status
        self.environ = environ
        self.on_hung = on_hung
        self.check_timeout = check_timeout
        self.interval = interval or watchdog_interval(environ) or SELF_CHECK_SECONDS
        self.ready = False
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liveness", daemon=True)

    @property
    def notifying(self) -> bool:
        return bool(self.environ.get("NOTIFY_SOCKET"))

    def start(self) -> None:
        """Check now (READY=1 under systemd if it passes), then every ``interval`` seconds."""
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop checking and tell systemd the server is stopping."""
        self._stop.set()
        if self.notifying:
            sd_notify("STOPPING=1", self.environ)

    def beat(self) -> None:
        """Run the self-check once and act on its result."""
        problem = self._check_within(self.check_timeout)
        if problem is not None:
            self.failures += 1
            log.error(
                "самопроверка FastAGI не прошла (%d подряд), WATCHDOG=1 не отправлен: %s",
                self.failures,
                problem,
            )
            if self.failures >= HUNG_AFTER_FAILURES:
                self.on_hung(problem)
            return
        if self.failures:
            log.warning("самопроверка FastAGI снова проходит")
            self.failures = 0
        if self.notifying:
            state = "WATCHDOG=1" if self.ready else "READY=1"
            self.ready = sd_notify(f"{state}\nSTATUS={self.status()}", self.environ) or self.ready

    def _check_within(self, timeout: float) -> str | None:
        """Run ``check`` on a thread of its own: a check that hangs is a failed check."""
        found: list[str | None] = []
        thread = threading.Thread(
            target=lambda: found.append(self.check()), name="self-check", daemon=True
        )
        thread.start()
        thread.join(timeout)
        if not found:
            return f"самопроверка не закончилась за {timeout:g} с"
        return found[0]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
