"""Staff accounts and the audit log: create, check passwords, record who changed what."""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from onerpa.db import session_factory
from onerpa.demo import AGENTS as DEMO_AGENTS
from onerpa.models import utcnow
from onerpa.staff import AuditEntry, Role, User

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
DEMO_SUPERVISOR = "demo-supervisor"
DEMO_AGENT = DEMO_AGENTS[0].username
DEMO_AGENT_INTERFACE = DEMO_AGENTS[0].interface


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
    """Change a user's role, password, phone interface or active flag; the caller commits.

    Only a real change is audited: asking for what is already so writes nothing.
    """
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
    if changed:
        audit(session, by, "user.update", "user", user.id, ", ".join(changed))


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
    engine: Engine,
    *,
    agent_interface: str = DEMO_AGENT_INTERFACE,
    remember: Path | None = None,
) -> list[Credentials]:
    """Create the demo supervisor and agents; return the two sign-ins to print.

    Without ``remember`` the two get fresh passwords each time. With it, their passwords are
    kept in that file (readable by its owner only) and kept as they are while they still
    sign in, so a restart changes nothing and audits nothing. The other demo agents
    (``onerpa.demo.AGENTS``) only name the agents of the demo calls: they are created once,
    with a password nobody is told.
    """
    known = _read_sign_ins(remember)
    result = []
    with session_factory(engine).begin() as session:
        for username, role, interface, name in (
            (DEMO_SUPERVISOR, Role.SUPERVISOR, None, "Демо-руководитель"),
            (DEMO_AGENT, Role.AGENT, agent_interface, DEMO_AGENTS[0].display_name),
        ):
            user = find_user(session, username)
            password = known.get(username, "")
            if (
                user is None
                or not password
                or not check_password_hash(user.password_hash, password)
            ):
                password = secrets.token_urlsafe(9)
            if user is None:
                create_user(
                    session,
                    username,
                    role,
                    password,
                    interface=interface,
                    by="demo",
                    display_name=name,
                )
            elif password != known.get(username):
                update_user(session, user, password=password, active=True, by="demo")
            else:
                update_user(session, user, active=True, by="demo")
            result.append(Credentials(username, password, role.value))
        for agent in DEMO_AGENTS[1:]:
            if find_user(session, agent.username) is None:
                create_user(
                    session,
                    agent.username,
                    Role.AGENT,
                    secrets.token_urlsafe(18),
                    interface=agent.interface,
                    by="demo",
                    display_name=agent.display_name,
                )
    if remember is not None and {c.username: c.password for c in result} != known:
        _write_sign_ins(remember, {c.username: c.password for c in result})
    return result


def _read_sign_ins(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): str(v) for k, v in found.items()}


def _write_sign_ins(path: Path, sign_ins: dict[str, str]) -> None:
    """Keep the demo passwords where only their owner reads them."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(sign_ins, out)
        path.chmod(0o600)
    except OSError as err:  # the demo still runs; the next start gives new passwords
        log.warning("could not keep the demo sign-ins in %s: %s", path, err)
