"""Every JSON body the SuperOffice simulator's REST API emits validates against the vendor's
Swagger definitions (derived into simulators/superoffice/schemas.json by
tools/derive_superoffice_schemas.py), and every served operation is exercised."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import flask
import jsonschema
import pytest
from flask.testing import FlaskClient
from werkzeug.http import http_date

from simulators.superoffice import create_app
from simulators.superoffice.errors import sim_error_body
from simulators.world.superoffice import SuperOfficeWorld
from tests.fixtures.simulators import Serve
from tests.fixtures.superoffice import ADMIN, CONTOSO, ONSITE, basic

SCHEMAS = json.loads(resources.files("simulators.superoffice").joinpath("schemas.json").read_text())

# Not in the Swagger files: the documented REST error body and the tenant-state answer.
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "Error": {"const": True},
        "ErrorType": {"type": "string"},
        "ErrorMessage": {"type": "string"},
        "ErrorSource": {"type": "string"},
    },  # fmt: skip
    "required": ["Error", "ErrorType", "ErrorMessage", "ErrorSource"],
    "additionalProperties": False,
}
STATE_SCHEMA = {
    "type": "object",
    "properties": {
        "ContextIdentifier": {"type": "string"}, "Endpoint": {"type": "string"},
        "State": {"enum": ["Unknown", "Provisioning", "Running", "Deleted", "Suspended", "OnlineMaintenance",
                           "OfflineMaintenance", "ProvisioningFailed", "Deleting", "DeleteFailed", "MigrationPending"]},
        "IsRunning": {"type": "boolean"}, "ValidUntil": {"type": "string", "format": "date-time"},
        "Api": {"type": "string"}, "Version": {"type": "string"},
    },
    "required": ["ContextIdentifier", "Endpoint", "State", "IsRunning", "ValidUntil", "Api"],
    "additionalProperties": False,
}  # fmt: skip

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _iso_datetime(value: object) -> bool:
    """.NET writes ISO 8601 with or without an offset (local dates have none)."""
    if isinstance(value, str):
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _normalise(path: str) -> str:
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


OPERATIONS = {
    (key.split(" ", 1)[0], _normalise(key.split(" ", 1)[1])): key for key in SCHEMAS["operations"]
}


def validate(schema: dict[str, Any], body: Any) -> None:
    jsonschema.Draft202012Validator(
        {"$defs": SCHEMAS["$defs"], **schema}, format_checker=FORMATS
    ).validate(body)


class Recorder:
    """Collects (method, route rule, status, body) of every response the app sends."""

    def __init__(self, app: flask.Flask) -> None:
        self.seen: list[tuple[str, str, int, bytes]] = []
        app.after_request(self._record)

    def _record(self, response: flask.Response) -> flask.Response:
        rule = flask.request.url_rule.rule if flask.request.url_rule else flask.request.path
        self.seen.append((flask.request.method, rule, response.status_code, response.get_data()))
        return response


@pytest.fixture
def recorded(
    so_world: SuperOfficeWorld, serve: Serve
) -> Iterator[tuple[FlaskClient, Recorder, str]]:
    so_app = create_app(so_world)  # its own app: the recorder hook must not outlive the test
    hooks = flask.Flask("hooks")
    hooks.add_url_rule("/in", "in", lambda: ("", 200), methods=["POST"])
    receiver = serve(hooks, tls=False).url + "/in"
    yield so_app.test_client(), Recorder(so_app), receiver


def tour(client: FlaskClient, receiver: str) -> None:
    """Call every served operation, successes and the documented failures."""
    get = lambda path, **kw: client.get(f"{ONSITE}/{path}", headers=kw.pop("headers", ADMIN), **kw)  # noqa: E731
    for entity, key in (
        ("Appointment", "AppointmentId"),
        ("Person", "PersonId"),
        ("Contact", "ContactId"),
    ):
        get(f"{entity}/default")
        get(entity, query_string={"$top": 5})
        body = {"Appointment": {"Title": "Tour", "StartDate": "2026-03-10T10:00:00", "EndDate": "2026-03-10T11:00:00",
                                "Participants": [{"PersonId": 7000}], "HasAlarm": True, "AlarmLeadTime": "00:10:00"},
                "Person": {"Firstname": "Tour", "Contact": {"ContactId": 700}, "Emails": [{"Value": "t@x.example"}]},
                "Contact": {"Name": "Tour AS"}}[entity]  # fmt: skip
        created = client.post(f"{ONSITE}/{entity}", headers=ADMIN, json=body).json
        rid = created[key]
        get(f"{entity}/{rid}")
        get(f"{entity}/{rid}", query_string={"$select": "Description"})
        get(
            f"{entity}/{rid}",
            headers={
                "If-Modified-Since": http_date(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)),
                **ADMIN,
            },
        )
        get(f"{entity}/{rid}", headers={"SO-TimeZone": "UTC, includeTZOffset", **ADMIN})
        client.put(f"{ONSITE}/{entity}/{rid}", headers=ADMIN, json=created)
        client.put(
            f"{ONSITE}/{entity}/{rid}",
            headers={"If-Unmodified-Since": http_date(dt.datetime(2020, 1, 1)), **ADMIN},
            json=created,
        )
        get(f"{entity}/{rid}/ForeignKey")
        client.delete(f"{ONSITE}/{entity}/{rid}", headers=ADMIN)
        get(f"{entity}/{rid}")
    weekly = get(
        "Appointment",
        query_string={"$filter": "appointment/title eq 'Weekly sales meeting'", "$top": 1},
    ).json["value"][0]
    get(f"Appointment/{weekly['PrimaryKey']}")  # a recurring one with participants
    daily = get(
        "Appointment", query_string={"$filter": "appointment/title eq 'Daily stand-up'", "$top": 1}
    ).json["value"][0]
    get(f"Appointment/{daily['PrimaryKey']}")
    get(f"Appointment/{weekly['PrimaryKey']}/Participants")
    get("Person/7000/Appointments")
    get("Contact/700/Persons")
    get("Contact/700/Appointments")
    get("Appointment", query_string={"$select": ",".join(_columns("findappointment"))})
    get("Person", query_string={"$select": ",".join(_columns("person"))})
    get("Contact", query_string={"$select": ",".join(_columns("simplecontact"))})
    get("User", query_string={"$select": ",".join(_columns("allusers"))})
    get("User/700")
    get("User/currentPrincipal")
    get("User/currentAssociate")
    get("Archive/FindAppointment", query_string={"$top": 2})
    get("Archive/Nothing")
    get("TimeZone")
    get("TimeZone/base")
    get("TimeZone/current", headers={"SO-TimeZone": "US-NY", **ADMIN})
    fk = f"{ONSITE}/ForeignApp/Sync/graph/t1/Key"
    client.put(
        fk, headers=ADMIN, json={"Key": "id", "Value": "A", "TableName": "person", "RecordId": 7000}
    )
    client.post(
        fk, headers=ADMIN, json={"Key": "id", "Value": "B", "TableName": "person", "RecordId": 7000}
    )
    client.get(f"{fk}/id/person/7000", headers=ADMIN)
    client.get(f"{fk}/id/person", headers=ADMIN, query_string={"Value": "B"})
    get("Person/7000/ForeignKey")
    client.delete(f"{fk}/id/person/7000", headers=ADMIN)
    get("Webhook/default")
    hook = client.post(
        f"{ONSITE}/Webhook",
        headers=ADMIN,
        json={"Name": "t", "Events": ["activity.*"], "TargetUrl": receiver, "Secret": "s"},
    ).json
    get("Webhook")
    get(f"Webhook/{hook['WebhookId']}")
    client.put(f"{ONSITE}/Webhook/{hook['WebhookId']}", headers=ADMIN, json={"State": "Stopped"})
    get(f"Webhook/{hook['WebhookId']}/LastError")
    client.post(f"{ONSITE}/Webhook/Test", headers=ADMIN, json={"TargetUrl": receiver})
    client.delete(f"{ONSITE}/Webhook/{hook['WebhookId']}", headers=ADMIN)
    # failures: 400, 401, 404, 421, 503
    client.post(f"{ONSITE}/Appointment", headers=ADMIN, json={})
    get("User/currentPrincipal", headers=basic("ALICE", "wrong"))
    client.get(f"{CONTOSO}/User/currentPrincipal", headers=basic("adele@contoso.example"))
    client.get(
        "/Cust56789/api/v1/User/currentPrincipal", base_url="http://127.0.0.1"
    )  # not its host
    client.get("/Cust67890/api/v1/User/currentPrincipal")


def _columns(provider: str) -> list[str]:
    from simulators.superoffice.archives import PROVIDERS

    return sorted(PROVIDERS[provider].served)


def test_every_response_matches_the_swagger_definitions(
    recorded: tuple[FlaskClient, Recorder, str],
) -> None:
    client, recorder, receiver = recorded
    tour(client, receiver)
    covered: set[str] = set()
    statuses: set[int] = set()
    for method, rule, status, body in recorder.seen:
        path = rule.replace("/<tenant_id>/api", "/api", 1)
        key = OPERATIONS.get((method, _normalise(path)))
        statuses.add(status)
        if status >= 400:
            validate(ERROR_SCHEMA, json.loads(body))
            continue
        assert key is not None, f"{method} {rule} is served but not derived from the Swagger files"
        schema = SCHEMAS["operations"][key]["responses"].get(str(status))
        declared = str(status) in SCHEMAS["operations"][key]["responses"]
        assert declared, f"{key} answered {status}, which the Swagger does not list"
        if schema is None:
            assert body == b"", f"{key} {status} must have no body"
        else:
            validate(schema, json.loads(body))
        covered.add(key)
    assert covered == set(SCHEMAS["operations"]), set(SCHEMAS["operations"]) - covered
    assert {200, 204, 304, 400, 401, 404, 412, 421, 503} <= statuses


def test_validation_is_strict(recorded: tuple[FlaskClient, Recorder, str]) -> None:
    """The converted schemas reject unknown properties, wrong types and enum values."""
    client, _, _ = recorded
    body = client.get(f"{ONSITE}/Person/7000", headers=ADMIN).json
    schema = SCHEMAS["operations"]["GET /api/v1/Person/{id}"]["responses"]["200"]
    validate(schema, body)
    for broken in (
        {**body, "Nickname": "x"},
        {**body, "PersonId": "7000"},
        {**body, "Emails": [{"Value": 1}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(schema, broken)
    appointment = client.get(f"{ONSITE}/Appointment", headers=ADMIN, query_string={"$top": 1}).json[
        "value"
    ][0]
    entity = client.get(f"{ONSITE}/Appointment/{appointment['PrimaryKey']}", headers=ADMIN).json
    with pytest.raises(jsonschema.ValidationError):
        validate(
            SCHEMAS["operations"]["GET /api/v1/Appointment/{id}"]["responses"]["200"],
            {**entity, "Private": "Secret"},
        )


def test_documented_non_swagger_bodies(so_client: FlaskClient) -> None:
    for context in ("Cust12345", "Cust56789", "Cust67890", "Cust00000"):
        validate(STATE_SCHEMA, so_client.get(f"/api/state/{context}").json)
    body, content_type = sim_error_body(429, 5)
    assert content_type == "application/json"
    validate(ERROR_SCHEMA, json.loads(body))
