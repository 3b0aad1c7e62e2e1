"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright).

One agent's afternoon: sign in; a caller rings through the emulated Asterisk into the real
FastAGI server and appears on the live board without a reload; the agent answers; the
timer turns amber past 3 minutes and red past 5 (the clock is injected); the call pops up
on "my call"; the caller hangs up; the agent records the wrap-up and finds the call in
the history by typing the number the way people write it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select

from dashboard import DashboardServer, serve_in_thread
from dashboard.testing import Clock, add_call, add_customer, add_user, make_app
from ivr.app import build_services, close_services
from ivr.emulator import EmulatedCall
from ivr.fastagi import FastAGIServer, start_in_thread
from ivr.routes import ROUTES
from ivr.services import Services
from onerpa import db
from onerpa.metrics import ProcessMetrics
from onerpa.models import Call
from onerpa.settings import Settings
from onerpa.staff import Wrapup

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")

T = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)  # a Thursday, 12:30 in Moscow: the line is open
CALLER = "84997195581"
HOSTILE_NAME = "<img src=x onerror=alert(1)>"
PASSWORD = "correct horse"
WAIT_MS = 5000


@dataclass
class Line:
    """The support line under test: database, FastAGI server, dashboard, one clock."""

    engine: Engine
    clock: Clock
    services: Services
    fastagi: FastAGIServer
    dashboard: DashboardServer

    def place_call(self, keys: list[str]) -> str:
        """Play a caller through the IVR (through the FastAGI server); return our call id."""
        call = EmulatedCall(caller=CALLER, name=HOSTILE_NAME, keys=keys, uniqueid="1795.1")
        result = call.run_fastagi(("127.0.0.1", self.fastagi.port))
        assert self.services.recorder.flush()
        assert result.variables["ONERPA_ROUTE"] == "queue"
        return result.variables["ONERPA_CALL_ID"]

    def agent_answers(self, call_id: str) -> None:
        member = EmulatedCall(
            args=[call_id, "1795.1"],
            uniqueid="1795.2",
            linkedid="1795.1",
            channel="PJSIP/101-00000001",
            context="onerpa-agent-connect",
            variables={"MEMBERNAME": "Агент 101", "MEMBERINTERFACE": "PJSIP/101"},
            answered=True,
        )
        member.run_fastagi(("127.0.0.1", self.fastagi.port), "agent-connect")
        assert self.services.recorder.flush()

    def caller_hangs_up(self, call_id: str) -> None:
        handler = EmulatedCall(
            caller=CALLER,
            args=[call_id, "1795.1"],
            uniqueid="1795.1",
            context="onerpa-hangup",
            variables={
                "ONERPA_CALL_ID": call_id,
                "MEMBERINTERFACE": "PJSIP/101",
                "MEMBERNAME": "Агент 101",
                "CHANNEL(hangupsource)": "PJSIP/trunk-00000001",
            },
            dead_at_start=True,
        )
        handler.run_fastagi(("127.0.0.1", self.fastagi.port), "hangup")
        assert self.services.recorder.flush()


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    path = tmp_path_factory.mktemp("browser") / "line.sqlite3"
    engine = db.make_engine(f"sqlite:///{path}")
    db.migrate(engine)
    with db.session_factory(engine).begin() as session:
        add_customer(session, purchased_on=date(2026, 3, 12))
        add_user(session, "anna", "agent", PASSWORD, interface="PJSIP/101")
    clock = Clock(T)
    metrics = ProcessMetrics(registry=CollectorRegistry(), scripts=ROUTES)
    services = build_services(Settings(), engine, clock=clock, lookup_workers=2, metrics=metrics)
    fastagi = FastAGIServer(("127.0.0.1", 0), services)
    start_in_thread(fastagi)
    app = make_app(engine, clock, BOARD_POLL_MS=200)
    dashboard = serve_in_thread(app, "127.0.0.1", 0)
    yield Line(engine, clock, services, fastagi, dashboard)
    dashboard.stop()
    fastagi.shutdown()
    fastagi.server_close()
    close_services(services)
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, line: Line) -> Iterator[Page]:
    context = browser.new_context(base_url=line.dashboard.url, locale="ru-RU")
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()
    assert dialogs == [], "a caller-controlled text ran as script"


def sign_in(page: Page) -> None:
    page.goto("/login")
    page.fill("#username", "anna")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/$"))


def test_an_agents_call_from_ring_to_history(page: Page, line: Line) -> None:
    sign_in(page)
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#live-empty")).to_be_visible()

    # A customer in the first year after purchase rings and presses 1 (a critical bug).
    call_id = line.place_call(keys=["1"])
    row = page.locator("tr.call")
    expect(row).to_have_count(1)
    expect(row.locator(".org")).to_have_text("ООО Ромашка")
    expect(row.locator(".contact")).to_contain_text("Иван Петров")
    expect(row.locator(".badge")).to_have_text("Бесплатно: первый год")
    expect(row.locator(".explanation")).to_contain_text("до 12.03.2027")
    expect(row.locator(".topic")).to_have_text("Критическая ошибка")
    expect(row.locator(".digits")).to_have_text("цифры: 1")
    expect(row.locator(".caller-number")).to_have_text("+7 499 719-55-81")
    expect(row.locator(".caller-name")).to_have_text(HOSTILE_NAME)  # text, not markup
    expect(row.locator(".timer")).to_have_attribute("data-state", "ok")
    assert page.evaluate("window.notReloaded") is True

    # The agent answers; the consultation timer runs on the injected clock.
    line.clock.advance(seconds=20)
    line.agent_answers(call_id)
    expect(row.locator(".timer-phase")).to_have_text("разговор")
    expect(row.locator(".agent")).to_have_text("Агент 101")
    line.clock.advance(seconds=185)
    expect(row.locator(".timer")).to_have_attribute("data-state", "amber")
    expect(row.locator(".timer")).to_have_class(re.compile(r"\btimer-amber\b"))
    line.clock.advance(seconds=120)
    expect(row.locator(".timer")).to_have_attribute("data-state", "red")
    expect(row.locator(".timer")).to_have_class(re.compile(r"\btimer-red\b"))
    assert page.evaluate("window.notReloaded") is True

    # "My call" pops the call up for the agent who took it.
    page.click("text=Мой звонок")
    expect(page.locator(".pop-org")).to_have_text("ООО Ромашка")
    expect(page.locator(".pop-explanation")).to_contain_text("первый год")
    expect(page.locator(".topic-bug")).to_have_text("Критическая ошибка")

    # The caller hangs up; the board empties and the agent records the wrap-up.
    line.caller_hangs_up(call_id)
    expect(page.locator("#mine-last")).to_contain_text("запишите итоги")
    page.click("#mine-last a")
    page.check("input[name=topic][value=bug]")
    page.check("input[name=about_onerpa][value=yes]")
    page.check("input[name=bug_confirmed][value=yes]")
    page.fill("#notes", "Робот падает при запуске, воспроизвелось")
    page.click("text=Сохранить итоги")
    expect(page.locator(".flash-ok")).to_have_text("Итоги звонка сохранены.")
    expect(page.locator("tr.wrapup")).to_contain_text("Робот падает при запуске")
    with line.engine.connect() as conn:
        assert conn.execute(select(Wrapup.topic, Wrapup.bug_confirmed)).all() == [("bug", True)]

    # The call is in the history, found by the number typed the way people write it.
    page.click("text=История")
    page.fill("input[name=phone]", "8 (499) 719-55-81")
    page.click("text=Показать")
    found = page.locator("table.history tbody tr")
    expect(found).to_have_count(1)
    expect(found).to_contain_text("ООО Ромашка")
    expect(found).to_contain_text("Критическая ошибка")
    talk = found.locator("td.num").last
    expect(talk).to_have_text("5:05")
    expect(talk).to_have_class(re.compile(r"\bover-red\b"))


def test_board_shows_a_caller_still_in_the_menu_until_they_hang_up(page: Page, line: Line) -> None:
    sign_in(page)
    line.clock.set(T + timedelta(hours=1))
    with db.session_factory(line.engine).begin() as session:
        call_id = add_call(
            session,
            status="in_ivr",
            step="enter_number",
            caller_e164=None,
            callerid_raw="anonymous",
            digits="12",
            arrived_at=T + timedelta(hours=1) - timedelta(seconds=40),
        ).id
    row = page.locator(f"tr.call[data-call-id='{call_id}']")
    expect(row.locator(".status")).to_have_text("В меню")
    expect(row.locator(".timer-phase")).to_have_text("в меню")
    expect(row.locator(".timer-value")).to_have_text(re.compile(r"^0:4\d$"))
    expect(row.locator(".customer")).to_have_text("не опознан")
    expect(row.locator(".digits")).to_have_text("цифры: 12")
    with db.session_factory(line.engine).begin() as session:
        session.get(Call, call_id).status = "abandoned_ivr"
    expect(row).to_have_count(0)


def test_waiting_is_coloured_against_the_answer_target_in_the_lines_time(
    browser: Browser, line: Line
) -> None:
    # A browser in New York: "обновлено" still tells Moscow time, like every other time.
    context = browser.new_context(
        base_url=line.dashboard.url, locale="ru-RU", timezone_id="America/New_York"
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    sign_in(page)
    start = T + timedelta(hours=2)  # 14:30 in Moscow, 06:30 in New York
    line.clock.set(start)
    with db.session_factory(line.engine).begin() as session:
        call_id = add_call(
            session,
            status="queued",
            arrived_at=start - timedelta(seconds=70),
            queued_at=start - timedelta(seconds=30),
        ).id
    row = page.locator(f"tr.call[data-call-id='{call_id}']")
    expect(page.locator("#live-status")).to_have_text("обновлено 14:30:00")
    expect(page.locator("#legend-wait")).to_contain_text("до 1 мин")
    expect(row.locator(".timer")).to_have_attribute("data-state", "ok")
    line.clock.advance(seconds=109)  # waiting 2:19, past the 60-second answer target
    expect(row.locator(".timer-value")).to_have_text("2:19")
    expect(row.locator(".timer")).to_have_attribute("data-state", "red")
    line.clock.set(start + timedelta(seconds=50))  # waiting 1:20
    expect(row.locator(".timer")).to_have_attribute("data-state", "amber")
    expect(row.locator(".timer")).to_have_class(re.compile(r"\btimer-amber\b"))
    expect(page.locator("#live-status")).to_have_text("обновлено 14:30:50")
    with db.session_factory(line.engine).begin() as session:
        session.get(Call, call_id).status = "abandoned_queue"
    expect(row).to_have_count(0)
    context.close()
