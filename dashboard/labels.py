"""Words the agents read: Russian labels for codes, and how moments and durations look."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask

from dashboard.db import settings_of
from onerpa import evidence, timing
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
    Reason.FREE_GOODWILL.value: "Бесплатно: жест доброй воли",
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
    CallStatus.NO_AGENTS.value: "Нет агентов на линии",
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

# The IVR steps a call reaches (``calls.step``, ``calls.step_times``; ivr/routes/call.py).
IVR_STEPS = {
    "arrived": "поступил",
    "greeting": "приветствие",
    "closed": "нерабочее время",
    "identify": "определение",
    "enter_number": "ввод номера клиента",
    "refused": "отказ (этикет)",
    "topic": "выбор в меню",
    "not_entitled": "не положено",
    "routed": "направлен",
    # Call-backs (onerpa/callback.py): the caller pressed 1 in the queue; a call-back call.
    "callback_requested": "попросил перезвонить",
    "callback": "перезвон",
}

# The events appended to ``call_events`` (onerpa/recorder.py, ``transitions``).
CALL_EVENTS = {
    "arrived": "поступил",
    "decided": "решение принято",
    "queued": "встал в очередь",
    "answered": "ответил агент",
    "ended": "завершён",
    "swept": "закрыт как потерянный",
}

# Asterisk's HANGUPCAUSE (Q.850 cause values, main/causes.h) recorded at the hang-up
# (``calls.hangup_cause``). 16 is a normal end; most of the rest say the call was dropped or
# could not go through.
HANGUP_CAUSES = {
    0: "причина не указана",
    1: "номер не существует",
    3: "нет маршрута к номеру",
    16: "нормальное завершение",
    17: "абонент занят",
    18: "абонент не отвечает",
    19: "нет ответа",
    20: "абонент недоступен",
    21: "вызов отклонён",
    22: "номер изменён",
    27: "направление не работает",
    28: "неверный формат номера",
    29: "услуга отклонена",
    31: "обычное завершение без уточнения",
    34: "нет свободных каналов",
    38: "сеть не работает",
    41: "временный сбой",
    42: "перегрузка оборудования",
    44: "запрошенный канал недоступен",
    47: "ресурс недоступен",
    50: "услуга не подключена",
    58: "несовместимые параметры связи",
    65: "несовместимые параметры связи",
    66: "тип канала не поддерживается",
    69: "услуга не поддерживается",
    79: "услуга не поддерживается",
    81: "ошибка сигнализации",
    88: "несовместимое назначение",
    95: "ошибка сигнализации",
    96: "ошибка сигнализации",
    97: "ошибка сигнализации",
    98: "ошибка сигнализации",
    99: "ошибка сигнализации",
    100: "ошибка сигнализации",
    102: "истекло время ожидания",
    111: "ошибка протокола",
    127: "сбой на стыке сетей",
}
# The causes of a call that ended as it should; any other cause is shown as a fault.
NORMAL_HANGUP_CAUSES = frozenset({16, 31})

ROLES = {"agent": "агент", "supervisor": "руководитель"}

# The actions and targets written to ``audit_log`` (dashboard/users.py ``audit``).
AUDIT_ACTIONS = {
    "user.create": "Создан пользователь",
    "user.update": "Изменён пользователь",
    "wrapup.record": "Записаны итоги звонка",
    "refusal.set": "Установлен отказ в консультациях",
    "refusal.lift": "Снят отказ в консультациях",
    # A supervisor's edits on the customer page (dashboard/customers.py).
    "licence.add": "Добавлена лицензия",
    "licence.change": "Исправлена лицензия",
    "updates.add": "Добавлена покупка обновлений",
    "updates.change": "Исправлена покупка обновлений",
    "subscription.add": "Добавлена подписка",
    "subscription.change": "Исправлена подписка",
    "phone.add": "Добавлен телефон",
    "phone.change": "Исправлен телефон",
    "grant.add": "Выдан жест доброй воли",
    "grant.change": "Исправлен жест доброй воли",
    # The sync API (author "api:<token name>") and its tokens (dashboard.api, api_cli).
    "customer.create": "Добавлен клиент",
    "customer.update": "Изменён клиент",
    "customer.deactivate": "Клиент отключён",
    "api_token.create": "Выпущен токен API",
    "api_token.revoke": "Отозван токен API",
    # Agents on the line (dashboard/agents.py): a supervisor takes an agent off the line.
    "agent.off_line": "Агент снят с линии руководителем",
    # The requests page (dashboard/requests.py).
    "request.take": "Обращение взято в работу",
    "request.answer": "Обращение закрыто: ответ дан",
    "request.decline": "Обращение отклонено",
    "request.callback": "Перезвон клиенту",
}
AUDIT_TARGETS = {
    "user": "пользователь",
    "customer": "клиент",
    "call": "звонок",
    "api_token": "токен API",
    "request": "обращение",
}
# Authors that are not people: the command line and the demo start-up.
AUDIT_AUTHORS = {"cli": "командная строка", "demo": "демо-запуск"}
# The records a supervisor edits on the customer page and their fields, as the audit
# details name them (dashboard/customers.py: ``licence 7: {"product": …}``).
RECORD_KINDS = {
    "licence": "лицензия",
    "updates": "обновления",
    "subscription": "подписка",
    "phone": "телефон",
    "grant": "жест доброй воли",
}
RECORD_FIELDS = {
    "product": "продукт",
    "licence_number": "№ лицензии",
    "purchased_on": "куплена",
    "months": "месяцев",
    "service": "сервис",
    "starts_on": "начало",
    "ends_on": "окончание",
    "cancelled_at": "отменена",
    "e164": "номер",
    "label": "пометка",
    "until": "до",
    "reason": "причина",
}

# What Asterisk and carriers send in place of a caller ID name or number that is not given
# (``agi_calleridname: unknown``); never a name worth showing.
CALLERID_PLACEHOLDERS = frozenset({"unknown", "anonymous", "private", "restricted", "unavailable"})


# Requests: voice messages and call-backs (onerpa.models.SupportRequest, dashboard/requests.py).
REQUEST_KINDS = {"message": "Голосовое сообщение", "callback": "Просит перезвонить"}
REQUEST_STATUSES = {
    "new": "Новое",
    "in_work": "В работе",
    "answered": "Ответ дан",
    "declined": "Отклонено",
}
DUE_STATES = {"ok": "в срок", "amber": "срок подходит", "red": "просрочено"}


def request_kind_label(code: str | None) -> str:
    return REQUEST_KINDS.get(code or "", code or "—")


def request_status_label(code: str | None) -> str:
    return REQUEST_STATUSES.get(code or "", code or "—")


def time_left(seconds: float) -> str:
    """Return a deadline's distance in words: ``осталось 1 д 2 ч``, ``просрочено на 5 мин``."""
    whole = abs(int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} д"] if days else []
    if hours:
        parts.append(f"{hours} ч")
    if not days and (minutes or not hours):
        parts.append(f"{minutes} мин")
    said = " ".join(parts)
    return f"осталось {said}" if seconds >= 0 else f"просрочено на {said}"


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


def caller_name(name: str | None) -> str:
    """Return the caller ID name to show: empty when Asterisk says there is none."""
    return "" if _placeholder(name) else (name or "")


def caller_raw(raw: str | None) -> str:
    """Return the caller ID as received, empty when Asterisk says there is none."""
    return "" if _placeholder(raw) else (raw or "")


def caller_number(e164: str | None, raw: str | None) -> str:
    """Return the caller's number to show: national format, else as received, else empty."""
    return phone_label(e164) or caller_raw(raw)


def _placeholder(text: str | None) -> bool:
    return (text or "").strip().casefold() in CALLERID_PLACEHOLDERS


def hangup_cause_label(code: int | None) -> str:
    """Return Asterisk's hang-up cause in words with its code: ``абонент занят (17)``."""
    if code is None:
        return "—"
    words = HANGUP_CAUSES.get(code)
    return f"{words} ({code})" if words else f"код {code}"


def hangup_cause_tone(code: int | None) -> str:
    """Return the badge colour class for a hang-up cause: warn for a fault, else none."""
    return "" if code is None or code in NORMAL_HANGUP_CAUSES else "warn"


def step_label(code: str | None) -> str:
    return IVR_STEPS.get(code or "", code or "—")


def event_label(kind: str, data: str | None = "") -> str:
    """Return an event in words, with the decision or outcome it carries."""
    label = CALL_EVENTS.get(kind, kind)
    try:
        extra = json.loads(data) if data else {}
    except ValueError:
        extra = {}
    if not isinstance(extra, dict):
        return label
    if kind == "decided" and extra.get("decision"):
        return f"{label}: {decision_label(extra['decision'])}"
    if extra.get("status"):
        return f"{label}: {status_label(extra['status'])}"
    return label


def role_label(code: str | None) -> str:
    return ROLES.get(code or "", code or "")


def audit_action(code: str) -> str:
    return AUDIT_ACTIONS.get(code, code)


def audit_author(username: str, staff: Mapping[str, str]) -> str:
    """Return who made a change; ``staff`` maps user ids to user names."""
    if username in AUDIT_AUTHORS and username not in staff.values():
        return AUDIT_AUTHORS[username]
    return username


def audit_target(target_type: str, target_id: str, staff: Mapping[str, str]) -> str:
    """Return what a change was made to, e.g. ``пользователь «anna»`` or ``клиент 3``."""
    kind = AUDIT_TARGETS.get(target_type, target_type)
    if target_type == "user" and target_id in staff:
        return f"{kind} «{staff[target_id]}»"
    return f"{kind} {target_id}"


def audit_details(action: str, details: str) -> str:
    """Return the stored details of a change in words; text that does not parse as is."""
    reader = _AUDIT_DETAILS.get(action)
    return (reader(details) if reader else None) or details


_USER_CREATED = re.compile(r"^(?P<name>\S+) \((?P<role>\w+)\) ?(?P<phone>.*)$", re.S)
_REFUSAL_SET = re.compile(r"^refusal (?P<id>\d+) until (?P<until>\S+): (?P<reason>.*)$", re.S)
_REFUSAL_LIFTED = re.compile(r"^refusal (?P<id>\d+): (?P<reason>.*)$", re.S)


def _user_created(details: str) -> str | None:
    found = _USER_CREATED.match(details)
    if found is None:
        return None
    words = [f"«{found['name']}»", role_label(found["role"])]
    if found["phone"].strip():
        words.append(f"телефон {found['phone'].strip()}")
    return ", ".join(words)


def _user_updated(details: str) -> str | None:
    if details == "no change":
        return "без изменений"
    words = []
    for item in details.split(", "):
        name, _, value = item.partition("=")
        if name == "role":
            words.append(f"роль: {role_label(value)}")
        elif name == "password" and not value:
            words.append("новый пароль")
        elif name == "interface":
            words.append(f"телефон: {value}" if value else "телефон отвязан")
        elif name == "active" and value in ("True", "False"):
            words.append("вход разрешён" if value == "True" else "вход запрещён")
        else:
            return None
    return ", ".join(words)


def _wrapup_recorded(details: str) -> str | None:
    fields = dict(item.partition("=")[::2] for item in details.split(" "))
    if set(fields) != {"topic", "onerpa", "bug"}:
        return None
    words = [topic_label(fields["topic"])]
    words.append("про OneRPA" if fields["onerpa"] == "True" else "не про OneRPA")
    words += {"True": ["баг подтверждён"], "False": ["баг не подтверждён"]}.get(fields["bug"], [])
    return ", ".join(words)


def _refusal_set(details: str) -> str | None:
    found = _REFUSAL_SET.match(details)
    if found is None:
        return None
    until = "до снятия"
    if found["until"] != "lifted":
        try:
            until = "по " + date.fromisoformat(found["until"]).strftime("%d.%m.%Y")
        except ValueError:
            return None
    return f"№ {found['id']} {until}: {found['reason']}"


def _refusal_lifted(details: str) -> str | None:
    found = _REFUSAL_LIFTED.match(details)
    return f"№ {found['id']}: {found['reason']}" if found else None


_RECORD_EDITED = re.compile(r"^(?P<kind>[a-z]+) (?P<id>\d+): (?P<fields>\{.*\})$", re.S)


def _record_edited(details: str) -> str | None:
    """Read ``licence 7: {"product": "A"}`` (added) or ``{"product": ["A", "B"]}`` (changed)."""
    found = _RECORD_EDITED.match(details)
    if found is None or found["kind"] not in RECORD_KINDS:
        return None
    try:
        fields = json.loads(found["fields"])
    except ValueError:
        return None
    words = []
    for name, value in fields.items():
        label = RECORD_FIELDS.get(name, name)
        if isinstance(value, list) and len(value) == 2:
            words.append(f"{label}: {_record_value(value[0])} → {_record_value(value[1])}")
        else:
            words.append(f"{label}: {_record_value(value)}")
    return "; ".join([f"{RECORD_KINDS[found['kind']]} № {found['id']}", *words])


def _record_value(value: object) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return date.fromisoformat(value).strftime("%d.%m.%Y")
    if isinstance(value, str) and value.startswith("+"):
        return phone_label(value)
    return str(value)


def evidence_lines(stored: str | None) -> list[evidence.Line]:
    """Return a call's stored evidence in words (none for calls decided before it was kept)."""
    return evidence.stored_lines(stored)


_AUDIT_DETAILS = {
    "user.create": _user_created,
    "user.update": _user_updated,
    "wrapup.record": _wrapup_recorded,
    "refusal.set": _refusal_set,
    "refusal.lift": _refusal_lifted,
    **{code: _record_edited for code in AUDIT_ACTIONS if code.split(".")[0] in RECORD_KINDS},
}


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


def span(seconds: float) -> str:
    """Return a target as people say it: ``60 с``, ``2 мин``, ``1 мин 30 с``."""
    whole = max(0, int(round(seconds)))
    minutes, secs = divmod(whole, 60)
    if not minutes:
        return f"{secs} с"
    return f"{minutes} мин" + (f" {secs} с" if secs else "")


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

    def last_day(end: datetime | None) -> str:
        # A term is stored as the moment it ends, 00:00 after its last day.
        return when(end - timedelta(microseconds=1), "%d.%m.%Y") if end else "—"

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
        last_day=last_day,
        decision=decision_label,
        tone=decision_tone,
        status=status_label,
        topic=topic_label,
        phone=phone_label,
        caller_name=caller_name,
        caller_raw=caller_raw,
        step=step_label,
        hangup_cause=hangup_cause_label,
        hangup_cause_tone=hangup_cause_tone,
        event=event_label,
        role=role_label,
        audit_action=audit_action,
        audit_author=audit_author,
        audit_target=audit_target,
        audit_details=audit_details,
        duration=duration,
        span=span,
        request_kind=request_kind_label,
        request_status=request_status_label,
        time_left=time_left,
        percent=percent,
        timing=timing.timing,
        over_class=over_class,
        evidence=evidence_lines,
    )


# Agents on the line (dashboard/agents.py, the board's queue panel): state codes of
# onerpa.agents.STATES, and why the line cannot be read.
AGENT_STATES = {
    "free": "свободен",
    "ringing": "звонит телефон",
    "talking": "разговор",
    "busy": "занят другим звонком",
    "paused": "перерыв",
    "unavailable": "телефон недоступен",
    "off": "не на линии",
}
LINE_ERRORS = {
    "not_configured": "AMI не настроен: очередь и агенты не видны (ONERPA_AMI_SECRET).",
    "unreachable": "Нет связи с Asterisk (AMI). Звонки идут как обычно.",
    "refused": "Asterisk не принял пользователя AMI (ONERPA_AMI_USERNAME, ONERPA_AMI_SECRET).",
}


def agent_state_label(code: str) -> str:
    return AGENT_STATES.get(code, code)
