"""Time the dashboard with 1,000,000 stored calls over two years and 200 live ones.

Three requests, through the real Flask app (sign-in, queries, rendering), against a
temporary SQLite file and a throwaway PostgreSQL schema:

- the live-board JSON (``/api/board``) with 200 live calls and each caller's last calls:
  p95 under 50 ms (also timed with the few-second cache of last calls turned off);
- the figures page for the last 30 days (``/figures?period=30d``): under 300 ms;
- the history searched by a phone number typed as people write it (``/calls?phone=...``):
  p95 under 50 ms.

The same requests run first against a small history (the baseline, same 200 live calls),
so the ratio shows what a million stored calls cost.

    .venv/bin/python -m bench.dashboard
    .venv/bin/python -m bench.dashboard --calls 100000 --backend sqlite
    .venv/bin/python -m bench.dashboard --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from bench.calldata import database, percentile
from dashboard.testing import Clock, add_user, make_app, sign_in
from onerpa import db
from onerpa.phone import format_national

END = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
START = END - timedelta(days=730)
CUSTOMERS = 20_000
LIVE = (("in_ivr", 60), ("queued", 60), ("talking", 80))
AGENTS = tuple(f"PJSIP/{n}" for n in range(101, 111))
DECISIONS = ("free_first_year", "free_updates", "free_subscription", "free_critical_bug")
TOPICS = ("bug", "howto", "licensing", "none")
BASELINE_CALLS = 1_000
TARGETS_MS = {"board": 50.0, "board_cold": 50.0, "figures": 300.0, "history": 50.0}
RUNS = {"board": 200, "board_cold": 100, "figures": 20, "history": 200}
SECTION = "## Dashboard"

CALL_COLUMNS = (
    "id",
    "call_ref",
    "uniqueid",
    "linkedid",
    "channel",
    "callerid_raw",
    "callerid_name",
    "caller_e164",
    "customer_id",
    "identified_by",
    "digits",
    "decision",
    "reason",
    "explanation",
    "topic",
    "route",
    "step",
    "status",
    "degraded",
    "server",
    "arrived_at",
    "decided_at",
    "queued_at",
    "answered_at",
    "agent",
    "agent_interface",
    "ended_at",
    "ended_by",
)


def phone(customer: int) -> str:
    """Return the E.164 number of customer ``customer`` (1-based)."""
    return f"+7495{customer:07d}"


def _stamp(moment: datetime | None, postgres: bool) -> str | None:
    if moment is None:
        return None
    text = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return text + "+00" if postgres else text


def _outcome(arrived: datetime, rng: random.Random) -> dict[str, object]:
    """Return the status and stamps of one finished call."""
    s = timedelta(seconds=1)
    r = rng.random()
    if r < 0.05:
        return {"status": "abandoned_ivr", "ended_at": arrived + rng.uniform(3, 40) * s}
    decided = arrived + rng.uniform(10, 45) * s
    if r < 0.12:
        return {
            "status": "ended_ivr",
            "decision": "not_entitled",
            "decided_at": decided,
            "ended_at": decided + 10 * s,
        }
    wait = min(rng.expovariate(1 / 40), 900) * s
    queued = {"decision": rng.choice(DECISIONS), "decided_at": decided, "queued_at": decided}
    if r < 0.2:
        return {**queued, "status": "abandoned_queue", "ended_at": decided + wait}
    answered = decided + wait
    talk = min(max(rng.gauss(220, 90), 20), 1800) * s
    agent = rng.choice(AGENTS)
    return {
        **queued,
        "status": "completed",
        "answered_at": answered,
        "ended_at": answered + talk,
        "agent": agent,
        "agent_interface": agent,
    }


def _live(status: str, rng: random.Random) -> dict[str, object]:
    arrived = END - timedelta(seconds=rng.uniform(20, 900))
    call: dict[str, object] = {"status": status}
    if status != "in_ivr":
        call.update(decision=rng.choice(DECISIONS), decided_at=arrived, queued_at=arrived)
    if status == "talking":
        agent = rng.choice(AGENTS)
        call.update(answered_at=arrived + timedelta(seconds=30), agent=agent)
        call["agent_interface"] = agent
    return {"arrived_at": arrived, **call}


def calls(n: int, postgres: bool, seed: int = 1) -> Iterator[tuple[object, ...]]:
    """Yield ``n`` finished calls spread over two years, then the live ones."""
    rng = random.Random(seed)
    step = (END - START - timedelta(hours=1)) / max(n, 1)
    live = [status for status, count in LIVE for _ in range(count)]
    for i in range(1, n + len(live) + 1):
        if i <= n:
            call = {"arrived_at": START + step * i, **_outcome(START + step * i, rng)}
        else:
            call = _live(live[i - n - 1], rng)
        yield _row(i, call, rng, postgres)


def _row(i: int, call: dict[str, object], rng: random.Random, postgres: bool) -> tuple:
    known = rng.random() < 0.85
    customer = rng.randint(1, CUSTOMERS) if known else None
    e164 = phone(customer) if customer else f"+7812{rng.randint(0, 9_999_999):07d}"
    decision = call.get("decision") or (None if known else "unknown_caller")
    values = {
        "id": i,
        "call_ref": str(uuid.UUID(int=i)),
        "uniqueid": f"{1700000000 + i}.{i}",
        "linkedid": f"{1700000000 + i}.{i}",
        "channel": f"PJSIP/trunk-{i:08x}",
        "callerid_raw": "8" + e164[2:],
        "callerid_name": f"CALLER {i % 977}",
        "caller_e164": e164,
        "customer_id": customer,
        "identified_by": "caller_id" if customer else None,
        "digits": "2",
        "decision": decision,
        "reason": decision,
        "explanation": "Бесплатно: первый год после покупки (OneRPA Studio), до 12.03.2027",
        "topic": rng.choice(TOPICS),
        "route": "queue",
        "step": "routed",
        "degraded": False,
        "server": "agi-1",
        **call,
    }
    for name in ("arrived_at", "decided_at", "queued_at", "answered_at", "ended_at"):
        values[name] = _stamp(values.get(name), postgres)  # type: ignore[arg-type]
    return tuple(values.get(column) for column in CALL_COLUMNS)


def customers(postgres: bool) -> Iterator[tuple[object, ...]]:
    created = _stamp(START, postgres)
    for n in range(1, CUSTOMERS + 1):
        yield (n, f"{100000 + n}", f"ООО Клиент {n}", f"Контакт {n}", f"c{n}@example.ru", created)


def phones() -> Iterator[tuple[object, ...]]:
    for n in range(1, CUSTOMERS + 1):
        yield (n, n, phone(n), "офис")


def licences() -> Iterator[tuple[object, ...]]:
    first = date(2024, 1, 1)
    for n in range(1, CUSTOMERS + 1):
        yield (n, n, f"L{n}", "OneRPA Studio", first + timedelta(days=n % 1000))


TABLES = (
    ("customers", "id, customer_number, organisation, contact_name, email, created_at", customers),
    ("phone_numbers", "id, customer_id, e164, label", lambda postgres: phones()),
    (
        "licences",
        "id, customer_id, licence_number, product, purchased_on",
        lambda postgres: licences(),
    ),
)


def fill(engine: Engine, n: int) -> None:
    """Bulk-insert the customers, ``n`` stored calls and the live calls."""
    postgres = engine.dialect.name == "postgresql"
    batches = [(table, columns, rows(postgres)) for table, columns, rows in TABLES]
    batches.append(("calls", ", ".join(CALL_COLUMNS), calls(n, postgres)))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, columns, rows in batches:
            if postgres:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns.split(",")))
                statement = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
                cursor.executemany(statement, rows)  # type: ignore[arg-type]
            raw.commit()
        if postgres:
            for table in ("customers", "phone_numbers", "licences", "calls"):
                cursor.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        if not postgres:
            cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    if postgres:
        _vacuum(engine)


def _vacuum(engine: Engine) -> None:
    """Vacuum and analyze the loaded tables, as autovacuum would after a bulk load.

    Without it the first reads of every page after COPY also write its hint bits, and the
    timings would measure that one-off cleanup rather than the dashboard.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) customers, phone_numbers, licences, calls")


@dataclass(frozen=True)
class Result:
    """Timings of one request, in milliseconds."""

    name: str
    median: float
    p95: float


def requests(rng: random.Random) -> dict[str, Callable[[], str]]:
    """Return, per measured request, a function giving the next URL to ask for."""
    styles = (
        lambda e: format_national(e),
        lambda e: "8" + e[2:],
        lambda e: f"8 ({e[2:5]}) {e[5:8]}-{e[8:10]}-{e[10:]}",
    )
    return {
        "board": lambda: "/api/board",
        "board_cold": lambda: "/api/board",
        "figures": lambda: "/figures?period=30d",
        "history": lambda: "/calls?phone=" + rng.choice(styles)(phone(rng.randint(1, CUSTOMERS))),
    }


def time_requests(engine: Engine) -> list[Result]:
    """Sign in and time each request (after two warm-up runs)."""
    with db.session_factory(engine).begin() as session:
        add_user(session, "bench", "supervisor", "bench password")
    warm = make_app(engine, Clock(END)).test_client()
    # Without the few-second cache of callers' last calls: every poll queries them all.
    cold = make_app(engine, Clock(END), RECENT_CALLS_TTL_SECONDS=0).test_client()
    for client in (warm, cold):
        assert sign_in(client, "bench", "bench password").status_code == 302
    results = []
    for name, next_url in requests(random.Random(3)).items():
        client = cold if name == "board_cold" else warm
        timings = []
        for run in range(RUNS[name] + 2):
            url = next_url()
            began = time.perf_counter()
            response = client.get(url)
            response.get_data()
            elapsed = time.perf_counter() - began
            assert response.status_code == 200, (url, response.status_code)
            if run >= 2:
                timings.append(elapsed * 1e3)
        results.append(Result(name, statistics.median(timings), percentile(timings, 0.95)))
    return results


def measure(backend: str, n: int) -> list[str]:
    """Time the requests on a baseline history and on ``n`` calls; return report lines."""
    rows: dict[str, list[Result]] = {}
    for size in (BASELINE_CALLS, n):
        with database(backend) as engine:
            began = time.perf_counter()
            fill(engine, size)
            print(f"{backend}: {size:,} stored calls built in {time.perf_counter() - began:.0f} s")
            rows[str(size)] = time_requests(engine)
    return report(backend, n, rows[str(BASELINE_CALLS)], rows[str(n)])


def report(backend: str, n: int, base: list[Result], big: list[Result]) -> list[str]:
    labels = {
        "board": "live-board JSON, 200 live calls",
        "board_cold": "live-board JSON, no cache of last calls",
        "figures": "figures page, last 30 days",
        "history": "history search by phone",
    }
    lines = [
        f"{backend}, {n:,} stored calls (baseline {BASELINE_CALLS:,}), 200 live:",
        "",
        "| request | median ms | p95 ms | baseline p95 ms | ratio | target p95 |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for small, large in zip(base, big, strict=True):
        target = TARGETS_MS[large.name]
        verdict = "met" if large.p95 < target else "NOT met"
        lines.append(
            f"| {labels[large.name]} | {large.median:.1f} | {large.p95:.1f} | {small.p95:.1f} "
            f"| {large.p95 / small.p95:.2f} | < {target:g} ms: {verdict} |"
        )
    return lines + [""]


def write_section(path: Path, lines: list[str]) -> None:
    """Replace (or append) the Dashboard section of ``path``, leaving the others alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    body = SECTION + "\n\n" + "\n".join(lines).rstrip() + "\n"
    if SECTION in text:
        head, _, rest = text.partition(SECTION)
        following = rest.find("\n## ")
        tail = rest[following + 1 :] if following >= 0 else ""
        text = head + body + ("\n" + tail if tail else "")
    else:
        text = text.rstrip() + "\n\n" + body
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--write", type=Path, help="Put the results in this Markdown file.")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    machine = f"python {platform.python_version()}, {platform.machine()}, {cpus} CPUs"
    print(machine)
    lines = [
        "`python -m bench.dashboard`: requests through the Flask app (sign-in, queries, "
        "rendering) in one process, no network; each caller's last 4 calls on the board; "
        f"{CUSTOMERS:,} customers; calls spread over two years. {machine}.",
        "",
    ]
    for backend in ("sqlite", "postgresql"):
        if args.backend in (backend, "both"):
            lines += measure(backend, args.calls)
    print("\n".join(lines))
    if args.write:
        write_section(args.write, lines)


if __name__ == "__main__":
    main()
