"""Response headers that keep the browser strict, and the error pages."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from dashboard.api import PREFIX as API_PREFIX
from dashboard.api import errors as api_errors

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
ERRORS = {
    400: "Неверный запрос.",
    403: "Недостаточно прав для этой страницы.",
    404: "Страница не найдена.",
    405: "Так к этой странице обратиться нельзя.",
    413: "Слишком большой запрос.",
}


def init_app(app: Flask) -> None:
    """Protect forms against CSRF, add the security headers, and render errors in Russian."""
    CSRFProtect(app)
    app.after_request(add_headers)
    app.register_error_handler(CSRFError, csrf_failed)
    for code in ERRORS:
        app.register_error_handler(code, error_page)


def add_headers(response: Response) -> Response:
    """Add the security headers; forbid caching of anything but static files."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def csrf_failed(error: CSRFError) -> Any:
    if _in_api():  # only an address no API view serves gets here: the API itself is exempt
        return api_errors.http_error(getattr(request.routing_exception, "code", None) or 404)
    message = "Форма устарела или отправлена не с этой страницы. Обновите страницу и повторите."
    return render_template("error.html", code=400, message=message), 400


def error_page(error: Any) -> Any:
    code = getattr(error, "code", 500) or 500
    if _in_api():  # an address under /api/v1 that no view serves: answer in the API's JSON
        return api_errors.http_error(code)
    return render_template("error.html", code=code, message=ERRORS.get(code, "Ошибка.")), code


def _in_api() -> bool:
    return request.path.startswith(API_PREFIX + "/")
