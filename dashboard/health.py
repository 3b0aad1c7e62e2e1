"""The health check: open to all, says whether the dashboard can reach its database."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dashboard.db import get_db

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.route("/health")
def health() -> Any:
    """Return 200 when the database answers, 503 when it does not."""
    try:
        get_db().execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        log.warning("health check: database unavailable: %s", err)
        return jsonify(status="unavailable", database="down"), 503
    return jsonify(status="ok", database="ok")
