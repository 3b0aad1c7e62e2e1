"""Write call records from one background thread, so no caller ever waits on the database.

The call flow hands over changes (``record(call_ref, **fields)``) and goes on at once. A
single writer thread merges the changes per call and upserts them by ``call_ref`` in
batches: one writer means SQLite never reports "database is locked" to a caller, and the
upsert means every call is stored exactly once however often it is updated. When the
database is down, changes wait in memory and are retried; if the buffer overflows, the loss
is logged with the call reference — never dropped silently.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from onerpa.models import Call

log = logging.getLogger(__name__)

_FIELDS = frozenset(c.name for c in Call.__table__.columns) - {"id"}
_STOP = object()


class CallRecorder:
    """Buffer call changes and write them to the database in the background."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_pending: int = 100_000,
        batch_size: int = 500,
        retry_delay: float = 0.5,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.engine = engine
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.retry_delay = retry_delay
        self.on_error = on_error
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: dict[str, dict[str, Any]] = {}
        self._lost = 0
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="call-recorder", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> int:
        """Return how many call changes were dropped because the buffer overflowed."""
        return self._lost

    def record(self, call_ref: str, **fields: Any) -> None:
        """Queue ``fields`` to be stored on the call ``call_ref``."""
        unknown = set(fields) - _FIELDS
        if unknown:
            raise TypeError(f"not call fields: {sorted(unknown)}")
        self._idle.clear()
        self._queue.put((call_ref, fields))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; return False on timeout."""
        done = threading.Event()
        self._idle.clear()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending (within ``timeout``) and stop the writer thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._pending:
            log.error("call records not written at shutdown: %s", sorted(self._pending))

    def _run(self) -> None:
        stopping = False
        waiters: list[threading.Event] = []
        while True:
            stopping = self._collect(waiters, block=not self._pending) or stopping
            if self._pending and not self._write():
                if stopping:
                    return
                time.sleep(self.retry_delay)
                continue
            for waiter in waiters:
                waiter.set()
            waiters.clear()
            if stopping:
                return

    def _collect(self, waiters: list[threading.Event], *, block: bool) -> bool:
        """Move queued changes into ``_pending``; return True when asked to stop."""
        try:
            item = self._queue.get(timeout=0.2) if block else self._queue.get_nowait()
        except queue.Empty:
            return False
        count = 0
        while True:
            if item is _STOP:
                return True
            if isinstance(item, threading.Event):
                waiters.append(item)
            else:
                self._merge(*item)
            count += 1
            if count >= self.batch_size * 4:
                return False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False

    def _merge(self, call_ref: str, fields: dict[str, Any]) -> None:
        if call_ref not in self._pending and len(self._pending) >= self.max_pending:
            self._lost += 1
            log.error("call record buffer full: change to call %s lost", call_ref)
            return
        self._pending.setdefault(call_ref, {}).update(fields)

    def _write(self) -> bool:
        """Upsert a batch of pending calls; keep them pending if the database fails."""
        refs = list(self._pending)[: self.batch_size]
        try:
            with self.engine.begin() as conn:
                for ref in refs:
                    conn.execute(_upsert(self.engine.dialect.name, ref, self._pending[ref]))
        except (SQLAlchemyError, OSError) as err:
            log.warning("call records not written yet (%d pending): %s", len(self._pending), err)
            if self.on_error is not None:
                self.on_error(err)
            return False
        for ref in refs:
            del self._pending[ref]
        return True


def _upsert(dialect: str, call_ref: str, fields: dict[str, Any]):  # type: ignore[no-untyped-def]
    values = {"call_ref": call_ref, **fields}
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(Call.__table__).values(values)
    if not fields:
        return statement.on_conflict_do_nothing(index_elements=["call_ref"])
    return statement.on_conflict_do_update(index_elements=["call_ref"], set_=fields)

