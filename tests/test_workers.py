"""Call threads: every call runs at once on a thread of its own, reused, and nothing stays."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ivr.workers import CallWorkers


@pytest.fixture
def workers(request: pytest.FixtureRequest) -> Iterator[CallWorkers]:
    pool = CallWorkers(idle_seconds=5.0, name=request.node.name)
    yield pool
    pool.close()


def alive(name: str) -> int:
    """How many of the pool ``name``'s threads are alive."""
    return sum(t.name.startswith(f"{name}-") for t in threading.enumerate())


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_calls_in_progress_never_wait_for_each_other(workers: CallWorkers) -> None:
    calls = 50
    release = threading.Event()
    started = threading.Semaphore(0)
    threads: set[int] = set()

    def call() -> None:
        threads.add(threading.get_ident())
        started.release()
        release.wait(10)

    for _ in range(calls):
        workers.run(call)
    try:
        # All of them run at the same time, each on its own thread, though none has ended.
        assert all(started.acquire(timeout=5) for _ in range(calls))
        assert len(threads) == calls
    finally:
        release.set()


def test_a_thread_that_finished_its_call_takes_the_next(workers: CallWorkers) -> None:
    seen: list[int] = []
    done = threading.Event()
    workers.run(lambda: (seen.append(threading.get_ident()), done.set()))
    assert done.wait(5)
    assert wait_until(lambda: workers.waiting == 1)

    done.clear()
    workers.run(lambda: (seen.append(threading.get_ident()), done.set()))
    assert done.wait(5)

    assert seen[0] == seen[1]
    assert alive(workers.name) == 1


def test_threads_left_waiting_end_after_the_idle_time() -> None:
    pool = CallWorkers(idle_seconds=0.2, name="test-idle")
    release = threading.Event()
    for _ in range(20):
        pool.run(release.wait, 5)
    assert alive(pool.name) == 20
    release.set()

    assert wait_until(lambda: alive(pool.name) == 0, timeout=5)
    assert pool.waiting == 0


def test_a_call_arriving_as_a_thread_gives_up_waiting_is_still_served() -> None:
    # Idle time so short that threads keep timing out while calls arrive: no call may be
    # queued for a thread that has just left.
    pool = CallWorkers(idle_seconds=0.001, name="test-race")
    served = threading.Semaphore(0)
    try:
        for _ in range(2000):
            pool.run(served.release)
        assert all(served.acquire(timeout=5) for _ in range(2000))
    finally:
        pool.close()


def test_close_ends_waiting_threads_and_refuses_new_calls() -> None:
    pool = CallWorkers(idle_seconds=60, name="test-close")
    done = threading.Event()
    pool.run(done.set)
    assert done.wait(5)
    assert wait_until(lambda: pool.waiting == 1)

    pool.close()

    assert wait_until(lambda: alive(pool.name) == 0)
    with pytest.raises(RuntimeError, match="closed"):
        pool.run(done.set)


def test_a_failing_call_is_logged_and_its_thread_serves_on(
    workers: CallWorkers, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise ValueError("boom")

    workers.run(broken)
    assert wait_until(lambda: workers.waiting == 1)
    done = threading.Event()
    workers.run(done.set)

    assert done.wait(5)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.exc_info[1].args for r in failures if r.exc_info and r.exc_info[1]] == [("boom",)]
