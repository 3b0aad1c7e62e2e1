"""Voice prompts: the table ``asterisk/sounds/prompts.ru.tsv`` rendered to WAV files.

The table (``name<TAB>text``) is the source of truth. A text may hold ``{hours}`` and
``{email}``: they are filled in from the settings (``ivr.spoken``) before anything is rendered,
so the caller hears the line's own hours and address. ``regenerate`` renders each prompt with
espeak-ng and sox to ``asterisk/sounds/ru/<name>.wav`` in the format Asterisk's format_wav
reads (8 kHz, mono, 16-bit signed PCM), and keeps a manifest (``.manifest``: name, SHA-256 of
the filled-in text, source) so that only prompts whose text changed are rendered again. A
prompt whose source is ``studio`` is a recording that replaced the synthetic one: it is never
overwritten. ``mismatches`` tells a server at start-up which prompts no longer say what the
settings say, and which setting changed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from ivr import spoken
from onerpa.settings import Settings
from onerpa.startup import StartupError, load_settings

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TABLE = PROJECT_ROOT / "asterisk" / "sounds" / "prompts.ru.tsv"
DEFAULT_OUT_DIR = PROJECT_ROOT / "asterisk" / "sounds" / "ru"
MANIFEST_NAME = ".manifest"

SAMPLE_RATE = 8000
CHANNELS = 1
SAMPLE_WIDTH = 2  # bytes: 16-bit signed PCM
VOICE = "ru"
WORDS_PER_MINUTE = 150  # a little slower than espeak's 175: phone lines blur fast speech

SOURCE_SPEECH = "espeak"
SOURCE_STUDIO = "studio"
SOURCES = (SOURCE_SPEECH, SOURCE_STUDIO)

# Latin words the Russian voice would read letter by letter or with English vowels; the
# table keeps the written form, the synthesiser gets the spoken one.
PRONUNCIATION: Mapping[str, str] = {
    "OneRPA": "Ван Эр Пи Эй",
    "onerpa": "ван эр пи эй",
    "info": "инфо",
    "ru": "ру",
}

# What each placeholder of the table says, and the setting it comes from.
FIELDS: Mapping[str, str] = {"hours": "ONERPA_HOURS", "email": "ONERPA_SUPPORT_EMAIL"}
_FIELD = re.compile(r"\{([a-z_]*)\}")
_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class PromptError(ValueError):
    """The table or the manifest is malformed; the message names the line."""


@dataclass(frozen=True)
class ManifestEntry:
    """What a WAV file was made from: the text's hash, and whether it is synthetic."""

    sha256: str
    source: str = SOURCE_SPEECH


@dataclass
class Plan:
    """What ``regenerate`` has to do: render, keep, or warn about."""

    render: list[str] = field(default_factory=list)
    stale_studio: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


def parse_table(text: str) -> dict[str, str]:
    """Parse the prompt table: ``name<TAB>text`` lines, ``#`` comments, blank lines."""
    prompts: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, tab, spoken = line.partition("\t")
        name, spoken = name.strip(), spoken.strip()
        if not tab or not spoken:
            raise PromptError(f"line {number}: expected name<TAB>text, got {line!r}")
        if not _NAME.fullmatch(name):
            raise PromptError(f"line {number}: {name!r} is not a prompt name (a-z, 0-9, -)")
        if name in prompts:
            raise PromptError(f"line {number}: {name!r} is listed twice")
        prompts[name] = spoken
    return prompts


def read_table(path: Path = DEFAULT_TABLE) -> dict[str, str]:
    """Read the prompt table from ``path``."""
    return parse_table(path.read_text(encoding="utf-8"))


def values_for(settings: Settings) -> dict[str, str]:
    """Return what each placeholder of the table says under ``settings``."""
    return {
        "hours": spoken.hours(settings.calendar),
        "email": spoken.email(settings.support_email),
    }


def fields_of(text: str) -> list[str]:
    """Return the placeholders a prompt's text holds, in order."""
    return _FIELD.findall(text)


def fill(table: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """Return the table with every placeholder replaced by its value."""
    filled = {}
    for name, text in table.items():
        unknown = [f for f in fields_of(text) if f not in values]
        if unknown:
            raise PromptError(
                f"{name}: unknown placeholder {{{unknown[0]}}} (known: {', '.join(FIELDS)})"
            )
        filled[name] = _FIELD.sub(lambda m: values[m.group(1)], text)
    return filled


def spoken_table(settings: Settings, path: Path = DEFAULT_TABLE) -> dict[str, str]:
    """Return every prompt's text as the caller hears it under ``settings``."""
    return fill(read_table(path), values_for(settings))


def mismatches(
    settings: Settings, table_path: Path = DEFAULT_TABLE, out_dir: Path = DEFAULT_OUT_DIR
) -> dict[str, list[str]]:
    """Return, per setting, the prompts whose audio was rendered for another value of it."""
    table = read_table(table_path)
    filled = fill(table, values_for(settings))
    manifest = read_manifest(out_dir)
    found: dict[str, list[str]] = {}
    for name, text in table.items():
        entry = manifest.get(name)
        if not fields_of(text) or (entry and entry.sha256 == text_sha256(filled[name])):
            continue
        for placeholder in dict.fromkeys(fields_of(text)):
            found.setdefault(FIELDS[placeholder], []).append(name)
    return found


def startup_problem(settings: Settings) -> str | None:
    """Say why a server must not take calls with the prompts it has; None when they fit."""
    base = Path(settings.prompts_dir) if settings.prompts_dir else DEFAULT_TABLE.parent
    table, out_dir = base / DEFAULT_TABLE.name, base / DEFAULT_OUT_DIR.name
    if not table.is_file() or not (out_dir / MANIFEST_NAME).is_file():
        return (
            f"нет голосовых подсказок в {base} (нужны {DEFAULT_TABLE.name} и "
            f"{DEFAULT_OUT_DIR.name}/{MANIFEST_NAME}): укажите в ONERPA_PROMPTS_DIR папку "
            "asterisk/sounds этой версии"
        )
    try:
        found = mismatches(settings, table, out_dir)
    except PromptError as err:
        return f"таблица голосовых подсказок {table}: {err}"
    return mismatch_message(found) if found else None


def ensure_fit(settings: Settings) -> None:
    """Stop a server's start-up, naming the setting, while its prompts say something else."""
    problem = startup_problem(settings)
    if problem:
        raise StartupError(f"Голосовые подсказки не готовы: {problem}")


def mismatch_message(found: Mapping[str, Sequence[str]]) -> str:
    """Return the start-up error for ``mismatches``: which setting, which prompts, what to do."""
    lines = [
        f"голосовые подсказки {', '.join(names)} записаны не для текущего значения {setting}"
        for setting, names in sorted(found.items())
    ]
    lines.append(
        "перезапишите их командой `onerpa-support prompts` с теми же настройками "
        "(и обновите звуки на Asterisk), иначе звонящие услышат не то, что задано"
    )
    return "; ".join(lines)


def text_sha256(text: str) -> str:
    """Return the hash that the manifest records for a prompt's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_manifest(text: str) -> dict[str, ManifestEntry]:
    """Parse ``name<TAB>sha256[<TAB>source]`` lines (``#`` comments allowed)."""
    entries: dict[str, ManifestEntry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) not in (2, 3):
            raise PromptError(f"manifest line {number}: expected name<TAB>sha256[<TAB>source]")
        name, digest = fields[0], fields[1]
        source = fields[2] if len(fields) == 3 else SOURCE_SPEECH
        if not _SHA256.fullmatch(digest) or source not in SOURCES:
            raise PromptError(f"manifest line {number}: bad hash or source for {name!r}")
        entries[name] = ManifestEntry(digest, source)
    return entries


def format_manifest(entries: Mapping[str, ManifestEntry]) -> str:
    """Return the manifest text, sorted by name so that diffs stay small."""
    lines = [
        "# name<TAB>sha256 of the prompt's text in prompts.ru.tsv<TAB>source (espeak | studio)",
        "# Written by `onerpa-support prompts`. A studio prompt is never re-rendered.",
    ]
    lines += [f"{name}\t{e.sha256}\t{e.source}" for name, e in sorted(entries.items())]
    return "\n".join(lines) + "\n"


def read_manifest(out_dir: Path) -> dict[str, ManifestEntry]:
    """Read the manifest of ``out_dir`` (empty when there is none yet)."""
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    return parse_manifest(path.read_text(encoding="utf-8"))


def write_manifest(out_dir: Path, entries: Mapping[str, ManifestEntry]) -> None:
    """Write the manifest of ``out_dir``."""
    _write_atomically(out_dir / MANIFEST_NAME, format_manifest(entries).encode("utf-8"))


def speakable(text: str) -> str:
    """Return ``text`` with the words of PRONUNCIATION spelled as they are spoken."""
    for written, said in PRONUNCIATION.items():
        text = re.sub(rf"(?<!\w){re.escape(written)}(?!\w)", said, text)
    return text


def plan(
    table: Mapping[str, str],
    manifest: Mapping[str, ManifestEntry],
    present: Iterable[str],
    *,
    force: bool = False,
) -> Plan:
    """Decide which prompts need rendering; ``present`` names the WAV files that exist."""
    present = set(present)
    result = Plan()
    for name, text in table.items():
        entry = manifest.get(name)
        current = entry is not None and entry.sha256 == text_sha256(text)
        if entry is not None and entry.source == SOURCE_STUDIO and name in present:
            if not current:
                result.stale_studio.append(name)
            continue
        if force or not current or name not in present:
            result.render.append(name)
    result.orphans = sorted(
        name
        for name, entry in manifest.items()
        if name not in table and entry.source == SOURCE_SPEECH
    )
    return result


def render(
    name: str, text: str, out_dir: Path, *, espeak: str = "espeak-ng", sox: str = "sox"
) -> Path:
    """Render one prompt to ``out_dir/<name>.wav`` and return its path."""
    target = out_dir / f"{name}.wav"
    with tempfile.TemporaryDirectory(prefix="prompt-") as tmp:
        raw = Path(tmp) / "speech.wav"
        subprocess.run(
            [espeak, "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "-w", str(raw), "--stdin"],
            input=speakable(text).encode("utf-8"),
            check=True,
            capture_output=True,
        )
        _convert(raw, target, sox=sox, trim=True)
    return target


def import_recording(name: str, recording: Path, out_dir: Path, *, sox: str = "sox") -> Path:
    """Convert a studio recording to ``out_dir/<name>.wav`` in the telephone format."""
    target = out_dir / f"{name}.wav"
    _convert(recording, target, sox=sox, trim=False)
    return target


def _convert(source: Path, target: Path, *, sox: str, trim: bool) -> None:
    """Convert ``source`` to 8 kHz mono 16-bit WAV at ``target``, replacing it atomically."""
    # Trimming the synthesiser's silences lets word prompts join into one sentence; the
    # short pad keeps words apart. -D: no dither, so the same text gives the same bytes.
    trim_effects = ["silence", "1", "0.01", "-45d", "reverse"] * 2 if trim else []
    pad = ["pad", "0.05", "0.15"] if trim else []
    out_dir = target.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".wav", dir=out_dir)
    os.close(fd)
    try:
        subprocess.run(
            [
                sox,
                "-D",
                str(source),
                "-e",
                "signed-integer",
                "-b",
                "16",
                "-c",
                str(CHANNELS),
                partial,
                *trim_effects,
                "rate",
                str(SAMPLE_RATE),
                "norm",
                "-3",
                *pad,
            ],
            check=True,
            capture_output=True,
        )
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


def regenerate(
    table_path: Path = DEFAULT_TABLE,
    out_dir: Path = DEFAULT_OUT_DIR,
    *,
    values: Mapping[str, str],
    force: bool = False,
) -> Plan:
    """Render the prompts whose filled-in text changed, drop orphans, update the manifest."""
    table = fill(read_table(table_path), values)
    manifest = read_manifest(out_dir)
    present = {p.stem for p in out_dir.glob("*.wav")} if out_dir.exists() else set()
    todo = plan(table, manifest, present, force=force)
    for name in todo.render:
        render(name, table[name], out_dir)
        manifest[name] = ManifestEntry(text_sha256(table[name]))
        log.info("rendered %s", name)
    for name in todo.orphans:
        (out_dir / f"{name}.wav").unlink(missing_ok=True)
        del manifest[name]
        log.info("removed %s: no longer in the table", name)
    for name in todo.stale_studio:
        log.warning("studio prompt %s: its text changed; record it again", name)
    write_manifest(out_dir, manifest)
    return todo


def add_studio_recording(
    name: str,
    recording: Path,
    table_path: Path = DEFAULT_TABLE,
    out_dir: Path = DEFAULT_OUT_DIR,
    *,
    values: Mapping[str, str],
) -> Path:
    """Install a studio recording of a table prompt and mark it ``studio`` in the manifest."""
    table = fill(read_table(table_path), values)
    if name not in table:
        raise PromptError(f"{name!r} is not in {table_path}")
    target = import_recording(name, recording, out_dir)
    manifest = read_manifest(out_dir)
    manifest[name] = ManifestEntry(text_sha256(table[name]), SOURCE_STUDIO)
    write_manifest(out_dir, manifest)
    return target


@click.command("prompts")
@click.option(
    "--table",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_TABLE,
    show_default=True,
    help="Таблица подсказок.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_OUT_DIR,
    show_default=True,
    help="Куда класть файлы WAV.",
)
@click.option("--force", is_flag=True, help="Записать заново все синтезированные подсказки.")
@click.option(
    "--studio",
    nargs=2,
    type=(str, click.Path(path_type=Path, exists=True)),
    default=None,
    metavar="NAME FILE",
    help="Вместо этого установить FILE как студийную запись подсказки NAME.",
)
def prompts_command(
    table: Path, out_dir: Path, force: bool, studio: tuple[str, Path] | None
) -> None:
    """Записать голосовые подсказки, у которых изменился текст или настройки (часы, адрес)."""
    values = values_for(load_settings())
    for tool in ("espeak-ng", "sox") if studio is None else ("sox",):
        if shutil.which(tool) is None:
            raise click.ClickException(f"{tool} не установлен (apt-get install {tool})")
    try:
        if studio is not None:
            path = add_studio_recording(studio[0], studio[1], table, out_dir, values=values)
            click.echo(f"студийная запись установлена: {path}")
            return
        todo = regenerate(table, out_dir, values=values, force=force)
    except (PromptError, subprocess.CalledProcessError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"записано: {len(todo.render)}, удалено: {len(todo.orphans)}, в {out_dir}")
    for name in todo.stale_studio:
        click.echo(
            f"внимание: студийная запись {name} не совпадает с текстом: запишите её заново",
            err=True,
        )
