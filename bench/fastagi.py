"""Call set-ups per second through the FastAGI server, against the classic script and bare AGI.

Three servers answer the same emulated call (the entitled caller +7 495 123-45-67 presses 2 at
the topic menu; prompts take no time), each in a process of its own:

- the real FastAGI server, ``onerpa-support fastagi``, on a temporary SQLite database holding
  the demo customers, with the line open around the clock;
- the peer a user would otherwise pick: the same flow as a classic process-per-call AGI script
  (``python -m ivr.classic``), driven through the emulator's pipes;
- the protocol limit: a bare stdlib FastAGI server (``socketserver``, a thread per call, no
  pyst2, no database) that reads the environment block and sends the very command lines the
  real flow sent, reading each reply, with no work in between.

One load generator, in a process of its own, drives all three: closed-loop throughput with C
concurrent callers (the real and the bare server alternate, several rounds, in the same run),
an open-loop run at 100 new calls per second timing connect -> routing decision (the moment
the emulator receives ``SET VARIABLE ONERPA_ROUTE``), and 1,000 calls held open at once,
sitting in real-time prompts, with the server's RSS read before and while they are open.

    .venv/bin/python -m bench.fastagi
    .venv/bin/python -m bench.fastagi --quick
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import random
import resource
import shutil
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ivr import dialplan, prompts, speech, workers
from ivr.emulator import EmulatedCall, EmulatorError
from onerpa.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CALLER = "+7 495 123-45-67"  # onerpa.demo: entitled, free first year
KEYS = ("2",)  # "вопрос по работе"
EXPECTED_ROUTE = dialplan.Route.QUEUE.value
ROUTE_MARK = f"SET VARIABLE {dialplan.VAR_ROUTE} ".encode()
PROMPT_MARK = f"STREAM FILE {speech.GREETING} ".encode()
CALL_ID_MARK = f"SET VARIABLE {dialplan.VAR_CALL_ID} "
THREAD_STACK_BYTES = 512 * 1024  # as ivr.fastagi gives its call threads
CONNECT_TIMEOUT = 10.0
SILENCE_TIMEOUT = 60.0  # the emulator's limit on a silent script
TARGET_CLASSIC_RATIO = 100.0
TARGET_BARE_RATIO = 0.5
TARGET_P99_MS = 20.0
TARGET_OPEN_CALLS = 1000
SETTLE_WINDOW = 0.2  # seconds; a server using at most SETTLE_CPU of it is idle
SETTLE_CPU = 0.011  # one clock tick


# -- both sides -----------------------------------------------------------------------------


def raise_open_files() -> int:
    """Raise this process's open-file limit to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of ``values`` (``share`` between 0 and 1); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


# -- the load generator (its own process) -----------------------------------------------------


class TimedSocket(socket.socket):
    """A client socket that notes when the greeting starts and when the route is set."""

    def __init__(self, on_prompt: Callable[[], None] | None = None) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.on_prompt = on_prompt
        self.decided_at: float | None = None
        self.in_prompt = False
        self._tail = b""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        seen = self._tail + data
        self._tail = data[-64:]  # a mark split across two reads is still found
        if self.decided_at is None and ROUTE_MARK in seen:
            self.decided_at = time.perf_counter()
        if not self.in_prompt and PROMPT_MARK in seen:
            self.in_prompt = True
            if self.on_prompt is not None:
                self.on_prompt()
        return data


@dataclass
class CallOutcome:
    """One emulated call as the load generator judged it."""

    latency: float | None = None  # connect -> route decision, seconds
    since_arrival: float | None = None  # scheduled arrival -> route decision (open loop)
    error: str | None = None
    degraded: bool = False
    commands: list[str] = field(default_factory=list)


def place_call(
    address: tuple[str, int],
    *,
    speed: float = 0.0,
    on_prompt: Callable[[], None] | None = None,
    arrival: float | None = None,
) -> CallOutcome:
    """Connect to ``address``, play the entitled caller's call and judge the result."""
    sock = TimedSocket(on_prompt)
    started = time.perf_counter()
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(address)
    except OSError as err:
        sock.close()
        return CallOutcome(error=f"connect: {err.__class__.__name__}")
    call = EmulatedCall(caller=CALLER, keys=list(KEYS), speed=speed, timeout=SILENCE_TIMEOUT)
    try:
        result = call.run_on_socket(sock)
    except (EmulatorError, OSError) as err:
        return CallOutcome(error=err.__class__.__name__)
    route = result.variables.get(dialplan.VAR_ROUTE)
    if route != EXPECTED_ROUTE or sock.decided_at is None:
        return CallOutcome(error=f"route {route!r}")
    return CallOutcome(
        latency=sock.decided_at - started,
        since_arrival=None if arrival is None else sock.decided_at - arrival,
        degraded=result.variables.get(dialplan.VAR_DECISION) == "degraded",
        commands=result.commands,
    )


@dataclass
class RunResult:
    """What one run of the load generator measured."""

    calls: int = 0
    errors: int = 0
    degraded: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    since_arrival: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)
    generator_cpu: float = 0.0
    peak_open: int = 0
    late_starts: int = 0  # open loop: arrivals the generator started over 5 ms late

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def p(self, share: float, values: list[float] | None = None) -> float:
        """A percentile of the connect -> decision times, in milliseconds."""
        return percentile(self.latencies if values is None else values, share) * 1000


class Tally:
    """Outcomes gathered from many caller threads."""

    def __init__(self) -> None:
        self.result = RunResult()
        self._lock = threading.Lock()

    def add(self, outcome: CallOutcome) -> None:
        with self._lock:
            result = self.result
            result.calls += 1
            if outcome.error is not None:
                result.errors += 1
                result.error_kinds[outcome.error] = result.error_kinds.get(outcome.error, 0) + 1
                return
            result.degraded += outcome.degraded
            if outcome.latency is not None:
                result.latencies.append(outcome.latency)
            if outcome.since_arrival is not None:
                result.since_arrival.append(outcome.since_arrival)


class OpenCalls:
    """Calls sitting in their greeting right now, and the most there were at once."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.now = 0
        self.peak = 0
        self.all_in = threading.Event()
        self._lock = threading.Lock()

    def entered(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            if self.now >= self.target:
                self.all_in.set()

    def left(self) -> None:
        with self._lock:
            self.now -= 1


def sample_call(address: tuple[str, int]) -> tuple[list[str], float]:
    """Place one call; return the command lines the script sent and connect -> decision."""
    outcome = place_call(address)
    if outcome.error is not None or outcome.latency is None:
        raise RuntimeError(f"the sample call failed: {outcome.error}")
    return outcome.commands, outcome.latency


def closed_loop(address: tuple[str, int], concurrency: int, seconds: float) -> RunResult:
    """Run ``concurrency`` callers, each placing calls back to back for ``seconds``."""
    tally = Tally()
    deadline = time.perf_counter() + seconds

    def caller() -> None:
        while time.perf_counter() < deadline:
            tally.add(place_call(address))

    cpu, started = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=caller, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.result.seconds = time.perf_counter() - started
    tally.result.generator_cpu = time.process_time() - cpu
    return tally.result


def arrivals(rate: float, count: int, kind: str, seed: int) -> Iterator[float]:
    """Offsets in seconds of ``count`` arrivals at ``rate`` per second, Poisson or fixed."""
    rng = random.Random(seed)
    offset = 0.0
    for _ in range(count):
        yield offset
        offset += rng.expovariate(rate) if kind == "poisson" else 1.0 / rate


def open_loop(
    address: tuple[str, int], rate: float, seconds: float, pattern: str, seed: int = 1
) -> RunResult:
    """Start calls at ``rate`` per second whatever the server does, for ``seconds``."""
    tally = Tally()
    threads = []
    cpu = time.process_time()
    start = time.perf_counter() + 0.05
    for offset in arrivals(rate, int(rate * seconds), pattern, seed):
        due = start + offset
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.005:
            tally.result.late_starts += 1
        thread = threading.Thread(
            target=lambda due=due: tally.add(place_call(address, arrival=due)), daemon=True
        )
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    tally.result.seconds = time.perf_counter() - start
    tally.result.generator_cpu = time.process_time() - cpu
    return tally.result


def hold_open(
    conn: Connection, address: tuple[str, int], calls: int, ramp_rate: float
) -> RunResult:
    """Open ``calls`` real-time calls, report once all sit in a prompt, then let them end."""
    tally = Tally()
    open_calls = OpenCalls(calls)

    def caller() -> None:
        entered = threading.Event()

        def on_prompt() -> None:
            entered.set()
            open_calls.entered()

        outcome = place_call(address, speed=1.0, on_prompt=on_prompt)
        if entered.is_set():
            open_calls.left()
        tally.add(outcome)

    threads = []
    started = time.perf_counter()
    for n in range(calls):
        time.sleep(max(0.0, started + n / ramp_rate - time.perf_counter()))
        threads.append(threading.Thread(target=caller, daemon=True))
        threads[-1].start()
    open_calls.all_in.wait(timeout=30.0)
    conn.send(("holding", open_calls.now))
    conn.recv()  # the server's memory has been read
    for thread in threads:
        thread.join()
    tally.result.seconds = time.perf_counter() - started
    tally.result.peak_open = open_calls.peak
    return tally.result


def classic_calls(argv: list[str], env: dict[str, str], calls: int, concurrency: int) -> RunResult:
    """Place ``calls`` calls through a classic AGI script, ``concurrency`` at a time."""
    tally = Tally()
    todo = iter(range(calls))
    lock = threading.Lock()

    def caller() -> None:
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            started = time.perf_counter()
            call = EmulatedCall(caller=CALLER, keys=list(KEYS), timeout=SILENCE_TIMEOUT)
            result = call.run_classic(argv, env=env, cwd=PROJECT_ROOT, stderr=subprocess.DEVNULL)
            route = result.variables.get(dialplan.VAR_ROUTE)
            error = None if route == EXPECTED_ROUTE else f"route {route!r}"
            tally.add(CallOutcome(latency=time.perf_counter() - started, error=error))

    started = time.perf_counter()
    threads = [threading.Thread(target=caller, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.result.seconds = time.perf_counter() - started
    return tally.result


def generator_main(conn: Connection) -> None:
    """Serve the orchestrator's orders, one at a time, until it sends None."""
    raise_open_files()
    threading.stack_size(THREAD_STACK_BYTES)
    while (order := conn.recv()) is not None:
        kind, params = order
        if kind == "sample":
            conn.send(sample_call(**params))
        elif kind == "closed":
            conn.send(closed_loop(**params))
        elif kind == "open":
            conn.send(open_loop(**params))
        elif kind == "hold":
            conn.send(hold_open(conn, **params))
        elif kind == "classic":
            conn.send(classic_calls(**params))


class Generator:
    """The orchestrator's handle on the load-generator process."""

    def __init__(self) -> None:
        context = get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=generator_main, args=(child,), name="loadgen")
        self.process.start()
        child.close()

    def run(self, order: str, **params: Any) -> Any:
        self.conn.send((order, params))
        return self.conn.recv()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


# -- the bare stdlib FastAGI server (its own process) ------------------------------------------


class BareHandler(socketserver.StreamRequestHandler):
    """Read the environment block, then send the recorded commands and read each reply."""

    timeout = 10.0
    server: BareServer

    def handle(self) -> None:
        while (line := self.rfile.readline()) not in (b"\n", b""):
            pass
        if not line:
            return
        call_id = f'{CALL_ID_MARK}"{uuid.uuid4()}"\n'.encode()
        for command in self.server.commands:
            self.wfile.write(call_id if command is None else command)
            reply = self.rfile.readline()
            while reply == b"HANGUP\n":
                reply = self.rfile.readline()
            if not reply:
                return


class BareServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], commands: list[str]) -> None:
        # None stands for the call-id line, which gets a fresh UUID on every call.
        self.commands = [
            None if c.startswith(CALL_ID_MARK) else (c + "\n").encode() for c in commands
        ]
        super().__init__(address, BareHandler)


def bare_main(conn: Connection, commands: list[str]) -> None:
    """Serve the bare FastAGI server on a free loopback port; send the port, then serve."""
    raise_open_files()
    threading.stack_size(THREAD_STACK_BYTES)
    server = BareServer(("127.0.0.1", 0), commands)
    conn.send(server.server_address[1])
    server.serve_forever()


# -- the orchestrator ---------------------------------------------------------------------------


@dataclass
class Server:
    """A server process under test and where it listens."""

    name: str
    pid: int
    address: tuple[str, int]
    stop: Callable[[], None]
    metrics_port: int | None = None

    def rss_kib(self) -> int:
        """Resident set size of the server process, KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sessions_active(self) -> int | None:
        """The server's own count of AGI sessions in progress, from its /metrics."""
        if self.metrics_port is None:
            return None
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("onerpa_support_agi_sessions_active "):
                    return int(float(line.split()[1]))
        return None


def prepare_database(directory: Path) -> str:
    """Create a SQLite database with the demo customers; return its URL."""
    from onerpa import db
    from onerpa.demo import load_demo

    url = f"sqlite:///{directory / 'bench.sqlite3'}"
    engine = db.make_engine(url)
    db.migrate(engine)
    load_demo(engine)
    engine.dispose()
    return url


def prompts_for(env: dict[str, str], folder: Path) -> Path:
    """Copy the prompts and render again the ones that say the hours of ``env`` (espeak-ng):
    the server will not start with prompts that say other hours."""
    shutil.copytree(prompts.DEFAULT_TABLE.parent, folder)
    settings = Settings.from_env(env)
    table = folder / prompts.DEFAULT_TABLE.name
    prompts.regenerate(
        table, folder / prompts.DEFAULT_OUT_DIR.name, values=prompts.values_for(settings)
    )
    return folder


def line_env(url: str, metrics_port: int) -> dict[str, str]:
    """The environment of a line open around the clock, even on a holiday.

    Open 00:00-23:59 every day, Moscow time: a run that crosses 23:59 sees closed calls,
    which count as errors.
    """
    today = datetime.now(ZoneInfo("Europe/Moscow")).date()
    days = ",".join((today + timedelta(days=n)).isoformat() for n in (-1, 0, 1))
    return {
        "ONERPA_DATABASE_URL": url,
        "ONERPA_HOURS": "mon-sun 00:00-23:59",
        "ONERPA_WORKING_DATES": days,
        "ONERPA_FASTAGI_METRICS_PORT": str(metrics_port),
    }


def start_real_server(env: dict[str, str], directory: Path) -> Server:
    """Start ``onerpa-support fastagi`` and wait until it listens."""
    port, metrics_port = free_port(), int(env["ONERPA_FASTAGI_METRICS_PORT"])
    command = str(Path(sys.executable).with_name("onerpa-support"))
    log_path = directory / "fastagi.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [command, "fastagi", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
            cwd=directory,
        )
    deadline = time.monotonic() + 60
    while b"FastAGI listening" not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the FastAGI server did not start:\n{log_path.read_text()}")
        time.sleep(0.05)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    return Server("FastAGI", process.pid, ("127.0.0.1", port), stop, metrics_port)


def start_bare_server(commands: list[str]) -> Server:
    """Start the bare stdlib FastAGI server in a process of its own."""
    context = get_context("spawn")
    conn, child = context.Pipe()
    process = context.Process(target=bare_main, args=(child, commands), name="bare-fastagi")
    process.start()
    if not conn.poll(60):
        raise RuntimeError("the bare FastAGI server did not start")
    port = conn.recv()

    def stop() -> None:
        process.terminate()
        process.join(10)

    assert process.pid is not None
    return Server("bare", process.pid, ("127.0.0.1", port), stop)


def settle(server: Server, timeout: float = 120.0) -> float:
    """Wait until ``server`` is idle (its writes done); return how long it kept working."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        window_start, cpu = time.perf_counter(), server.cpu_seconds()
        time.sleep(SETTLE_WINDOW)
        if server.cpu_seconds() - cpu <= SETTLE_CPU:
            return window_start - started
    return timeout


@dataclass
class Measured:
    """A closed-loop run, the server's CPU time for it and the time it took to settle after."""

    run: RunResult
    server_cpu: float
    drain: float  # seconds the server kept working after the last call (the recorder)

    @property
    def sustained(self) -> float:
        """Calls per second with the server's deferred work (call records) included."""
        return self.run.calls / (self.run.seconds + self.drain)


def measure_closed(
    generator: Generator, server: Server, servers: list[Server], concurrency: int, seconds: float
) -> Measured:
    """Run the closed loop against ``server`` once every server is idle."""
    for other in servers:
        settle(other)
    cpu = server.cpu_seconds()
    run = generator.run("closed", address=server.address, concurrency=concurrency, seconds=seconds)
    drain = settle(server)
    return Measured(run, server.cpu_seconds() - cpu, drain)


@dataclass
class Options:
    concurrency: int
    seconds: float
    rounds: int
    rate: float
    open_seconds: float
    arrivals: str
    classic_calls: int
    classic_concurrency: int
    hold: int
    ramp_rate: float


@dataclass
class Report:
    real: list[Measured] = field(default_factory=list)
    bare: list[Measured] = field(default_factory=list)
    classic: list[RunResult] = field(default_factory=list)
    open_real: RunResult | None = None
    open_bare: RunResult | None = None
    hold: RunResult | None = None
    held_server: int | None = None
    held_generator: int = 0
    first_call: float = 0.0
    load: list[float] = field(default_factory=list)  # 1-minute load average, start and end
    hold_cpu: float = 0.0
    rss_before: int = 0
    rss_open: int = 0
    rss_after: int = 0
    rss_idle: int = 0


def run_all(options: Options, directory: Path) -> Report:
    """Set up, run every measurement, take everything down; return the figures."""
    report = Report(load=[os.getloadavg()[0]])
    env = line_env(prepare_database(directory), free_port())
    env["ONERPA_PROMPTS_DIR"] = str(prompts_for(env, directory / "sounds"))
    generator = Generator()
    servers: list[Server] = []
    try:
        real = start_real_server(env, directory)
        servers.append(real)
        commands, report.first_call = generator.run("sample", address=real.address)
        bare = start_bare_server(commands)
        servers.append(bare)
        for server in (real, bare):  # warm up: imports, pools, caches, the page cache
            measure_closed(generator, server, servers, options.concurrency, 1.0)
        per_round = -(-options.classic_calls // options.rounds)
        for _ in range(options.rounds):
            for server, runs in ((real, report.real), (bare, report.bare)):
                runs.append(
                    measure_closed(generator, server, servers, options.concurrency, options.seconds)
                )
            settle(real)
            report.classic.append(classic_run(generator, env, per_round, options))
        for server in servers:
            settle(server)
        report.open_real = open_run(generator, real, options)
        settle(real)
        report.open_bare = open_run(generator, bare, options)
        hold(generator, real, options, report)
        report.load.append(os.getloadavg()[0])
    finally:
        for server in servers:
            server.stop()
        generator.close()
    return report


def open_run(generator: Generator, server: Server, options: Options) -> RunResult:
    params = {"rate": options.rate, "seconds": options.open_seconds, "pattern": options.arrivals}
    return generator.run("open", address=server.address, **params)  # type: ignore[no-any-return]


def hold(generator: Generator, server: Server, options: Options, report: Report) -> None:
    """Hold ``options.hold`` calls open at once; read the server's memory around it."""
    settle(server)
    report.rss_before = server.rss_kib()
    cpu = server.cpu_seconds()
    generator.conn.send(
        ("hold", {"address": server.address, "calls": options.hold, "ramp_rate": options.ramp_rate})
    )
    _, report.held_generator = generator.conn.recv()
    report.rss_open = server.rss_kib()
    report.held_server = server.sessions_active()
    generator.conn.send("go")
    report.hold = generator.conn.recv()
    settle(server)
    report.hold_cpu = server.cpu_seconds() - cpu
    report.rss_after = server.rss_kib()
    time.sleep(workers.IDLE_SECONDS + 1.0)  # the calls' threads end once idle that long
    report.rss_idle = server.rss_kib()


def classic_run(
    generator: Generator, env: dict[str, str], calls: int, options: Options
) -> RunResult:
    argv = [sys.executable, "-m", "ivr.classic"]
    return generator.run(  # type: ignore[no-any-return]
        "classic", argv=argv, env=env, calls=calls, concurrency=options.classic_concurrency
    )


def classic_rate(report: Report) -> float:
    """Calls per second of the classic script over all its rounds."""
    seconds = sum(run.seconds for run in report.classic)
    return sum(run.calls for run in report.classic) / seconds if seconds else float("nan")


# -- the report ---------------------------------------------------------------------------------


def median_of(runs: list[Measured], figure: Callable[[Measured], float]) -> float:
    return statistics.median(figure(m) for m in runs)


def cpu_ms_per_call(runs: list[Measured]) -> tuple[float, float]:
    """Milliseconds of CPU per call: (server, load generator)."""
    calls = sum(m.run.calls for m in runs) or 1
    server = sum(m.server_cpu for m in runs) / calls * 1000
    generator = sum(m.run.generator_cpu for m in runs) / calls * 1000
    return server, generator


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def render(report: Report, options: Options) -> str:
    """The table of figures, with each target and whether it is met."""
    lines = [
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()} {platform.release()}; load average "
        f"(1 min) at start and end: " + " / ".join(f"{load:.1f}" for load in report.load),
        f"closed loop: {options.concurrency} concurrent callers, {options.rounds} rounds of "
        f"{options.seconds:g} s per server, alternating; medians of the rounds",
        "",
        f"{'':30}{'set-ups/s':>10}{'sustained/s':>13}{'server CPU':>12}{'loadgen CPU':>13}"
        "   set-ups/s by round",
    ]
    for name, runs in (("FastAGI server", report.real), ("bare stdlib FastAGI", report.bare)):
        server_cpu, generator_cpu = cpu_ms_per_call(runs)
        lines.append(
            f"{name:30}{median_of(runs, lambda m: m.run.rate):>10.1f}"
            f"{median_of(runs, lambda m: m.sustained):>13.1f}{server_cpu:>9.2f} ms"
            f"{generator_cpu:>10.2f} ms   " + " ".join(f"{m.run.rate:.1f}" for m in runs)
        )
    if report.classic:
        rate = classic_rate(report)
        calls = sum(run.calls for run in report.classic)
        errors = sum(run.errors for run in report.classic)
        lasted = [t for run in report.classic for t in run.latencies]
        lines.append(
            f"{'classic AGI script':30}{rate:>10.2f}{rate:>13.2f}{'':25}   "
            + " ".join(f"{run.rate:.2f}" for run in report.classic)
        )
        lines.append(
            f"  (classic: {calls} calls, {options.classic_concurrency} at a time, {errors} "
            f"errors; a call's process lives {percentile(lasted, 0.5) * 1000:.0f} ms, p50)"
        )
    return "\n".join(
        lines + ratio_lines(report) + open_lines(report, options) + hold_lines(report, options)
    )


def ratio_lines(report: Report) -> list[str]:
    """The two throughput ratios on sustained rates, with the set-up rates' in brackets."""
    real = median_of(report.real, lambda m: m.sustained)
    real_setups = median_of(report.real, lambda m: m.run.rate)
    bare = median_of(report.bare, lambda m: m.sustained)
    classic = classic_rate(report)
    errors = sum(m.run.errors for m in report.real + report.bare)
    degraded = sum(m.run.degraded for m in report.real)
    drain = median_of(report.real, lambda m: m.drain)
    return [
        "",
        f"FastAGI / classic  {real / classic:8.1f}x  (set-ups {real_setups / classic:.1f}x)   "
        f"target >= {TARGET_CLASSIC_RATIO:g}x: {verdict(real / classic >= TARGET_CLASSIC_RATIO)}",
        f"FastAGI / bare     {real / bare:8.2f}   (set-ups {real_setups / bare:.2f})    "
        f"target >= {TARGET_BARE_RATIO:g}: {verdict(real / bare >= TARGET_BARE_RATIO)}",
        f"closed-loop errors: {errors}, degraded decisions: {degraded}; the FastAGI server went "
        f"on writing call records for {drain:.2f} s after a round (median)",
    ]


def open_lines(report: Report, options: Options) -> list[str]:
    lines = [
        "",
        f"open loop: {options.rate:g} new calls/s offered ({options.arrivals} arrivals) for "
        f"{options.open_seconds:g} s",
    ]
    for name, run in (("FastAGI", report.open_real), ("bare", report.open_bare)):
        if run is None:
            continue
        lines.append(
            f"  {name:8} connect->decision p50 {run.p(0.5):6.2f} ms  p99 {run.p(0.99):6.2f} ms  "
            f"max {run.p(1.0):6.2f} ms; arrival->decision p99 {run.p(0.99, run.since_arrival):6.2f}"
            f" ms; {run.calls} calls, {run.errors} errors, {run.degraded} degraded, "
            f"{run.late_starts} late starts"
        )
    if report.open_real is not None:
        p99 = report.open_real.p(0.99)
        lines.append(f"  p99 target < {TARGET_P99_MS:g} ms: {verdict(p99 < TARGET_P99_MS)}")
    lines.append(
        f"first call after the server started: {report.first_call * 1000:.1f} ms connect->decision"
    )
    return lines


def hold_lines(report: Report, options: Options) -> list[str]:
    run = report.hold
    if run is None:
        return []
    held = report.held_generator
    per_call = (report.rss_open - report.rss_before) / max(held, 1)
    kinds = ", ".join(f"{k}: {v}" for k, v in run.error_kinds.items()) or "none"
    ok = held >= options.hold and run.errors == 0 and run.degraded == 0
    target = f"{TARGET_OPEN_CALLS} open calls without an error: "
    if options.hold < TARGET_OPEN_CALLS:
        target += f"not tried ({options.hold} held)"
    else:
        target += verdict(ok)
    return [
        "",
        f"held open (real-time prompts): {held} calls in a prompt at once (the server's own "
        f"gauge: {report.held_server}); {run.calls} calls, {run.errors} errors ({kinds}), "
        f"{run.degraded} degraded",
        f"  server RSS: {report.rss_before / 1024:.1f} MiB before, {report.rss_open / 1024:.1f} "
        f"MiB with the calls open, {report.rss_after / 1024:.1f} MiB after they ended, "
        f"{report.rss_idle / 1024:.1f} MiB once their idle threads had ended",
        f"  memory per open call: {per_call:.1f} KiB; server CPU per real-time call: "
        f"{report.hold_cpu / max(run.calls, 1) * 1000:.2f} ms",
        f"  {target}",
    ]


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fastagi", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="Short runs, 250 open calls.")
    parser.add_argument("--concurrency", type=int, default=32, help="Closed-loop callers.")
    parser.add_argument("--seconds", type=float, default=8.0, help="Seconds per closed-loop run.")
    parser.add_argument("--rounds", type=int, default=3, help="Closed-loop rounds per server.")
    parser.add_argument("--rate", type=float, default=100.0, help="Open-loop calls per second.")
    parser.add_argument("--open-seconds", type=float, default=20.0)
    parser.add_argument("--arrivals", choices=("poisson", "fixed"), default="poisson")
    parser.add_argument("--classic-calls", type=int, default=20)
    parser.add_argument("--classic-concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--hold", type=int, default=TARGET_OPEN_CALLS, help="Calls held open.")
    parser.add_argument("--ramp-rate", type=float, default=200.0, help="Held calls opened per s.")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.open_seconds = 3.0, 2, 5.0
        args.classic_calls, args.hold = 6, 250
    return Options(
        args.concurrency, args.seconds, args.rounds, args.rate, args.open_seconds, args.arrivals,
        args.classic_calls, args.classic_concurrency, args.hold, args.ramp_rate,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    raise_open_files()
    with tempfile.TemporaryDirectory(prefix="bench-fastagi-") as directory:
        report = run_all(options, Path(directory))
    print(render(report, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
