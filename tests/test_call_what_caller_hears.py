"""What the caller hears follows the settings and the moment the call arrived; every call
knows who called. Through the real FastAGI server and the emulator."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from ivr import prompts
from ivr.emulator import HANG_UP, Hangup
from ivr.simulate import simulate_command
from onerpa import db
from onerpa.demo import load_demo
from onerpa.settings import Settings
from tests.flowkit import support_line

MSK = ZoneInfo("Europe/Moscow")
THURSDAY_11 = datetime(2026, 11, 26, 11, 0, tzinfo=MSK)
ENTITLED = "+7 495 123-45-67"
LAPSED_LICENCE = "+7 903 555-01-42"
LAPSED_SUBSCRIPTION = "+7 391 555-27-40"
STRANGER = "+7 926 000-00-00"


@dataclass
class TickingClock:
    """A clock that moves on by ``step`` each time it is read, as a greeting takes time."""

    now: datetime
    step: timedelta

    def __call__(self) -> datetime:
        moment = self.now
        self.now += self.step
        return moment


def simulate(at: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``simulate-call`` privately at ``at``; return what it printed."""
    done = CliRunner().invoke(
        simulate_command, ["--at", at, "--json", *args], env=env, catch_exceptions=False
    )
    assert done.exit_code == 0, done.output
    return done.output


def heard(output: str) -> list[str]:
    return [item["text"] for item in json.loads(output)["heard"]]


@pytest.fixture
def private_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a line on its own SQLite file, with the demo customers."""
    url = f"sqlite:///{tmp_path / 'line.sqlite3'}"
    engine = db.make_engine(url)
    db.migrate(engine)
    load_demo(engine)
    engine.dispose()
    return {"ONERPA_DATABASE_URL": url}


def test_caller_hears_the_configured_address(private_env: dict[str, str]) -> None:
    env = {**private_env, "ONERPA_SUPPORT_EMAIL": "help@onerpa.ru"}
    said = heard(simulate("2026-11-28T10:00+03:00", "--from", ENTITLED, env=env))
    assert any("help собака onerpa точка ru" in text for text in said)
    assert not any("info" in text for text in said)


def test_caller_before_configured_opening_hears_those_hours(private_env: dict[str, str]) -> None:
    env = {**private_env, "ONERPA_HOURS": "mon-fri 10:00-18:00"}
    said = " ".join(heard(simulate("2026-11-26T09:30+03:00", "--from", ENTITLED, env=env)))
    assert "Мы откроемся сегодня в десять часов" in said
    assert "с десяти до восемнадцати часов" in said
    words = set(re.findall(r"\w+", said))
    assert not {"девяти", "семнадцати"} & words, said


def test_what_simulate_call_says_is_the_text_the_audio_was_rendered_from(
    private_env: dict[str, str],
) -> None:
    said = heard(simulate("2026-11-28T10:00+03:00", "--from", ENTITLED, env=private_env))
    rendered = prompts.spoken_table(Settings.from_env({}))
    manifest = prompts.read_manifest(prompts.DEFAULT_OUT_DIR)
    assert said and all(
        manifest[name].sha256 == prompts.text_sha256(rendered[name])
        for name, text in rendered.items()
        if text in said
    )


def test_short_pre_holiday_day_says_when_it_closed(engine: Engine) -> None:
    # 3 November 2026 is the eve of National Unity Day: the line closes at 16:00.
    with support_line(engine, datetime(2026, 11, 3, 16, 30, tzinfo=MSK)) as line:
        result = line.call(ENTITLED)
    assert result.prompts[:5] == [
        "onerpa-greeting",
        "onerpa-closed",
        "onerpa-short-day",
        "onerpa-until-hour-16",
        "onerpa-next-open",
    ]
    assert result.prompts[5:] == [
        "onerpa-day-4",
        "onerpa-hour-9",
        "onerpa-hours",
        "onerpa-closed-email",
        "onerpa-message-offer",
        "onerpa-goodbye",
    ]


def test_ordinary_evening_has_no_short_day_words(engine: Engine) -> None:
    with support_line(engine, datetime(2026, 11, 26, 17, 30, tzinfo=MSK)) as line:
        result = line.call(ENTITLED)
    assert "onerpa-short-day" not in result.prompts


@pytest.mark.parametrize(
    ("arrival", "step", "route"),
    [
        (datetime(2026, 11, 26, 16, 59, 59, tzinfo=MSK), timedelta(seconds=5), "queue"),
        (datetime(2026, 11, 26, 8, 59, 57, tzinfo=MSK), timedelta(seconds=5), "closed"),
    ],
)
def test_hours_are_those_of_the_moment_the_call_arrived(
    engine: Engine, arrival: datetime, step: timedelta, route: str
) -> None:
    with support_line(engine, arrival) as line:
        line.services.clock = TickingClock(arrival, step)
        result = line.call(ENTITLED, keys=["2"])
        row = line.record(result)
    assert result.variables["ONERPA_ROUTE"] == route
    assert row.arrived_at.replace(tzinfo=None) == arrival.astimezone(ZoneInfo("UTC")).replace(
        tzinfo=None
    )


def test_known_customer_calling_out_of_hours_is_identified(engine: Engine) -> None:
    with support_line(engine, datetime(2026, 11, 28, 10, 0, tzinfo=MSK)) as line:
        result = line.call(ENTITLED)
        row = line.record(result)
    assert result.variables["ONERPA_ROUTE"] == "closed"
    assert result.variables["ONERPA_CUSTOMER"] == "100101"
    assert row.customer_id is not None
    assert (row.decision, row.identified_by) == ("closed", "caller_id")


def test_customer_identified_then_hanging_up_in_the_menu_keeps_the_customer(
    engine: Engine,
) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(ENTITLED, keys=[HANG_UP])
        row = line.record(result)
    assert (row.status, row.step) == ("abandoned_ivr", "topic")
    assert row.customer_id is not None and row.identified_by == "caller_id"


def test_presented_unknown_number_is_told_it_is_not_a_customers(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        unknown = line.call(STRANGER, keys=["", ""])
        withheld = line.call("", keys=["", ""])
    assert unknown.prompts[1:3] == ["onerpa-number-unknown", "onerpa-enter-number"]
    assert withheld.prompts[1:3] == ["onerpa-number-withheld", "onerpa-enter-number"]


def test_lapsed_subscription_is_told_to_renew_the_subscription(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(LAPSED_SUBSCRIPTION)
    assert result.prompts == [
        "onerpa-greeting",
        "onerpa-subscription-ended",
        "onerpa-renew-subscription",
        "onerpa-message-offer",
        "onerpa-goodbye",
    ]
    assert result.variables["ONERPA_ROUTE"] == "not_entitled"


def test_lapsed_licence_is_told_to_buy_updates(engine: Engine) -> None:
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(LAPSED_LICENCE, keys=[""])
    assert result.prompts == [
        "onerpa-greeting",
        "onerpa-not-entitled",
        "onerpa-bug-offer",
        "onerpa-buy-updates",
        "onerpa-message-offer",
        "onerpa-goodbye",
    ]


def test_hang_up_while_the_decision_is_handed_back_is_abandoned_in_the_menu(
    engine: Engine,
) -> None:
    with support_line(engine, THURSDAY_11) as line:
        whole = line.call(ENTITLED, keys=["2"])
        topic = next(i for i, c in enumerate(whole.commands, 1) if "ONERPA_TOPIC" in c)
        result = line.call(ENTITLED, keys=["2"], hangup=Hangup.before(topic))
        row = line.record(result)
    assert result.commands[topic - 1] == whole.commands[topic - 1]
    assert (row.status, row.ended_by, row.decision) == (
        "abandoned_ivr",
        "caller",
        "free_first_year",
    )


def test_missing_menu_prompt_still_listens_for_the_key(engine: Engine, tmp_path: Path) -> None:
    # Every prompt but the greeting is missing: GET DATA cannot play, yet key 1 is heard.
    (tmp_path / "onerpa-greeting.wav").write_bytes(
        (prompts.DEFAULT_OUT_DIR / "onerpa-greeting.wav").read_bytes()
    )
    with support_line(engine, THURSDAY_11) as line:
        result = line.call(LAPSED_LICENCE, keys=["1"], sounds_dir=tmp_path)
    assert "onerpa-bug-offer" in result.missing_prompts
    assert result.variables["ONERPA_DECISION"] == "free_critical_bug"
    assert result.variables["ONERPA_ROUTE"] == "queue"
