"""When a customer's directory entry last changed: what the sync API's ``changed_since`` reads.

Every writer of the directory (the sync API, the CSV import, a supervisor's edit on the
customer page) marks the customers it changed, so an integration polling for changes misses
none of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from onerpa.models import CustomerState

_STATES = CustomerState.__table__


def mark_changed(conn: Connection, customer_ids: Iterable[int], at: datetime) -> None:
    """Record that the customers ``customer_ids`` changed at ``at`` (active ones stay so)."""
    rows = [{"customer_id": cid, "active": True, "updated_at": at} for cid in set(customer_ids)]
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(_STATES)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["customer_id"], set_={"updated_at": stmt.excluded.updated_at}
        ),
        rows,
    )
