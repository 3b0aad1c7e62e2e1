"""The dashboard for a production WSGI server::

    gunicorn --bind 127.0.0.1:8080 --workers 2 --threads 8 'dashboard.wsgi:create_wsgi_app()'

Each worker builds its app like the ``dashboard`` command does: settings from the environment
(and ``ONERPA_CONFIG_FILE``), the schema brought up to date (the migration lock makes workers
and other services starting at once take turns), ``ONERPA_SECRET_KEY`` required. A wrong
setting stops the worker with a message naming it, and gunicorn with it. The app keeps no
state of its own between requests, so any number of workers and hosts can serve it behind a
load balancer.
"""

from __future__ import annotations

import logging
import os

from flask import Flask

from dashboard import create_app
from onerpa import db
from onerpa.settings import Settings, SettingsError, apply_config_file

log = logging.getLogger(__name__)

# The exit status gunicorn reads as "the worker failed to boot": it stops, rather than
# starting worker after worker that each fail the same way.
WORKER_BOOT_ERROR = 3


def create_wsgi_app() -> Flask:
    """Build the dashboard app from the environment, with the schema migrated."""
    # gunicorn logs its own lines only; the app's go to stderr too, as the commands' do.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        apply_config_file(os.environ)
        settings = Settings.from_env()
        engine = db.make_engine(settings.database_url)
        app = create_app({"ENGINE": engine, "SETTINGS": settings})
    except SettingsError as err:
        log.critical("configuration error: %s", err)
        raise SystemExit(WORKER_BOOT_ERROR) from None
    db.migrate(engine)
    return app
