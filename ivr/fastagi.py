"""The FastAGI server: one long-lived process, a thread per call, no per-call start-up.

Each call has a thread of its own, taken from threads that finished earlier calls
(``ivr.workers``) rather than started anew for every connection.

FastAGI has no authentication, so the server listens on loopback by default and answers
only the Asterisk addresses it is told to trust; anyone else is refused and logged. The one
exception is the health check (``ivr.health``): this machine (loopback) may always ask for
the script ``health``, which says only whether the server and its database answer. Every
read has a timeout: a peer that connects and says nothing is closed after ``env_timeout``;
a call the server itself stops moving is closed by the watchdog (``ivr.watchdog``).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Iterable

from ivr import health
from ivr.agi import AGIChannel, AGIError
from ivr.runner import run_session
from ivr.services import Services
from ivr.watchdog import STALL_SECONDS, CallWatchdog, WatchedSocket
from ivr.workers import Workers

log = logging.getLogger(__name__)

# Calls spend their life blocked on the socket; a small stack lets a 2-core box hold
# thousands of them open at once.
THREAD_STACK_BYTES = 512 * 1024
LOOP_STALE_SECONDS = 10.0  # the accept loop wakes every 0.5 s; silent this long, it is stuck
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class FastAGIServer(socketserver.TCPServer):
    """A TCP server that runs an AGI session, on a thread of its own, per allowed connection."""

    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        services: Services,
        *,
        allowed: Iterable[str] = ("127.0.0.1", "::1"),
        env_timeout: float = 5.0,
        stall_seconds: float = STALL_SECONDS,
        database: health.DatabaseState | None = None,
    ) -> None:
        self.address_family = _family(address[0])
        self.services = services
        self.allowed = tuple(ipaddress.ip_network(a, strict=False) for a in allowed)
        self.env_timeout = env_timeout
        self.database = database
        self.active = 0
        self.loop_seen = time.monotonic()
        self._active_lock = threading.Lock()
        self.workers = Workers(name="fastagi-call")
        self.watchdog = CallWatchdog(stall_seconds, on_stall=self._stalled)
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def verify_request(self, request, client_address) -> bool:  # type: ignore[no-untyped-def]
        """Refuse, and log, a peer that is neither a configured Asterisk nor this machine."""
        if is_allowed(client_address[0], self.allowed + _LOOPBACK):
            return True  # loopback that is not allowed may ask for the health check only
        _refused(client_address[0])
        return False

    def service_actions(self) -> None:
        """Note that the accept loop runs (it calls this every half second)."""
        self.loop_seen = time.monotonic()

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """Hand the connection to a call thread; the accepting thread goes back to accept."""
        self.workers.run(self._process_in_thread, request, client_address)

    def _process_in_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        """Stop listening; threads waiting for a call end, calls in progress go on."""
        super().server_close()
        self.workers.close()
        self.watchdog.close()

    def serve_connection(self, sock: socket.socket, peer: str, *, trusted: bool = False) -> None:
        """Run one AGI session on ``sock``, under the watchdog."""
        with self._active_lock:
            self.active += 1
        watched = self.watchdog.watch(sock, peer)
        try:
            channel = AGIChannel.from_socket(watched, env_timeout=self.env_timeout)  # type: ignore[arg-type]
        except AGIError as err:
            if trusted or is_allowed(peer, self.allowed):
                log.warning("FastAGI connection from %s closed: %s", peer, err)
            else:  # let in only to ask for the health check, and it did not even do that
                _refused(peer)
        else:
            try:
                self._serve(channel, watched, trusted)
            finally:
                channel.close()
        finally:
            self.watchdog.forget(watched)
            with self._active_lock:
                self.active -= 1

    def _serve(self, channel: AGIChannel, watched: WatchedSocket, trusted: bool) -> None:
        script = watched.script = channel.script
        env = channel.env
        watched.label = (
            f"{script or '?'} uniqueid={env.get('agi_uniqueid', '?')} "
            f"канал={env.get('agi_channel', '?')} от {watched.peer}"
        )
        if script == health.HEALTH_SCRIPT:
            try:
                health.answer(channel, self.database)
            except AGIError as err:
                log.warning("health check from %s ended early: %s", watched.peer, err)
        elif trusted or is_allowed(watched.peer, self.allowed):
            run_session(channel, self.services)
        else:
            _refused(watched.peer)

    def _stalled(self, watched: WatchedSocket) -> None:
        log.error(
            "AGI-сессия %s без движения %.0f с: соединение закрыто, вызов уходит в запасной "
            "маршрут диалплана (поток вызова брошен)",
            watched.label,
            self.watchdog.limit,
        )
        self.services.metrics.session_stalled(watched.script)

    def self_check(self, timeout: float = 5.0) -> str | None:
        """Return None when the accept loop runs and a health session completes; else why not.

        The session runs on a call thread over a socket pair, the same code as a call's.
        """
        silent = time.monotonic() - self.loop_seen
        if silent > LOOP_STALE_SECONDS:
            return f"цикл приёма соединений молчит {silent:.0f} с"
        ours, theirs = socket.socketpair()
        try:
            self.workers.run(functools.partial(self.serve_connection, trusted=True), ours, "self")
        except RuntimeError as err:  # the pool is closed: the server is stopping
            ours.close()
            theirs.close()
            return str(err)
        found = health.probe_socket(theirs, timeout, "(самопроверка)")
        return None if found.ok else found.reason

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        log.exception("FastAGI connection from %s failed", client_address[0])


class _Handler(socketserver.BaseRequestHandler):
    server: FastAGIServer

    def handle(self) -> None:
        self.server.serve_connection(self.request, self.client_address[0])


def is_allowed(host: str, allowed: Iterable[ipaddress._BaseNetwork]) -> bool:
    """Return True when ``host`` lies in one of the ``allowed`` networks."""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in allowed)


def _refused(peer: str) -> None:
    log.warning("FastAGI connection from %s refused: not an allowed address", peer)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def start_in_thread(server: FastAGIServer) -> threading.Thread:
    """Serve in a background thread (for tests and the all-in-one ``run`` command)."""
    threading.stack_size(THREAD_STACK_BYTES)
    thread = threading.Thread(target=server.serve_forever, name="fastagi", daemon=True)
    thread.start()
    return thread
