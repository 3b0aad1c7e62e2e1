"""The per-call watchdog: a session that makes no progress is closed, so Asterisk moves on.

Asterisk waits for the server's next command with no limit of its own: a call whose thread
hangs (a lock never released, a library call that never returns) would keep the caller in
silence until they hang up, and the channel inside ``AGI()`` until the socket closes. So
every call's socket is watched. Progress is a command sent or a reply received; the time
the server spends waiting for Asterisk (a prompt playing, a caller thinking over GET DATA)
is Asterisk's, bounded by the command timeout, and does not count. A session that has held
Asterisk waiting for ``limit`` seconds is shut down: ``AGI()`` returns, and the dialplan's
fallback (``ONERPA_ROUTE`` unset) takes the caller to the queue.

Python cannot stop a thread: the stuck one is left behind, and the next call gets a thread
of its own, since the call pool starts one whenever none is idle.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

STALL_SECONDS = 10.0  # without progress while Asterisk waits, then the call is let go
_MAX_TICK = 1.0  # how often, at most, the watchdog looks at the calls


class WatchedSocket:
    """A call's socket that notes when it last moved and whether it waits for Asterisk.

    It stands in for the socket under the AGI channel: ``recv`` and ``sendall`` are timed,
    everything else goes to the socket as it is.
    """

    __slots__ = ("sock", "peer", "script", "label", "last", "in_io", "stalled")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.script = ""
        self.label = "(до блока переменных)"  # what the log says about the call
        self.last = time.monotonic()
        self.in_io = False
        self.stalled = False

    def recv(self, size: int) -> bytes:
        self.in_io = True
        try:
            return self.sock.recv(size)
        finally:
            self.last = time.monotonic()
            self.in_io = False

    def sendall(self, data: bytes) -> None:
        self.in_io = True
        try:
            self.sock.sendall(data)
        finally:
            self.last = time.monotonic()
            self.in_io = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def idle_for(self, now: float) -> float:
        """Return how long the server has kept Asterisk waiting; 0 while it waits itself."""
        return 0.0 if self.in_io else now - self.last


class CallWatchdog:
    """Watch every call's socket; shut down those that made no progress for ``limit`` s."""

    def __init__(
        self, limit: float = STALL_SECONDS, *, on_stall: Callable[[WatchedSocket], None]
    ) -> None:
        self.limit = limit
        self.on_stall = on_stall
        self._calls: set[WatchedSocket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="call-watchdog", daemon=True)
        self._thread.start()

    def watch(self, sock: socket.socket, peer: str) -> WatchedSocket:
        """Start watching a call's socket; return the stand-in to give the AGI channel."""
        watched = WatchedSocket(sock, peer)
        with self._lock:
            self._calls.add(watched)
        return watched

    def forget(self, watched: WatchedSocket) -> None:
        """Stop watching a call that ended."""
        with self._lock:
            self._calls.discard(watched)

    def close(self) -> None:
        """Stop the watchdog's thread."""
        self._stop.set()

    def check(self, now: float | None = None) -> list[WatchedSocket]:
        """Shut down and return the calls that made no progress for ``limit`` seconds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stalled = [w for w in self._calls if w.idle_for(now) >= self.limit]
            self._calls.difference_update(stalled)
        for watched in stalled:
            watched.stalled = True
            with contextlib.suppress(OSError):  # Asterisk sees the end of the stream
                watched.sock.shutdown(socket.SHUT_RDWR)
            try:
                self.on_stall(watched)
            except Exception:  # a failing report must not stop the watching
                log.exception("watchdog report failed")
        return stalled

    def _run(self) -> None:
        tick = min(_MAX_TICK, self.limit / 4)
        while not self._stop.wait(tick):
            self.check()
