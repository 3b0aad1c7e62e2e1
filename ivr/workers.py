"""Threads for calls: a thread per call in progress, reused from one call to the next.

A call spends its life blocked on Asterisk, so each call has a thread of its own, as many as
there are calls. Starting a thread per connection, though, cost more than the rest of a
short call's set-up on a busy server (the new thread's start-up and two hand-overs of the
GIL between the accepting thread and the new one). Here a thread that finishes its call
waits for the next one; a new thread starts only when none is waiting; and a thread that
has waited ``idle_seconds`` for a call ends, so a burst of calls leaves nothing behind.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Job = tuple[Callable[..., None], tuple[Any, ...]]


class CallWorkers:
    """Run each job at once on a waiting thread, or on a new one when none waits."""

    def __init__(self, *, idle_seconds: float = 5.0, name: str = "call") -> None:
        self.idle_seconds = idle_seconds
        self.name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Threads waiting for a job, less the jobs queued for them: the queue never holds a
        # job without a waiting thread to take it.
        self._spare = 0
        self._started = 0
        self._closed = False

    def run(self, job: Callable[..., None], *args: Any) -> None:
        """Run ``job(*args)`` on a thread of its own, now."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the call workers are closed")
            if self._spare > 0:
                self._spare -= 1
                self._jobs.put((job, args))
                return
            self._started += 1
            number = self._started
        thread = threading.Thread(
            target=self._work, args=((job, args),), name=f"{self.name}-{number}", daemon=True
        )
        thread.start()

    @property
    def waiting(self) -> int:
        """How many threads wait for a call."""
        return self._spare

    def close(self) -> None:
        """Let every waiting thread end; threads busy with a call end after it."""
        with self._lock:
            self._closed = True
            for _ in range(self._spare):
                self._jobs.put(None)
            self._spare = 0

    def _work(self, first: Job) -> None:
        job: Job | None = first
        while job is not None:
            function, args = job
            try:
                function(*args)
            except Exception:  # a job's own failure must not end the thread silently
                log.exception("a call job failed")
            job = self._next()

    def _next(self) -> Job | None:
        """Wait for the next job; None when this thread should end."""
        with self._lock:
            if self._closed:
                return None
            self._spare += 1
        while True:
            try:
                return self._jobs.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    # Leave only if no queued job counts on this thread.
                    if self._spare > 0:
                        self._spare -= 1
                        return None
