"""Mail each new request to the support mailbox over SMTP; a mail server that is down
loses nothing.

Every request starts ``pending`` with ``mail_next_at`` at its arrival. ``deliver_pending``
sends those that are due: ``sent`` on success; ``failed`` with the error and the next try
after a back-off (1 minute, doubling up to an hour) otherwise, and tried again then, for as
long as it takes. A request is claimed before it is sent (``mail_next_at`` moved on), so
several FastAGI servers running the loop do not send it twice. Without ``ONERPA_SMTP_HOST``
no mail is sent: requests are still stored, listed and shown, their mail ``pending``.

The FastAGI server runs ``MailLoop`` in a thread of its own (with the import of the
dialplan's own recordings); ``onerpa-support mail-requests`` does one round by hand.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from onerpa import requests
from onerpa.models import SupportRequest
from onerpa.requests import MailState, RecordingState, RequestView
from onerpa.settings import Settings

log = logging.getLogger(__name__)

BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
LEASE = timedelta(minutes=5)  # a claimed request is not tried by another sender meanwhile
LOOP_SECONDS = 30.0
_KINDS = {"message": "голосовое сообщение", "callback": "просьба перезвонить"}
_ERROR_LIMIT = 500


@dataclass(frozen=True)
class SmtpConfig:
    """How to reach the mail server, and who the mail is from and to."""

    host: str
    port: int
    sender: str
    to: str
    starttls: bool = True
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 20.0
    tls: ssl.SSLContext | None = None  # None: the system's trusted certificates

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        """Return the mail server of ``settings``; None when mail is off (no host)."""
        if not settings.smtp_host:
            return None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.mail_sender,
            to=settings.support_email,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
        )


def backoff(attempts: int) -> timedelta:
    """Return the wait before the next try after ``attempts`` failed ones."""
    return min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


def build_message(
    request: RequestView, config: SmtpConfig, recordings_dir: Path, zone: ZoneInfo
) -> EmailMessage:
    """Return the mail for ``request``: the caller's card, the decision, the recording."""
    message = EmailMessage()
    who = _caller(request)
    message["Subject"] = (
        f"Обращение № {request.id}: {_KINDS.get(request.kind, request.kind)} — {who}, "
        f"ответить до {_local(request.due_at, zone)}"
    )
    message["From"] = config.sender
    message["To"] = config.to
    message["Date"] = format_datetime(request.received_at.astimezone(UTC))
    message["Message-ID"] = make_msgid(f"request-{request.id}", config.sender.split("@")[-1])
    message.set_content(card(request, recordings_dir, zone))
    wav = requests.recording_file(request, recordings_dir)
    if wav is not None:
        message.add_attachment(
            wav.read_bytes(),
            maintype="audio",
            subtype="wav",
            filename=f"obrashchenie-{request.id}.wav",
        )
    return message


def card(request: RequestView, recordings_dir: Path, zone: ZoneInfo) -> str:
    """Return the request as the lines of text the mail carries."""
    customer = "не опознан"
    if request.customer_number:
        parts = [request.customer_number, request.organisation or ""]
        parts += [request.contact_name or "", request.email or ""]
        customer = ", ".join(p for p in parts if p)
    lines = [
        f"Обращение № {request.id} — {_KINDS.get(request.kind, request.kind)}",
        f"Получено: {_local(request.received_at, zone)}",
        f"Ответить до: {_local(request.due_at, zone)}",
        f"Звонящий: {request.caller_e164 or 'номер не определился'}",
        f"Клиент: {customer}",
        f"Решение: {request.decision or '—'}",
        f"Пояснение: {request.explanation or '—'}",
        f"Запись: {_recording(request, recordings_dir)}",
    ]
    if request.note:
        lines.append(f"Заметка: {request.note}")
    if request.call_ref:
        lines.append(f"Звонок: {request.call_ref}")
    return "\n".join(lines) + "\n"


def _caller(request: RequestView) -> str:
    if request.organisation:
        return request.organisation
    return request.caller_e164 or "номер не определился"


def _recording(request: RequestView, recordings_dir: Path) -> str:
    state = requests.recording_state(request, recordings_dir)
    if state is RecordingState.PRESENT:
        seconds = f"{request.recording_seconds or 0:.1f}".replace(".", ",")
        return f"{seconds} с, во вложении"
    return requests.recording_problem(request, recordings_dir) or "нет"


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%d.%m.%Y %H:%M} ({zone.key})"


def send_message(message: EmailMessage, config: SmtpConfig) -> None:
    """Send ``message`` through the configured server (STARTTLS and sign-in as set)."""
    with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
        smtp.ehlo()
        if config.starttls:
            smtp.starttls(context=config.tls or ssl.create_default_context())
            smtp.ehlo()
        if config.username:
            smtp.login(config.username, config.password)
        smtp.send_message(message)


@dataclass
class DeliveryReport:
    """What one round of delivery did."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


Sender = Callable[[EmailMessage, SmtpConfig], None]


def deliver_pending(
    engine: Engine,
    config: SmtpConfig,
    recordings_dir: Path,
    now: datetime,
    zone: ZoneInfo,
    *,
    send: Sender = send_message,
    limit: int = 20,
) -> DeliveryReport:
    """Send the mail of the requests that are due; record each outcome on its request."""
    report = DeliveryReport()
    for request_id in _due(engine, now, limit):
        if not _claim(engine, request_id, now):
            continue  # another sender took it
        try:
            request = requests.get_request(engine, request_id)
            send(build_message(request, config, recordings_dir, zone), config)
        except (smtplib.SMTPException, OSError, ValueError) as err:
            _failed(engine, request_id, now, err)
            report.failed.append(request_id)
            log.warning("письмо об обращении № %s не отправлено: %s", request_id, err)
            continue
        _sent(engine, request_id)
        report.sent.append(request_id)
    return report


def _due(engine: Engine, now: datetime, limit: int) -> list[int]:
    query = (
        select(SupportRequest.id)
        .where(
            SupportRequest.mail_state.in_((MailState.PENDING.value, MailState.FAILED.value)),
            or_(SupportRequest.mail_next_at.is_(None), SupportRequest.mail_next_at <= now),
        )
        .order_by(SupportRequest.mail_next_at, SupportRequest.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.scalars(query))


def _claim(engine: Engine, request_id: int, now: datetime) -> bool:
    with engine.begin() as conn:
        done = conn.execute(
            update(SupportRequest)
            .where(
                SupportRequest.id == request_id,
                SupportRequest.mail_state != MailState.SENT.value,
                or_(SupportRequest.mail_next_at.is_(None), SupportRequest.mail_next_at <= now),
            )
            .values(mail_next_at=now + LEASE)
        )
        return done.rowcount == 1


def _failed(engine: Engine, request_id: int, now: datetime, err: BaseException) -> None:
    with engine.begin() as conn:
        attempts = conn.scalar(
            select(SupportRequest.mail_attempts).where(SupportRequest.id == request_id)
        )
        tries = (attempts or 0) + 1
        conn.execute(
            update(SupportRequest)
            .where(SupportRequest.id == request_id)
            .values(
                mail_state=MailState.FAILED.value,
                mail_attempts=tries,
                mail_next_at=now + backoff(tries),
                mail_error=(str(err) or type(err).__name__)[:_ERROR_LIMIT],
            )
        )


def _sent(engine: Engine, request_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(SupportRequest)
            .where(SupportRequest.id == request_id)
            .values(
                mail_state=MailState.SENT.value,
                mail_attempts=SupportRequest.mail_attempts + 1,
                mail_next_at=None,
                mail_error="",
            )
        )


class MailLoop:
    """Every ``interval`` seconds: import the dialplan's own recordings, send due mail."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        interval: float = LOOP_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        send: Sender = send_message,
        stop: threading.Event | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.interval = interval
        self.clock = clock
        self.send = send
        self._stop = stop or threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-mail", daemon=True)

    def start(self) -> MailLoop:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def run_once(self) -> DeliveryReport:
        """Import the dialplan's recordings, then send what is due."""
        requests.import_fallback_recordings(self.engine, self.settings.recordings_path)
        config = SmtpConfig.from_settings(self.settings)
        if config is None:
            return DeliveryReport()
        return deliver_pending(
            self.engine,
            config,
            self.settings.recordings_path,
            self.clock(),
            self.settings.calendar.zone,
            send=self.send,
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except (SQLAlchemyError, OSError) as err:  # the database away: next round
                log.warning("обращения: почта и импорт записей отложены: %s", err)
            except Exception:
                log.exception(
                    "обращения: сбой в цикле почты; следующий круг через %s с", self.interval
                )
            self._stop.wait(self.interval)
