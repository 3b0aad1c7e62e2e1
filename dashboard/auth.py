"""Sign-in and sign-out, the signed-in user, and who may see what.

Every page needs a sign-in except the sign-in page itself, the health check and the
static files; the check runs before every request, so a new view is closed by default.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user
from sqlalchemy import select

from dashboard.api import PREFIX as API_PREFIX
from dashboard.db import get_db, now
from dashboard.forms import LoginForm, LogoutForm
from dashboard.ratelimit import LoginThrottle
from dashboard.users import authenticate
from onerpa.staff import Role, User

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

OPEN_ENDPOINTS = frozenset({"auth.login", "health.health", "static"})
THROTTLE = "onerpa_login_throttle"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Staff:
    """The signed-in user as the views see it: a snapshot, detached from the database."""

    id: int
    username: str
    role: str
    display_name: str
    member_interface: str | None
    member_name: str | None
    stamp: str  # changes with the password, so a new password ends old sign-ins

    is_authenticated = True
    is_active = True
    is_anonymous = False

    @classmethod
    def from_user(cls, user: User) -> Staff:
        stamp = hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]
        return cls(
            user.id,
            user.username,
            user.role,
            user.display_name,
            user.member_interface,
            user.member_name,
            stamp,
        )

    @property
    def is_supervisor(self) -> bool:
        return self.role == Role.SUPERVISOR

    @property
    def label(self) -> str:
        return self.display_name or self.username

    def get_id(self) -> str:
        return f"{self.id}:{self.stamp}"


def init_app(app: Flask) -> None:
    """Set up sign-in sessions, the sign-in throttle and the default-closed check."""
    manager = LoginManager()
    manager.session_protection = "strong"
    manager.user_loader(load_staff)
    manager.init_app(app)
    app.extensions[THROTTLE] = LoginThrottle(
        app.config["LOGIN_ATTEMPTS"], app.config["LOGIN_WINDOW"]
    )
    app.before_request(require_sign_in)
    app.context_processor(lambda: {"logout_form": LogoutForm()})


def load_staff(user_id: str) -> Staff | None:
    """Return the user of a session cookie, if still active and with the same password."""
    ident, _, stamp = user_id.partition(":")
    if not ident.isdigit():
        return None
    user = get_db().scalar(select(User).where(User.id == int(ident)))
    if user is None or not user.active:
        return None
    staff = Staff.from_user(user)
    return staff if staff.stamp == stamp else None


def require_sign_in() -> Any:
    """Send anyone not signed in to the sign-in page (JSON gets a 401)."""
    if request.path.startswith(API_PREFIX + "/"):
        return None  # the sync API checks its own tokens (dashboard.api)
    if request.endpoint in OPEN_ENDPOINTS or current_user.is_authenticated:
        return None
    if request.path.startswith("/api/"):
        return jsonify(error="sign-in required"), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def supervisor_required(view: F) -> F:
    """Refuse the view (403) to anyone but a supervisor."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_supervisor:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


@bp.route("/login", methods=("GET", "POST"))
def login() -> Any:
    """Show the sign-in form; sign in on a valid POST."""
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form)
    username = form.username.data.strip()
    address = request.remote_addr or ""
    throttle: LoginThrottle = current_app.extensions[THROTTLE]
    if throttle.blocked(username, address, now()):
        log.warning("sign-in refused for %r from %s: too many failures", username, address)
        flash("Слишком много неудачных попыток входа. Подождите несколько минут.", "error")
        return render_template("auth/login.html", form=form), 429
    user = authenticate(get_db(), username, form.password.data)
    if user is None:
        throttle.failed(username, address, now())
        log.info("failed sign-in for %r from %s", username, address)
        flash("Неверное имя пользователя или пароль.", "error")
        return render_template("auth/login.html", form=form), 401
    throttle.succeeded(username, address)
    session.clear()
    login_user(Staff.from_user(user))
    session.permanent = True
    log.info("%s signed in from %s", user.username, address)
    return redirect(safe_next(request.args.get("next")) or url_for("board.index"))


@bp.route("/logout", methods=("POST",))
def logout() -> Any:
    """Sign out and forget the session."""
    form = LogoutForm()
    if form.validate_on_submit():
        logout_user()
        session.clear()
    return redirect(url_for("auth.login"))


def safe_next(target: str | None) -> str | None:
    """Return ``target`` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target
