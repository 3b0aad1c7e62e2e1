"""Serve the dashboard with waitress: in the foreground, or in a thread beside FastAGI."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask
from waitress.server import create_server

log = logging.getLogger(__name__)

THREADS = 8


class DashboardServer:
    """A running dashboard: where it listens, and how to stop it."""

    def __init__(self, app: Flask, host: str, port: int, *, threads: int = THREADS) -> None:
        self._server: Any = create_server(
            app, host=host, port=port, threads=threads, ident="onerpa-dashboard"
        )
        self.host = host
        self.port: int = self._server.effective_port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        """Serve until ``stop`` is called (or the process ends)."""
        log.info("dashboard listening on %s", self.url)
        try:
            self._server.run()
        except OSError:
            # close() from another thread ends the loop with a closed-socket error.
            log.debug("dashboard server loop ended")

    def start(self) -> DashboardServer:
        """Serve from a daemon thread and return at once."""
        self._thread = threading.Thread(target=self.serve_forever, name="dashboard", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and wait for the serving thread."""
        self._server.close()
        if self._thread is not None:
            self._thread.join(timeout)


def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 8080) -> DashboardServer:
    """Start serving ``app`` on ``host:port`` (0 picks a free port) in a background thread."""
    return DashboardServer(app, host, port).start()
