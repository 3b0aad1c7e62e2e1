"""Words the agents read: Russian labels for codes, and how moments and durations look."""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask

from dashboard.db import settings_of
from onerpa import timing
from onerpa.callstatus import CallStatus
from onerpa.entitlement import FREE_REASONS, Reason
from onerpa.phone import format_national

UNDECIDED = "undecided"  # onerpa.figures' key for calls that ended before a decision
DECISION_CLOSED = "closed"
DECISION_DEGRADED = "degraded"

DECISIONS = {
    Reason.FREE_FIRST_YEAR.value: "Бесплатно: первый год",
    Reason.FREE_UPDATES.value: "Бесплатно: обновления",
    Reason.FREE_SUBSCRIPTION.value: "Бесплатно: подписка",
    Reason.FREE_CRITICAL_BUG.value: "Бесплатно: заявлен баг",
    Reason.NOT_ENTITLED.value: "Не положено",
    Reason.REFUSED_ETIQUETTE.value: "Отказ (этикет)",
    Reason.UNKNOWN_CALLER.value: "Не опознан",
    DECISION_CLOSED: "Нерабочее время",
    DECISION_DEGRADED: "Без проверки (сбой)",
}

STATUSES = {
    CallStatus.IN_IVR.value: "В меню",
    CallStatus.QUEUED.value: "Ждёт агента",
    CallStatus.TALKING.value: "Разговор",
    CallStatus.COMPLETED.value: "Обслужен",
    CallStatus.ENDED_IVR.value: "Завершён в меню",
    CallStatus.TRANSFERRED.value: "Переведён в продажи",
    CallStatus.ABANDONED_IVR.value: "Сброс в меню",
    CallStatus.ABANDONED_QUEUE.value: "Сброс в очереди",
    CallStatus.LOST.value: "Потерян",
}

TOPICS = {
    "bug": "Критическая ошибка",
    "howto": "Вопрос по работе",
    "licensing": "Лицензирование",
    "none": "Не выбрано",
    "other": "Другое",
}

TIMER_PHASES = {
    CallStatus.IN_IVR.value: "в меню",
    CallStatus.QUEUED.value: "ожидание",
    CallStatus.TALKING.value: "разговор",
}


def decision_label(code: str | None) -> str:
    if code is None or code == UNDECIDED:
        return "Решение не принято"
    return DECISIONS.get(code, code)


def decision_tone(code: str | None) -> str:
    """Return the badge colour class for a decision: free, paid, refused, unknown, warn."""
    if code in FREE_REASONS:
        return "free"
    if code == Reason.NOT_ENTITLED:
        return "paid"
    if code == Reason.REFUSED_ETIQUETTE:
        return "refused"
    if code == DECISION_DEGRADED:
        return "warn"
    return "neutral"


def status_label(code: str | None) -> str:
    return STATUSES.get(code or "", code or "")


def topic_label(code: str | None) -> str:
    return TOPICS.get(code or "", code or "—")


def phone_label(e164: str | None) -> str:
    return _national(e164) if e164 else ""


@functools.lru_cache(maxsize=8192)
def _national(e164: str) -> str:
    # Formatting costs a tenth of a millisecond; the board shows the same numbers each poll.
    return format_national(e164)


def local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    return moment.astimezone(zone) if moment else None


def duration(seconds: float | timedelta | None) -> str:
    """Return ``m:ss`` (or ``h:mm:ss``) for a number of seconds; a dash for none."""
    if seconds is None:
        return "—"
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    whole = max(0, int(round(seconds)))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def percent(share: float | None) -> str:
    """Return a share 0..1 as ``87 %``; a dash when there is nothing to share."""
    return "—" if share is None else f"{share * 100:.0f} %"


def init_app(app: Flask) -> None:
    """Register the template filters that turn codes and moments into Russian text."""
    settings = settings_of(app)
    zone = settings.calendar.zone
    targets = timing.Targets.from_settings(settings)

    def when(moment: datetime | None, fmt: str = "%d.%m.%Y %H:%M:%S") -> str:
        moment = local(moment, zone)
        return moment.strftime(fmt) if moment else "—"

    def day(value: date | None) -> str:
        return value.strftime("%d.%m.%Y") if value else "—"

    def over_class(seconds: float | None) -> str:
        if seconds is None:
            return ""
        return {
            timing.Grade.OVER_TARGET: "over-amber",
            timing.Grade.OVER_LIMIT: "over-red",
        }.get(timing.grade(seconds, targets), "")

    app.jinja_env.filters.update(
        when=when,
        day=day,
        decision=decision_label,
        tone=decision_tone,
        status=status_label,
        topic=topic_label,
        phone=phone_label,
        duration=duration,
        percent=percent,
        timing=timing.timing,
        over_class=over_class,
    )
