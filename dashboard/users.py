"""Staff accounts and the audit log: create, check passwords, record who changed what."""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from dashboard.models import AuditEntry, Role, User
from onerpa.db import session_factory
from onerpa.models import utcnow

MIN_PASSWORD_LENGTH = 10
DEMO_SUPERVISOR = "demo-supervisor"
DEMO_AGENT = "demo-agent"
DEMO_AGENT_INTERFACE = "PJSIP/101"


class UserError(ValueError):
    """A user cannot be created or changed as asked."""


@dataclass(frozen=True)
class Credentials:
    """A user name and password to print for the demo sign-in."""

    username: str
    password: str
    role: str


def find_user(session: Session, username: str) -> User | None:
    """Return the user called ``username`` (case-insensitive), or None."""
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """Return the active user whose password is ``password``, or None."""
    user = find_user(session, username)
    if user is None:
        # Check anyway, so an unknown name takes as long as a wrong password.
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    return user


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))


def create_user(
    session: Session,
    username: str,
    role: str,
    password: str,
    *,
    interface: str | None = None,
    member_name: str | None = None,
    display_name: str = "",
    by: str = "cli",
) -> User:
    """Add a user with a hashed password; the caller commits."""
    _check(username, role, password)
    if find_user(session, username) is not None:
        raise UserError(f"user {username!r} already exists")
    user = User(
        username=username,
        role=role,
        password_hash=generate_password_hash(password),
        member_interface=interface or None,
        member_name=member_name or None,
        display_name=display_name,
        active=True,
    )
    session.add(user)
    session.flush()
    audit(session, by, "user.create", "user", user.id, f"{username} ({role}) {interface or ''}")
    return user


def update_user(
    session: Session,
    user: User,
    *,
    role: str | None = None,
    password: str | None = None,
    interface: str | None = None,
    active: bool | None = None,
    by: str = "cli",
) -> None:
    """Change a user's role, password, phone interface or active flag; the caller commits."""
    _check(user.username, role or user.role, password)
    changed = []
    if role is not None and role != user.role:
        user.role = role
        changed.append(f"role={role}")
    if password is not None:
        user.password_hash = generate_password_hash(password)
        changed.append("password")
    if interface is not None and interface != (user.member_interface or ""):
        user.member_interface = interface or None
        changed.append(f"interface={interface}")
    if active is not None and active != user.active:
        user.active = active
        changed.append(f"active={active}")
    audit(session, by, "user.update", "user", user.id, ", ".join(changed) or "no change")


def _check(username: str, role: str, password: str | None) -> None:
    if not username or len(username) > 64 or not username.isprintable() or " " in username:
        raise UserError("a user name is 1 to 64 printable characters without spaces")
    if role not in tuple(Role):
        raise UserError(f"role must be one of: {', '.join(Role)}")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")


def audit(
    session: Session,
    username: str,
    action: str,
    target_type: str,
    target_id: object,
    details: str = "",
    *,
    at: datetime | None = None,
) -> None:
    """Append one row to the audit log; the caller commits with the change itself."""
    session.add(
        AuditEntry(
            at=at or utcnow(),
            username=username,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            details=details,
        )
    )


def ensure_demo_users(
    engine: Engine, *, agent_interface: str = DEMO_AGENT_INTERFACE
) -> list[Credentials]:
    """Create the demo supervisor and agent, or give them fresh passwords; return both."""
    result = []
    with session_factory(engine).begin() as session:
        for username, role, interface in (
            (DEMO_SUPERVISOR, Role.SUPERVISOR, None),
            (DEMO_AGENT, Role.AGENT, agent_interface),
        ):
            password = secrets.token_urlsafe(9)
            user = find_user(session, username)
            if user is None:
                create_user(
                    session,
                    username,
                    role,
                    password,
                    interface=interface,
                    by="demo",
                    display_name="Демо-руководитель" if role is Role.SUPERVISOR else "Демо-агент",
                )
            else:
                update_user(session, user, password=password, active=True, by="demo")
            result.append(Credentials(username, password, role.value))
    return result
