"""Call threads: every call runs at once on a thread of its own, reused, and nothing stays."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ivr.workers import Workers


@pytest.fixture
def workers(request: pytest.FixtureRequest) -> Iterator[Workers]:
    pool = Workers(idle_seconds=5.0, name=request.node.name)
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


def test_calls_in_progress_never_wait_for_each_other(workers: Workers) -> None:
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


def test_a_thread_that_finished_its_call_takes_the_next(workers: Workers) -> None:
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
    pool = Workers(idle_seconds=0.2, name="test-idle")
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
    pool = Workers(idle_seconds=0.001, name="test-race")
    served = threading.Semaphore(0)
    try:
        for _ in range(2000):
            pool.run(served.release)
        assert all(served.acquire(timeout=5) for _ in range(2000))
    finally:
        pool.close()


def test_close_ends_waiting_threads_and_refuses_new_calls() -> None:
    pool = Workers(idle_seconds=60, name="test-close")
    done = threading.Event()
    pool.run(done.set)
    assert done.wait(5)
    assert wait_until(lambda: pool.waiting == 1)

    pool.close()

    assert wait_until(lambda: alive(pool.name) == 0)
    with pytest.raises(RuntimeError, match="closed"):
        pool.run(done.set)


def test_a_failing_call_is_logged_and_its_thread_serves_on(
    workers: Workers, caplog: pytest.LogCaptureFixture
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


def test_results_and_failures_come_back_through_the_future(workers: Workers) -> None:
    assert workers.submit(sum, [1, 2, 3]).result(timeout=5) == 6
    with pytest.raises(ZeroDivisionError):
        workers.submit(lambda: 1 / 0).result(timeout=5)


def test_a_bounded_pool_runs_the_excess_when_a_thread_is_free() -> None:
    pool = Workers(max_workers=2, name="test-bounded")
    release = threading.Event()
    try:
        busy = [pool.submit(release.wait, 5) for _ in range(2)]
        third = pool.submit(threading.get_ident)
        assert not third.done() and alive(pool.name) == 2  # no third thread, the job waits
        release.set()
        assert third.result(timeout=5) in {t.ident for t in threading.enumerate()}
        assert all(f.result(timeout=5) for f in busy)
        assert alive(pool.name) == 2
    finally:
        pool.close()


def test_the_thread_that_went_idle_last_takes_the_next_job(workers: Workers) -> None:
    release = [threading.Event() for _ in range(3)]
    idents = [workers.submit(lambda e=e: (e.wait(5), threading.get_ident())[1]) for e in release]
    for idle, (event, future) in enumerate(zip(release, idents, strict=True), start=1):
        event.set()  # they go idle in this order
        future.result(timeout=5)
        assert wait_until(lambda idle=idle: workers.waiting == idle)

    assert workers.submit(threading.get_ident).result(timeout=5) == idents[-1].result()


def test_closing_with_wait_lets_running_jobs_finish_and_cancels_waiting_ones() -> None:
    pool = Workers(max_workers=1, name="test-shutdown")
    started, release = threading.Event(), threading.Event()
    running = pool.submit(lambda: (started.set(), release.wait(5))[1])
    waiting = pool.submit(threading.get_ident)
    assert started.wait(5)
    threading.Timer(0.2, release.set).start()

    pool.close(wait=True, timeout=5)

    assert running.result(timeout=0) is True
    assert waiting.cancelled()
    assert alive(pool.name) == 0
