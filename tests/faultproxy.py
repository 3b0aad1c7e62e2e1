"""A TCP proxy on loopback that makes network and database faults real, for tests.

Put it in front of a server (PostgreSQL, say) and point the client at ``proxy.port``:

- ``cut()`` drops every open connection with a reset and refuses new ones (the port is
  closed, so a connect fails at once, as with a server that is down);
- ``restore()`` listens again on the same port;
- ``delay(seconds)`` holds every chunk that passes, in each direction, for ``seconds`` (a
  slow database or network: a query's round trip takes twice that); ``delay(0)`` ends it
  for chunks that arrive afterwards.

One thread accepts; each connection has one thread per direction. Everything stops with
``close()`` (or the ``with`` block).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from types import TracebackType

_CHUNK = 65536
_TICK = 0.05  # how often idle threads look at the stop flags


class FaultProxy:
    """Forward loopback connections to ``upstream``, with faults on demand."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.port = 0
        self.accepted = 0  # connections taken while up
        self.dropped = 0  # connections reset by cut()
        self._delay = 0.0
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self._listen()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until ``restore()``."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # stops listening at once, wakes select
            listener.close()
        for pair in pairs:
            for sock in pair:
                _reset(sock)
        self.dropped += len(pairs)

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        if self._listener is None:
            self._listen()

    def delay(self, seconds: float) -> None:
        """Hold each chunk that passes from now on for ``seconds`` (0: no delay)."""
        self._delay = max(0.0, seconds)

    def close(self) -> None:
        """Stop the proxy and drop every connection."""
        self._closed.set()
        self.cut()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(
            target=self._accept_loop, args=(listener,), name="faultproxy-accept", daemon=True
        ).start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], _TICK)
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):
                return  # cut() closed the listener
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _reset(client)
                    _reset(server)
                    return
                self._pairs.add((client, server))
                self.accepted += 1
            for source, target in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump,
                    args=(source, target, (client, server)),
                    name="faultproxy-pump",
                    daemon=True,
                ).start()

    def _pump(
        self,
        source: socket.socket,
        target: socket.socket,
        pair: tuple[socket.socket, socket.socket],
    ) -> None:
        try:
            while not self._closed.is_set():
                ready, _, _ = select.select([source], [], [], _TICK)
                if not ready:
                    continue
                data = source.recv(_CHUNK)
                if not data:
                    break
                self._hold()
                target.sendall(data)
        except (OSError, ValueError):
            pass
        with self._lock:
            known = pair in self._pairs
            self._pairs.discard(pair)
        if known:  # the other pump (or cut()) has not closed them yet
            for sock in pair:
                _close(sock)

    def _hold(self) -> None:
        """Wait out the delay set when the chunk arrived (cut/close end the wait early)."""
        until = time.monotonic() + self._delay
        while not self._closed.is_set() and time.monotonic() < until:
            time.sleep(min(_TICK, max(0.0, until - time.monotonic())))


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset (SO_LINGER 0), as a crashed peer does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # no shutdown first: that would send a polite FIN before the reset


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
