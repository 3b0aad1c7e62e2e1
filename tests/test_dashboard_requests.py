"""«Обращения»: the open requests with their deadlines, the recordings (staff only, by request),
taking and closing (audited), and «Перезвонить» writing a call file into the spool."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, insert, select

from dashboard.testing import Clock, add_customer, add_user, csrf_token, make_app, signed_in
from onerpa import db
from onerpa.models import SupportRequest
from onerpa.settings import Settings
from onerpa.staff import AuditEntry

T = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
PASSWORD = "correct horse"
REQUESTS = SupportRequest.__table__
# A 44-byte header-only WAV, 8 kHz mono 16-bit, as RECORD FILE leaves when nothing was said.
WAV = (
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00"
    b"\x80>\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"
)


@dataclasses.dataclass
class Site:
    app: Flask
    engine: Engine
    recordings: Path
    spool: Path

    def client(self, username: str = "anna") -> Any:
        return signed_in(self.app, username, PASSWORD)


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Site:
    recordings, spool = tmp_path / "recordings", tmp_path / "spool"
    for folder in (recordings, spool / "outgoing", spool / "outgoing_done", spool / "tmp"):
        folder.mkdir(parents=True)
    settings = dataclasses.replace(
        Settings(),
        recordings_dir=str(recordings),
        outgoing_spool=str(spool / "outgoing"),
        outgoing_done=str(spool / "outgoing_done"),
        outgoing_tmp=str(spool / "tmp"),
    )
    with db.session_factory(engine).begin() as session:
        add_user(session, "anna", "agent", PASSWORD, interface="PJSIP/101")
        add_user(session, "boss", "supervisor", PASSWORD)
        add_user(session, "nophone", "agent", PASSWORD)
    app = make_app(engine, Clock(T), SETTINGS=settings)
    return Site(app, engine, recordings, spool)


def add_request(engine: Engine, **fields: object) -> int:
    values: dict[str, object] = {
        "kind": "message",
        "status": "new",
        "caller_e164": "+74951234567",
        "callerid_raw": "84951234567",
        "received_at": T - timedelta(hours=1),
        "due_at": T + timedelta(hours=71),
    }
    values.update(fields)
    with engine.begin() as conn:
        key = conn.execute(insert(REQUESTS).values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def row_of(engine: Engine, request_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        found = conn.execute(select(REQUESTS).where(REQUESTS.c.id == request_id)).mappings()
        return dict(found.one())


def row_html(page: str, request_id: int) -> str:
    start = page.index(f'data-request-id="{request_id}"')
    end = page.find("</tr>", start)
    return page[start:end]


def post(client: Any, url: str, **data: object) -> Any:
    token = csrf_token(client.get("/requests").get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


def test_open_requests_show_a_countdown_coloured_by_the_deadline(site: Site) -> None:
    fresh = add_request(site.engine)
    close = add_request(
        site.engine, received_at=T - timedelta(hours=49), due_at=T + timedelta(hours=23)
    )
    late = add_request(site.engine, due_at=T - timedelta(minutes=5))
    done = add_request(site.engine, status="answered", caller_e164="+74950000001")
    page = site.client().get("/requests").get_data(as_text=True)
    assert 'data-state="ok"' in row_html(page, fresh)
    assert "осталось 2 д 23 ч" in row_html(page, fresh)
    assert 'data-state="amber"' in row_html(page, close)
    assert 'data-state="red"' in row_html(page, late)
    assert "просрочено на 5 мин" in row_html(page, late)
    assert f'data-request-id="{done}"' not in page
    # Most urgent first.
    assert page.index(f'data-request-id="{late}"') < page.index(f'data-request-id="{fresh}"')


def test_recording_plays_for_staff_only(site: Site) -> None:
    (site.recordings / "msg-1.wav").write_bytes(WAV)
    request_id = add_request(site.engine, recording_path="msg-1.wav")
    anonymous = site.app.test_client().get(f"/requests/{request_id}/recording")
    assert anonymous.status_code in (302, 401)
    assert anonymous.get_data() != WAV
    client = site.client()
    page = client.get("/requests").get_data(as_text=True)
    assert f'<audio controls preload="none" src="/requests/{request_id}/recording">' in page
    played = client.get(f"/requests/{request_id}/recording")
    assert played.status_code == 200 and played.mimetype == "audio/wav"
    assert played.get_data() == WAV
    assert "no-store" in played.headers["Cache-Control"]
    played.close()


@pytest.mark.parametrize("stored", ["../secret.wav", "{outside}/secret.wav", "/etc/passwd"])
def test_a_recording_outside_the_folder_is_never_served(
    site: Site, stored: str, tmp_path: Path
) -> None:
    (tmp_path / "secret.wav").write_bytes(b"secret")
    request_id = add_request(site.engine, recording_path=stored.format(outside=tmp_path))
    client = site.client()
    assert client.get(f"/requests/{request_id}/recording").status_code == 404
    page = client.get("/requests").get_data(as_text=True)
    assert "Файл записи не найден на диске" in row_html(page, request_id)


def test_a_missing_recording_still_shows_the_request_and_says_so(site: Site) -> None:
    request_id = add_request(site.engine, recording_path="gone.wav", recording_seconds=12.0)
    client = site.client()
    page = client.get("/requests").get_data(as_text=True)
    row = row_html(page, request_id)
    assert "Файл записи не найден на диске" in row and "<audio" not in row
    assert client.get(f"/requests/{request_id}/recording").status_code == 404


def audit_actions(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(AuditEntry.username, AuditEntry.action, AuditEntry.target_id).order_by(
                AuditEntry.id
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_agent_takes_then_answers_with_a_note_and_it_is_audited(site: Site) -> None:
    request_id = add_request(site.engine)
    client = site.client()
    assert post(client, f"/requests/{request_id}/take").status_code == 302
    row = row_of(site.engine, request_id)
    assert (row["status"], row["taken_by"], row["taken_at"]) == ("in_work", "anna", T)
    post(client, f"/requests/{request_id}/close", outcome="answered", note="Объяснили по почте")
    row = row_of(site.engine, request_id)
    assert (row["status"], row["closed_by"]) == ("answered", "anna")
    assert row["note"].endswith("anna: Объяснили по почте")
    assert audit_actions(site.engine) == [
        ("anna", "request.take", str(request_id)),
        ("anna", "request.answer", str(request_id)),
    ]
    assert f'data-request-id="{request_id}"' not in client.get("/requests").get_data(as_text=True)


def test_a_request_taken_by_someone_else_is_not_taken_again(site: Site) -> None:
    request_id = add_request(site.engine, status="in_work", taken_by="boss")
    response = post(site.client(), f"/requests/{request_id}/take")
    assert response.status_code == 302
    assert row_of(site.engine, request_id)["taken_by"] == "boss"
    assert audit_actions(site.engine) == []


def test_supervisor_declines_with_a_note(site: Site) -> None:
    request_id = add_request(site.engine)
    post(site.client("boss"), f"/requests/{request_id}/close", outcome="declined", note="Спам")
    row = row_of(site.engine, request_id)
    assert (row["status"], row["closed_by"]) == ("declined", "boss")
    assert audit_actions(site.engine) == [("boss", "request.decline", str(request_id))]


def test_closing_without_a_note_is_refused(site: Site) -> None:
    request_id = add_request(site.engine)
    client = site.client()
    post(client, f"/requests/{request_id}/close", outcome="declined", note="  ")
    assert row_of(site.engine, request_id)["status"] == "new"
    page = client.get("/requests").get_data(as_text=True)
    assert "Напишите, что ответили или почему отклонено" in page


def test_close_without_csrf_is_refused(site: Site) -> None:
    request_id = add_request(site.engine)
    response = site.client().post(
        f"/requests/{request_id}/close", data={"outcome": "answered", "note": "x"}
    )
    assert response.status_code == 400
    assert row_of(site.engine, request_id)["status"] == "new"


def test_call_back_writes_a_call_file_ringing_the_agent(site: Site) -> None:
    with db.session_factory(site.engine).begin() as session:
        customer = add_customer(session, phone="+74951234567")
        customer_id = customer.id
    request_id = add_request(site.engine, kind="callback", customer_id=customer_id)
    client = site.client()
    page = client.get("/requests").get_data(as_text=True)
    assert "Перезвонить" in row_html(page, request_id)
    response = post(client, f"/requests/{request_id}/callback", attempts="0")
    assert response.status_code == 302
    (placed,) = (site.spool / "outgoing").iterdir()
    text = placed.read_text()
    assert "Channel: PJSIP/101\n" in text
    assert "Setvar: ONERPA_CALLBACK_NUMBER=74951234567\n" in text
    assert list((site.spool / "tmp").iterdir()) == []
    assert row_of(site.engine, request_id)["attempts"] == 1
    assert audit_actions(site.engine) == [("anna", "request.callback", str(request_id))]
    page = client.get("/requests").get_data(as_text=True)
    assert "сейчас зазвонит ваш телефон" in page
    assert "Идёт перезвон" in row_html(page, request_id)


def test_call_back_with_the_spool_not_writable_says_so_in_russian(site: Site) -> None:
    request_id = add_request(site.engine, kind="callback")
    (site.spool / "tmp").rmdir()
    client = site.client()
    post(client, f"/requests/{request_id}/callback", attempts="0")
    page = client.get("/requests").get_data(as_text=True)
    assert "Не удалось передать звонок телефонной станции" in page
    row = row_of(site.engine, request_id)
    assert (row["status"], row["attempts"]) == ("new", 0)
    assert f'data-request-id="{request_id}"' in page


def test_call_back_for_an_agent_without_a_phone_says_so(site: Site) -> None:
    request_id = add_request(site.engine, kind="callback")
    client = site.client("nophone")
    post(client, f"/requests/{request_id}/callback", attempts="0")
    assert "У вас не указан телефон" in client.get("/requests").get_data(as_text=True)
    assert list((site.spool / "outgoing").iterdir()) == []


def test_a_withheld_number_has_no_call_back_button(site: Site) -> None:
    request_id = add_request(site.engine, caller_e164=None, callerid_raw="anonymous")
    page = site.client().get("/requests").get_data(as_text=True)
    assert "Перезвонить" not in row_html(page, request_id)


def test_requests_page_needs_a_sign_in(site: Site) -> None:
    response = site.app.test_client().get("/requests")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_board_lists_call_backs_with_their_place_among_the_waiting(site: Site) -> None:
    early = add_request(
        site.engine,
        kind="callback",
        place_at=T - timedelta(minutes=3),
        due_at=T + timedelta(hours=2),
    )
    late = add_request(
        site.engine,
        kind="callback",
        place_at=T - timedelta(minutes=1),
        due_at=T + timedelta(hours=2),
    )
    calling = add_request(site.engine, kind="callback", place_at=T - timedelta(minutes=2))
    add_request(site.engine, kind="message")  # a voice message does not wait on the board
    (site.spool / "outgoing" / f"onerpa-request-{calling}-1.call").write_text("Channel: x\n")
    body = site.client().get("/api/board").get_json()
    assert [item["id"] for item in body["callbacks"]] == [early, late]
    first = body["callbacks"][0]
    assert first["place_ms"] == int((T - timedelta(minutes=3)).timestamp() * 1000)
    assert first["caller"] and first["url"].endswith(f"#request-{early}")
