"""Request mail over a real SMTP server (aiosmtpd on loopback): the card and the recording
reach the support mailbox; a server that is down loses nothing and is tried again later."""

from __future__ import annotations

import socket
import ssl
import subprocess
import wave
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import Engine, select

from onerpa import mail, requests
from onerpa.demo import load_demo
from onerpa.models import Customer, SupportRequest
from onerpa.settings import Settings

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=MSK)


class Mailbox:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def config(port: int, **extra: Any) -> mail.SmtpConfig:
    options: dict[str, Any] = {"starttls": False, "timeout": 5, **extra}
    return mail.SmtpConfig(
        host="127.0.0.1", port=port, sender="line@onerpa.ru", to="info@onerpa.ru", **options
    )


def write_wav(path: Path, samples: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\1\0" * samples)
    return path


def stored_message(engine: Engine, recordings: Path, **fields: Any) -> int:
    load_demo(engine)
    with engine.connect() as conn:
        customer = conn.scalar(select(Customer.id).where(Customer.customer_number == "100101"))
    wav = write_wav(recordings / "2026" / "11" / "28" / "ref.wav", 16000)
    new = requests.voice_message(
        NOW,
        caller_e164="+74951234567",
        customer_id=customer,
        decision="free_first_year",
        explanation="Первый год после покупки",
        recording_path=str(wav),
        recording_seconds=2.0,
        **fields,
    )
    return requests.create_request(engine, new)


def mail_row(engine: Engine, request_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(SupportRequest.__table__).where(SupportRequest.id == request_id)
        ).one()


def test_new_request_is_mailed_with_the_card_and_the_recording(
    engine: Engine, tmp_path: Path, smtp_server: tuple[Mailbox, int]
) -> None:
    box, port = smtp_server
    stored = stored_message(engine, tmp_path)

    report = mail.deliver_pending(engine, config(port), tmp_path, NOW, MSK)

    assert report.sent == [stored] and report.failed == []
    [message] = box.messages
    assert box.envelopes[0].rcpt_tos == ["info@onerpa.ru"]
    assert message["Subject"].startswith(f"Обращение № {stored}: голосовое сообщение")
    assert "ООО «Альфа-Логистик»" in message["Subject"]
    body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Клиент: 100101, ООО «Альфа-Логистик»" in body
    assert "Решение: free_first_year" in body
    assert "Ответить до: 01.12.2026 10:00" in body
    assert "Запись: 2,0 с, во вложении" in body
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    wav = tmp_path / "2026" / "11" / "28" / "ref.wav"
    assert attachment.get_content() == wav.read_bytes()
    row = mail_row(engine, stored)
    assert (row.mail_state, row.mail_attempts, row.mail_next_at, row.mail_error) == (
        "sent",
        1,
        None,
        "",
    )
    assert mail.deliver_pending(engine, config(port), tmp_path, NOW, MSK).sent == []


def test_a_recording_missing_on_disk_is_said_in_the_mail(
    engine: Engine, tmp_path: Path, smtp_server: tuple[Mailbox, int]
) -> None:
    box, port = smtp_server
    stored = stored_message(engine, tmp_path)
    (tmp_path / "2026" / "11" / "28" / "ref.wav").unlink()

    assert mail.deliver_pending(engine, config(port), tmp_path, NOW, MSK).sent == [stored]
    body = box.messages[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Запись: файла записи нет на диске" in body
    assert list(box.messages[0].iter_attachments()) == []


def test_server_down_loses_nothing_and_is_tried_again_with_back_off(
    engine: Engine, tmp_path: Path
) -> None:
    stored = stored_message(engine, tmp_path)
    port = free_port()  # nothing listens there yet

    down = mail.deliver_pending(engine, config(port), tmp_path, NOW, MSK)

    assert down.failed == [stored]
    row = mail_row(engine, stored)
    assert (row.mail_state, row.mail_attempts) == ("failed", 1)
    assert row.mail_next_at == NOW + timedelta(minutes=1)
    assert row.mail_error
    # Not before its time; then again, and the back-off doubles.
    assert (
        mail.deliver_pending(
            engine, config(port), tmp_path, NOW + timedelta(seconds=30), MSK
        ).failed
        == []
    )
    later = NOW + timedelta(minutes=1)
    assert mail.deliver_pending(engine, config(port), tmp_path, later, MSK).failed == [stored]
    assert mail_row(engine, stored).mail_next_at == later + timedelta(minutes=2)

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        back = mail.deliver_pending(
            engine, config(port), tmp_path, later + timedelta(minutes=2), MSK
        )
    finally:
        controller.stop()
    assert back.sent == [stored] and len(box.messages) == 1
    assert (mail_row(engine, stored).mail_state, mail_row(engine, stored).mail_attempts) == (
        "sent",
        3,
    )
    assert requests.get_request(engine, stored).status == "new"  # the request itself untouched


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [(1, timedelta(minutes=1)), (2, timedelta(minutes=2)), (4, timedelta(minutes=8)),
     (7, timedelta(hours=1)), (30, timedelta(hours=1))],
)  # fmt: skip
def test_back_off_doubles_up_to_an_hour(attempts: int, wait: timedelta) -> None:
    assert mail.backoff(attempts) == wait


def test_a_request_claimed_by_another_sender_is_not_sent_twice(
    engine: Engine, tmp_path: Path, smtp_server: tuple[Mailbox, int]
) -> None:
    box, port = smtp_server
    stored = stored_message(engine, tmp_path)
    assert mail._claim(engine, stored, NOW)  # another FastAGI server took it

    assert mail.deliver_pending(engine, config(port), tmp_path, NOW, MSK).sent == []
    assert box.messages == []
    after_lease = NOW + mail.LEASE
    assert mail.deliver_pending(engine, config(port), tmp_path, after_lease, MSK).sent == [stored]


def test_without_a_mail_server_requests_stay_pending(engine: Engine, tmp_path: Path) -> None:
    stored = stored_message(engine, tmp_path)
    settings = Settings(recordings_dir=str(tmp_path))

    report = mail.MailLoop(engine, settings, clock=lambda: NOW).run_once()

    assert report.sent == report.failed == []
    assert mail_row(engine, stored).mail_state == "pending"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def test_starttls_and_sign_in(
    engine: Engine, tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    key, cert = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    signed_in: list[str] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        ok = isinstance(auth, LoginPassword) and auth.password == b"pw-1"
        if ok:
            signed_in.append(auth.login.decode())
        return AuthResult(success=ok)

    box, port = Mailbox(), free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True,
        authenticator=authenticator, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        stored = stored_message(engine, tmp_path)
        client_tls = ssl.create_default_context(cafile=str(cert))
        tls = config(port, starttls=True, username="line", password="pw-1", tls=client_tls)
        plain = config(port)
        assert mail.deliver_pending(engine, plain, tmp_path, NOW, MSK).failed == [stored]
        later = NOW + timedelta(minutes=1)
        report = mail.deliver_pending(engine, tls, tmp_path, later, MSK)
    finally:
        controller.stop()
    assert report.sent == [stored]
    assert signed_in == ["line"] and len(box.messages) == 1


def test_mail_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {"ONERPA_SMTP_HOST": "smtp.onerpa.ru", "ONERPA_SMTP_USERNAME": "line",
         "ONERPA_SMTP_PASSWORD": "secret", "ONERPA_SMTP_STARTTLS": "no"}
    )  # fmt: skip
    smtp = mail.SmtpConfig.from_settings(settings)

    assert smtp is not None
    assert (smtp.host, smtp.port, smtp.starttls, smtp.sender, smtp.to) == (
        "smtp.onerpa.ru", 587, False, "info@onerpa.ru", "info@onerpa.ru",
    )  # fmt: skip
    assert "secret" not in repr(settings) and "secret" not in repr(smtp)
    assert mail.SmtpConfig.from_settings(Settings.from_env({})) is None
