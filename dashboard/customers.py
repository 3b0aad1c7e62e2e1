"""The customer page: who they are, what they bought, their calls, and etiquette refusals.

Any agent may refuse a customer further consultations for breaking etiquette (support
rules, general provisions, 3); only a supervisor may lift a refusal. Refusals are lifted,
never deleted, and each change is written to the audit log in the same transaction.

Supervisors also add and correct the customer's records — licences, update purchases,
subscriptions, phone numbers — and give goodwill grants (free support until a date, with a
reason). Agents see them and are refused (403) the forms. Each edit is audited as
``<kind> <id>: {json}``: the values of a new record, or ``[before, after]`` of each changed
field of a corrected one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from dashboard import queries
from dashboard.audit import staff_names
from dashboard.auth import supervisor_required
from dashboard.db import get_db, now, settings_of
from dashboard.forms import (
    GrantForm,
    LicenceForm,
    LiftForm,
    PhoneForm,
    RefusalForm,
    SubscriptionForm,
    UpdatesForm,
)
from dashboard.users import audit
from onerpa import directory, entitlement, evidence
from onerpa.changes import mark_changed
from onerpa.models import (
    Customer,
    Grant,
    Licence,
    PhoneNumber,
    Refusal,
    Subscription,
    UpdatePurchase,
)
from onerpa.phone import format_national, normalize
from onerpa.staff import AuditEntry

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


@dataclass(frozen=True)
class Kind:
    """A record a supervisor edits: its model, form, titles and audited fields."""

    code: str  # as the audit details name it
    model: Any
    form: Any
    new_title: str
    edit_title: str
    saved: str
    fields: tuple[str, ...]


LICENCE = Kind(
    "licence",
    Licence,
    LicenceForm,
    "Новая лицензия",
    "Исправить лицензию",
    "Лицензия сохранена.",
    ("product", "licence_number", "purchased_on"),
)
UPDATES = Kind(
    "updates",
    UpdatePurchase,
    UpdatesForm,
    "Новая покупка обновлений",
    "Исправить покупку обновлений",
    "Покупка обновлений сохранена.",
    ("purchased_on", "months"),
)
SUBSCRIPTION = Kind(
    "subscription",
    Subscription,
    SubscriptionForm,
    "Новая подписка",
    "Исправить подписку",
    "Подписка сохранена.",
    ("service", "starts_on", "ends_on", "cancelled_at"),
)
PHONE = Kind(
    "phone",
    PhoneNumber,
    PhoneForm,
    "Новый телефон",
    "Исправить телефон",
    "Телефон сохранён.",
    ("e164", "label"),
)
GRANT = Kind(
    "grant",
    Grant,
    GrantForm,
    "Жест доброй воли: бесплатная поддержка до даты",
    "Исправить жест доброй воли",
    "Жест доброй воли сохранён.",
    ("until", "reason"),
)


class Edit:
    """One supervisor's edit of one record of a customer, from the form to the audit log."""

    def __init__(self, customer_id: int, kind: Kind, item_id: int | None) -> None:
        self.session = get_db()
        self.customer = self.session.get(Customer, customer_id) or abort(404)
        self.kind = kind
        self.item = None
        if item_id is not None:
            self.item = self.session.get(kind.model, item_id)
            if self.item is None or self.item.customer_id != self.customer.id:
                abort(404)
        self.new = self.item is None
        self.moment = now()
        self.zone = settings_of().calendar.zone
        if request.method == "POST":
            self.form = kind.form()
        else:
            initial = _form_data(self.item, self.zone) if self.item is not None else None
            self.form = kind.form(formdata=None, data=initial)

    @property
    def today(self) -> date:
        return self.moment.astimezone(self.zone).date()

    def submitted(self, check: Callable[[Edit], None] | None = None) -> bool:
        """Return True when the form was posted, is valid and passes ``check``."""
        if request.method != "POST" or not self.form.validate():
            return False
        if check is not None:
            check(self)
        return not self.form.errors

    def save(self, values: dict[str, Any]) -> str:
        """Write ``values`` to the record (a new one or the corrected one); return the audit
        details."""
        if self.item is None:
            self.item = self.kind.model(customer_id=self.customer.id, **values)
            self.session.add(self.item)
            self.session.flush()
            shown = {name: _plain(values.get(name), self.zone) for name in self.kind.fields}
        else:
            shown = {}
            for name, value in values.items():
                old = getattr(self.item, name)
                if old != value:
                    shown[name] = [_plain(old, self.zone), _plain(value, self.zone)]
                    setattr(self.item, name, value)
        self.session.flush()
        return f"{self.kind.code} {self.item.id}: {json.dumps(shown, ensure_ascii=False)}"

    def done(self) -> Any:
        mark_changed(self.session.connection(), [self.customer.id], self.moment)
        self.session.commit()
        log.info("customer %s edited by %s", self.customer.id, current_user.username)
        flash(self.kind.saved, "ok")
        return redirect(url_for("customers.detail", customer_id=self.customer.id))

    def page(self) -> Any:
        status = 400 if self.form.errors else 200
        title = self.kind.new_title if self.new else self.kind.edit_title
        return render_template(
            "customers/edit.html", customer=self.customer, form=self.form, title=title
        ), status


def _plain(value: Any, zone: Any) -> Any:
    """Return a value as the audit details keep it: days ISO, a moment as its local day."""
    if isinstance(value, datetime):
        return value.astimezone(zone).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _form_data(item: Any, zone: Any) -> dict[str, Any]:
    data = {column.key: getattr(item, column.key) for column in item.__table__.columns}
    if isinstance(item, Subscription) and item.cancelled_at is not None:
        data["cancelled_on"] = item.cancelled_at.astimezone(zone).date()
    if isinstance(item, PhoneNumber):
        data["number"] = format_national(item.e164)
    return data


def _owner(customer: Customer | None) -> str:
    if customer is None:
        return "другому клиенту"
    return f"клиенту «{customer.organisation}» (№ {customer.customer_number})"


def _actor() -> str:
    return str(current_user.username)


@bp.route("/<int:customer_id>/licences/new", methods=("GET", "POST"), defaults={"licence_id": None})
@bp.route("/<int:customer_id>/licences/<int:licence_id>", methods=("GET", "POST"))
@supervisor_required
def licence(customer_id: int, licence_id: int | None) -> Any:
    """Add or correct a licence the customer bought (supervisors only)."""
    edit = Edit(customer_id, LICENCE, licence_id)
    if not edit.submitted(_check_licence_number):
        return edit.page()
    form = edit.form
    details = edit.save(
        {
            "product": form.product.data.strip(),
            "licence_number": (form.licence_number.data or "").strip() or None,
            "purchased_on": form.purchased_on.data,
        }
    )
    if edit.new:
        audit(
            edit.session, _actor(), "licence.add", "customer", customer_id, details, at=edit.moment
        )
    else:
        audit(
            edit.session,
            _actor(),
            "licence.change",
            "customer",
            customer_id,
            details,
            at=edit.moment,
        )
    return edit.done()


def _check_licence_number(edit: Edit) -> None:
    number = (edit.form.licence_number.data or "").strip()
    if not number:
        return
    other = edit.session.scalar(select(Licence).where(Licence.licence_number == number))
    if other is None or other is edit.item:
        return
    if other.customer_id == edit.customer.id:
        edit.form.licence_number.errors = [f"Лицензия № {number} у этого клиента уже есть."]
        return
    owner = edit.session.get(Customer, other.customer_id)
    edit.form.licence_number.errors = [f"Лицензия № {number} уже принадлежит {_owner(owner)}."]


@bp.route("/<int:customer_id>/updates/new", methods=("GET", "POST"), defaults={"update_id": None})
@bp.route("/<int:customer_id>/updates/<int:update_id>", methods=("GET", "POST"))
@supervisor_required
def updates(customer_id: int, update_id: int | None) -> Any:
    """Add or correct a purchase of updates (supervisors only)."""
    edit = Edit(customer_id, UPDATES, update_id)
    if not edit.submitted():
        return edit.page()
    form = edit.form
    details = edit.save({"purchased_on": form.purchased_on.data, "months": form.months.data})
    if edit.new:
        audit(
            edit.session, _actor(), "updates.add", "customer", customer_id, details, at=edit.moment
        )
    else:
        audit(
            edit.session,
            _actor(),
            "updates.change",
            "customer",
            customer_id,
            details,
            at=edit.moment,
        )
    return edit.done()


@bp.route(
    "/<int:customer_id>/subscriptions/new",
    methods=("GET", "POST"),
    defaults={"subscription_id": None},
)
@bp.route("/<int:customer_id>/subscriptions/<int:subscription_id>", methods=("GET", "POST"))
@supervisor_required
def subscription(customer_id: int, subscription_id: int | None) -> Any:
    """Add or correct a subscription, its end or its cancellation (supervisors only)."""
    edit = Edit(customer_id, SUBSCRIPTION, subscription_id)
    if not edit.submitted():
        return edit.page()
    form = edit.form
    cancelled = form.cancelled_on.data
    # A cancellation "from" a day ends the service at the start of that day, Moscow time.
    cancelled_at = datetime.combine(cancelled, time(0), edit.zone) if cancelled else None
    details = edit.save(
        {
            "service": form.service.data.strip(),
            "starts_on": form.starts_on.data,
            "ends_on": form.ends_on.data,
            "cancelled_at": cancelled_at,
        }
    )
    if edit.new:
        audit(
            edit.session,
            _actor(),
            "subscription.add",
            "customer",
            customer_id,
            details,
            at=edit.moment,
        )
    else:
        audit(
            edit.session,
            _actor(),
            "subscription.change",
            "customer",
            customer_id,
            details,
            at=edit.moment,
        )
    return edit.done()


@bp.route("/<int:customer_id>/phones/new", methods=("GET", "POST"), defaults={"phone_id": None})
@bp.route("/<int:customer_id>/phones/<int:phone_id>", methods=("GET", "POST"))
@supervisor_required
def phone(customer_id: int, phone_id: int | None) -> Any:
    """Add or correct a customer's phone number (supervisors only)."""
    edit = Edit(customer_id, PHONE, phone_id)
    if not edit.submitted(_check_phone):
        return edit.page()
    form = edit.form
    details = edit.save(
        {"e164": normalize(form.number.data), "label": (form.label.data or "").strip()}
    )
    if edit.new:
        audit(edit.session, _actor(), "phone.add", "customer", customer_id, details, at=edit.moment)
    else:
        audit(
            edit.session, _actor(), "phone.change", "customer", customer_id, details, at=edit.moment
        )
    return edit.done()


def _check_phone(edit: Edit) -> None:
    e164 = normalize(edit.form.number.data)
    if e164 is None:
        edit.form.number.errors = ["Не похоже на номер телефона: проверьте код и цифры."]
        return
    other = edit.session.scalar(select(PhoneNumber).where(PhoneNumber.e164 == e164))
    if other is None or other is edit.item:
        return
    owner = edit.session.get(Customer, other.customer_id)
    where = "этому клиенту" if other.customer_id == edit.customer.id else _owner(owner)
    edit.form.number.errors = [f"Номер {format_national(e164)} уже принадлежит {where}."]


@bp.route("/<int:customer_id>/grants/new", methods=("GET", "POST"), defaults={"grant_id": None})
@bp.route("/<int:customer_id>/grants/<int:grant_id>", methods=("GET", "POST"))
@supervisor_required
def grant(customer_id: int, grant_id: int | None) -> Any:
    """Give (or correct) free support until a date as a gesture of goodwill (supervisors)."""
    edit = Edit(customer_id, GRANT, grant_id)
    if not edit.submitted(_check_grant):
        return edit.page()
    form = edit.form
    values: dict[str, Any] = {"until": form.until.data, "reason": form.reason.data.strip()}
    if edit.new:
        values |= {"granted_by": _actor(), "granted_at": edit.moment}
    details = edit.save(values)
    if edit.new:
        audit(edit.session, _actor(), "grant.add", "customer", customer_id, details, at=edit.moment)
    else:
        audit(
            edit.session, _actor(), "grant.change", "customer", customer_id, details, at=edit.moment
        )
    return edit.done()


def _check_grant(edit: Edit) -> None:
    if edit.new and edit.form.until.data < edit.today:
        edit.form.until.errors = ["Дата уже прошла: жест доброй воли даётся на будущее."]


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
        evidence=evidence.lines(decision.evidence),
        grants=sorted(customer.grants, key=lambda g: g.granted_at, reverse=True),
    )


def _in_force(refusal: Refusal, moment: Any) -> bool:
    flag = entitlement.RefusalFlag(
        refusal.set_at, refusal.reason, refusal.expires_at, refusal.lifted_at
    )
    return entitlement.active_refusal([flag], moment) is not None
