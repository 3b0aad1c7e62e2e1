"""Turn whatever a caller ID or a search box holds into one E.164 key.

A Russian support line sees the same number written many ways: ``8 (499) 719-55-81``,
``+7 499 719 55 81``, ``74997195581``, ``84997195581``, ``4997195581``. They all map to
``+74997195581``. Anything that is not a dialable number (anonymous, ``Restricted``,
``unknown``, letters, control characters, absurd lengths, bytes that are not UTF-8) maps to
``None``: the caller is unidentified, and no exception escapes.
"""

from __future__ import annotations

import re

import phonenumbers

DEFAULT_REGION = "RU"

# Longer than any real caller ID; anything past this is garbage, not a number.
_MAX_INPUT = 64
# What may appear in a written phone number besides digits.
_ALLOWED = re.compile(r"^[0-9+()\-.\s/]*$")
# Numbers copied from web pages and documents (into the dashboard's search box) carry
# typographic spaces and dashes; they mean the same as their ASCII forms.
_TYPOGRAPHIC = str.maketrans(
    {
        **dict.fromkeys("\u00a0\u2007\u2009\u202f", " "),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2212", "-"),
        "\ufeff": None,
    }
)
_DIGITS = re.compile(r"\d")


def normalize(raw: str | bytes | None, region: str = DEFAULT_REGION) -> str | None:
    """Return the E.164 form of ``raw``, or None when it is not a valid phone number."""
    text = _as_text(raw)
    if text is None:
        return None
    text = text.translate(_TYPOGRAPHIC).strip()
    if not text or len(text) > _MAX_INPUT or not _ALLOWED.match(text):
        return None
    digits = "".join(_DIGITS.findall(text))
    if len(digits) < 5 or len(digits) > 15:
        return None
    candidate = _russian_trunk_form(text, digits)
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def format_national(e164: str) -> str:
    """Return ``+74997195581`` as ``+7 499 719-55-81`` for people to read."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _as_text(raw: str | bytes | None) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return raw


def _russian_trunk_form(text: str, digits: str) -> str:
    """Give phonenumbers the ``+7`` a Russian caller ID often leaves out.

    Asterisk trunks deliver ``74997195581`` (country code without ``+``) or
    ``84997195581`` (the domestic trunk prefix 8). phonenumbers reads the first as a
    national number and rejects it, so eleven digits starting with 7 get their ``+``.
    ``00`` is the international prefix most of the world (and many Russian PBXs) dial.
    """
    if not text.startswith("+") and len(digits) == 11 and digits[0] == "7":
        return "+" + digits
    if text.startswith("00"):
        return "+" + digits[2:]
    return text
