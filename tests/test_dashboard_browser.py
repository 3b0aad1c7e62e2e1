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
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select

from dashboard import DashboardServer, serve_in_thread
from dashboard.agents import monitor as agents_monitor
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
from tests.amifake import QueueAsterisk

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
AMI_SECRET = "s3cret-for-tests"


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


# -- agents on the line, and the supervisor's queue panel (Asterisk: a fake AMI) -------------


@dataclass
class AgentLine:
    """A dashboard whose Asterisk is the fake manager interface of tests/amifake.py."""

    engine: Engine
    asterisk: QueueAsterisk
    dashboard: DashboardServer


@pytest.fixture(scope="module")
def agent_line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentLine]:
    path = tmp_path_factory.mktemp("agents") / "line.sqlite3"
    engine = db.make_engine(f"sqlite:///{path}")
    db.migrate(engine)
    with db.session_factory(engine).begin() as session:
        add_user(session, "anna", "agent", PASSWORD, interface="PJSIP/101").member_name = "Анна"
        add_user(session, "vera", "supervisor", PASSWORD)
    asterisk = QueueAsterisk(clock=lambda: int(T.timestamp()))
    settings = replace(Settings(), ami_port=asterisk.port, ami_secret=AMI_SECRET)
    app = make_app(engine, Clock(T), SETTINGS=settings, BOARD_POLL_MS=200, AMI_CACHE_SECONDS=0)
    dashboard = serve_in_thread(app, "127.0.0.1", 0)
    yield AgentLine(engine, asterisk, dashboard)
    dashboard.stop()
    agents_monitor(app).close()
    asterisk.close()
    engine.dispose()


def signed_in_page(browser: Browser, agent_line: AgentLine, username: str) -> Page:
    context = browser.new_context(base_url=agent_line.dashboard.url, locale="ru-RU")
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    tab.goto("/login")
    tab.fill("#username", username)
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    expect(tab).to_have_url(re.compile(r"/$"))
    return tab


def test_an_agent_goes_on_the_line_pauses_and_a_call_rings_them_as_the_board_shows(
    browser: Browser, agent_line: AgentLine
) -> None:
    supervisor = signed_in_page(browser, agent_line, "vera")
    anna_row = supervisor.locator("#line-agents tr[data-interface='PJSIP/101']")
    expect(anna_row).to_have_attribute("data-state", "off")
    supervisor.evaluate("window.notReloaded = true")

    agent = signed_in_page(browser, agent_line, "anna")
    agent.click("text=На линии")
    agent.click("#go-on-line")
    expect(agent.locator(".flash-ok")).to_have_text("Вы на линии.")
    expect(anna_row).to_have_attribute("data-state", "free")
    expect(anna_row.locator(".agent-state")).to_have_text("свободен")

    agent.check("input[name=reason][value=training]")
    agent.click("#take-break")
    expect(agent.locator(".flash-ok")).to_have_text("Перерыв: обучение.")
    expect(anna_row).to_have_attribute("data-state", "paused")
    expect(anna_row.locator(".agent-reason")).to_have_text(" · обучение")
    assert agent_line.asterisk.member("PJSIP/101").reason == "training"

    agent.click("#come-back")
    expect(anna_row).to_have_attribute("data-state", "free")

    # A caller joins the queue and Anna's phone rings; she answers.
    agent_line.asterisk.add_caller("+79161234567", waited=70)
    caller = supervisor.locator("#line-callers tr.caller")
    expect(caller.locator(".caller-number")).to_have_text("+7 916 123-45-67")
    expect(caller).to_have_attribute("data-wait-state", "amber")
    agent_line.asterisk.ring("PJSIP/101")
    expect(anna_row).to_have_attribute("data-state", "ringing")
    expect(anna_row.locator(".agent-state")).to_have_text("звонит телефон")
    agent_line.asterisk.connect("PJSIP/101")
    expect(anna_row).to_have_attribute("data-state", "talking")
    expect(caller).to_have_count(0)
    agent_line.asterisk.hang_up("PJSIP/101")
    expect(anna_row).to_have_attribute("data-state", "free")

    # Asterisk stops answering: the board says so; calls are Asterisk's business.
    agent_line.asterisk.down()
    expect(supervisor.locator("#line-error")).to_contain_text("Нет связи с Asterisk (AMI)")
    agent_line.asterisk.up()
    expect(supervisor.locator("#line-error")).to_be_hidden()
    assert supervisor.evaluate("window.notReloaded") is True
    agent.context.close()
    supervisor.context.close()


# --- «Обращения»: a voice message played, a call-back placed --------------------------------


@dataclass
class RequestsSite:
    engine: Engine
    dashboard: DashboardServer
    outgoing: Path
    message_id: int
    callback_id: int


def _silence_wav(path: Path, seconds: float = 0.5) -> None:
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * int(8000 * seconds))


@pytest.fixture
def requests_site(tmp_path: Path) -> Iterator[RequestsSite]:
    import dataclasses

    from sqlalchemy import insert

    from onerpa.models import SupportRequest

    recordings, spool = tmp_path / "recordings", tmp_path / "spool"
    for folder in (recordings, spool / "outgoing", spool / "outgoing_done", spool / "tmp"):
        folder.mkdir(parents=True)
    _silence_wav(recordings / "message-1.wav")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'requests.sqlite3'}")
    db.migrate(engine)
    with db.session_factory(engine).begin() as session:
        add_user(session, "anna", "agent", PASSWORD, interface="PJSIP/101")
    table = SupportRequest.__table__
    common = {"caller_e164": "+74951234567", "callerid_raw": "84951234567"}
    with engine.begin() as conn:
        message_id = conn.execute(
            insert(table).values(
                kind="message",
                status="new",
                recording_path="message-1.wav",
                recording_seconds=0.5,
                received_at=T - timedelta(hours=52),
                due_at=T + timedelta(hours=20),
                **common,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        callback_id = conn.execute(
            insert(table).values(
                kind="callback",
                status="new",
                received_at=T,
                place_at=T,
                due_at=T + timedelta(hours=2),
                **common,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    settings = dataclasses.replace(
        Settings(),
        recordings_dir=str(recordings),
        outgoing_spool=str(spool / "outgoing"),
        outgoing_done=str(spool / "outgoing_done"),
        outgoing_tmp=str(spool / "tmp"),
    )
    app = make_app(engine, Clock(T), SETTINGS=settings)
    dashboard = serve_in_thread(app, "127.0.0.1", 0)
    yield RequestsSite(engine, dashboard, spool / "outgoing", message_id, callback_id)
    dashboard.stop()
    engine.dispose()


def test_agent_plays_a_message_and_calls_a_customer_back(
    browser: Browser, requests_site: RequestsSite
) -> None:
    site = requests_site
    anonymous = browser.new_context(base_url=site.dashboard.url)
    refused = anonymous.request.get(f"/requests/{site.message_id}/recording", max_redirects=0)
    assert refused.status in (302, 401)
    assert not refused.headers.get("content-type", "").startswith("audio/")
    anonymous.close()

    context = browser.new_context(base_url=site.dashboard.url, locale="ru-RU")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto("/login")
    page.fill("#username", "anna")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.click("nav >> text=Обращения")
    expect(page).to_have_url(re.compile(r"/requests$"))

    # The message: 20 hours left of 72 — amber, counting down in the browser.
    message = page.locator(f"tr[data-request-id='{site.message_id}']")
    expect(message.locator(".countdown")).to_have_attribute("data-state", "amber")
    expect(message.locator(".countdown-value")).to_have_text(re.compile(r"^осталось 19 ч 5\d мин$"))
    audio = message.locator("audio")
    src = audio.get_attribute("src")
    assert src == f"/requests/{site.message_id}/recording"
    loaded = page.evaluate(
        """async (src) => {
            const response = await fetch(src);
            const audio = document.querySelector("tr[data-request-id] audio");
            const duration = await new Promise((resolve, reject) => {
                audio.addEventListener("loadedmetadata", () => resolve(audio.duration));
                audio.addEventListener("error", () => reject(new Error("audio did not load")));
                audio.load();
            });
            return [response.status, response.headers.get("content-type"), duration];
        }""",
        src,
    )
    assert loaded[0] == 200 and loaded[1] == "audio/wav"
    assert loaded[2] == pytest.approx(0.5, abs=0.05)

    # The call-back: «Перезвонить» rings Anna's phone through a call file in the spool.
    row = page.locator(f"tr[data-request-id='{site.callback_id}']")
    row.locator("button.callback-button").click()
    expect(page.locator(".flash-ok")).to_contain_text("сейчас зазвонит ваш телефон")
    (placed,) = site.outgoing.iterdir()
    assert placed.name == f"onerpa-request-{site.callback_id}-1.call"
    assert "Channel: PJSIP/101\n" in placed.read_text()
    expect(row.locator(".calling")).to_have_text("Идёт перезвон…")
    context.close()
