"""The support-line call: greet, check hours, identify, apply the rules, ask why, route.

The route decides and records; it never hangs up. It sets the dialplan's variables and
returns, and ``asterisk/extensions.conf`` acts on ``ONERPA_ROUTE``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ivr import dialplan, speech
from ivr.agi import AGIChannel, AGIError, AGIHangup, Recorded
from ivr.dialplan import Route, Topic
from ivr.lookup import Budget, DirectoryUnavailable
from ivr.services import Services
from onerpa import entitlement, evidence, hours, requests
from onerpa.callstatus import CallStatus, EndedBy
from onerpa.directory import CustomerCard
from onerpa.entitlement import Reason
from onerpa.phone import normalize

log = logging.getLogger(__name__)

DECISION_CLOSED = "closed"
DECISION_DEGRADED = "degraded"
TOPIC_KEYS = {"1": Topic.BUG, "2": Topic.HOWTO, "3": Topic.LICENSING}
MENU_TIMEOUT_MS = 5000
MESSAGE_KEY = "1"
MESSAGE_ESCAPE = "#"
MESSAGE_SILENCE_SECONDS = 3
RECORD_RATE = 8000  # samples per second of a WAV recording (RECORD FILE's endpos)
_SUMMARY_LIMIT = 250
TOPIC_LABELS = {
    Topic.BUG: "критическая ошибка",
    Topic.HOWTO: "вопрос по работе",
    Topic.LICENSING: "лицензирование",
    Topic.NONE: "тема не выбрана",
}


@dataclass(frozen=True)
class Outcome:
    """Where the call goes and why, as the dialplan and the agent see it."""

    route: Route
    decision: str
    explanation: str = ""
    reason: str | None = None
    topic: Topic = Topic.NONE
    card: CustomerCard | None = None
    identified_by: str | None = None
    # The facts the decision was made on, as stored JSON (onerpa.evidence); frozen here.
    evidence: str | None = None


class CallLog:
    """The call's record: every change goes to the recorder as it happens."""

    def __init__(self, services: Services, channel: AGIChannel) -> None:
        self.services = services
        self.call_ref = str(uuid.uuid4())
        self.step = "arrived"
        self.step_times: list[str] = []
        self.digits: list[str] = []
        env = channel.env
        raw = env.get("agi_callerid", "")
        self.e164 = normalize(raw)
        self.callerid_raw = raw
        # The rules that depend on the moment (hours above all) hold from here to the end.
        self.arrived_at = services.clock()
        self.record(
            uniqueid=env.get("agi_uniqueid", "")[:64],
            linkedid=env.get("agi_linkedid", env.get("agi_uniqueid", ""))[:64],
            channel=stored_text(env.get("agi_channel", "")),
            callerid_raw=stored_text(raw),
            callerid_name=stored_text(env.get("agi_calleridname", "")),
            caller_e164=self.e164,
            arrived_at=self.arrived_at,
            server=services.server,
            status=CallStatus.IN_IVR.value,
            step=self.step,
        )

    def record(self, **fields: object) -> None:
        self.services.recorder.record(self.call_ref, **fields)

    def reached(self, step: str, **fields: object) -> None:
        """Note that the call reached ``step`` now, with any other ``fields`` that changed."""
        self.step = step
        moment = self.services.clock().astimezone(UTC)
        self.step_times.append(f"{step} {moment.isoformat(timespec='milliseconds')}")
        self.record(step=step, step_times="; ".join(self.step_times), **fields)

    def identified(self, card: CustomerCard, identified_by: str) -> None:
        """Keep the customer on the record as soon as they are known."""
        self.record(customer_id=card.customer_id, identified_by=identified_by)

    def entered(self, digits: str) -> None:
        self.digits.append(digits)
        self.record(digits=" ".join(self.digits))


def stored_text(value: str) -> str:
    """Return caller-controlled text as it can be stored: NUL, which PostgreSQL refuses,
    becomes U+FFFD; everything else is kept as it came."""
    return value.replace("\x00", "\ufffd")


def run(channel: AGIChannel, services: Services) -> None:
    """Handle one call to the support line."""
    call = CallLog(services, channel)
    channel.set_variable(dialplan.VAR_CALL_ID, call.call_ref)
    try:
        outcome = _flow(channel, services, call)
    except AGIHangup:
        log.info("call %s: caller hung up at step %s", call.call_ref, call.step)
        call.record(
            status=CallStatus.ABANDONED_IVR.value,
            ended_at=services.clock(),
            ended_by=EndedBy.CALLER.value,
        )
        return
    except AGIError:
        # The connection itself broke: nothing more can be said on it.
        call.record(status=CallStatus.LOST.value, ended_by=EndedBy.ERROR.value)
        raise
    except Exception:
        # Never strand a caller: whatever broke, let the call through to a human.
        log.exception(
            "call %s: failed at step %s; letting the call through", call.call_ref, call.step
        )
        outcome = Outcome(
            Route.QUEUE, DECISION_DEGRADED, "Сбой обработки звонка: клиент не проверен"
        )
    finish(channel, services, call, outcome)


def finish(channel: AGIChannel, services: Services, call: CallLog, outcome: Outcome) -> None:
    """Hand the call back to the dialplan, then record the outcome."""
    now = services.clock()
    for name, value in variables(services, call, outcome).items():
        channel.set_variable(name, value)
    card = outcome.card
    decided = {
        "decision": outcome.decision,
        "reason": outcome.reason,
        "explanation": outcome.explanation,
        "topic": outcome.topic.value,
        "route": outcome.route.value,
        "customer_id": card.customer_id if card else None,
        "identified_by": outcome.identified_by,
        "evidence": outcome.evidence,
        "degraded": outcome.decision == DECISION_DEGRADED,
        "decided_at": now,
    }
    status = _status_after(outcome.route)
    if channel.hung_up and status is not CallStatus.ENDED_IVR:
        # Gone while the variables were set: the caller never reached the queue (or sales).
        log.info("call %s: caller hung up as the call was handed back", call.call_ref)
        call.reached(
            "routed",
            **decided,
            status=CallStatus.ABANDONED_IVR.value,
            ended_at=services.clock(),
            ended_by=EndedBy.CALLER.value,
        )
        return
    call.reached(
        "routed",
        **decided,
        left_ivr_at=now,
        status=status.value,
        queued_at=now if outcome.route is Route.QUEUE else None,
    )
    if status is CallStatus.ENDED_IVR:
        # The dialplan hangs up right away; the hang-up hook refines the moment.
        call.record(ended_at=now, ended_by=EndedBy.SYSTEM.value)


def _status_after(route: Route) -> CallStatus:
    if route is Route.QUEUE:
        return CallStatus.QUEUED
    if route is Route.SALES:
        return CallStatus.TRANSFERRED
    return CallStatus.ENDED_IVR


def variables(services: Services, call: CallLog, outcome: Outcome) -> dict[str, str]:
    """Return the channel variables the dialplan reads for ``outcome``."""
    return {
        dialplan.VAR_DECISION: outcome.decision,
        dialplan.VAR_TOPIC: outcome.topic.value,
        dialplan.VAR_CUSTOMER: outcome.card.customer_number if outcome.card else "",
        dialplan.VAR_SUMMARY: summary(outcome),
        dialplan.VAR_QUEUE: services.settings.queue,
        dialplan.VAR_SALES: services.settings.sales_extension,
        # Last: the dialplan treats a set route as "the AGI finished its work".
        dialplan.VAR_ROUTE: outcome.route.value,
    }


def summary(outcome: Outcome) -> str:
    """Return one printable line for the agent: who, entitlement, topic."""
    who = outcome.card.organisation if outcome.card else "не опознан"
    text = f"{who} | {outcome.explanation} | {TOPIC_LABELS[outcome.topic]}"
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text[:_SUMMARY_LIMIT]


def _flow(channel: AGIChannel, services: Services, call: CallLog) -> Outcome:
    channel.answer()
    call.reached("greeting")
    channel.play(speech.GREETING)
    budget = services.directory.budget(services.settings.decision_budget.total_seconds())
    # Hours are those of the moment the call arrived, not of the greeting's end.
    status = hours.line_status(services.settings.calendar, call.arrived_at)
    day = evidence.day_fact(services.settings.calendar, call.arrived_at)
    if not status.is_open:
        return _closed(channel, services, call, budget, status, day)
    try:
        card, identified_by, refusals = _identify(channel, services, call, budget)
    except DirectoryUnavailable as err:
        log.warning("call %s: routed degraded: %s", call.call_ref, err)
        return _degraded(channel, call, day)
    return _apply_rules(channel, services, call, card, identified_by, refusals, day)


def _closed(
    channel: AGIChannel,
    services: Services,
    call: CallLog,
    budget: Budget,
    status: hours.LineStatus,
    day: entitlement.DayFact,
) -> Outcome:
    """Tell a caller out of hours when we open; still note who called."""
    call.reached("closed")
    card = None
    if call.e164:
        try:
            card = budget.by_phone(call.e164).card
        except DirectoryUnavailable as err:
            log.info("call %s: closed; caller not looked up: %s", call.call_ref, err)
    if card is not None:
        call.identified(card, "caller_id")
    calendar = services.settings.calendar
    local = call.arrived_at.astimezone(calendar.zone)
    opening = status.next_opening.astimezone(calendar.zone) if status.next_opening else None
    for prompt in speech.closed_message(local, opening, hours.closed_early(calendar, local)):
        channel.play(prompt)
    outcome = Outcome(
        Route.CLOSED,
        DECISION_CLOSED,
        "Звонок вне часов работы",
        card=card,
        identified_by="caller_id" if card else None,
        evidence=_rule_evidence(DECISION_CLOSED, call.arrived_at, day),
    )
    return offer_message(channel, services, call, outcome)


def _identify(
    channel: AGIChannel, services: Services, call: CallLog, budget: Budget
) -> tuple[CustomerCard | None, str | None, tuple[entitlement.RefusalFlag, ...]]:
    """Find the caller by caller ID, else by keypad digits; with refusals on the number."""
    call.reached("identify")
    refusals: tuple[entitlement.RefusalFlag, ...] = ()
    if call.e164:
        found = budget.by_phone(call.e164)
        if found.card is not None:
            call.identified(found.card, "caller_id")
            return found.card, "caller_id", ()
        refusals = found.number_refusals
        if entitlement.active_refusal(refusals, services.clock()):
            return None, None, refusals  # a refused number is not asked for digits
    channel.play(speech.NUMBER_UNKNOWN if call.e164 else speech.NUMBER_WITHHELD)
    card = _ask_customer_number(channel, services, call, budget)
    if card is not None:
        call.identified(card, "digits")
    return card, "digits" if card else None, refusals


def _ask_customer_number(
    channel: AGIChannel, services: Services, call: CallLog, budget: Budget
) -> CustomerCard | None:
    call.reached("enter_number")
    settings = services.settings
    timeout_ms = int(settings.digits_timeout.total_seconds() * 1000)
    for attempt in range(settings.digits_tries):
        digits, _timed_out = channel.get_data(speech.ENTER_NUMBER, timeout_ms, 20)
        call.entered(digits)
        card = budget.by_number(digits) if digits else None
        if card is not None:
            return card
        if attempt + 1 < settings.digits_tries:
            channel.play(speech.NUMBER_NOT_FOUND)
    return None


def _apply_rules(
    channel: AGIChannel,
    services: Services,
    call: CallLog,
    card: CustomerCard | None,
    identified_by: str | None,
    number_refusals: tuple[entitlement.RefusalFlag, ...],
    day: entitlement.DayFact,
) -> Outcome:
    now = services.clock()
    records = card.records if card else None
    if number_refusals:
        # A refusal set on the number holds whoever calls from it.
        known = records or entitlement.CallerRecords()
        merged = (*known.refusals, *number_refusals)
        records = (
            replace(known, refusals=merged) if entitlement.active_refusal(merged, now) else records
        )
    decision = entitlement.decide(records, now, day=day)
    base = Outcome(
        Route.QUEUE,
        decision.reason.value,
        decision.explanation,
        decision.reason.value,
        card=card,
        identified_by=identified_by,
        evidence=evidence.to_json(decision.reason.value, now, decision.evidence),
    )
    if decision.reason is Reason.UNKNOWN_CALLER:
        channel.play(speech.NOT_CUSTOMER)
        return offer_message(channel, services, call, replace(base, route=Route.UNKNOWN))
    if decision.reason is Reason.REFUSED_ETIQUETTE:
        call.reached("refused")
        channel.play(speech.REFUSED)
        return replace(base, route=Route.REFUSED)
    if decision.reason is Reason.NOT_ENTITLED:
        return _not_entitled(channel, services, call, base, records, now, day)
    topic = _ask_topic(channel, call)
    channel.play(speech.BUG_FLAGGED if topic is Topic.BUG else speech.CONNECTING)
    return replace(base, topic=topic)


def _ask_topic(channel: AGIChannel, call: CallLog) -> Topic:
    call.reached("topic")
    for attempt in range(2):
        digits, _ = channel.get_data(speech.TOPIC_MENU, MENU_TIMEOUT_MS, 1)
        call.entered(digits)
        if digits in TOPIC_KEYS:
            return TOPIC_KEYS[digits]
        if digits and attempt == 0:
            channel.play(speech.INVALID_CHOICE)
    return Topic.NONE  # no choice is still a caller to help: on to the queue


def _not_entitled(
    channel: AGIChannel,
    services: Services,
    call: CallLog,
    base: Outcome,
    records: entitlement.CallerRecords | None,
    now: datetime,
    day: entitlement.DayFact,
) -> Outcome:
    call.reached("not_entitled")
    lapsed = entitlement.lapsed(records or entitlement.CallerRecords(), now)
    for prompt in speech.not_entitled(lapsed):
        channel.play(prompt)
    # The critical-bug exception is for those who bought the software (the support rules).
    bug = lapsed in (entitlement.Lapsed.LICENCE, entitlement.Lapsed.BOTH)
    sales = services.settings.sales_extension
    offers = ([speech.BUG_OFFER] if bug else []) + ([speech.SALES_OFFER] if sales else [])
    choice = _menu(channel, call, offers) if offers else ""
    if choice == "1" and bug:
        declared = entitlement.decide(records, now, critical_bug=True, day=day)
        channel.play(speech.BUG_FLAGGED)
        return replace(
            base,
            decision=declared.reason.value,
            reason=declared.reason.value,
            explanation=declared.explanation,
            topic=Topic.BUG,
            evidence=evidence.to_json(declared.reason.value, now, declared.evidence),
        )
    if choice == "2" and sales:
        return replace(base, route=Route.SALES, topic=Topic.LICENSING)
    channel.play(speech.renewal(lapsed))
    return offer_message(channel, services, call, replace(base, route=Route.NOT_ENTITLED))


def _menu(channel: AGIChannel, call: CallLog, prompts: list[str]) -> str:
    """Play ``prompts``, letting the caller press a key during any of them."""
    for prompt in prompts[:-1]:
        pressed = channel.play(prompt, escape_digits="12")
        if pressed:
            call.entered(pressed)
            return pressed
    digits, _ = channel.get_data(prompts[-1], MENU_TIMEOUT_MS, 1)
    call.entered(digits)
    return digits


def offer_message(
    channel: AGIChannel, services: Services, call: CallLog, outcome: Outcome
) -> Outcome:
    """Offer a voice message to a caller the line cannot serve live; take it on "1"."""
    if services.requests is None:  # nowhere to keep a message: promise none
        channel.play(speech.GOODBYE)
        return outcome
    digits, _ = channel.get_data(speech.MESSAGE_OFFER, MENU_TIMEOUT_MS, 1)
    call.entered(digits)
    if digits != MESSAGE_KEY:
        channel.play(speech.GOODBYE)
        return outcome
    take_message(channel, services, call, outcome)
    return outcome


def take_message(channel: AGIChannel, services: Services, call: CallLog, outcome: Outcome) -> None:
    """Record the message, keep it as a request whatever happens, and confirm it.

    A caller who hangs up at the beep, a disk that cannot take the file, an empty message:
    each is still a request (the caller called and is owed an answer), only without sound.
    """
    assert services.requests is not None
    settings = services.settings
    path = requests.message_path(
        settings.recordings_path, settings.calendar, call.arrived_at, call.call_ref
    )
    recorded: Recorded | None = None
    problem = _prepare_folder(path.parent)
    try:
        channel.play(speech.MESSAGE_RECORD)
        if not problem:
            max_ms = int(settings.message_max.total_seconds() * 1000)
            recorded = channel.record_file(
                str(path), "wav", MESSAGE_ESCAPE, max_ms, silence_s=MESSAGE_SILENCE_SECONDS
            )
    except AGIHangup:
        log.info("call %s: caller hung up before the recording", call.call_ref)
    if recorded is not None and not recorded.written:
        problem = "Asterisk не смог создать файл записи (writefile): нет места или прав на папку"
    new = message_request(services, call, outcome, Path(f"{path}.wav"), recorded, problem)
    services.requests.submit(new)
    log.info("call %s: voice message kept (%s)", call.call_ref, new.recording_note or "записано")
    if channel.hung_up:
        # Kept; the call itself ends like any other hang-up in the menu.
        raise AGIHangup("the caller hung up while leaving a message")
    number_known = bool(call.e164)
    for prompt in speech.message_confirmation(
        new.recording_path is not None, bool(problem), number_known
    ):
        channel.play(prompt)


def _prepare_folder(folder: Path) -> str:
    """Create the day's folder (Asterisk creates none); return the problem, or ""."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.warning("recordings folder %s cannot be created: %s", folder, err)
        return f"папку для записи не удалось создать ({err.strerror or err})"
    return ""


def message_request(
    services: Services,
    call: CallLog,
    outcome: Outcome,
    wav: Path,
    recorded: Recorded | None,
    problem: str,
) -> requests.NewRequest:
    """Return the request a message makes: who called, their entitlement then, the sound."""
    seconds = recorded.endpos / RECORD_RATE if recorded is not None and recorded.written else None
    has_sound = seconds is not None and seconds >= requests.MIN_RECORDING_SECONDS
    note, recording_note = "", problem
    if not problem and not has_sound:
        missed = recorded is None or recorded.ended_by == "hangup"
        note = requests.MISSED_CALL_NOTE if missed else ""
        recording_note = (
            "звонящий положил трубку, ничего не сказав" if missed else "сообщение пустое"
        )
        if recorded is not None:
            wav.unlink(missing_ok=True)  # a header and no sound: nothing to keep
    elif recorded is not None and recorded.ended_by == "error":
        recording_note = "запись оборвалась: Asterisk сообщил об ошибке"
    decision, explanation = _entitlement_then(call, outcome)
    return requests.voice_message(
        services.clock(),
        call_ref=call.call_ref,
        caller_e164=call.e164,
        callerid_raw=stored_text(call.callerid_raw),
        customer_id=outcome.card.customer_id if outcome.card else None,
        decision=decision,
        explanation=explanation,
        recording_path=str(wav) if has_sound else None,
        recording_seconds=seconds if has_sound else None,
        recording_note=recording_note,
        note=note,
    )


def _entitlement_then(call: CallLog, outcome: Outcome) -> tuple[str, str]:
    """Return the caller's entitlement when they called (out of hours too, if known)."""
    if outcome.route is Route.CLOSED and outcome.card is not None:
        decided = entitlement.decide(outcome.card.records, call.arrived_at)
        return decided.reason.value, f"{outcome.explanation}; {decided.explanation}"
    return outcome.decision, outcome.explanation


def _degraded(channel: AGIChannel, call: CallLog, day: entitlement.DayFact) -> Outcome:
    channel.play(speech.CONNECTING)
    return Outcome(
        Route.QUEUE,
        DECISION_DEGRADED,
        "База клиентов недоступна: клиент не проверен, помогите и уточните данные",
        evidence=_rule_evidence(DECISION_DEGRADED, call.arrived_at, day),
    )


def _rule_evidence(decision: str, at: datetime, day: entitlement.DayFact) -> str:
    """Return the evidence of a decision the call flow makes without the rules: the day."""
    return evidence.to_json(decision, at, (day, entitlement.RuleFact(decision)))
