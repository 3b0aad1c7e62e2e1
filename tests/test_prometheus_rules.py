"""The shipped Prometheus config, alert rules and Grafana dashboard: valid, tested, and about
metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from onerpa.agents import Line
from onerpa.metrics import DatabaseCollector, LineCollector, ProcessMetrics
from onerpa.recorder import CallRecorder
from onerpa.settings import Settings
from onerpa.timing import Targets

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "onerpa-support.json"
PROMTOOL = shutil.which("promtool")
NAME = re.compile(r"\bonerpa_support_[a-z0-9_]+")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )


@needs_promtool
def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_scrape_config_passes_promtool_check() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alert_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def exported_names(engine: Engine) -> set[str]:
    """Return every sample name the two kinds of process export."""
    site, process = CollectorRegistry(), CollectorRegistry()
    collector = DatabaseCollector(engine, Targets(), registry=site)
    collector.calls.labels("closed", "ended_ivr")  # labelled series appear once used
    metrics = ProcessMetrics(registry=process, scripts=["call"])
    recorder = CallRecorder(engine)
    metrics.watch_recorder(recorder)
    metrics.decisions.labels("closed")
    metrics.agi_errors.labels("call", "exception")
    LineCollector(
        lambda: Line("onerpa-support", "not_configured"), Settings().calendar, registry=site
    )
    text = generate_latest(site).decode() + generate_latest(process).decode()
    recorder.close()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def used_names() -> dict[str, set[str]]:
    texts = {
        "alerts.yml": (PROMETHEUS / "alerts.yml").read_text(),
        "alerts_test.yml": (PROMETHEUS / "alerts_test.yml").read_text(),
        "dashboard": DASHBOARD.read_text(),
    }
    return {where: set(NAME.findall(text)) for where, text in texts.items()}


def test_rules_and_dashboard_use_only_exported_metrics(engine: Engine) -> None:
    exported = exported_names(engine)
    for where, names in used_names().items():
        assert names, where
        assert names <= exported, (where, sorted(names - exported))


def test_bucket_edges_the_rules_rely_on_exist(engine: Engine) -> None:
    registry = CollectorRegistry()
    DatabaseCollector(engine, Targets(), registry=registry)
    text = generate_latest(registry).decode()
    for edge in ("180.0", "300.0"):
        assert f'onerpa_support_consultation_seconds_bucket{{le="{edge}"}}' in text
    assert 'onerpa_support_queue_wait_seconds_bucket{le="60.0",outcome="answered"}' in text


def test_dashboard_is_grafana_json_with_a_query_per_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "onerpa-support"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert all(t["expr"] for t in panel["targets"]), panel["title"]
