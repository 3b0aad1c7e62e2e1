"""A prompts folder rendered (on paper) for given settings, for servers started in tests.

A server refuses to start while its prompts say other hours or another e-mail than its
settings (``ivr.prompts.ensure_fit``). Tests that start one with other settings point
``ONERPA_PROMPTS_DIR`` at a folder whose manifest says its audio was rendered for them; the
check reads only the table and the manifest, so no audio is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ivr import prompts
from ivr.prompts import ManifestEntry
from onerpa.settings import Settings


def prompts_rendered_for(folder: Path, env: Mapping[str, str]) -> Path:
    """Fill ``folder`` with the table and a manifest made for the settings in ``env``."""
    (folder / "ru").mkdir(parents=True, exist_ok=True)
    table = folder / prompts.DEFAULT_TABLE.name
    table.write_bytes(prompts.DEFAULT_TABLE.read_bytes())
    spoken = prompts.spoken_table(Settings.from_env(dict(env)), table)
    entries = {name: ManifestEntry(prompts.text_sha256(text)) for name, text in spoken.items()}
    prompts.write_manifest(folder / "ru", entries)
    return folder
