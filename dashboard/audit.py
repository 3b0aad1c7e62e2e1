"""The audit log and the staff list, for supervisors."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from sqlalchemy.orm import Session

from dashboard import queries
from dashboard.auth import supervisor_required
from dashboard.db import get_db

bp = Blueprint("audit", __name__)

ENTRIES_SHOWN = 500


@bp.route("/audit")
@supervisor_required
def index() -> Any:
    """Show the latest changes made through the dashboard and its commands."""
    entries = queries.audit_entries(get_db(), limit=ENTRIES_SHOWN)
    return render_template("audit/index.html", entries=entries, staff=staff_names(get_db()))


@bp.route("/staff")
@supervisor_required
def staff() -> Any:
    """List who may sign in, their role and their phone."""
    return render_template("audit/staff.html", users=queries.staff(get_db()))


def staff_names(session: Session) -> dict[str, str]:
    """Return every user's name by their id as the audit log stores it (text)."""
    return {str(user.id): user.username for user in queries.staff(session)}
