"""Whole call lifecycles through the real FastAGI server and the Asterisk emulator: the stored
times, the figures and the parsed /metrics of both exporters agree."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ivr.app import build_services, close_services
from ivr.emulator import CallResult, EmulatedCall, turned_away
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.routes import ROUTES
from onerpa import figures, sweep
from onerpa.demo import load_demo
from onerpa.metrics import DatabaseCollector, ProcessMetrics
from onerpa.models import Call
from onerpa.settings import Settings
from onerpa.timing import Targets
from tests.flowkit import Clock

MSK = ZoneInfo("Europe/Moscow")
T = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)  # a Thursday, the line is open
CALLER = "84951234567"  # a demo customer in the first year: free_first_year
S = timedelta(seconds=1)


@dataclass
class Exporter:
    registry: CollectorRegistry
    port: int

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Scrape /metrics over HTTP and parse it back."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples().get((name, tuple(sorted(labels.items()))), 0.0)


def exporter(registry: CollectorRegistry) -> tuple[Exporter, object]:
    server, _thread = start_http_server(0, "127.0.0.1", registry)
    return Exporter(registry, server.server_port), server


def stop_http(server: object) -> None:
    server.shutdown()  # type: ignore[attr-defined]
    server.server_close()  # type: ignore[attr-defined]


class Site:
    """A support line with its FastAGI server (restartable) and the site metrics process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.clock = Clock(T)
        self.site, self._site_http = exporter(CollectorRegistry())
        DatabaseCollector(engine, Targets(), registry=self.site.registry, clock=self.clock)
        self.start_fastagi()

    def start_fastagi(self) -> None:
        self.metrics = ProcessMetrics(registry=CollectorRegistry(), scripts=ROUTES)
        self.services = build_services(
            Settings(), self.engine, clock=self.clock, metrics=self.metrics
        )
        self.server = FastAGIServer(("127.0.0.1", 0), self.services, env_timeout=2.0)
        start_in_thread(self.server)
        self.process, self._process_http = exporter(self.metrics._registry)  # type: ignore[arg-type]

    def stop_fastagi(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        close_services(self.services)
        stop_http(self._process_http)

    def run(self, script: str, call: EmulatedCall) -> CallResult:
        result = call.run_fastagi(("127.0.0.1", self.server.port), script)
        assert self.services.recorder.flush()
        return result

    def arrive(self, uniqueid: str) -> str:
        """Play a caller through the IVR to the queue; return our call id."""
        result = self.run(
            "call", EmulatedCall(caller=CALLER, keys=["2"], uniqueid=uniqueid, answered=True)
        )
        assert result.variables["ONERPA_ROUTE"] == "queue"
        return result.variables["ONERPA_CALL_ID"]

    def agent_answers(self, call_id: str, uniqueid: str, waited: int) -> None:
        variables = {"MEMBERNAME": "Agent 101", "MEMBERINTERFACE": "PJSIP/101"}
        member = EmulatedCall(
            args=[call_id, uniqueid],
            uniqueid=f"{uniqueid}1",
            linkedid=uniqueid,
            channel="PJSIP/101-00000002",
            context="onerpa-agent-connect",
            variables={**variables, "QEHOLDTIME": str(waited)},
            answered=True,
        )
        self.run("agent-connect", member)

    def hang_up(self, call_id: str, uniqueid: str, variables: dict[str, str]) -> None:
        handler = EmulatedCall(
            caller=CALLER,
            args=[call_id, uniqueid],
            uniqueid=uniqueid,
            context="onerpa-hangup",
            variables={"ONERPA_CALL_ID": call_id, **variables},
            dead_at_start=True,
        )
        self.run("hangup", handler)

    def turned_away(self, uniqueid: str, status: str, waited: float = 0) -> str:
        """Play a caller the queue turns away with ``status``; return our call id."""
        call = EmulatedCall(caller=CALLER, keys=["2"], uniqueid=uniqueid, answered=True)
        result = self.run("call", call)
        assert result.variables["ONERPA_ROUTE"] == "queue"

        def sleep(seconds: float) -> None:
            self.clock.now += seconds * S

        address = ("127.0.0.1", self.server.port)
        turned_away(call, result, address, status, waited=waited, lived=25, sleep=sleep)
        assert self.services.recorder.flush()
        return result.variables["ONERPA_CALL_ID"]

    def stored(self, call_id: str) -> Call:
        with self.engine.connect() as conn:
            return conn.execute(select(Call).where(Call.call_ref == call_id)).one()

    def close(self) -> None:
        self.stop_fastagi()
        stop_http(self._site_http)


@contextmanager
def site(engine: Engine) -> Iterator[Site]:
    load_demo(engine)
    line = Site(engine)
    try:
        yield line
    finally:
        line.close()


def test_lifecycles_give_the_same_times_in_the_records_the_figures_and_the_metrics(
    engine: Engine,
) -> None:
    with site(engine) as line:
        # A: answered after 2.5 s, a 200 s consultation, the caller hangs up.
        a = line.arrive("1795696812.28")
        line.clock.now = T + 2.5 * S
        line.agent_answers(a, "1795696812.28", waited=2)
        line.clock.now = T + 202.5 * S
        line.hang_up(
            a,
            "1795696812.28",
            {
                "MEMBERINTERFACE": "PJSIP/101",
                "MEMBERNAME": "Agent 101",
                "QUEUEWAIT": "2",
                "QUEUEWAIT_MS": "2000",
                "ANSWEREDTIME": "200",
                "ANSWEREDTIME_MS": "200000",
                # The channel's whole life (22.10.1), the IVR's 25 s included.
                "DIALEDTIME": "227",
                "DIALEDTIME_MS": "227500",
            },
        )
        # B: abandoned in the queue after 75 s.
        line.clock.now = T + 300 * S
        b = line.arrive("1795697112.40")
        line.clock.now = T + 375 * S
        line.hang_up(b, "1795697112.40", {"ABANDONED": "TRUE", "QUEUEWAIT": "75"})
        # C: queued; the FastAGI server restarts; answered after 10 s; the hang-up is lost.
        line.clock.now = T + 400 * S
        c = line.arrive("1795697212.44")
        line.stop_fastagi()
        line.start_fastagi()
        line.clock.now = T + 410 * S
        line.agent_answers(c, "1795697212.44", waited=10)
        # D and E: every agent paused. D is turned away at the door (JOINEMPTY), E after
        # 30 s in the queue (LEAVEEMPTY); each hears the busy message, then Hangup().
        line.clock.now = T + 420 * S
        d = line.turned_away("1795697232.48", "JOINEMPTY")
        line.clock.now = T + 460 * S
        e = line.turned_away("1795697272.52", "LEAVEEMPTY", waited=30)
        line.clock.now = T + 810 * S  # C has talked 400 s: past both marks
        live = line.site
        assert live.value("onerpa_support_calls_in_progress", state="talking") == 1
        assert live.value("onerpa_support_calls_talking_longer_than", threshold="limit") == 1
        line.clock.now = T + 5 * 3600 * S
        assert sweep.sweep(engine, line.clock(), sweep.Limits()) == 1

        stored = {ref: line.stored(ref) for ref in (a, b, c, d, e)}
        assert (stored[a].queued_at, stored[a].answered_at, stored[a].ended_at) == (
            T,
            T + 2.5 * S,
            T + 202.5 * S,
        )
        assert (stored[a].status, stored[a].agent) == ("completed", "Agent 101")
        assert (stored[b].status, stored[b].ended_by, stored[b].ended_at) == (
            "abandoned_queue",
            "caller",
            T + 375 * S,
        )
        assert (stored[c].status, stored[c].answered_at, stored[c].ended_at) == (
            "lost",
            T + 410 * S,
            None,
        )
        assert [(stored[x].status, stored[x].ended_by, stored[x].ended_at) for x in (d, e)] == [
            ("no_agents", "system", T + 430 * S),
            ("no_agents", "system", T + 500 * S),
        ]

        with Session(engine) as session:
            period = (T - timedelta(hours=1), T + timedelta(days=1))
            figs = figures.compute(session, *period, targets=Targets())
        assert (figs.offered, figs.answered, figs.abandoned_queue) == (5, 2, 1)
        assert figs.no_agents == 2
        assert figs.service_level == 1.0  # 2.5 s and 10 s
        assert figs.service_level2 == pytest.approx(2 / 3)  # B waited 75 s; D and E left out
        assert figs.asa_seconds == pytest.approx(6.25)
        assert (figs.consultation_avg_seconds, figs.consultation_p90_seconds) == (200, 200)
        assert (figs.over_target, figs.over_limit, figs.within_limit_share) == (1, 0, 1.0)

        m = line.site.samples()

        def v(name: str, **labels: str) -> float:
            return m.get((name, tuple(sorted(labels.items()))), 0.0)

        calls = "onerpa_support_calls_total"
        assert v(calls, decision="free_first_year", outcome="completed") == 1
        assert v(calls, decision="free_first_year", outcome="abandoned_queue") == 1
        assert v(calls, decision="free_first_year", outcome="lost") == 1
        assert v(calls, decision="free_first_year", outcome="no_agents") == 2
        sl = "onerpa_support_service_level_calls_total"
        answered_in = v(sl, outcome="answered", within_target="true")
        answered_all = answered_in + v(sl, outcome="answered", within_target="false")
        abandoned_all = v(sl, outcome="abandoned", within_target="true") + v(
            sl, outcome="abandoned", within_target="false"
        )
        assert answered_in / answered_all == figs.service_level
        assert answered_in / (answered_all + abandoned_all) == pytest.approx(figs.service_level2)
        wait_sum = v("onerpa_support_queue_wait_seconds_sum", outcome="answered")
        wait_count = v("onerpa_support_queue_wait_seconds_count", outcome="answered")
        assert wait_sum / wait_count == pytest.approx(figs.asa_seconds)
        assert v("onerpa_support_consultation_seconds_sum") == pytest.approx(200)
        assert v("onerpa_support_consultation_seconds_bucket", le="180.0") == 0
        assert v("onerpa_support_consultation_seconds_bucket", le="300.0") == 1
        assert v("onerpa_support_calls_in_progress", state="talking") == 0

        process = line.process  # the restarted FastAGI server counts from its start
        assert process.value("onerpa_support_agi_sessions_total", script="agent-connect") == 1
        assert process.value("onerpa_support_agi_sessions_total", script="call") == 2  # D, E
        assert process.value("onerpa_support_agi_sessions_total", script="hangup") == 2
        assert (
            process.value("onerpa_support_agi_errors_total", script="hangup", kind="exception") == 0
        )
