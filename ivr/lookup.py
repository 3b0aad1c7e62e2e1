"""Customer look-ups under a time budget, so a slow database never keeps a caller waiting.

Each call gets a budget (about a second in all). Look-ups run on a small shared pool; when
one fails or the budget runs out, ``DirectoryUnavailable`` tells the flow to let the caller
through to an agent as ``degraded``. A look-up that overran keeps its pool thread until the
database answers or times out on its own; the caller has already moved on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from sqlalchemy import Connection, Engine

from ivr.workers import Workers
from onerpa import directory

log = logging.getLogger(__name__)
T = TypeVar("T")


class DirectoryUnavailable(Exception):
    """The customer directory did not answer within the call's budget."""


class Directory:
    """The customer directory as the call flow sees it: look-ups that respect a budget."""

    def __init__(self, engine: Engine, *, workers: int = 16) -> None:
        self.engine = engine
        self.pool = Workers(max_workers=workers, name="lookup")

    def budget(self, seconds: float) -> Budget:
        """Start a budget of ``seconds`` for one call's look-ups."""
        return Budget(self, seconds)

    def close(self) -> None:
        """Wait for look-ups still running (they end with the database's own timeouts)."""
        self.pool.close(wait=True)

    def _on_connection(self, work: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return work(conn)


class Budget:
    """One call's remaining time for look-ups."""

    def __init__(self, directory_: Directory, seconds: float) -> None:
        self.directory = directory_
        self.remaining = seconds

    def by_phone(self, e164: str) -> directory.PhoneLookup:
        """Return the customer owning ``e164`` (or None) and the refusals on the number."""
        return self._run(lambda c: directory.look_up_phone(c, e164))

    def by_number(self, digits: str) -> directory.CustomerCard | None:
        """Return the customer with customer or licence number ``digits``, or None."""
        return self._run(lambda c: directory.find_by_number(c, digits))

    def _run(self, work: Callable[[Connection], T]) -> T:
        if self.remaining <= 0:
            raise DirectoryUnavailable("look-up budget spent")
        started = time.monotonic()
        future = self.directory.pool.submit(self.directory._on_connection, work)
        try:
            return future.result(timeout=self.remaining)
        except FutureTimeout:
            future.cancel()
            raise DirectoryUnavailable("customer directory too slow") from None
        except Exception as err:  # any database failure means the same to the caller
            log.warning("customer directory failed: %s", err)
            raise DirectoryUnavailable(str(err)) from err
        finally:
            self.remaining -= time.monotonic() - started
