"""``onerpa-support api-token create|revoke|list``: the sync API's tokens, one per integration.

``create`` prints the token alone on standard output (so a script can capture it) and what
to do with it on standard error; it is shown this once and stored only as its SHA-256.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from dashboard.users import audit
from onerpa import tokens
from onerpa.db import session_factory
from onerpa.importer import MOSCOW, FieldChecker
from onerpa.models import ApiToken
from onerpa.startup import load_settings, open_database


@click.group("api-token")
def api_token_group() -> None:
    """Выпустить, отозвать и перечислить токены API синхронизации (docs/api.md)."""


@api_token_group.command("create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice([str(s) for s in tokens.Scope]),
    required=True,
    help="read — читать клиентов; write — ещё и изменять.",
)
@click.option(
    "--expires",
    default="",
    help=(
        "Когда токен перестаёт действовать: 2027-01-01 (00:00 по Москве) "
        "или 2027-01-01T12:00+03:00."
    ),
)
def create_command(name: str, scope: str, expires: str) -> None:
    """Выпустить токен NAME (один на интеграцию) и показать его один раз."""
    expires_at = _moment(expires)
    engine = _open()
    try:
        with session_factory(engine).begin() as session:
            token, secret = tokens.create_token(
                session, name, tokens.Scope(scope), datetime.now(UTC), expires_at
            )
            audit(session, "cli", "api_token.create", "api_token", token.id, _describe(token))
    except tokens.TokenError as err:
        raise click.ClickException(str(err)) from None
    finally:
        engine.dispose()
    click.echo(secret)
    click.echo(
        f"Токен «{name}» ({scope}{_until(token)}) выпущен. Сохраните его сейчас: он показан "
        "один раз и нигде не хранится. Клиенты API передают его в заголовке "
        "Authorization: Bearer <токен>.",
        err=True,
    )


@api_token_group.command("revoke")
@click.argument("name")
def revoke_command(name: str) -> None:
    """Отозвать токен NAME: его следующий запрос будет отклонён."""
    engine = _open()
    try:
        with session_factory(engine).begin() as session:
            token = tokens.revoke_token(session, name, datetime.now(UTC))
            audit(session, "cli", "api_token.revoke", "api_token", token.id, name)
    except tokens.TokenError as err:
        raise click.ClickException(str(err)) from None
    finally:
        engine.dispose()
    click.echo(f"Токен «{name}» отозван.")


@api_token_group.command("list")
def list_command() -> None:
    """Перечислить токены: имя, права, выпуск, срок, состояние."""
    engine = _open()
    try:
        with session_factory(engine)() as session:
            found = tokens.list_tokens(session)
    finally:
        engine.dispose()
    if not found:
        click.echo("Токенов нет.")
        return
    now = datetime.now(UTC)
    for token in found:
        click.echo(
            f"{token.name}\t{token.scope}\tвыпущен {_local(token.created_at)}"
            f"\t{_until(token).strip(', ') or 'бессрочный'}\t{_state(token, now)}"
        )


def _open():  # type: ignore[no-untyped-def]
    return open_database(load_settings())


def _moment(text: str) -> datetime | None:
    """Read ``--expires`` by the rules of every other moment (a day means 00:00 Moscow)."""
    if not text:
        return None
    check = FieldChecker({"expires": text}, {"expires": "--expires"})
    moment = check.moment("expires")
    if check.problems:
        raise click.BadParameter(check.problems[0].text, param_hint="--expires")
    return moment


def _local(moment: datetime) -> str:
    return moment.astimezone(MOSCOW).strftime("%d.%m.%Y %H:%M")


def _until(token: ApiToken) -> str:
    return f", до {_local(token.expires_at)} МСК" if token.expires_at else ""


def _describe(token: ApiToken) -> str:
    return f"{token.name} ({token.scope}){_until(token)}"


def _state(token: ApiToken, now: datetime) -> str:
    if token.revoked_at is not None:
        return f"отозван {_local(token.revoked_at)}"
    if token.expires_at is not None and token.expires_at <= now:
        return "истёк"
    return "действует"
