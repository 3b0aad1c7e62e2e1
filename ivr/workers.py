"""Worker threads that are reused, the most recently busy first.

Two pools in the FastAGI server are made of them:

- the call threads: a thread per call in progress, as many as there are calls, since a call
  spends its life blocked on Asterisk (no limit);
- the look-up pool (``ivr.lookup``): a few threads that run customer look-ups, so that a
  caller waits for the database no longer than the call's budget (a limit, and a backlog).

Starting a thread per connection cost more than the rest of a short call's set-up on a busy
server (the thread's start-up, two hand-overs of the GIL between the accepting thread and
the new one). And on a 2-core box with one GIL, the look-ups cost a third of the CPU with 16
threads taking turns and half that with one: a thread that ran a moment ago has the code
and data in the CPU's caches. So a job goes to the thread that went idle last; a new thread
starts only when none is idle; and a thread left idle for ``idle_seconds`` ends, so a burst
of calls leaves nothing behind.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = tuple[Callable[..., Any], tuple[Any, ...]]
IDLE_SECONDS = 5.0  # how long a thread without work waits for some before it ends


class _Seat:
    """Where an idle thread waits for the job handed to it."""

    __slots__ = ("job", "wake")

    def __init__(self) -> None:
        self.job: Job | None = None
        self.wake = threading.Lock()
        self.wake.acquire()

    def hand(self, job: Job | None) -> None:
        self.job = job
        self.wake.release()

    def take(self, timeout: float) -> tuple[bool, Job | None]:
        if not self.wake.acquire(timeout=timeout):
            return False, None
        job, self.job = self.job, None
        return True, job


class Workers:
    """Run jobs at once on reused threads; with ``max_workers``, excess jobs wait their turn."""

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        idle_seconds: float = IDLE_SECONDS,
        name: str = "worker",
    ) -> None:
        self.max_workers = max_workers
        self.idle_seconds = idle_seconds
        self.name = name
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        self._idle: list[_Seat] = []  # a stack: the last to go idle is the first to work
        self._backlog: deque[Job] = deque()
        self._threads = 0
        self._started = 0
        self._closed = False

    @property
    def waiting(self) -> int:
        """How many threads are idle."""
        return len(self._idle)

    def run(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` on a thread of the pool; a failure is logged."""
        self._dispatch((function, args))

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``function(*args)`` on a thread of the pool; its result comes in the future."""
        future: Future[T] = Future()
        self._dispatch((_settle, (future, function, args)))
        return future

    def close(self, *, wait: bool = False, timeout: float | None = None) -> None:
        """Take no more jobs, cancel those waiting, end idle threads; with ``wait``, the rest."""
        with self._lock:
            self._closed = True
            for seat in self._idle:
                seat.hand(None)
            self._idle.clear()
            while self._backlog:
                function, args = self._backlog.popleft()
                if function is _settle:
                    args[0].cancel()
            if wait:
                self._ended.wait_for(lambda: self._threads == 0, timeout)

    def _dispatch(self, job: Job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.name} workers are closed")
            if self._idle:
                self._idle.pop().hand(job)
                return
            if self.max_workers is not None and self._threads >= self.max_workers:
                self._backlog.append(job)
                return
            self._threads += 1
            self._started += 1
            number = self._started
        thread = threading.Thread(
            target=self._work, args=(job,), name=f"{self.name}-{number}", daemon=True
        )
        thread.start()

    def _work(self, first: Job) -> None:
        seat = _Seat()
        job: Job | None = first
        try:
            while job is not None:
                function, args = job
                try:
                    function(*args)
                except Exception:  # the job's own failure must not end the thread silently
                    log.exception("a %s job failed", self.name)
                job = self._next(seat)
        finally:
            with self._lock:
                self._threads -= 1
                self._ended.notify_all()

    def _next(self, seat: _Seat) -> Job | None:
        """Return the next job for this thread; None when it should end."""
        with self._lock:
            if self._backlog:
                return self._backlog.popleft()
            if self._closed:
                return None
            self._idle.append(seat)
        woken, job = seat.take(self.idle_seconds)
        if woken:
            return job
        with self._lock:
            if seat in self._idle:  # nobody handed it a job: end
                self._idle.remove(seat)
                return None
        # A job was handed over as the wait ran out; it is there already.
        return seat.take(self.idle_seconds)[1]


def _settle(future: Future[T], function: Callable[..., T], args: tuple[Any, ...]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(function(*args))
    except BaseException as err:  # the caller's to handle, through the future
        future.set_exception(err)
