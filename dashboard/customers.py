"""The customer page: who they are, what they bought, their calls, and etiquette refusals.

Any agent may refuse a customer further consultations for breaking etiquette (support
rules, general provisions, 3); only a supervisor may lift a refusal. Refusals are lifted,
never deleted, and each change is written to the audit log in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from dashboard import queries
from dashboard.audit import staff_names
from dashboard.auth import supervisor_required
from dashboard.db import get_db, now, settings_of
from dashboard.forms import LiftForm, RefusalForm
from dashboard.models import AuditEntry
from dashboard.users import audit
from onerpa import directory, entitlement
from onerpa.models import Customer, Refusal
from onerpa.phone import normalize

log = logging.getLogger(__name__)

bp = Blueprint("customers", __name__, url_prefix="/customers")

SEARCH_LIMIT = 50
CALLS_SHOWN = 30


@bp.route("")
def index() -> Any:
    """Find customers by phone number, customer or licence number, or name."""
    text = request.args.get("q", "").strip()[:200]
    found: list[Customer] = []
    if text:
        found = list(
            queries.search_customers(get_db(), e164=normalize(text), text=text, limit=SEARCH_LIMIT)
        )
    return render_template("customers/index.html", text=text, found=found)


@bp.route("/<int:customer_id>")
def detail(customer_id: int) -> Any:
    """Show a customer's records, refusals, entitlement now and recent calls."""
    return _page(customer_id, RefusalForm(formdata=None))


@bp.route("/<int:customer_id>/refusals", methods=("POST",))
def refuse(customer_id: int) -> Any:
    """Refuse the customer consultations for breaking etiquette."""
    session = get_db()
    customer = session.get(Customer, customer_id) or abort(404)
    form = RefusalForm()
    moment = now()
    today = moment.astimezone(settings_of().calendar.zone).date()
    if form.validate() and form.until.data and form.until.data < today:
        form.until.errors = ["Дата окончания уже прошла."]
    if form.errors:
        return _page(customer_id, form), 400
    until = form.until.data
    refusal = Refusal(
        customer_id=customer.id,
        reason=form.reason.data.strip(),
        set_by=current_user.username,
        set_at=moment,
        expires_at=entitlement.end_of_day(until) if until else None,
    )
    session.add(refusal)
    session.flush()
    details = f"refusal {refusal.id} until {until or 'lifted'}: {refusal.reason}"
    audit(
        session, current_user.username, "refusal.set", "customer", customer.id, details, at=moment
    )
    session.commit()
    log.info("customer %s refused by %s", customer.id, current_user.username)
    flash("Отказ в консультациях установлен.", "ok")
    return redirect(url_for("customers.detail", customer_id=customer.id))


@bp.route("/<int:customer_id>/refusals/<int:refusal_id>/lift", methods=("POST",))
@supervisor_required
def lift(customer_id: int, refusal_id: int) -> Any:
    """Lift a refusal (supervisors only); the row stays, marked as lifted."""
    session = get_db()
    customer = session.get(Customer, customer_id) or abort(404)
    refusal = session.get(Refusal, refusal_id)
    if refusal is None or refusal not in queries.customer_refusals(session, customer):
        abort(404)
    form = LiftForm()
    if not form.validate():
        flash("Укажите, почему снимаете отказ.", "error")
        return redirect(url_for("customers.detail", customer_id=customer.id))
    if refusal.lifted_at is None:
        moment = now()
        refusal.lifted_at, refusal.lifted_by = moment, current_user.username
        refusal.lift_reason = form.lift_reason.data.strip()
        details = f"refusal {refusal.id}: {refusal.lift_reason}"
        audit(
            session,
            current_user.username,
            "refusal.lift",
            "customer",
            customer.id,
            details,
            at=moment,
        )
        session.commit()
        log.info(
            "refusal %s on customer %s lifted by %s", refusal.id, customer.id, current_user.username
        )
        flash("Отказ снят.", "ok")
    return redirect(url_for("customers.detail", customer_id=customer.id))


def _page(customer_id: int, form: RefusalForm) -> Any:
    session = get_db()
    customer = session.get(Customer, customer_id) or abort(404)
    moment = now()
    card = directory.load_card(session, customer_id)
    decision = entitlement.decide(card.records if card else None, moment)
    refusals = queries.customer_refusals(session, customer)
    history: Sequence[AuditEntry] = []
    staff: dict[str, str] = {}
    if current_user.is_supervisor:
        history = queries.audit_entries(
            session, target_type="customer", target_id=str(customer_id), limit=100
        )
        staff = staff_names(session)
    return render_template(
        "customers/detail.html",
        customer=customer,
        decision=decision,
        refusals=refusals,
        active={r.id for r in refusals if _in_force(r, moment)},
        calls=queries.customer_calls(session, customer_id, CALLS_SHOWN),
        audit_entries=history,
        staff=staff,
        form=form,
        lift_form=LiftForm(formdata=None),
    )


def _in_force(refusal: Refusal, moment: Any) -> bool:
    flag = entitlement.RefusalFlag(
        refusal.set_at, refusal.reason, refusal.expires_at, refusal.lifted_at
    )
    return entitlement.active_refusal([flag], moment) is not None
