"""Time ``onerpa-support what-if`` over 1,000,000 recorded calls with their evidence.

Builds a year of calls from 40,000 customers (licences, update plans, subscriptions, some
cancelled, goodwill grants, etiquette refusals) as the call flow stores them: each call
decided by ``entitlement.decide`` under today's rules, with the evidence JSON the flow
writes (closed calls only their day; a few unknown callers, degraded calls, and calls
without evidence). Bulk-inserted (as ``bench.calldata`` does) into a temporary SQLite file
and, with ``--backend postgresql|both``, a throwaway PostgreSQL schema. Then the command
itself runs in a child process over the whole year, twice:

* the same rules: nothing may change (a check that re-decision reproduces the flow);
* ``--hours "mon-fri 10:00-18:00" --free-months 18``.

Printed per run: seconds, calls/s, the child's peak RSS, calls changed. Target: 1M calls in
under a minute on two cores.

    .venv/bin/python -m bench.whatif
    .venv/bin/python -m bench.whatif --calls 100000 --backend both
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

from sqlalchemy import Engine, text

from bench.calldata import POSTGRES_URL, database
from onerpa import entitlement, evidence, hours
from onerpa.entitlement import (
    CallerRecords,
    Grant,
    Licence,
    RefusalFlag,
    Subscription,
    UpdatePlan,
)
from onerpa.hours import SupportCalendar

TARGET_SECONDS = 60.0
CALENDAR = SupportCalendar()
ZONE = CALENDAR.zone
FIRST = date(2025, 12, 1)
LAST = date(2026, 11, 30)
CUSTOMERS = 40_000
CHANGED = ["--hours", "mon-fri 10:00-18:00", "--free-months", "18"]
_AT = "\x00at\x00"  # stands for the moment in a cached evidence text
BUG = (entitlement.Lapsed.LICENCE, entitlement.Lapsed.BOTH)  # offered the bug exception

CALL_COLUMNS = (
    "id, call_ref, uniqueid, linkedid, channel, callerid_raw, callerid_name, digits, "
    "explanation, step, status, degraded, server, decision, reason, arrived_at, decided_at, "
    "caller_e164, customer_id, evidence"
)
CUSTOMER_COLUMNS = "id, customer_number, organisation, contact_name, email, created_at"


def midnight(day: date) -> datetime:
    """Return 00:00 Moscow on ``day``: records change state only at day boundaries here."""
    return datetime.combine(day, clock(0), ZONE)


def records(rng: random.Random) -> CallerRecords:
    """Return one customer's records: most bought software, some more."""
    span = (LAST - date(2021, 1, 1)).days
    bought = date(2021, 1, 1) + timedelta(days=rng.randrange(span))
    licences = (Licence("OneRPA Studio", bought, None),) if rng.random() < 0.9 else ()
    updates: tuple[UpdatePlan, ...] = ()
    if licences and rng.random() < 0.3:
        updates = (
            UpdatePlan(bought + timedelta(days=rng.randrange(300, 700)), rng.choice((12, 24))),
        )
    subscriptions: tuple[Subscription, ...] = ()
    if rng.random() < 0.2:
        starts = FIRST + timedelta(days=rng.randrange(-400, 300))
        ends = starts + timedelta(days=365) if rng.random() < 0.5 else None
        cancelled = midnight(starts + timedelta(days=200)) if rng.random() < 0.1 else None
        subscriptions = (Subscription("OneRPA Cloud", starts, ends, cancelled),)
    grants: tuple[Grant, ...] = ()
    if rng.random() < 0.03:
        given = FIRST + timedelta(days=rng.randrange(365))
        grants = (Grant(given + timedelta(days=60), "сбой обновления", "vera", midnight(given)),)
    refusals: tuple[RefusalFlag, ...] = ()
    if rng.random() < 0.01:
        since = FIRST + timedelta(days=rng.randrange(365))
        end = midnight(since + timedelta(days=30))
        refusals = (RefusalFlag(midnight(since), "грубость", end),)
    return CallerRecords(licences, updates, subscriptions, refusals, grants)


def arrival(rng: random.Random) -> datetime:
    """Return a moment in the year: mostly office hours, some evenings, nights, weekends."""
    day = FIRST + timedelta(days=rng.randrange((LAST - FIRST).days + 1))
    minute = rng.randrange(8 * 60, 19 * 60) if rng.random() < 0.85 else rng.randrange(24 * 60)
    local = datetime.combine(day, clock(0), ZONE) + timedelta(
        minutes=minute, seconds=rng.random() * 60
    )
    return local.astimezone(UTC)


class Flow:
    """Decides calls as the call flow does, with the evidence text cached per customer-day."""

    def __init__(self, n_customers: int, rng: random.Random) -> None:
        self.customers = [records(rng) for _ in range(n_customers)]
        self._texts: dict[tuple[int, date, bool], tuple[str, str]] = {}
        self._windows: dict[date, tuple[datetime, datetime] | None] = {}

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(ZONE)
        if local.date() not in self._windows:
            self._windows[local.date()] = hours.opening_on(CALENDAR, local.date())
        window = self._windows[local.date()]
        return window is not None and window[0] <= local < window[1]

    def decided(self, customer: int | None, at: datetime, bug: bool) -> tuple[str, str]:
        """Return (decision, evidence) of a call answered by the rules at ``at``."""
        day = at.astimezone(ZONE).date()
        key = (customer if customer is not None else -1, day, bug)
        if key not in self._texts:
            found = self.customers[customer] if customer is not None else None
            fact = evidence.day_fact(CALENDAR, at)
            decision = entitlement.decide(found, at, day=fact)
            lapsed = entitlement.lapsed(found, at) if found else entitlement.Lapsed.NOTHING
            if bug and decision.reason is entitlement.Reason.NOT_ENTITLED and lapsed in BUG:
                decision = entitlement.decide(found, at, critical_bug=True, day=fact)
            reason = decision.reason.value
            self._texts[key] = (
                reason,
                evidence.to_json(reason, at, decision.evidence).replace(at.isoformat(), _AT, 1),
            )
        reason, template = self._texts[key]
        return reason, template.replace(_AT, at.isoformat(), 1)


def calls(n: int, postgres: bool, flow: Flow, rng: random.Random) -> Iterator[tuple[object, ...]]:
    """Yield ``n`` recorded calls as rows of ``CALL_COLUMNS``."""
    for i in range(1, n + 1):
        arrived = arrival(rng)
        at = arrived + timedelta(seconds=20)
        r = rng.random()
        customer = None if r < 0.05 else rng.randrange(len(flow.customers))
        caller = f"+7499{rng.randrange(10**7):07d}"
        stored: str | None
        if not flow.is_open(arrived):
            day = evidence.day_fact(CALENDAR, arrived)
            decision = "closed"
            stored = evidence.to_json("closed", arrived, (day, entitlement.RuleFact("closed")))
        elif r < 0.052:
            decision, customer = "degraded", None
            day = evidence.day_fact(CALENDAR, arrived)
            stored = evidence.to_json(decision, arrived, (day, entitlement.RuleFact(decision)))
        else:
            decision, stored = flow.decided(customer, at, rng.random() < 0.3)
        if rng.random() < 0.02:
            stored = None  # stored before calls kept their evidence
        yield (
            i, str(uuid.UUID(int=i)), f"{1700000000 + i}.{i}", f"{1700000000 + i}.{i}",
            f"PJSIP/trunk-{i:08x}", caller[1:], "", "", "", "routed", "ended_ivr",
            decision == "degraded", "agi-1",
            decision, decision, _stamp(arrived, postgres), _stamp(at, postgres), caller,
            None if customer is None else customer + 1, stored,
        )  # fmt: skip


def customers(n: int, postgres: bool) -> Iterator[tuple[object, ...]]:
    created = _stamp(datetime(2020, 1, 1, tzinfo=UTC), postgres)
    for i in range(1, n + 1):
        yield (i, f"C{i:06d}", f"ООО Клиент {i}", "", "", created)


def _stamp(moment: datetime, postgres: bool) -> str:
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return stamp + "+00" if postgres else stamp


def fill(engine: Engine, n: int) -> None:
    """Bulk-insert the customers and ``n`` calls into the migrated database ``engine``."""
    postgres = engine.dialect.name == "postgresql"
    rng = random.Random(n)
    flow = Flow(CUSTOMERS, rng)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, columns, rows in (
            ("customers", CUSTOMER_COLUMNS, customers(CUSTOMERS, postgres)),
            ("calls", CALL_COLUMNS, calls(n, postgres, flow, rng)),
        ):
            if postgres:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns.split(",")))
                insert = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
                cursor.executemany(insert, rows)  # type: ignore[arg-type]  # sqlite3 takes any iterable
            raw.commit()
        if postgres:
            cursor.execute("SELECT setval('calls_id_seq', (SELECT max(id) FROM calls))")
            cursor.execute("SELECT setval('customers_id_seq', (SELECT max(id) FROM customers))")
        cursor.execute("ANALYZE calls, customers" if postgres else "ANALYZE")
        raw.commit()
    finally:
        raw.close()


def database_url(engine: Engine) -> str:
    """Return the URL the command reaches ``engine``'s database (and schema) by."""
    if engine.dialect.name == "sqlite":
        return str(engine.url)
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def run_command(url: str, extra: list[str]) -> tuple[float, int, dict]:
    """Run the what-if in a child process; return its seconds, peak RSS (KiB) and JSON."""
    args = [sys.executable, "-c", "from onerpa_support.cli import main; main()", "what-if"]
    args += ["--from", FIRST.isoformat(), "--to", LAST.isoformat(), "--json", *extra]
    env = {**os.environ, "ONERPA_DATABASE_URL": url}
    began = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE)
    out = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - began
    if status != 0:
        raise SystemExit(f"what-if failed with status {status}")
    return seconds, usage.ru_maxrss, json.loads(out)


def measure(backend: str, n: int) -> None:
    with database(backend) as engine:
        began = time.perf_counter()
        fill(engine, n)
        built = time.perf_counter() - began
        print(f"{backend}: {n:,} calls of {CUSTOMERS:,} customers built in {built:.0f} s")
        url = database_url(engine)
        for name, extra in (("same rules", []), ("changed rules", CHANGED)):
            seconds, rss, body = run_command(url, extra)
            rate = body["calls"] / seconds
            print(
                f"  {name:14} {seconds:6.1f} s  {rate:9,.0f} calls/s  "
                f"peak RSS {rss / 1024:5.0f} MiB  "
                f"calls {body['calls']:,}  changed {body['changed']:,}  "
                f"not re-decidable {body['not_redecidable']:,}"
            )
            for item in body["transitions"][:8]:
                print(f"      {item['from']:>18} → {item['to']:<18} {item['count']:>8,}")
            verdict = "met" if seconds < TARGET_SECONDS else "NOT met"
            print(f"  {'':14} {TARGET_SECONDS:g} s target {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    print(f"python {platform.python_version()}, {platform.machine()}, {cpus} CPUs")
    for backend in ("sqlite", "postgresql"):
        if args.backend in (backend, "both"):
            measure(backend, args.calls)


if __name__ == "__main__":
    main()
