"""The agent and supervisor dashboard: live calls, the caller's context, history, figures.

``create_app(config)`` builds the Flask app. Config keys beyond Flask's own:
``ENGINE`` (or ``DATABASE_URL``), ``SETTINGS`` (an ``onerpa.settings.Settings``), ``CLOCK``
(a callable returning an aware ``datetime``), ``DEMO`` (the all-in-one ``run``: a random
secret key and plain-HTTP cookies are allowed). See ``dashboard.config`` for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from dashboard import (
    agents,
    api,
    audit,
    auth,
    board,
    calls,
    customers,
    db,
    figures,
    health,
    labels,
    requests,
    security,
)
from dashboard import config as app_config
from dashboard.server import DashboardServer, serve_in_thread
from dashboard.users import Credentials, ensure_demo_users

__all__ = [
    "Credentials",
    "DashboardServer",
    "create_app",
    "ensure_demo_users",
    "serve_in_thread",
]

log = logging.getLogger(__name__)

BLUEPRINTS = (
    agents.bp,
    auth.bp,
    board.bp,
    calls.bp,
    customers.bp,
    figures.bp,
    requests.bp,
    audit.bp,
    health.bp,
    api.bp,
)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the dashboard app from ``config`` (and the environment for what it lacks)."""
    app = Flask(__name__)
    app.config.update(app_config.load(config))
    if app.config["PROXIES"]:
        hops = app.config["PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    db.init_app(app)
    security.init_app(app)
    auth.init_app(app)
    labels.init_app(app)
    figures.init_app(app)
    board.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
