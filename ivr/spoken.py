"""The settings as a caller hears them: the line's hours and e-mail in Russian words. Pure.

The prompt table writes ``{hours}`` and ``{email}`` where these go; ``ivr.prompts`` fills
them in before a prompt is rendered, so what the caller hears follows the settings.
"""

from __future__ import annotations

from datetime import time

from onerpa.hours import MOSCOW, SupportCalendar

# Genitive ("с девяти", "до семнадцати"), as hours and minutes are said after с/до.
_GENITIVE = [
    "ноля",
    "одного",
    "двух",
    "трёх",
    "четырёх",
    "пяти",
    "шести",
    "семи",
    "восьми",
    "девяти",
    "десяти",
    "одиннадцати",
    "двенадцати",
    "тринадцати",
    "четырнадцати",
    "пятнадцати",
    "шестнадцати",
    "семнадцати",
    "восемнадцати",
    "девятнадцати",
]
_GENITIVE_TENS = {2: "двадцати", 3: "тридцати", 4: "сорока", 5: "пятидесяти"}
# "с понедельника по пятницу": the first day in the genitive, the last in the accusative.
_FROM_DAY = ["понедельника", "вторника", "среды", "четверга", "пятницы", "субботы", "воскресенья"]
_TO_DAY = ["понедельник", "вторник", "среду", "четверг", "пятницу", "субботу", "воскресенье"]
_ON_DAY = [
    "в понедельник",
    "во вторник",
    "в среду",
    "в четверг",
    "в пятницу",
    "в субботу",
    "в воскресенье",
]
_EMAIL_SIGNS = {"@": " собака ", ".": " точка ", "-": " дефис ", "_": " подчёркивание "}


def genitive_number(n: int, *, feminine: bool = False) -> str:
    """Return 0..59 in the genitive: 21 → "двадцати одного" ("одной" for minutes)."""
    if not 0 <= n < 60:
        raise ValueError(f"{n} is not a clock number")
    if n < 20:
        word = _GENITIVE[n]
        return "одной" if feminine and n == 1 else word
    tens, ones = divmod(n, 10)
    if not ones:
        return _GENITIVE_TENS[tens]
    return f"{_GENITIVE_TENS[tens]} {genitive_number(ones, feminine=feminine)}"


def clock(moment: time, *, hours_word: bool) -> str:
    """Return "девяти", "девяти тридцати", or with ``hours_word`` "семнадцати часов"."""
    words = genitive_number(moment.hour)
    if moment.minute:
        minutes = genitive_number(moment.minute, feminine=True)
        return f"{words} {'ноль ' if moment.minute < 10 else ''}{minutes}"
    if hours_word:
        return f"{words} {'часа' if moment.hour % 10 == 1 and moment.hour != 11 else 'часов'}"
    return words


def span(opens: time, closes: time) -> str:
    """Return "с девяти до семнадцати часов"."""
    return f"с {clock(opens, hours_word=False)} до {clock(closes, hours_word=True)}"


def hours(calendar: SupportCalendar) -> str:
    """Return the weekly hours in words: "по рабочим дням с девяти до семнадцати часов ..."."""
    groups: list[tuple[int, int, tuple[time, time]]] = []
    for day in range(7):
        window = calendar.weekly.get(day)
        if window is None:
            continue
        if groups and groups[-1][1] == day - 1 and groups[-1][2] == window:
            groups[-1] = (groups[-1][0], day, window)
        else:
            groups.append((day, day, window))
    if not groups:
        return "только в особые рабочие дни"
    parts = []
    for first, last, window in groups:
        if (first, last) == (0, 4):
            days = "по рабочим дням"
        elif first == last:
            days = _ON_DAY[first]
        else:
            days = f"с {_FROM_DAY[first]} по {_TO_DAY[last]}"
        parts.append(f"{days} {span(*window)}")
    zone = "по московскому времени" if calendar.timezone == MOSCOW else "по местному времени"
    return f"{', '.join(parts)} {zone}"


def email(address: str) -> str:
    """Return an e-mail address as it is read out: "info собака onerpa точка ru"."""
    return "".join(_EMAIL_SIGNS.get(ch, ch) for ch in address.strip())
