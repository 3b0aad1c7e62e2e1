"""The sync API as an integration sees it: tokens, whole-customer upserts, errors, the contract.

Every response in these tests is checked against the OpenAPI document's schema for its
operation and status (``Api.call``), so the document cannot drift from what is served.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from dashboard.api.errors import ErrorCode
from dashboard.testing import Clock, add_customer, add_user, csrf_token, make_app, signed_in
from ivr.lookup import Directory
from onerpa import importer, tokens
from onerpa.importer import COLUMNS, check_row
from onerpa.models import ApiToken, Customer, Licence, PhoneNumber, Subscription, UpdatePurchase
from onerpa.staff import AuditEntry
from onerpa_support.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPEC = json.loads((ROOT / "dashboard" / "static" / "openapi.json").read_text(encoding="utf-8"))
SPEC_URI = "urn:onerpa:openapi"
REGISTRY = Registry().with_resource(
    SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

ROMASHKA: dict[str, Any] = {
    "organisation": "ООО «Ромашка»",
    "contact_name": "Иван Петров",
    "email": "ivan@romashka.example",
    "phones": ["8 (499) 719-55-81", "+7 495 123-45-67"],
    "licences": [
        {"licence_number": "L-1001", "product": "OneRPA Studio", "purchased_on": "2025-03-12"},
        {"product": "OneRPA Robot", "purchased_on": "15.04.2025"},
    ],
    "updates": [{"purchased_on": "2026-02-01", "months": 12}],
    "subscriptions": [
        {
            "service": "OneRPA Cloud",
            "starts_on": "2026-01-01",
            "ends_on": "2026-12-31",
            "cancelled_at": "2026-06-01T12:00:00+03:00",
        }
    ],
}


class Api:
    """A client of the API that checks every response against the OpenAPI document."""

    def __init__(self, client: FlaskClient, token: str | None) -> None:
        self.client = client
        self.token = token

    def call(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        headers = dict(options.pop("headers", {}))
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if body is not None:
            options["json"] = body
        response = self.client.open(f"/api/v1{path}", method=method, headers=headers, **options)
        check_against_spec(method, path, response)
        return response

    def put(self, number: str, body: Any, **options: Any) -> Any:
        return self.call("PUT", f"/customers/{number}", body, **options)

    def get(self, number: str) -> Any:
        return self.call("GET", f"/customers/{number}")


def check_against_spec(method: str, path: str, response: Any) -> None:
    """Fail unless the status is documented for the operation and the body fits its schema."""
    template = _template(path.split("?")[0])
    status = str(response.status_code)
    if template is None:  # an address the API does not have: the error shape still holds
        pointer = "#/components/schemas/Error"
    else:
        operation = SPEC["paths"][template].get(method.lower())
        if operation is None:  # a method the address does not take
            assert status == "405", f"{method} {template} is not in the document"
            operation = {"responses": {"405": {}}}
            template = None
        assert status in operation["responses"], f"{status} undocumented for {method} {template}"
        documented = operation["responses"][status]
        for header in documented.get("headers", {}):
            assert header in response.headers, f"{header} missing on {status}"
        pointer = "#/components/schemas/Error"
        if template is not None:
            escaped = template.replace("~", "~0").replace("/", "~1")
            response_at = f"#/paths/{escaped}/{method.lower()}/responses/{status}"
            pointer = f"{response_at}/content/application~1json/schema"
    validator = Draft202012Validator(
        {"$ref": SPEC_URI + pointer}, registry=REGISTRY, format_checker=FormatChecker()
    )
    assert response.mimetype == "application/json"
    validator.validate(response.get_json())


def _template(path: str) -> str | None:
    for template in SPEC["paths"]:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path):
            return template
    return None


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(engine: Engine, clock: Clock) -> Flask:
    return make_app(engine, clock, API_RATE_LIMIT=10_000)


def new_token(
    sessions: sessionmaker[Session],
    name: str,
    scope: str = "write",
    expires_at: datetime | None = None,
) -> str:
    with sessions.begin() as session:
        _, secret = tokens.create_token(session, name, tokens.Scope(scope), NOW, expires_at)
    return secret


@pytest.fixture
def crm(app: Flask, sessions: sessionmaker[Session]) -> Api:
    """The CRM's integration, with a write token."""
    return Api(app.test_client(), new_token(sessions, "crm"))


@pytest.fixture
def reader(app: Flask, sessions: sessionmaker[Session]) -> Api:
    return Api(app.test_client(), new_token(sessions, "reports", "read"))


def audit_rows(sessions: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with sessions() as session:
        query = select(AuditEntry.username, AuditEntry.action, AuditEntry.details)
        return [tuple(row) for row in session.execute(query.order_by(AuditEntry.id))]


def count(sessions: sessionmaker[Session], model: Any) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def error_of(response: Any) -> dict[str, Any]:
    return response.get_json()["error"]


# --- the document -----------------------------------------------------------------------------


def test_openapi_document_is_valid_and_served_without_a_token(app: Flask) -> None:
    validate_spec(SPEC)
    response = Api(app.test_client(), None).call("GET", "/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == SPEC


def test_error_codes_are_those_of_the_document_and_the_docs() -> None:
    error = SPEC["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["properties"]["code"]["enum"] == [str(code) for code in ErrorCode]
    docs = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert [code for code in ErrorCode if f"`{code}`" not in docs] == []


# --- writing and reading ----------------------------------------------------------------------


def test_put_creates_the_customer_exactly_as_sent(
    crm: Api, sessions: sessionmaker[Session]
) -> None:
    response = crm.put("1001", ROMASHKA)
    assert response.status_code == 201
    assert response.headers["Location"] == "/api/v1/customers/1001"
    customer = response.get_json()["customer"]
    assert response.get_json()["result"] == "created"
    assert customer == {
        "customer_number": "1001",
        "organisation": "ООО «Ромашка»",
        "contact_name": "Иван Петров",
        "email": "ivan@romashka.example",
        "phones": ["+74951234567", "+74997195581"],
        "licences": [
            {"licence_number": "L-1001", "product": "OneRPA Studio", "purchased_on": "2025-03-12"},
            {"licence_number": None, "product": "OneRPA Robot", "purchased_on": "2025-04-15"},
        ],
        "updates": [{"purchased_on": "2026-02-01", "months": 12}],
        "subscriptions": [
            {
                "service": "OneRPA Cloud",
                "starts_on": "2026-01-01",
                "ends_on": "2026-12-31",
                "cancelled_at": "2026-06-01T09:00:00+00:00",
            }
        ],
        "active": True,
        "updated_at": "2026-12-07T09:00:00+00:00",
    }
    assert crm.get("1001").get_json()["customer"] == customer
    assert audit_rows(sessions) == [("api:crm", "customer.create", "1001")]


def test_the_same_put_twice_changes_nothing(
    crm: Api, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    first = crm.put("1001", ROMASHKA).get_json()["customer"]
    clock.advance(minutes=5)
    again = crm.put("1001", ROMASHKA)
    assert again.status_code == 200
    assert again.get_json() == {"result": "unchanged", "customer": first}
    assert len(audit_rows(sessions)) == 1


def test_put_replaces_every_child_set(
    crm: Api, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    crm.put("1001", ROMASHKA)
    clock.advance(hours=1)
    changed = {
        "organisation": "ООО «Ромашка-М»",
        "phones": ["+7 495 123-45-67", "+375 29 123-45-67"],
        "licences": [
            {
                "licence_number": "L-1001",
                "product": "OneRPA Studio Pro",
                "purchased_on": "2025-03-12",
            }
        ],
        "subscriptions": [{"service": "OneRPA Cloud", "starts_on": "2026-01-01"}],
    }
    response = crm.put("1001", changed)
    customer = response.get_json()["customer"]
    assert response.get_json()["result"] == "updated"
    assert (customer["organisation"], customer["contact_name"], customer["email"]) == (
        "ООО «Ромашка-М»",
        "",
        "",
    )
    assert customer["phones"] == ["+375291234567", "+74951234567"]
    assert customer["licences"] == [
        {"licence_number": "L-1001", "product": "OneRPA Studio Pro", "purchased_on": "2025-03-12"}
    ]
    assert customer["updates"] == []
    assert customer["subscriptions"] == [
        {
            "service": "OneRPA Cloud",
            "starts_on": "2026-01-01",
            "ends_on": None,
            "cancelled_at": None,
        }
    ]
    assert customer["updated_at"] == "2026-12-07T10:00:00+00:00"
    counts = [count(sessions, m) for m in (PhoneNumber, Licence, UpdatePurchase, Subscription)]
    assert counts == [2, 1, 0, 1]
    assert audit_rows(sessions)[-1] == (
        "api:crm",
        "customer.update",
        "1001: organisation, contact_name, email, phones, licences, updates, subscriptions",
    )


def test_a_phone_added_by_put_is_found_by_the_next_call(crm: Api, engine: Engine) -> None:
    crm.put("1001", {"organisation": "ООО «Ромашка»"})
    directory = Directory(engine, workers=1)
    try:
        assert directory.budget(2.0).by_phone("+74997195581").card is None
        crm.put("1001", {"organisation": "ООО «Ромашка»", "phones": ["8 (499) 719-55-81"]})
        card = directory.budget(2.0).by_phone("+74997195581").card
    finally:
        directory.close()
    assert card is not None and card.customer_number == "1001"


def test_deactivated_customer_is_kept_and_a_put_brings_it_back(
    crm: Api, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    crm.put("1001", ROMASHKA)
    clock.advance(minutes=1)
    first = crm.call("POST", "/customers/1001/deactivate")
    assert first.status_code == 200
    assert first.get_json()["result"] == "updated"
    assert first.get_json()["customer"]["active"] is False
    assert crm.get("1001").get_json()["customer"]["phones"] == ["+74951234567", "+74997195581"]
    again = crm.call("POST", "/customers/1001/deactivate")
    assert again.get_json()["result"] == "unchanged"
    assert crm.put("1001", ROMASHKA).get_json()["customer"]["active"] is True
    assert [row[1] for row in audit_rows(sessions)] == [
        "customer.create",
        "customer.deactivate",
        "customer.update",
    ]


def test_a_deactivated_customer_is_no_longer_a_customer_to_the_call_flow(
    crm: Api, engine: Engine
) -> None:
    crm.put("1001", ROMASHKA)
    directory = Directory(engine, workers=1)
    try:
        assert directory.budget(2.0).by_phone("+74951234567").card is not None
        crm.call("POST", "/customers/1001/deactivate")
        gone = directory.budget(2.0).by_phone("+74951234567").card
        by_number = directory.budget(2.0).by_number("1001")
        crm.put("1001", ROMASHKA)
        back = directory.budget(2.0).by_phone("+74951234567").card
    finally:
        directory.close()
    assert (gone, by_number) == (None, None)
    assert back is not None and back.customer_number == "1001"


def test_changes_made_by_an_import_or_a_supervisor_are_listed_as_changed(
    crm: Api, app: Flask, engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with sessions.begin() as session:  # known for a month, unchanged since
        add_customer(session, "500", phone=None).created_at = NOW - timedelta(days=30)
        edited = add_customer(session, "501", phone=None)
        edited.created_at = NOW - timedelta(days=30)
        add_user(session, "vera", "supervisor", "correct horse")
    assert numbers(crm, "changed_since=2026-12-01") == []
    csv = tmp_path / "customers.csv"
    csv.write_text("customer_number,organisation\n500,ООО «Новое имя»\n", encoding="utf-8")
    importer.import_file(engine, csv, progress=False)
    supervisor = signed_in(app, "vera", "correct horse")
    path = f"/customers/{edited.id}/phones/new"
    form = supervisor.get(path).get_data(as_text=True)
    fields = {"csrf_token": csrf_token(form), "number": "+7 916 555-12-34", "label": ""}
    assert supervisor.post(path, data=fields).status_code == 302
    assert numbers(crm, "changed_since=2026-12-01") == ["500", "501"]


def test_deactivating_an_unknown_customer_is_404(crm: Api) -> None:
    response = crm.call("POST", "/customers/999/deactivate")
    assert response.status_code == 404
    assert error_of(response)["code"] == "customer_not_found"


def test_get_of_an_unknown_customer_is_404(reader: Api) -> None:
    response = reader.get("999")
    assert response.status_code == 404
    assert error_of(response) == {
        "code": "customer_not_found",
        "message": "Клиента с номером '999' нет.",
    }


def test_customers_changed_since_a_moment_come_in_pages(
    crm: Api, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:  # loaded before, by an import: changed when created
        add_customer(session, "500", phone=None).created_at = NOW - timedelta(days=30)
    for number in ("1001", "1002", "1003"):
        clock.advance(minutes=10)
        crm.put(number, {"organisation": f"Клиент {number}"})
    since = quote((NOW + timedelta(minutes=20)).isoformat())
    assert numbers(crm, f"changed_since={since}") == ["1002", "1003"]
    assert numbers(crm, "changed_since=2026-12-01") == ["1001", "1002", "1003"]
    assert numbers(crm, "") == ["500", "1001", "1002", "1003"]
    pages, cursor = [], ""
    while True:
        page = crm.call("GET", f"/customers?changed_since=2026-12-01&limit=2{cursor}").get_json()
        pages.append([c["customer_number"] for c in page["customers"]])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert pages == [["1001", "1002"], ["1003"]]


def numbers(api: Api, query: str) -> list[str]:
    response = api.call("GET", f"/customers?{query}")
    assert response.status_code == 200
    return [c["customer_number"] for c in response.get_json()["customers"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("changed_since=вчера", "changed_since"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=xyz", "cursor"),
    ],
)
def test_bad_list_parameters_are_422_naming_them(reader: Api, query: str, field: str) -> None:
    response = reader.call("GET", f"/customers?{query}")
    assert response.status_code == 422
    assert error_of(response)["field"] == field


# --- one validator: the CSV import's rules and words -------------------------------------------


def csv_problem(**values: str) -> str:
    """Return what the CSV import says about a row with ``values`` (without the field name)."""
    base = {"customer_number": "1001", "organisation": "ООО «Ромашка»", **values}
    row = check_row(2, list(COLUMNS), [base.get(column, "") for column in COLUMNS])
    message = getattr(row, "message", "")
    assert message, f"the CSV import accepts {values}"
    return message.split(": ", 1)[1]


@pytest.mark.parametrize(
    ("number", "body", "field", "csv"),
    [
        ("12A", {}, "customer_number", {"customer_number": "12A"}),
        ("1001", {"organisation": " "}, "organisation", {"organisation": " "}),
        ("1001", {"email": "sokolova"}, "email", {"email": "sokolova"}),
        ("1001", {"phones": ["Anonymous"]}, "phones", {"phones": "Anonymous"}),
        (
            "1001",
            {"phones": ["+7 495 123-45-67"] * 21},
            "phones",
            {"phones": ",".join(["+7 495 123-45-67"] * 21)},
        ),
        (
            "1001",
            {"licences": [{"product": "OneRPA", "purchased_on": "2023-02-29"}]},
            "licences[0].purchased_on",
            {"product": "OneRPA", "purchased_on": "2023-02-29"},
        ),
        (
            "1001",
            {"licences": [{"purchased_on": "2025-01-01"}]},
            "licences[0].product",
            {"purchased_on": "2025-01-01"},
        ),
        (
            "1001",
            {
                "licences": [
                    {"licence_number": "77 01", "product": "A", "purchased_on": "2025-01-01"}
                ]
            },
            "licences[0].licence_number",
            {"licence_number": "77 01", "product": "A", "purchased_on": "2025-01-01"},
        ),
        (
            "1001",
            {"updates": [{"purchased_on": "2025-01-01", "months": 0}]},
            "updates[0].months",
            {"updates_purchased_on": "2025-01-01", "updates_months": "0"},
        ),
        (
            "1001",
            {
                "subscriptions": [
                    {"service": "Cloud", "starts_on": "2025-01-01", "cancelled_at": "yesterday"}
                ]
            },
            "subscriptions[0].cancelled_at",
            {
                "subscription_service": "Cloud",
                "subscription_starts_on": "2025-01-01",
                "subscription_cancelled_at": "yesterday",
            },
        ),
    ],
)
def test_bad_values_are_422_naming_the_field_in_the_import_s_words(
    crm: Api,
    sessions: sessionmaker[Session],
    number: str,
    body: dict[str, Any],
    field: str,
    csv: dict[str, str],
) -> None:
    response = crm.put(number, {"organisation": "ООО «Ромашка»", **body})
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("invalid_value", field)
    assert error["problems"][0] == {"field": field, "message": csv_problem(**csv)}
    assert error["message"].startswith(f"{field}: ")
    assert count(sessions, Customer) == 0


def test_a_rule_that_names_another_field_names_it_as_the_api_does(crm: Api) -> None:
    body = {
        "organisation": "ООО «Ромашка»",
        "subscriptions": [{"service": "Cloud", "starts_on": "2025-02-01", "ends_on": "2025-01-31"}],
    }
    error = error_of(crm.put("1001", body))
    assert error["message"] == "subscriptions[0].ends_on: раньше subscriptions[0].starts_on"


def test_every_bad_field_is_listed(crm: Api) -> None:
    body = {"organisation": "", "phones": ["abc"], "updates": [{"months": 12}]}
    error = error_of(crm.put("1001", body))
    assert [p["field"] for p in error["problems"]] == [
        "organisation",
        "phones",
        "updates[0].purchased_on",
    ]
    assert error["problems"][2]["message"] == "не заполнено (его требует updates[0].months)"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"organisation": "А", "colour": "red"}, "colour"),
        (
            {
                "organisation": "А",
                "licences": [{"product": "A", "purchased_on": "2025-01-01", "serial": "1"}],
            },
            "licences[0].serial",
        ),
    ],
)
def test_unknown_fields_are_422_naming_them(
    crm: Api, sessions: sessionmaker[Session], body: dict[str, Any], field: str
) -> None:
    response = crm.put("1001", body)
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("unknown_field", field)
    assert "неизвестное поле" in error["message"]
    assert count(sessions, Customer) == 0


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"organisation": 5}, "organisation", "должно быть строкой"),
        ({"organisation": "А", "phones": "+74951234567"}, "phones", "должно быть списком строк"),
        (
            {"organisation": "А", "updates": [{"purchased_on": "2025-01-01", "months": "12"}]},
            "updates[0].months",
            "должно быть целым числом",
        ),
        ({"organisation": "А", "active": "no"}, "active", "должно быть true или false"),
        (
            {"organisation": "А", "customer_number": "1002"},
            "customer_number",
            "'1002' — не номер клиента из адреса (1001)",
        ),
    ],
)
def test_values_of_the_wrong_json_type_are_422(
    crm: Api, body: dict[str, Any], field: str, message: str
) -> None:
    error = error_of(crm.put("1001", body))
    assert (error["field"], error["problems"][0]["message"]) == (field, message)


def test_a_body_that_is_not_an_object_is_422(crm: Api) -> None:
    response = crm.put("1001", ["ООО «Ромашка»"])
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_type"


# --- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "token_missing"),
        ("Basic dXNlcjpwYXNz", "token_missing"),
        ("Bearer orpa_not-a-token", "token_invalid"),
    ],
)
def test_without_a_valid_token_the_answer_is_401(
    app: Flask, crm: Api, authorization: str | None, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = Api(app.test_client(), None).call("GET", "/customers", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_401(app: Flask, clock: Clock, sessions: sessionmaker[Session]) -> None:
    api = Api(app.test_client(), new_token(sessions, "old", expires_at=NOW + timedelta(days=1)))
    assert api.call("GET", "/customers").status_code == 200
    clock.advance(days=1)
    response = api.call("GET", "/customers")
    assert response.status_code == 401
    assert error_of(response)["code"] == "token_expired"


def test_a_revoked_token_is_401(crm: Api, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        tokens.revoke_token(session, "crm", NOW)
    response = crm.put("1001", ROMASHKA)
    assert response.status_code == 401
    assert error_of(response)["code"] == "token_revoked"
    assert count(sessions, Customer) == 0


def test_a_read_token_reads_but_may_not_write(
    crm: Api, reader: Api, sessions: sessionmaker[Session]
) -> None:
    crm.put("1001", ROMASHKA)
    assert reader.get("1001").status_code == 200
    for response in (
        reader.put("1001", {"organisation": "Другая"}),
        reader.call("POST", "/customers/1001/deactivate"),
    ):
        assert response.status_code == 403
        assert error_of(response)["code"] == "insufficient_scope"
    assert crm.get("1001").get_json()["customer"]["organisation"] == "ООО «Ромашка»"


def test_the_token_is_stored_only_as_its_sha256(crm: Api, sessions: sessionmaker[Session]) -> None:
    assert crm.token is not None and crm.token.startswith("orpa_")
    with sessions() as session:
        token = session.scalars(select(ApiToken)).one()
    assert token.token_sha256 == hashlib.sha256(crm.token.encode()).hexdigest()
    assert crm.token not in repr(vars(token))


def test_requests_past_the_rate_are_429_until_the_window_moves(
    engine: Engine, clock: Clock, sessions: sessionmaker[Session]
) -> None:
    app = make_app(engine, clock, API_RATE_LIMIT=3, API_RATE_WINDOW_SECONDS=60)
    busy = Api(app.test_client(), new_token(sessions, "busy"))
    other = Api(app.test_client(), new_token(sessions, "other"))
    assert [busy.call("GET", "/customers").status_code for _ in range(3)] == [200] * 3
    clock.advance(seconds=20)
    refused = busy.call("GET", "/customers")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "40"
    assert error_of(refused)["code"] == "rate_limited"
    assert other.call("GET", "/customers").status_code == 200
    clock.advance(seconds=40)
    assert busy.call("GET", "/customers").status_code == 200


# --- bad input ----------------------------------------------------------------------------------


def test_a_phone_of_another_customer_is_409_naming_both(
    crm: Api, sessions: sessionmaker[Session]
) -> None:
    crm.put("1002", {"organisation": "ООО «Вектор»", "phones": ["+74997195581"]})
    response = crm.put("1001", ROMASHKA)
    assert response.status_code == 409
    error = error_of(response)
    assert (error["code"], error["field"]) == ("phone_taken", "phones")
    assert "+74997195581" in error["message"] and "1002" in error["message"]
    assert crm.get("1001").status_code == 404
    assert count(sessions, PhoneNumber) == 1


def test_a_licence_of_another_customer_is_409_and_nothing_changes(crm: Api) -> None:
    crm.put("1001", ROMASHKA)
    crm.put("1002", {"organisation": "ООО «Вектор»"})
    body = {
        "organisation": "ООО «Вектор-М»",
        "licences": [{"licence_number": "L-1001", "product": "A", "purchased_on": "2025-01-01"}],
    }
    response = crm.put("1002", body)
    assert response.status_code == 409
    assert error_of(response)["code"] == "licence_taken"
    assert "1001" in error_of(response)["message"]
    assert crm.get("1002").get_json()["customer"]["organisation"] == "ООО «Вектор»"


def test_a_10_mb_body_is_413_before_it_is_read(crm: Api, sessions: sessionmaker[Session]) -> None:
    # Not JSON at all: a 413 rather than a 400 shows the body was refused unread.
    response = crm.call(
        "PUT", "/customers/1001", data=b"x" * (10 * 1024 * 1024), content_type="application/json"
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"
    assert count(sessions, Customer) == 0


def test_malformed_json_is_400(crm: Api) -> None:
    response = crm.call(
        "PUT", "/customers/1001", data=b'{"organisation": "A",', content_type="application/json"
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "malformed_json"
    assert error["message"].startswith("Тело запроса — не JSON")


def test_a_body_that_is_not_declared_json_is_415(crm: Api) -> None:
    response = crm.call("PUT", "/customers/1001", data="organisation=A")
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_unknown_addresses_and_methods_answer_in_json(crm: Api) -> None:
    missing = crm.call("GET", "/customer/1001")
    assert (missing.status_code, error_of(missing)["code"]) == (404, "not_found")
    wrong = crm.call("PATCH", "/customers/1001", {"organisation": "A"})
    assert (wrong.status_code, error_of(wrong)["code"]) == (405, "method_not_allowed")


def test_no_session_cookie_and_no_csrf_token(crm: Api) -> None:
    response = crm.put("1001", ROMASHKA)
    assert response.status_code == 201
    assert "Set-Cookie" not in response.headers


def test_a_failure_half_way_writes_nothing(
    crm: Api, monkeypatch: pytest.MonkeyPatch, sessions: sessionmaker[Session]
) -> None:
    crm.put("1001", ROMASHKA)

    def broken_audit(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("dashboard.api.audit", broken_audit)
    response = crm.put("1001", {"organisation": "ООО «Ромашка-М»", "phones": ["+74951112233"]})
    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
    customer = crm.get("1001").get_json()["customer"]
    assert customer["organisation"] == "ООО «Ромашка»"
    assert customer["phones"] == ["+74951234567", "+74997195581"]


def test_concurrent_puts_of_one_customer_leave_exactly_one_of_them(
    app: Flask, crm: Api, sessions: sessionmaker[Session]
) -> None:
    versions = [
        {**ROMASHKA, "organisation": "Версия А", "phones": ["+74951110001", "+74951110002"]},
        {
            "organisation": "Версия Б",
            "phones": ["+74951110003"],
            "licences": [
                {"licence_number": "L-1001", "product": "Б", "purchased_on": "2024-01-01"}
            ],
            "updates": [{"purchased_on": "2024-02-01", "months": 6}],
        },
    ]
    expected = []
    for version in versions:  # what each version alone makes of the customer
        crm.put("7", version)
        expected.append(without_time(crm.get("7").get_json()["customer"]))
        crm.put("7", {"organisation": "-"})
    for round_ in range(8):
        number = f"{100 + round_}"
        if round_ % 2:  # odd rounds race on an existing customer, even ones on a new one
            crm.put(number, ROMASHKA | {"phones": [], "licences": []})
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def put(
            version: dict[str, Any],
            number: str = number,
            barrier: Any = barrier,
            statuses: list[int] = statuses,
        ) -> None:
            client = Api(app.test_client(), crm.token)
            barrier.wait()
            statuses.append(client.put(number, version).status_code)

        threads = [threading.Thread(target=put, args=(v,)) for v in versions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) in ([200, 200], [200, 201]), statuses
        result = without_time(crm.get(number).get_json()["customer"])
        assert result in [e | {"customer_number": number} for e in expected]
        crm.put(number, {"organisation": "-"})  # frees the phones and licence for the next round


def without_time(customer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in customer.items() if k != "updated_at"}


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("ONERPA_DATABASE_URL", url)
    return url


def test_token_made_on_the_command_line_works_until_revoked(cli_env: str) -> None:
    from onerpa import db

    made = CliRunner().invoke(main, ["api-token", "create", "crm", "--scope", "write"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("orpa_") and "показан один раз" in made.stderr
    engine = db.make_engine(cli_env)
    try:
        api = Api(make_app(engine, Clock(datetime.now(UTC))).test_client(), secret)
        assert api.put("1001", {"organisation": "ООО «Ромашка»"}).status_code == 201
        listed = CliRunner().invoke(main, ["api-token", "list"])
        assert listed.stdout.split("\t")[:2] == ["crm", "write"]
        assert "действует" in listed.stdout
        revoked = CliRunner().invoke(main, ["api-token", "revoke", "crm"])
        assert revoked.exit_code == 0, revoked.output
        assert api.call("GET", "/customers").status_code == 401
        with db.session_factory(engine)() as session:
            actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions == ["api_token.create", "customer.create", "api_token.revoke"]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "CRM!", "--scope", "read"], "имя токена"),
        (["create", "crm", "--scope", "read", "--expires", "2001-01-01"], "уже прошёл"),
        (["create", "crm", "--scope", "read", "--expires", "скоро"], "не дата"),
        (["revoke", "nobody"], "токена 'nobody' нет"),
    ],
)
def test_token_commands_refuse_in_russian(cli_env: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["api-token", *args])
    assert result.exit_code != 0
    assert message in result.stderr


def test_expires_on_a_day_means_midnight_in_moscow(cli_env: str) -> None:
    from onerpa import db

    result = CliRunner().invoke(
        main, ["api-token", "create", "crm", "--scope", "read", "--expires", "2027-01-01"]
    )
    assert result.exit_code == 0, result.output
    engine = db.make_engine(cli_env)
    try:
        with db.session_factory(engine)() as session:
            token = session.scalars(select(ApiToken)).one()
    finally:
        engine.dispose()
    assert token.expires_at == datetime(2026, 12, 31, 21, 0, tzinfo=UTC)
