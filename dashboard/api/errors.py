"""The sync API's errors: one JSON shape, stable English codes, Russian messages.

``{"error": {"code": "phone_taken", "message": "…", "field": "phones"}}``; a 422 also lists
every field at fault in ``problems``. The codes are listed in ``ErrorCode``, in
``docs/api.md`` and in the OpenAPI document (a test checks that the three agree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from flask import Response, jsonify

from onerpa.importer import Problem


class ErrorCode(StrEnum):
    """Every ``error.code`` the API answers with."""

    MALFORMED_JSON = "malformed_json"
    BAD_REQUEST = "bad_request"
    TOKEN_MISSING = "token_missing"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_REVOKED = "token_revoked"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    NOT_FOUND = "not_found"
    CUSTOMER_NOT_FOUND = "customer_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PHONE_TAKEN = "phone_taken"
    LICENCE_TAKEN = "licence_taken"
    WRITE_CONFLICT = "write_conflict"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_TYPE = "invalid_type"
    INVALID_VALUE = "invalid_value"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"


# The answer to an HTTP error raised outside the API's own checks (routing, body size).
HTTP_ERRORS: dict[int, tuple[ErrorCode, str]] = {
    400: (ErrorCode.BAD_REQUEST, "Неверный запрос."),
    404: (
        ErrorCode.NOT_FOUND,
        "Такого адреса в API нет; адреса перечислены в /api/v1/openapi.json.",
    ),
    405: (ErrorCode.METHOD_NOT_ALLOWED, "Этот адрес API не принимает такой метод."),
    413: (
        ErrorCode.BODY_TOO_LARGE,
        "Тело запроса слишком большое; запрос отклонён, ничего не записано.",
    ),
    500: (ErrorCode.INTERNAL_ERROR, "Внутренняя ошибка; ничего не записано. Повторите позже."),
}


class ApiError(Exception):
    """Refuse the request with ``status`` and an error body."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        field: str | None = None,
        *,
        problems: Sequence[Problem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.problems = problems
        self.headers = dict(headers or {})

    @classmethod
    def invalid(cls, code: ErrorCode, problems: Sequence[Problem]) -> ApiError:
        """Return a 422 naming every field at fault, the first one as ``field``."""
        message = "; ".join(str(p) if p.field else p.text for p in problems)
        return cls(422, code, message, problems[0].field or None, problems=problems)

    def response(self) -> Response:
        body: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.problems:
            body["problems"] = [{"field": p.field, "message": p.text} for p in self.problems]
        response = jsonify(error=body)
        response.status_code = self.status
        response.headers.update(self.headers)
        return response


def http_error(status: int) -> Response:
    """Return the API's answer to an HTTP error raised by Flask itself."""
    code, message = HTTP_ERRORS.get(status, HTTP_ERRORS[400])
    return ApiError(status, code, message).response()
