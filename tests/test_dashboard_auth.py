"""Dashboard sign-in, roles, CSRF, rate limiting, cookies, headers and the user commands."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from dashboard import create_app, ensure_demo_users, serve_in_thread
from dashboard.testing import Clock, add_user, csrf_token, make_app, sign_in
from dashboard.users import update_user
from onerpa import db
from onerpa.settings import Settings, SettingsError
from onerpa.staff import AuditEntry, User
from onerpa_support.cli import main

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
PASSWORD = "correct horse"
SECRET = "s" * 40

SIGNED_IN_PAGES = [
    "/",
    "/my-call",
    "/calls",
    "/calls/1",
    "/calls/export.csv",
    "/customers",
    "/customers/1",
    "/figures",
    "/figures/breakdown",
    "/audit",
    "/staff",
]
SUPERVISOR_PAGES = ["/figures", "/figures/breakdown", "/audit", "/staff", "/calls/export.csv"]


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(engine: Engine, clock: Clock) -> Flask:
    return make_app(engine, clock)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def users(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        add_user(session, "anna", "agent", PASSWORD, interface="PJSIP/101")
        add_user(session, "vera", "supervisor", PASSWORD)


@pytest.mark.parametrize("path", SIGNED_IN_PAGES)
def test_pages_need_sign_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("path", ["/api/board", "/api/my-call"])
def test_json_needs_sign_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.get_json() == {"error": "sign-in required"}


def test_health_is_open(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_sign_in_then_out(client: FlaskClient, users: None) -> None:
    response = sign_in(client, "anna", PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "Anna" in page.get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert client.get("/").status_code == 302


def test_sign_in_is_case_insensitive_on_the_name(client: FlaskClient, users: None) -> None:
    assert sign_in(client, "ANNA", PASSWORD).status_code == 302


@pytest.mark.parametrize(("username", "password"), [("anna", "wrong one"), ("nobody", PASSWORD)])
def test_wrong_credentials_are_refused(
    client: FlaskClient, users: None, username: str, password: str
) -> None:
    response = sign_in(client, username, password)
    assert response.status_code == 401
    assert "Неверное имя пользователя или пароль" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_sign_out_needs_post_with_token(client: FlaskClient, users: None) -> None:
    sign_in(client, "anna", PASSWORD)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


def test_sign_in_form_without_csrf_token_is_rejected(client: FlaskClient, users: None) -> None:
    response = client.post("/login", data={"username": "anna", "password": PASSWORD})
    assert response.status_code == 400
    assert "Форма устарела" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_next_goes_back_to_the_page_asked_for(client: FlaskClient, users: None) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    data = {"username": "anna", "password": PASSWORD, "csrf_token": token}
    response = client.post("/login?next=/calls?phone%3D1", data=data)
    assert response.headers["Location"] == "/calls?phone=1"


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_next_never_leaves_the_site(client: FlaskClient, users: None, target: str) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    data = {"username": "anna", "password": PASSWORD, "csrf_token": token}
    response = client.post("/login", query_string={"next": target}, data=data)
    assert response.headers["Location"] == "/"


def test_sign_in_is_rate_limited_per_name_and_address(
    client: FlaskClient, users: None, clock: Clock
) -> None:
    for _ in range(5):
        assert sign_in(client, "anna", "wrong password").status_code == 401
    blocked = sign_in(client, "anna", PASSWORD)
    assert blocked.status_code == 429
    assert "Слишком много неудачных попыток" in blocked.get_data(as_text=True)
    assert sign_in(client, "vera", PASSWORD).status_code == 302  # another name is not blocked
    clock.advance(minutes=16)
    assert sign_in(client, "anna", PASSWORD).status_code == 302


def test_rate_limit_counts_per_address(app: Flask, users: None, clock: Clock) -> None:
    attacker = app.test_client()
    for _ in range(5):
        attacker.environ_base["REMOTE_ADDR"] = "10.0.0.66"
        sign_in(attacker, "anna", "wrong password")
    colleague = app.test_client()
    colleague.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    assert sign_in(colleague, "anna", PASSWORD).status_code == 302


def test_behind_a_proxy_the_throttle_counts_the_browsers_address(
    engine: Engine, users: None, clock: Clock
) -> None:
    app = make_app(engine, clock, PROXIES=1)
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "10.0.0.1"  # the proxy
    attacker.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.66"
    for _ in range(5):
        sign_in(attacker, "anna", "wrong password")
    assert sign_in(attacker, "anna", PASSWORD).status_code == 429
    colleague = app.test_client()
    colleague.environ_base["REMOTE_ADDR"] = "10.0.0.1"  # through the same proxy
    colleague.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.7"
    assert sign_in(colleague, "anna", PASSWORD).status_code == 302


def test_without_a_proxy_a_forged_forwarded_address_changes_nothing(
    app: Flask, users: None
) -> None:
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "10.0.0.66"
    for n in range(5):
        attacker.environ_base["HTTP_X_FORWARDED_FOR"] = f"203.0.113.{n}"
        sign_in(attacker, "anna", "wrong password")
    attacker.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.99"
    assert sign_in(attacker, "anna", PASSWORD).status_code == 429


@pytest.mark.parametrize(("proxies", "hsts"), [(1, True), (0, False)])
def test_https_at_the_proxy_is_believed_only_from_a_configured_proxy(
    engine: Engine, clock: Clock, proxies: int, hsts: bool
) -> None:
    client = make_app(engine, clock, PROXIES=proxies).test_client()
    response = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert ("Strict-Transport-Security" in response.headers) is hsts


@pytest.mark.parametrize("value", ["-1", "two", "6"])
def test_a_wrong_proxy_count_names_the_setting(
    engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ONERPA_DASHBOARD_PROXIES", value)
    with pytest.raises(SettingsError) as caught:
        make_app(engine, clock)
    assert caught.value.name == "ONERPA_DASHBOARD_PROXIES"


@pytest.mark.parametrize("path", SUPERVISOR_PAGES)
def test_supervisor_pages_refuse_agents(client: FlaskClient, users: None, path: str) -> None:
    sign_in(client, "anna", PASSWORD)
    response = client.get(path)
    assert response.status_code == 403
    assert "Недостаточно прав" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", SUPERVISOR_PAGES)
def test_supervisor_pages_open_to_supervisors(client: FlaskClient, users: None, path: str) -> None:
    sign_in(client, "vera", PASSWORD)
    assert client.get(path).status_code == 200


def test_agents_see_no_supervisor_links(client: FlaskClient, users: None) -> None:
    sign_in(client, "anna", PASSWORD)
    page = client.get("/").get_data(as_text=True)
    assert "/figures" not in page and "/audit" not in page


def test_disabled_user_is_signed_out(
    client: FlaskClient, users: None, sessions: sessionmaker[Session]
) -> None:
    sign_in(client, "anna", PASSWORD)
    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.username == "anna"))
        update_user(session, user, active=False)
    assert client.get("/").status_code == 302
    assert sign_in(client, "anna", PASSWORD).status_code == 401


def test_new_password_ends_old_sessions(
    client: FlaskClient, users: None, sessions: sessionmaker[Session]
) -> None:
    sign_in(client, "anna", PASSWORD)
    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.username == "anna"))
        update_user(session, user, password="a brand new password")
    assert client.get("/").status_code == 302


def test_security_headers(client: FlaskClient) -> None:
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"


def test_session_cookie_is_http_only_and_lax(client: FlaskClient, users: None) -> None:
    response = sign_in(client, "anna", PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # a limited lifetime, not a browser-session forever


def test_cookie_is_secure_outside_test_and_demo(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ONERPA_DASHBOARD_COOKIE_SECURE", raising=False)
    app = create_app({"ENGINE": engine, "SECRET_KEY": SECRET, "SETTINGS": Settings()})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    demo = create_app({"ENGINE": engine, "DEMO": True, "SETTINGS": Settings()})
    assert demo.config["SESSION_COOKIE_SECURE"] is False


def test_refuses_to_start_without_a_secret_key(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ONERPA_SECRET_KEY", raising=False)
    with pytest.raises(SettingsError, match="ONERPA_SECRET_KEY"):
        create_app({"ENGINE": engine, "SETTINGS": Settings()})


def test_refuses_a_short_secret_key(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONERPA_SECRET_KEY", "short")
    with pytest.raises(SettingsError, match="at least 32"):
        create_app({"ENGINE": engine, "SETTINGS": Settings()})


def test_secret_key_from_the_environment(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONERPA_SECRET_KEY", SECRET)
    app = create_app({"ENGINE": engine, "SETTINGS": Settings()})
    assert app.config["SECRET_KEY"] == SECRET


def test_demo_users_sign_in_and_get_new_passwords(engine: Engine, clock: Clock) -> None:
    first = ensure_demo_users(engine)
    assert [c.role for c in first] == ["supervisor", "agent"]
    again = ensure_demo_users(engine)
    assert first[0].password != again[0].password
    client = make_app(engine, clock).test_client()
    for credentials in again:
        assert sign_in(client, credentials.username, credentials.password).status_code == 302


def test_serve_in_thread_answers_and_stops(app: Flask) -> None:
    server = serve_in_thread(app, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(server.url + "health", timeout=5) as response:
            assert response.status == 200
    finally:
        server.stop()


# --- the commands ------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    yield {"ONERPA_DATABASE_URL": url}
    db.make_engine(url).dispose()


def _users(url: str) -> list[User]:
    engine = db.make_engine(url)
    with Session(engine) as session:
        users = list(session.scalars(select(User)))
        session.expunge_all()
    engine.dispose()
    return users


def test_create_user_command_hashes_the_password(cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["create-user", "olga", "agent", "--interface", "PJSIP/103", "--password-stdin"],
        input="a long enough secret\n",
        env=cli_env,
    )
    assert result.exit_code == 0, result.output
    [user] = _users(cli_env["ONERPA_DATABASE_URL"])
    assert (user.username, user.role, user.member_interface) == ("olga", "agent", "PJSIP/103")
    assert "a long enough secret" not in user.password_hash
    assert user.password_hash.startswith("scrypt:")
    engine = db.make_engine(cli_env["ONERPA_DATABASE_URL"])
    with Session(engine) as session:
        assert session.scalar(select(AuditEntry.action)) == "user.create"
    engine.dispose()


def test_create_user_command_prompts_for_the_password(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        main,
        ["create-user", "vera", "supervisor"],
        input="a long enough secret\na long enough secret\n",
        env=cli_env,
    )
    assert result.exit_code == 0, result.output
    assert [u.role for u in _users(cli_env["ONERPA_DATABASE_URL"])] == ["supervisor"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create-user", "olga", "agent", "--password-stdin"], "at least 10"),
        (["create-user", "olga", "boss", "--password-stdin"], "Invalid value"),
    ],
)
def test_create_user_command_refuses_bad_input(
    cli_env: dict[str, str], args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, args, input="short\n", env=cli_env)
    assert result.exit_code != 0
    assert message in result.output


def test_create_user_command_refuses_a_taken_name_unless_updating(
    cli_env: dict[str, str],
) -> None:
    runner = CliRunner()
    args = ["create-user", "olga", "agent", "--password-stdin"]
    assert runner.invoke(main, args, input="first password!\n", env=cli_env).exit_code == 0
    taken = runner.invoke(main, args, input="second password!\n", env=cli_env)
    assert "already exists" in taken.output
    update = ["create-user", "olga", "supervisor", "--password-stdin", "--update"]
    updated = runner.invoke(main, update, input="second password!\n", env=cli_env)
    assert updated.exit_code == 0, updated.output
    assert [u.role for u in _users(cli_env["ONERPA_DATABASE_URL"])] == ["supervisor"]


def test_disable_user_command(cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    runner.invoke(
        main,
        ["create-user", "olga", "agent", "--password-stdin"],
        input="a long secret\n",
        env=cli_env,
    )
    result = runner.invoke(main, ["disable-user", "olga"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert [u.active for u in _users(cli_env["ONERPA_DATABASE_URL"])] == [False]


def test_dashboard_command_needs_a_secret_key(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["dashboard"], env={**cli_env, "ONERPA_SECRET_KEY": ""})
    assert result.exit_code != 0
    assert "ONERPA_SECRET_KEY" in result.output
