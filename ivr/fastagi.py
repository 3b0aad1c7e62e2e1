"""The FastAGI server: one long-lived process, a thread per call, no per-call start-up.

Each call has a thread of its own, taken from threads that finished earlier calls
(``ivr.workers``) rather than started anew for every connection.

FastAGI has no authentication, so the server listens on loopback by default and answers
only the Asterisk addresses it is told to trust; anyone else is refused and logged. Every
read has a timeout: a peer that connects and says nothing is closed after ``env_timeout``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import threading
from collections.abc import Iterable

from ivr.agi import AGIChannel, AGIError
from ivr.runner import run_session
from ivr.services import Services
from ivr.workers import Workers

log = logging.getLogger(__name__)

# Calls spend their life blocked on the socket; a small stack lets a 2-core box hold
# thousands of them open at once.
THREAD_STACK_BYTES = 512 * 1024


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
    ) -> None:
        self.address_family = _family(address[0])
        self.services = services
        self.allowed = tuple(ipaddress.ip_network(a, strict=False) for a in allowed)
        self.env_timeout = env_timeout
        self.active = 0
        self._active_lock = threading.Lock()
        self.workers = Workers(name="fastagi-call")
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def verify_request(self, request, client_address) -> bool:  # type: ignore[no-untyped-def]
        """Refuse, and log, a peer that is not a configured Asterisk."""
        if is_allowed(client_address[0], self.allowed):
            return True
        log.warning("FastAGI connection from %s refused: not an allowed address", client_address[0])
        return False

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

    def serve_connection(self, sock: socket.socket, peer: str) -> None:
        """Run one AGI session on ``sock``."""
        with self._active_lock:
            self.active += 1
        try:
            channel = AGIChannel.from_socket(sock, env_timeout=self.env_timeout)
        except AGIError as err:
            log.warning("FastAGI connection from %s closed: %s", peer, err)
        else:
            try:
                run_session(channel, self.services)
            finally:
                channel.close()
        finally:
            with self._active_lock:
                self.active -= 1

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


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def start_in_thread(server: FastAGIServer) -> threading.Thread:
    """Serve in a background thread (for tests and the all-in-one ``run`` command)."""
    threading.stack_size(THREAD_STACK_BYTES)
    thread = threading.Thread(target=server.serve_forever, name="fastagi", daemon=True)
    thread.start()
    return thread
