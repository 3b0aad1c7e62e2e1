"""The dashboard's Flask configuration: defaults, the environment, and what a caller passes.

Security settings are read once, here, when the app is built:

- ``ONERPA_SECRET_KEY`` signs sessions. Required, at least 32 characters; only the test
  and demo modes make up a random per-process key (and say so in the log).
- ``ONERPA_DASHBOARD_COOKIE_SECURE`` (default on; off in the demo): send the session
  cookie over HTTPS only.
- ``ONERPA_DASHBOARD_SESSION_HOURS`` (default 12, a shift): how long a sign-in lasts.
- ``ONERPA_DASHBOARD_LOGIN_ATTEMPTS`` (default 5) failed sign-ins per user name and address
  within ``ONERPA_DASHBOARD_LOGIN_WINDOW_MINUTES`` (default 15) before sign-in is refused.
- ``ONERPA_DASHBOARD_PROXIES`` (default 0): how many reverse proxies stand in front of the
  dashboard. Only then are their ``X-Forwarded-For`` and ``X-Forwarded-Proto`` believed, so
  the sign-in throttle counts the browser's address rather than the proxy's, and nobody
  reaching the dashboard directly can choose the address it counts.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from onerpa.settings import Settings, SettingsError

log = logging.getLogger(__name__)

MIN_SECRET_LENGTH = 32

DEFAULTS: dict[str, Any] = {
    "TESTING": False,
    "DEMO": False,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "onerpa_session",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the sign-in session
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "BOARD_POLL_MS": 2000,
    "HISTORY_PAGE_SIZE": 50,
    "CSV_MAX_ROWS": 200_000,
    "RECENT_CALLS": 4,
    "RECENT_CALLS_TTL_SECONDS": 10.0,
}


def load(config: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the app configuration: defaults, then the environment, then ``config``."""
    env = os.environ if env is None else env
    given = dict(config or {})
    merged = dict(DEFAULTS)
    merged.update(given)
    relaxed = bool(merged["TESTING"] or merged["DEMO"])
    merged["SETTINGS"] = given.get("SETTINGS") or Settings.from_env(env)
    merged["SECRET_KEY"] = _secret_key(given.get("SECRET_KEY"), env, relaxed=relaxed)
    if "SESSION_COOKIE_SECURE" not in given:
        merged["SESSION_COOKIE_SECURE"] = _flag(
            env, "ONERPA_DASHBOARD_COOKIE_SECURE", default=not relaxed
        )
    merged["REMEMBER_COOKIE_SECURE"] = merged["SESSION_COOKIE_SECURE"]
    if "PERMANENT_SESSION_LIFETIME" not in given:
        hours = _number(env, "ONERPA_DASHBOARD_SESSION_HOURS", 12, high=24 * 7)
        merged["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=hours)
    merged.setdefault(
        "LOGIN_ATTEMPTS", int(_number(env, "ONERPA_DASHBOARD_LOGIN_ATTEMPTS", 5, high=1000))
    )
    merged.setdefault("PROXIES", _count(env, "ONERPA_DASHBOARD_PROXIES", high=5))
    if "LOGIN_WINDOW" not in merged:
        minutes = _number(env, "ONERPA_DASHBOARD_LOGIN_WINDOW_MINUTES", 15, high=24 * 60)
        merged["LOGIN_WINDOW"] = timedelta(minutes=minutes)
    return merged


def _secret_key(given: str | bytes | None, env: Mapping[str, str], *, relaxed: bool) -> str | bytes:
    key = given or env.get("ONERPA_SECRET_KEY", "").strip()
    if key:
        if len(key) < MIN_SECRET_LENGTH:
            raise SettingsError(
                "ONERPA_SECRET_KEY", f"must be at least {MIN_SECRET_LENGTH} characters"
            )
        return key
    if not relaxed:
        raise SettingsError(
            "ONERPA_SECRET_KEY",
            "must be set to sign dashboard sessions (for example: python -c "
            "'import secrets; print(secrets.token_urlsafe(48))')",
        )
    log.warning(
        "ONERPA_SECRET_KEY is not set: using a random key for this process only; "
        "sign-ins end when it stops"
    )
    return secrets.token_urlsafe(48)


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(name, f"{value!r} is not a yes/no value")


def _number(env: Mapping[str, str], name: str, default: float, *, high: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(name, f"{value!r} is not a number") from None
    if not 0 < number <= high:
        raise SettingsError(name, f"must be above 0 and at most {high:g}")
    return number


def _count(env: Mapping[str, str], name: str, *, high: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return 0
    if not value.isdigit() or int(value) > high:
        raise SettingsError(name, f"must be a whole number from 0 to {high}")
    return int(value)
