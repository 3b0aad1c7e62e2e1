"""Hostile caller IDs end to end, and FastAGI peers that are not allowed.

Names and numbers carrying HTML, SQL, template syntax, control characters, bytes that are
not UTF-8 and very long strings go through the real FastAGI server into the database, and
out through the dashboard (live-board JSON, history and call pages) as plain text; no
metric label ever carries them. Bytes that are not UTF-8, and NUL, are stored as U+FFFD
(the AGI reader decodes with "replace"; PostgreSQL text cannot hold NUL); an environment
line over 8 kB is cut to that length.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from markupsafe import escape
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select

from dashboard.testing import Clock as DashboardClock
from dashboard.testing import add_user, make_app, sign_in
from ivr.app import build_services, close_services
from ivr.emulator import CallResult, EmulatedCall
from ivr.fastagi import FastAGIServer, is_allowed, start_in_thread
from ivr.routes import ROUTES
from onerpa import db
from onerpa.demo import load_demo
from onerpa.metrics import DatabaseCollector, ProcessMetrics
from onerpa.models import Call, Customer, PhoneNumber
from onerpa.settings import Settings
from onerpa.timing import Targets
from tests.flowkit import Clock, Line
from tests.reliability_figures import Figures, call_refs, count_calls, missing_records

pytest_plugins = ["tests.reliability_figures"]

AREA = "hostile"
MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
PASSWORD = "correct horse"
KEYS = ["100101#", "2"]  # no usable caller ID: the caller types a customer number


@dataclass(frozen=True)
class Hostile:
    label: str
    name: str
    number: str

    @property
    def stored_name(self) -> str:
        return _as_received(self.name)

    @property
    def stored_number(self) -> str:
        return _as_received(self.number)


def _as_received(text: str) -> str:
    """What the server reads: the bytes Asterisk sends, decoded with U+FFFD for bad ones."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


HOSTILE = [
    Hostile("html", "<script>alert(1)</script>", "<b>+7 495 123-45-67</b>"),
    Hostile("sql", "'; DROP TABLE calls;--", "1' OR '1'='1"),
    Hostile("sql delete", "Robert'); DELETE FROM customers;--", "'; DELETE FROM phone_numbers;--"),
    Hostile("attribute", '"><img src=x onerror=alert(1)>', '" onmouseover="alert(1)'),
    Hostile("template", "{{ 7*7 }}{% debug %}", "${7*7}#{7*7}"),
    Hostile("control", "bell\x07 esc\x1b[31m del\x7f bs\x08 tab\t cr\r", "\x1b]0;x\x07+7495123"),
    Hostile("invalid utf-8", "\udcff\udcfeИван\udcc3", "\udcff\udcfe84951234567"),
    Hostile("4 kB", "Ж" * 2000, "7" * 4000),
]
# Asterisk keeps caller IDs in C strings, so it never sends NUL; another peer could. Over
# 8 kB, the environment line is cut to its limit.
NUL = Hostile("nul", "nul\x00name", "+7495\x00123")
TEN_KB = Hostile("10 kB", "Щ" * 5120, "9" * 10240)


@contextmanager
def metered_line(engine: Engine) -> Iterator[tuple[Line, CollectorRegistry, CollectorRegistry]]:
    """A support line whose FastAGI metrics and database metrics are exported for scraping."""
    load_demo(engine)
    clock = Clock(THURSDAY_11)
    process, site = CollectorRegistry(), CollectorRegistry()
    metrics = ProcessMetrics(registry=process, scripts=ROUTES)
    services = build_services(Settings(), engine, clock=clock, metrics=metrics)
    DatabaseCollector(engine, Targets.from_settings(Settings()), registry=site, clock=clock)
    server = FastAGIServer(("127.0.0.1", 0), services, env_timeout=2.0)
    start_in_thread(server)
    try:
        yield Line(engine, services, server, clock), process, site
    finally:
        server.shutdown()
        server.server_close()
        close_services(services)


def place(line: Line, case: Hostile) -> CallResult:
    result = EmulatedCall(caller=case.number, name=case.name, keys=KEYS).run_fastagi(line.address)
    assert result.variables.get("ONERPA_ROUTE") == "queue", case.label
    return result


def signed_in_dashboard(engine: Engine) -> FlaskClient:
    with db.session_factory(engine).begin() as session:
        add_user(session, "vera", "supervisor", PASSWORD)
    client = make_app(engine, DashboardClock(THURSDAY_11)).test_client()
    assert sign_in(client, "vera", PASSWORD).status_code == 302
    return client


def test_hostile_caller_ids_reach_the_database_and_the_dashboard_as_text(
    engine: Engine, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    figures.backend(engine)
    with metered_line(engine) as (line, process, site):
        customers_before = _count(engine, Customer), _count(engine, PhoneNumber)
        results = [place(line, case) for case in HOSTILE]
        assert line.services.recorder.flush()
        exposition = generate_latest(process).decode() + generate_latest(site).decode()
    refs = call_refs(results)
    assert missing_records(engine, refs) == []
    with engine.connect() as conn:
        rows = {
            row.call_ref: row for row in conn.execute(select(Call).where(Call.call_ref.in_(refs)))
        }
    for case, ref in zip(HOSTILE, refs, strict=True):
        row = rows[ref]
        assert (row.callerid_name, row.callerid_raw) == (case.stored_name, case.stored_number)
        assert row.caller_e164 is None and row.identified_by == "digits", case.label
    assert (_count(engine, Customer), _count(engine, PhoneNumber)) == customers_before

    client = signed_in_dashboard(engine)
    board = {call["call_ref"]: call for call in client.get("/api/board").get_json()["calls"]}
    history = client.get("/calls").get_data(as_text=True)
    for case, ref in zip(HOSTILE, refs, strict=True):
        shown = board[ref]["caller"]
        assert (shown["name"], shown["number"]) == (case.stored_name, case.stored_number)
        page = client.get(board[ref]["url"]).get_data(as_text=True)
        for html in (history, page):
            assert str(escape(case.stored_name)) in html, case.label
        assert str(escape(case.stored_number)) in page, case.label
    for html in (history, page):
        assert "<script>alert" not in html and "<img src=x" not in html
        assert 'onmouseover="alert' not in html and "<b>+7" not in html

    assert_no_label_carries(exposition, HOSTILE)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    figures.add(AREA, faults=len(HOSTILE))
    count_calls(figures, AREA, results)


def assert_no_label_carries(exposition: str, cases: list[Hostile]) -> None:
    """No label value is anything but a short code; none holds a caller's name or digits."""
    labels = [
        value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        for value in sample.labels.values()
    ]
    assert labels  # the scrape did carry labelled series
    for value in labels:
        assert re.fullmatch(r"[a-z_-]{1,32}|[0-9.]+|\+Inf", value), value
    for case in cases:
        for text in (case.stored_name, case.stored_number):
            assert text not in exposition, case.label
        for digits in re.findall(r"\d{4,}", case.stored_number):
            assert not any(digits in value for value in labels), case.label


def test_ten_kilobyte_caller_ids_reach_the_database(engine: Engine, figures: Figures) -> None:
    figures.backend(engine)
    with metered_line(engine) as (line, _, _):
        result = EmulatedCall(caller=TEN_KB.number, name=TEN_KB.name, keys=KEYS).run_fastagi(
            line.address
        )
        assert line.services.recorder.flush()
    figures.add(AREA, faults=1)
    count_calls(figures, AREA, [result])
    assert result.variables.get("ONERPA_ROUTE") == "queue"
    [ref] = call_refs([result])
    with engine.connect() as conn:
        name = conn.scalar(select(Call.callerid_name).where(Call.call_ref == ref))
    assert name and TEN_KB.stored_name.startswith(name)  # whole, or cut to a stated limit


def test_a_caller_name_with_nul_does_not_stop_the_recording_of_other_calls(
    engine: Engine, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    figures.backend(engine)
    with metered_line(engine) as (line, _, _):
        hostile = place(line, NUL)
        following = place(line, HOSTILE[0])
        written = line.services.recorder.flush(3)
    refs = call_refs([hostile, following])
    missing = set(missing_records(engine, refs))
    errors = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    logged = {ref for ref in missing if ref in errors}
    figures.add(AREA, faults=1, lost=len(missing - logged), lost_logged=len(logged))
    count_calls(figures, AREA, [hostile, following])
    assert written, "the records behind the NUL one were never written"
    assert refs[1] not in missing  # the next caller's record is written...
    assert refs[0] not in missing or refs[0] in logged  # ...and the NUL one stored or logged
    with engine.connect() as conn:
        name = conn.scalar(select(Call.callerid_name).where(Call.call_ref == refs[0]))
    assert name in (None, "nul\ufffdname")  # PostgreSQL text cannot hold NUL: U+FFFD instead


# --- FastAGI peers ---------------------------------------------------------------------------


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[FastAGIServer]:
    """A FastAGI server on loopback that answers only the Asterisk at 10.9.9.9."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'guarded.sqlite3'}")
    db.migrate(engine)
    services = build_services(Settings(), engine, lookup_workers=1)
    server = FastAGIServer(("127.0.0.1", 0), services, allowed=["10.9.9.9"], env_timeout=2.0)
    start_in_thread(server)
    yield server
    server.shutdown()
    server.server_close()
    close_services(services)
    engine.dispose()


def test_connections_from_an_address_not_allowed_are_refused_and_logged(
    guarded: FastAGIServer, figures: Figures, caplog: pytest.LogCaptureFixture
) -> None:
    address = ("127.0.0.1", guarded.port)
    attempts = 5
    results = [EmulatedCall(caller="+74951234567").run_fastagi(address) for _ in range(attempts)]
    with socket.create_connection(address, timeout=5) as sock:
        assert sock.recv(1) == b""  # closed before a single byte of AGI
    refused = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "refused: not an allowed address" in r.getMessage()
    ]
    assert len(refused) == attempts + 1
    assert all("127.0.0.1" in r.getMessage() for r in refused)
    for result in results:
        assert result.commands == [] and "ONERPA_ROUTE" not in result.variables
    assert _count(guarded.services.recorder.engine, Call) == 0
    figures.add(AREA, refused=len(refused))


@pytest.mark.parametrize(
    ("peer", "allowed", "expected"),
    [
        ("127.0.0.1", ["127.0.0.1"], True),
        ("::ffff:127.0.0.1", ["127.0.0.1"], True),  # IPv4 on a dual-stack socket
        ("10.0.0.7", ["10.0.0.0/24"], True),
        ("10.0.1.7", ["10.0.0.0/24"], False),
        ("fe80::1%eth0", ["fe80::/64"], True),
        ("::1", ["127.0.0.1"], False),
        ("127.0.0.2", ["127.0.0.1"], False),
        ("", ["0.0.0.0/0"], False),
        ("not-an-address", ["0.0.0.0/0"], False),
        ("127.0.0.1\x00", ["127.0.0.1"], False),
    ],
)
def test_peer_addresses_are_checked_exactly(
    peer: str, allowed: list[str], expected: bool, figures: Figures
) -> None:
    networks = [ipaddress.ip_network(a, strict=False) for a in allowed]
    assert is_allowed(peer, networks) is expected
    if not expected:
        figures.add(AREA, refused=1)


def _count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model)) or 0)
