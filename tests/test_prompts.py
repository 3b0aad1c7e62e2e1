"""The voice prompts: table, shipped WAV files, manifest, and the generator."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr import prompts, spoken
from ivr.prompts import ManifestEntry, PromptError
from onerpa.settings import Settings

TABLE = prompts.read_table()
SPOKEN = prompts.spoken_table(Settings.from_env({}))  # as shipped: the default settings
MANIFEST = prompts.read_manifest(prompts.DEFAULT_OUT_DIR)
NEEDS_TTS = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng or sox is not installed (CI installs both)",
)

# Every prompt the call flow and the dialplan may play.
CALL_FLOW_PROMPTS = [
    "onerpa-greeting",
    "onerpa-closed",
    "onerpa-short-day",
    "onerpa-next-open",
    "onerpa-hours",
    "onerpa-closed-email",
    "onerpa-day-today",
    "onerpa-day-tomorrow",
    *(f"onerpa-day-{n}" for n in range(1, 8)),
    *(f"onerpa-date-{n}" for n in range(1, 32)),
    *(f"onerpa-month-{n}" for n in range(1, 13)),
    *(f"onerpa-hour-{n}" for n in range(24)),
    *(f"onerpa-minutes-{n}" for n in range(5, 60, 5)),
    *(f"onerpa-until-hour-{n}" for n in range(24)),
    *(f"onerpa-until-minutes-{n}" for n in range(5, 60, 5)),
    "onerpa-number-withheld",
    "onerpa-number-unknown",
    "onerpa-enter-number",
    "onerpa-number-not-found",
    "onerpa-not-customer",
    "onerpa-refused",
    "onerpa-topic-menu",
    "onerpa-invalid-choice",
    "onerpa-connecting",
    "onerpa-bug-flagged",
    "onerpa-not-entitled",
    "onerpa-subscription-ended",
    "onerpa-nothing-bought",
    "onerpa-bug-offer",
    "onerpa-buy-updates",
    "onerpa-renew-subscription",
    "onerpa-renew-both",
    "onerpa-buy-licence",
    "onerpa-sales-offer",
    "onerpa-goodbye",
    "onerpa-queue-busy",
    "onerpa-connecting-fallback",
    "onerpa-busy-message",
    "onerpa-message-offer",
    "onerpa-message-record",
    "onerpa-message-saved",
    "onerpa-message-empty",
    "onerpa-message-failed",
    "onerpa-message-callback",
    "onerpa-message-contacts",
    "onerpa-message-write",
]


def assert_telephone_wav(path: Path) -> None:
    with wave.open(str(path), "rb") as audio:
        assert audio.getcomptype() == "NONE"
        assert audio.getframerate() == 8000
        assert audio.getnchannels() == 1
        assert audio.getsampwidth() == 2
        assert audio.getnframes() > 800, "shorter than 0.1 s: nothing was said"


def test_table_has_every_call_flow_prompt() -> None:
    assert sorted(set(CALL_FLOW_PROMPTS) - set(TABLE)) == []


def test_table_has_every_prompt_the_speech_module_names() -> None:
    speech = pytest.importorskip("ivr.speech")
    named = {v for v in vars(speech).values() if isinstance(v, str) and v.startswith("onerpa-")}
    assert sorted(named - set(TABLE)) == []


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_prompt_has_a_telephone_wav(name: str) -> None:
    assert_telephone_wav(prompts.DEFAULT_OUT_DIR / f"{name}.wav")


@pytest.mark.parametrize("name", sorted(TABLE))
def test_manifest_matches_the_table_text(name: str) -> None:
    entry = MANIFEST.get(name)
    assert entry is not None, f"{name} is not in the manifest: run `onerpa-support prompts`"
    assert entry.sha256 == prompts.text_sha256(SPOKEN[name]), (
        f"{name}: the text changed since the audio was made: run `onerpa-support prompts`"
        + (" (a studio recording: record it again)" if entry.source == "studio" else "")
    )


def test_no_wav_without_a_table_entry() -> None:
    shipped = {p.stem for p in prompts.DEFAULT_OUT_DIR.glob("*.wav")}
    assert sorted(shipped - set(TABLE)) == []


def test_no_prompt_writes_the_address_or_the_hours_out() -> None:
    # Written out, they would not follow ONERPA_SUPPORT_EMAIL / ONERPA_HOURS.
    assert [n for n, t in TABLE.items() if "собака" in t or "с девяти до" in t] == []


def test_shipped_prompts_give_the_default_address_spelled_for_the_listener() -> None:
    with_email = [n for n, t in TABLE.items() if "{email}" in t]
    assert len(with_email) >= 5
    assert all("info собака onerpa точка ru" in SPOKEN[n] for n in with_email)


@pytest.mark.parametrize(
    "name",
    [
        "onerpa-closed-email",
        "onerpa-queue-busy",
        "onerpa-refused",
        "onerpa-not-customer",
        "onerpa-message-write",
    ],
)
def test_every_message_that_gives_the_address_promises_the_72_hour_answer(name: str) -> None:
    assert "{email}" in TABLE[name]
    assert "в течение семидесяти двух часов" in TABLE[name]


def test_prompts_follow_the_email_setting() -> None:
    texts = prompts.spoken_table(Settings.from_env({"ONERPA_SUPPORT_EMAIL": "help@onerpa.ru"}))
    said = [t for t in texts.values() if "собака" in t]
    assert said and all("help собака onerpa точка ru" in t for t in said)
    assert not any("info" in t for t in texts.values())


def test_hours_prompt_follows_the_hours_setting() -> None:
    settings = Settings.from_env({"ONERPA_HOURS": "mon-fri 10:00-18:00"})
    text = prompts.spoken_table(settings)["onerpa-hours"]
    assert (
        text == "Мы работаем по рабочим дням с десяти до восемнадцати часов по московскому времени."
    )


def test_shipped_audio_matches_the_default_settings() -> None:
    assert prompts.mismatches(Settings.from_env({})) == {}


@pytest.mark.parametrize(
    ("env", "setting", "prompt"),
    [
        ({"ONERPA_SUPPORT_EMAIL": "help@onerpa.ru"}, "ONERPA_SUPPORT_EMAIL", "onerpa-closed-email"),
        ({"ONERPA_HOURS": "mon-fri 10:00-18:00"}, "ONERPA_HOURS", "onerpa-hours"),
        ({"ONERPA_TIMEZONE": "Asia/Yekaterinburg"}, "ONERPA_HOURS", "onerpa-hours"),
    ],
)
def test_audio_for_other_settings_is_named_by_the_setting(
    env: dict[str, str], setting: str, prompt: str
) -> None:
    found = prompts.mismatches(Settings.from_env(env))
    assert list(found) == [setting]
    assert prompt in found[setting]
    message = prompts.mismatch_message(found)
    assert setting in message and "onerpa-support prompts" in message


def test_an_unknown_placeholder_is_named() -> None:
    with pytest.raises(PromptError, match=r"onerpa-a: unknown placeholder \{phone\}"):
        prompts.fill({"onerpa-a": "Звоните {phone}."}, {"email": "x"})


@pytest.mark.parametrize(
    ("weekly", "said"),
    [
        ("mon-fri 09:00-17:00", "по рабочим дням с девяти до семнадцати часов"),
        ("mon-fri 10:00-18:00", "по рабочим дням с десяти до восемнадцати часов"),
        (
            "mon-thu 09:30-18:00; fri 09:00-16:45",
            "с понедельника по четверг с девяти тридцати до восемнадцати часов, "
            "в пятницу с девяти до шестнадцати сорока пяти",
        ),
        ("mon-sat 08:00-21:00", "с понедельника по субботу с восьми до двадцати одного часа"),
        ("mon-fri 09:05-17:00", "по рабочим дням с девяти ноль пяти до семнадцати часов"),
    ],
)
def test_hours_are_said_in_russian(weekly: str, said: str) -> None:
    calendar = Settings.from_env({"ONERPA_HOURS": weekly}).calendar
    assert spoken.hours(calendar) == f"{said} по московскому времени"


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("info@onerpa.ru", "info собака onerpa точка ru"),
        ("help-desk@one_rpa.ru", "help дефис desk собака one подчёркивание rpa точка ru"),
    ],
)
def test_email_is_said_sign_by_sign(address: str, said: str) -> None:
    assert spoken.email(address) == said


def test_parse_table_skips_comments_and_blank_lines() -> None:
    text = "# comment\n\nonerpa-a\tПервый.\n  # indented comment\nonerpa-b\t Второй \n"
    assert prompts.parse_table(text) == {"onerpa-a": "Первый.", "onerpa-b": "Второй"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("onerpa-a Без табуляции\n", "line 1: expected name<TAB>text"),
        ("onerpa-a\t\n", "line 1: expected name<TAB>text"),
        ("Onerpa_A\tТекст\n", "line 1: 'Onerpa_A' is not a prompt name"),
        ("onerpa-a\tРаз\nonerpa-a\tДва\n", "line 2: 'onerpa-a' is listed twice"),
    ],
)
def test_parse_table_names_the_bad_line(text: str, problem: str) -> None:
    with pytest.raises(PromptError, match=problem):
        prompts.parse_table(text)


def test_manifest_round_trips() -> None:
    entries = {
        "onerpa-b": ManifestEntry("b" * 64, "studio"),
        "onerpa-a": ManifestEntry("a" * 64),
    }
    assert prompts.parse_manifest(prompts.format_manifest(entries)) == entries


def test_manifest_rejects_an_unknown_source() -> None:
    with pytest.raises(PromptError, match="manifest line 1"):
        prompts.parse_manifest(f"onerpa-a\t{'a' * 64}\tmicrophone\n")


def test_speakable_spells_latin_words_only_as_whole_words() -> None:
    spoken = prompts.speakable("поддержка OneRPA, адрес info собака onerpa точка ru; truck")
    assert spoken == "поддержка Ван Эр Пи Эй, адрес инфо собака ван эр пи эй точка ру; truck"


def test_plan_renders_new_changed_and_missing_prompts_only() -> None:
    table = {
        "onerpa-same": "Да.",
        "onerpa-edited": "Новый.",
        "onerpa-new": "Ещё.",
        "onerpa-gone": "Нет.",
    }
    manifest = {
        "onerpa-same": ManifestEntry(prompts.text_sha256("Да.")),
        "onerpa-edited": ManifestEntry(prompts.text_sha256("Старый.")),
        "onerpa-gone": ManifestEntry(prompts.text_sha256("Нет.")),
        "onerpa-removed": ManifestEntry(prompts.text_sha256("Было.")),
    }
    present = {"onerpa-same", "onerpa-edited", "onerpa-removed"}
    todo = prompts.plan(table, manifest, present)
    assert todo.render == ["onerpa-edited", "onerpa-new", "onerpa-gone"]
    assert todo.orphans == ["onerpa-removed"]


def test_plan_keeps_a_studio_recording_even_when_forced() -> None:
    table = {"onerpa-kept": "Текст.", "onerpa-outdated": "Новый текст."}
    manifest = {
        "onerpa-kept": ManifestEntry(prompts.text_sha256("Текст."), "studio"),
        "onerpa-outdated": ManifestEntry(prompts.text_sha256("Старый текст."), "studio"),
    }
    todo = prompts.plan(table, manifest, set(table), force=True)
    assert todo.render == []
    assert todo.stale_studio == ["onerpa-outdated"]


@NEEDS_TTS
def test_render_makes_a_telephone_wav(tmp_path: Path) -> None:
    path = prompts.render("onerpa-goodbye", TABLE["onerpa-goodbye"], tmp_path)
    assert path == tmp_path / "onerpa-goodbye.wav"
    assert_telephone_wav(path)
    assert [p.name for p in tmp_path.iterdir()] == ["onerpa-goodbye.wav"]


@NEEDS_TTS
def test_command_renders_only_what_changed_and_keeps_studio_files(tmp_path: Path) -> None:
    table = tmp_path / "prompts.tsv"
    out = tmp_path / "ru"
    table.write_text("onerpa-a\tПервый.\nonerpa-b\tВторой.\n", encoding="utf-8")
    runner = CliRunner()
    args = ["--table", str(table), "--out", str(out)]

    first = runner.invoke(prompts.prompts_command, args)
    assert first.exit_code == 0, first.output
    assert "записано: 2" in first.output

    recording = prompts.render("studio-take", "Запись из студии.", tmp_path)
    studio = runner.invoke(prompts.prompts_command, [*args, "--studio", "onerpa-a", str(recording)])
    assert studio.exit_code == 0, studio.output
    studio_bytes = (out / "onerpa-a.wav").read_bytes()

    table.write_text("onerpa-a\tПервый.\nonerpa-b\tВторой, исправленный.\n", encoding="utf-8")
    again = runner.invoke(prompts.prompts_command, args)
    assert again.exit_code == 0, again.output
    assert "записано: 1" in again.output
    assert (out / "onerpa-a.wav").read_bytes() == studio_bytes
    manifest = prompts.read_manifest(out)
    assert manifest["onerpa-a"].source == "studio"
    assert manifest["onerpa-b"].sha256 == prompts.text_sha256("Второй, исправленный.")


@NEEDS_TTS
def test_command_renders_for_the_settings_and_the_check_then_passes(tmp_path: Path) -> None:
    table = tmp_path / "prompts.tsv"
    out = tmp_path / "ru"
    table.write_text("onerpa-a\tПишите на адрес {email}.\nonerpa-b\tБез адреса.\n")
    env = {"ONERPA_SUPPORT_EMAIL": "help@onerpa.ru"}
    settings = Settings.from_env(env)
    assert prompts.mismatches(settings, table, out) == {"ONERPA_SUPPORT_EMAIL": ["onerpa-a"]}

    done = CliRunner().invoke(
        prompts.prompts_command, ["--table", str(table), "--out", str(out)], env=env
    )

    assert done.exit_code == 0, done.output
    manifest = prompts.read_manifest(out)
    assert manifest["onerpa-a"].sha256 == prompts.text_sha256(
        "Пишите на адрес help собака onerpa точка ru."
    )
    assert prompts.mismatches(settings, table, out) == {}
    assert prompts.mismatches(Settings.from_env({}), table, out) == {
        "ONERPA_SUPPORT_EMAIL": ["onerpa-a"]
    }
