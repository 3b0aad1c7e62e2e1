"""Sync-API tokens: create one per integration, show it once, keep only its SHA-256.

A token is 32 random bytes (``secrets.token_urlsafe``) behind a short prefix, so a token
pasted in the wrong place is easy to recognise. Being that random, a plain SHA-256 is enough
to store it (a slow password hash protects guessable secrets, not these). A token is scoped
``read`` or ``write`` (write implies read), may expire, and is revoked, never deleted, so
the audit log's ``api:<name>`` always names a token that can still be looked up.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from onerpa.models import ApiToken

PREFIX = "orpa_"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,47}")


class Scope(StrEnum):
    """What a token may do: ``read`` customers, or also ``write`` them."""

    READ = "read"
    WRITE = "write"


class TokenError(ValueError):
    """A token cannot be created or revoked as asked (the message is for a person)."""


class Refusal(StrEnum):
    """Why a presented token is refused; the API's error codes."""

    MISSING = "token_missing"
    INVALID = "token_invalid"
    EXPIRED = "token_expired"
    REVOKED = "token_revoked"


@dataclass(frozen=True)
class Verified:
    """The outcome of checking a presented token: the token, or why it was refused."""

    token: ApiToken | None
    refusal: Refusal | None = None


def digest(token: str) -> str:
    """Return the hex SHA-256 under which ``token`` is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def allows(token: ApiToken, needed: Scope) -> bool:
    """Return whether ``token`` may do what ``needed`` allows (write implies read)."""
    return needed == Scope.READ or token.scope == Scope.WRITE


def create_token(
    session: Session, name: str, scope: Scope, now: datetime, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Add a token called ``name``; return it and its secret, shown this once. Caller commits."""
    if not NAME.fullmatch(name):
        raise TokenError(
            "имя токена — от 1 до 48 строчных латинских букв, цифр и знаков . _ -, "
            "начиная с буквы или цифры"
        )
    if expires_at is not None and expires_at <= now:
        raise TokenError("срок действия токена уже прошёл")
    if find_token(session, name) is not None:
        raise TokenError(f"токен {name!r} уже есть (имена не используются повторно)")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        token_sha256=digest(secret),
        scope=str(scope),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return token, secret


def revoke_token(session: Session, name: str, now: datetime) -> ApiToken:
    """Revoke the token called ``name`` from ``now`` on; the caller commits."""
    token = find_token(session, name)
    if token is None:
        raise TokenError(f"токена {name!r} нет")
    if token.revoked_at is not None:
        raise TokenError(f"токен {name!r} уже отозван")
    token.revoked_at = now
    return token


def find_token(session: Session, name: str) -> ApiToken | None:
    """Return the token called ``name``, or None."""
    return session.scalar(select(ApiToken).where(ApiToken.name == name))


def list_tokens(session: Session) -> list[ApiToken]:
    """Return every token, revoked ones included, by name."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def verify(session: Session, presented: str | None, now: datetime) -> Verified:
    """Check a token presented by a client at ``now``."""
    if not presented:
        return Verified(None, Refusal.MISSING)
    wanted = digest(presented)
    token = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == wanted))
    # The look-up is by digest; comparing the digests again in constant time costs nothing
    # and keeps the check safe should the look-up ever become a prefix match.
    if token is None or not hmac.compare_digest(token.token_sha256, wanted):
        return Verified(None, Refusal.INVALID)
    if token.revoked_at is not None:
        return Verified(None, Refusal.REVOKED)
    if token.expires_at is not None and token.expires_at <= now:
        return Verified(None, Refusal.EXPIRED)
    return Verified(token)
