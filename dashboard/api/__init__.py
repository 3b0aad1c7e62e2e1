"""The sync API: the vendor's billing or CRM keeps the customer directory in step.

JSON over HTTP under ``/api/v1``, described by ``/api/v1/openapi.json`` and docs/api.md.
Integrations present a token (``Authorization: Bearer …``, made with ``onerpa-support
api-token create``); there are no session cookies and no CSRF tokens here. Every request is
one transaction, so it is written whole or not at all, and every change is audited as
``api:<token name>``. Requests are counted per token (``API_RATE_LIMIT`` per
``API_RATE_WINDOW_SECONDS`` in the app config; 429 with ``Retry-After`` past it).

The checks run in this order: body size (before anything is read), token, rate, scope.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for
from flask.sansio.blueprints import BlueprintSetupState
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from dashboard.api.errors import ApiError, ErrorCode, http_error
from dashboard.api.limits import RequestLimiter
from dashboard.db import get_db, now, sessions
from dashboard.users import audit
from onerpa import sync, tokens
from onerpa.importer import FieldChecker, Problem
from onerpa.models import ApiToken

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
LIMITER = "onerpa_api_limiter"
DEFAULT_RATE_LIMIT = 120
DEFAULT_RATE_WINDOW_SECONDS = 60
DEFAULT_PAGE = 100
WRITE_ATTEMPTS = 3  # a lost race is retried; three lost in a row means real contention
WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})
OPEN_ENDPOINTS = frozenset({"api.openapi"})

_REFUSALS = {
    tokens.Refusal.MISSING: (
        ErrorCode.TOKEN_MISSING,
        "Нужен токен API: заголовок Authorization: Bearer <токен>.",
    ),
    tokens.Refusal.INVALID: (ErrorCode.TOKEN_INVALID, "Токен API не подошёл."),
    tokens.Refusal.EXPIRED: (
        ErrorCode.TOKEN_EXPIRED,
        "Срок действия токена API истёк; выпустите новый (onerpa-support api-token create).",
    ),
    tokens.Refusal.REVOKED: (ErrorCode.TOKEN_REVOKED, "Токен API отозван."),
}

bp = Blueprint("api", __name__, url_prefix=PREFIX)


@bp.record_once
def _set_up(state: BlueprintSetupState) -> None:
    """Exempt the API from CSRF (tokens, not cookies) and give the app its request counter."""
    app = state.app
    app.extensions["csrf"].exempt(bp)
    limit = app.config.setdefault("API_RATE_LIMIT", DEFAULT_RATE_LIMIT)
    window = app.config.setdefault("API_RATE_WINDOW_SECONDS", DEFAULT_RATE_WINDOW_SECONDS)
    app.extensions[LIMITER] = RequestLimiter(limit, timedelta(seconds=window))


@bp.errorhandler(ApiError)
def _refused(error: ApiError) -> Response:
    return error.response()


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    return http_error(error.code or 500)


@bp.errorhandler(Exception)
def _failed(error: Exception) -> Response:
    log.exception("sync API request %s %s failed", request.method, request.path)
    return http_error(500)


@bp.before_request
def _check_request() -> None:
    """Refuse an oversized body, a bad token, a client over its rate, or a missing scope."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and (request.content_length or 0) > limit:
        raise ApiError(
            413,
            ErrorCode.BODY_TOO_LARGE,
            f"Тело запроса больше {limit // 1024} КБ; запрос отклонён, ничего не записано.",
        )
    if request.endpoint in OPEN_ENDPOINTS:
        return
    token = _authenticate()
    limiter: RequestLimiter = current_app.extensions[LIMITER]
    wait = limiter.wait_seconds(token.name, now())
    if wait:
        raise ApiError(
            429,
            ErrorCode.RATE_LIMITED,
            f"Слишком много запросов с токеном «{token.name}»; повторите через {wait} с.",
            headers={"Retry-After": str(wait)},
        )
    needed = tokens.Scope.WRITE if request.method in WRITE_METHODS else tokens.Scope.READ
    if not tokens.allows(token, needed):
        raise ApiError(
            403,
            ErrorCode.INSUFFICIENT_SCOPE,
            f"Токен «{token.name}» только для чтения; для изменений нужен токен с --scope write.",
        )
    g.api_token = token


def _authenticate() -> ApiToken:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    secret = presented.strip() if scheme.lower() == "bearer" else None
    verified = tokens.verify(get_db(), secret, now())
    if verified.token is None:
        code, message = _REFUSALS[verified.refusal or tokens.Refusal.INVALID]
        raise ApiError(
            401, code, message, headers={"WWW-Authenticate": 'Bearer realm="onerpa-support"'}
        )
    return verified.token


# --- the endpoints ----------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi() -> Response:
    """Serve the OpenAPI document of this API."""
    return Response(_openapi_document(), mimetype="application/json")


@functools.cache
def _openapi_document() -> bytes:
    return (Path(__file__).parent.parent / "static" / "openapi.json").read_bytes()


@bp.get("/customers")
def list_customers() -> Response:
    """List customers changed at or after ``changed_since``, a page at a time."""
    since = _moment_arg("changed_since")
    limit = _limit_arg()
    cursor = request.args.get("cursor") or None
    if cursor is not None:
        try:
            sync.decode_cursor(cursor)
        except ValueError:
            raise _invalid_arg("cursor", "не курсор из next_cursor предыдущей страницы") from None
    page, next_cursor = sync.changed_since(get_db(), since, cursor, limit)
    return jsonify(customers=[sync.to_json(s) for s in page], next_cursor=next_cursor)


@bp.get("/customers/<number>")
def get_customer(number: str) -> Response:
    """Return one customer as stored."""
    stored = sync.read(get_db(), number)
    if stored is None:
        raise _no_customer(number)
    return jsonify(customer=sync.to_json(stored))


@bp.put("/customers/<number>")
def put_customer(number: str) -> tuple[Response, int, dict[str, str]]:
    """Make the customer ``number`` exactly what the body says (created if new)."""
    try:
        record = sync.parse_customer(number, _json_body())
    except sync.Invalid as err:
        raise ApiError.invalid(ErrorCode(err.code), err.problems) from None
    outcome, body = _write(number, lambda s, at: sync.upsert(s, record, at), "customer.update")
    if outcome.result == "created":
        location = url_for("api.get_customer", number=number)
        return body, 201, {"Location": location}
    return body, 200, {}


@bp.post("/customers/<number>/deactivate")
def deactivate_customer(number: str) -> Response:
    """Mark the customer inactive; its records and calls are kept."""
    _, body = _write(number, lambda s, at: sync.deactivate(s, number, at), "customer.deactivate")
    return body


def _write(
    number: str, change: Callable[[Session, datetime], sync.Outcome | None], action: str
) -> tuple[sync.Outcome, Response]:
    """Run ``change`` in one transaction with its audit row (``action``); retry a lost race."""
    token: ApiToken = g.api_token
    for _attempt in range(WRITE_ATTEMPTS):
        try:
            with sessions()() as session, session.begin():
                outcome = change(session, now())
                if outcome is None:
                    raise _no_customer(number)
                if outcome.result != "unchanged":
                    _audit(session, token, number, outcome, action)
                stored = sync.read(session, number)
                assert stored is not None  # written in this very transaction
                body = jsonify(result=outcome.result, customer=sync.to_json(stored))
            return outcome, body
        except (IntegrityError, OperationalError) as err:
            if not sync.is_race(err):
                raise
            log.info("sync API: write of customer %s lost a race, retrying: %s", number, err)
        except sync.Conflict as err:
            raise ApiError(409, ErrorCode(err.code), err.message, err.field) from None
    raise ApiError(
        409,
        ErrorCode.WRITE_CONFLICT,
        f"Клиента {number} в это же время меняют другие запросы; повторите запрос.",
    )


def _audit(
    session: Session, token: ApiToken, number: str, outcome: sync.Outcome, action: str
) -> None:
    actor = f"api:{token.name}"
    if outcome.result == "created":
        audit(session, actor, "customer.create", "customer", outcome.customer_id, number)
    elif action == "customer.deactivate":
        audit(session, actor, "customer.deactivate", "customer", outcome.customer_id, number)
    else:
        details = f"{number}: {', '.join(outcome.changed)}"
        audit(session, actor, "customer.update", "customer", outcome.customer_id, details)
    log.info("sync API: %s %s customer %s", actor, outcome.result, number)


# --- reading the request ----------------------------------------------------------------------


def _json_body() -> Any:
    if not request.is_json:
        raise ApiError(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "Тело запроса должно быть JSON с заголовком Content-Type: application/json.",
        )
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        message = f"Тело запроса — не JSON: {err.msg} (строка {err.lineno}, столбец {err.colno})."
    except UnicodeDecodeError:
        message = "Тело запроса — не JSON: текст не в UTF-8."
    except RecursionError:
        message = "Тело запроса — не JSON, который можно прочитать: слишком глубокая вложенность."
    raise ApiError(400, ErrorCode.MALFORMED_JSON, message)


def _moment_arg(name: str) -> Any:
    raw = request.args.get(name, "")
    if not raw:
        return None
    check = FieldChecker({name: raw})
    moment = check.moment(name)
    if check.problems:
        raise ApiError.invalid(ErrorCode.INVALID_VALUE, check.problems)
    return moment


def _limit_arg() -> int:
    raw = request.args.get("limit", "")
    if not raw:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= sync.MAX_PAGE:
        raise _invalid_arg("limit", f"{raw[:40]!r} — не целое число от 1 до {sync.MAX_PAGE}")
    return int(raw)


def _invalid_arg(name: str, text: str) -> ApiError:
    return ApiError.invalid(ErrorCode.INVALID_VALUE, [Problem(name, text)])


def _no_customer(number: str) -> ApiError:
    return ApiError(404, ErrorCode.CUSTOMER_NOT_FOUND, f"Клиента с номером {number[:40]!r} нет.")
