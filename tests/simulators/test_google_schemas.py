"""Every API response shape of the Google simulator validates against the discovery documents
shipped inside google-api-python-client (read at test time), made strict: a property the
schema does not define is an error too."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from googleapiclient.discovery_cache import get_static_doc

from simulators.platform.control import control_of
from simulators.world.google import (
    SCOPE_CALENDAR,
    SCOPE_CONTACTS,
    SCOPE_DIRECTORY_USER_RO,
    SCOPE_DOMAINS_RO,
    SCOPE_EMAIL,
    SCOPE_ROLES_RO,
)

DROPPED_KEYS = {"id", "annotations", "description", "required", "location", "deprecated"}


def _convert(node: Any) -> Any:
    """A discovery schema node as JSON Schema draft 4 (strict about unknown properties)."""
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in DROPPED_KEYS and not isinstance(value, dict):
            continue
        if key == "$ref":
            out[key] = f"#/definitions/{value}"
        elif key == "type" and value == "any":
            continue
        elif key == "properties":
            out[key] = {name: _convert(prop) for name, prop in value.items()}
        else:
            out[key] = _convert(value)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _methods(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for resource in resources.values():
        for method in resource.get("methods", {}).values():
            found[method["id"]] = method
        found.update(_methods(resource.get("resources", {})))
    return found


class Discovery:
    def __init__(self, api: str, version: str) -> None:
        doc = json.loads(get_static_doc(api, version))
        self.definitions = {name: _convert(s) for name, s in doc["schemas"].items()}
        self.methods = _methods(doc.get("resources", {}))
        self.methods.update({m["id"]: m for m in doc.get("methods", {}).values()})

    def validate(self, method_id: str, body: Any) -> None:
        ref = self.methods[method_id]["response"]["$ref"]
        schema = {"$ref": f"#/definitions/{ref}", "definitions": self.definitions}
        jsonschema.Draft4Validator(schema).validate(body)


DOCS = {
    "calendar": Discovery("calendar", "v3"),
    "people": Discovery("people", "v1"),
    "directory": Discovery("admin", "directory_v1"),
    "oauth2": Discovery("oauth2", "v2"),
}


def test_the_strict_conversion_catches_wrong_shapes() -> None:
    calendar = DOCS["calendar"]
    good = {"id": "abc12", "start": {"dateTime": "2026-11-24T10:00:00Z"}}
    calendar.validate("calendar.events.get", good)
    with pytest.raises(jsonschema.ValidationError):
        calendar.validate("calendar.events.get", {**good, "recurrence": "RRULE:FREQ=DAILY"})
    with pytest.raises(jsonschema.ValidationError):
        calendar.validate(
            "calendar.events.get", {**good, "extendedProperties": {"private": {"a": 1}}}
        )
    with pytest.raises(jsonschema.ValidationError):
        calendar.validate("calendar.events.get", {**good, "startTime": "x"})


@pytest.fixture
def call(google_app: Any, google_token: Any) -> Callable[..., Any]:
    client = google_app.test_client()
    token = google_token(
        "alice@northwind.example",
        SCOPE_CALENDAR,
        SCOPE_CONTACTS,
        SCOPE_DIRECTORY_USER_RO,
        SCOPE_ROLES_RO,
        SCOPE_DOMAINS_RO,
        SCOPE_EMAIL,
    )

    def request(method: str, path: str, *, doc: str, method_id: str | None, **kwargs: Any) -> Any:
        """Calls the simulator; validates the answer against `method_id`'s response schema
        (None: the method answers 204 without a body)."""
        answer = client.open(
            path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )
        if method_id is None:
            assert answer.status_code == 204, answer.get_data(as_text=True)
            return None
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        DOCS[doc].validate(method_id, body)
        return body

    return request


def _event_body(**extra: Any) -> dict[str, Any]:
    return {
        "summary": "Shape",
        "start": {"dateTime": "2026-11-24T10:00:00+01:00", "timeZone": "Europe/Oslo"},
        "end": {"dateTime": "2026-11-24T11:00:00+01:00", "timeZone": "Europe/Oslo"},
        "attendees": [{"email": "carol@northwind.example"}],
        "extendedProperties": {"private": {"soId": "1"}},
        **extra,
    }


def test_every_api_route_answers_in_its_discovery_shape(call: Any, google_app: Any) -> None:
    cal = "/calendar/v3/calendars/primary"
    c = {"doc": "calendar"}
    call("GET", "/calendar/v3/users/me/calendarList", method_id="calendar.calendarList.list", **c)
    call(
        "GET",
        "/calendar/v3/users/me/calendarList/primary",
        method_id="calendar.calendarList.get",
        **c,
    )
    call("GET", cal, method_id="calendar.calendars.get", **c)
    first = call("GET", cal + "/events?maxResults=3", method_id="calendar.events.list", **c)
    sync = call(
        "GET",
        f"{cal}/events?pageToken={first['nextPageToken']}&maxResults=2500",
        method_id="calendar.events.list",
        **c,
    )["nextSyncToken"]
    created = call(
        "POST", cal + "/events", json=_event_body(), method_id="calendar.events.insert", **c
    )
    event = f"{cal}/events/{created['id']}"
    call("GET", event, method_id="calendar.events.get", **c)
    call("PATCH", event, json={"location": "Here"}, method_id="calendar.events.patch", **c)
    call("PUT", event, json=_event_body(), method_id="calendar.events.update", **c)
    call(
        "POST",
        cal + "/events/import",
        json=_event_body(iCalUID="so-4711@superoffice.example"),
        method_id="calendar.events.import",
        **c,
    )
    series = call(
        "GET", cal + "/events?singleEvents=true&q=stand-up", method_id="calendar.events.list", **c
    )
    master_id = series["items"][0]["recurringEventId"]
    call("GET", f"{cal}/events/{master_id}/instances", method_id="calendar.events.instances", **c)
    call("GET", f"{cal}/events/{series['items'][0]['id']}", method_id="calendar.events.get", **c)
    call("DELETE", event, method_id=None, **c)
    deleted = call("GET", f"{cal}/events?syncToken={sync}", method_id="calendar.events.list", **c)
    assert {e["status"] for e in deleted["items"] if e["id"] == created["id"]} == {"cancelled"}
    channel = call(
        "POST",
        cal + "/events/watch",
        json={"id": "shape-1", "type": "web_hook", "address": "https://127.0.0.1:9/hook"},
        method_id="calendar.events.watch",
        **c,
    )
    call(
        "POST",
        "/calendar/v3/channels/stop",
        json={"id": channel["id"], "resourceId": channel["resourceId"]},
        method_id=None,
        **c,
    )

    p = {"doc": "people"}
    fields = "names,emailAddresses,phoneNumbers,organizations,clientData,metadata"
    person = call(
        "POST",
        "/v1/people:createContact",
        json={"names": [{"givenName": "Shape"}], "clientData": [{"key": "k", "value": "v"}]},
        method_id="people.people.createContact",
        **p,
    )
    contact = person["resourceName"]
    call("GET", f"/v1/{contact}?personFields={fields}", method_id="people.people.get", **p)
    me = call("GET", f"/v1/people/me?personFields={fields}", method_id="people.people.get", **p)
    assert me["emailAddresses"][0]["value"] == "alice@northwind.example"
    updated = call(
        "PATCH",
        f"/v1/{contact}:updateContact?updatePersonFields=names",
        json={"etag": person["etag"], "names": [{"givenName": "Shaped"}]},
        method_id="people.people.updateContact",
        **p,
    )
    listing = call(
        "GET",
        f"/v1/people/me/connections?personFields={fields}&requestSyncToken=true",
        method_id="people.people.connections.list",
        **p,
    )
    batch = call(
        "POST",
        "/v1/people:batchCreateContacts",
        json={
            "contacts": [{"contactPerson": {"names": [{"givenName": "B"}]}}],
            "readMask": "names",
        },
        method_id="people.people.batchCreateContacts",
        **p,
    )
    created_person = batch["createdPeople"][0]["person"]
    call(
        "POST",
        "/v1/people:batchUpdateContacts",
        json={
            "contacts": {
                created_person["resourceName"]: {
                    "etag": created_person["etag"],
                    "names": [{"givenName": "C"}],
                }
            },
            "updateMask": "names",
            "readMask": "names,metadata",
        },
        method_id="people.people.batchUpdateContacts",
        **p,
    )
    call(
        "POST",
        "/v1/people:batchDeleteContacts",
        json={"resourceNames": [created_person["resourceName"]]},
        method_id="people.people.batchDeleteContacts",
        **p,
    )
    call("DELETE", f"/v1/{contact}:deleteContact", method_id="people.people.deleteContact", **p)
    assert updated["etag"] != person["etag"]
    delta = call(
        "GET",
        f"/v1/people/me/connections?personFields={fields}&requestSyncToken=true"
        f"&syncToken={listing['nextSyncToken']}",
        method_id="people.people.connections.list",
        **p,
    )
    assert all(c["metadata"].get("deleted") for c in delta["connections"])

    d = {"doc": "directory"}
    base = "/admin/directory/v1"
    call("GET", f"{base}/users/harry@northwind.example", method_id="directory.users.get", **d)
    call("GET", f"{base}/users?customer=my_customer", method_id="directory.users.list", **d)
    call("GET", f"{base}/customer/my_customer/roles", method_id="directory.roles.list", **d)
    call(
        "GET",
        f"{base}/customer/my_customer/roleassignments?userKey=alice@northwind.example",
        method_id="directory.roleAssignments.list",
        **d,
    )
    domains = call(
        "GET", f"{base}/customer/my_customer/domains", method_id="directory.domains.list", **d
    )
    assert [d["domainName"] for d in domains["domains"]] == [
        "northwind.example",
        "northwindtraders.example",
    ]

    o = {"doc": "oauth2"}
    call("GET", "/oauth2/v2/userinfo", method_id="oauth2.userinfo.get", **o)
    call("GET", "/userinfo/v2/me", method_id="oauth2.userinfo.v2.me.get", **o)

    # Every API route of the simulator was exercised above.
    hit = set(control_of(google_app).stats.snapshot()["endpoints"])
    api_blueprints = ("google_calendar.", "google_people.", "google_directory.")
    routes = {
        f"{method} {rule.rule}"
        for rule in google_app.url_map.iter_rules()
        if rule.endpoint.startswith(api_blueprints)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes - hit == set()


def test_tokeninfo_shape(google_app: Any, google_token: Any) -> None:
    token = google_token("alice@northwind.example", SCOPE_EMAIL)
    answer = google_app.test_client().post(f"/oauth2/v2/tokeninfo?access_token={token}")
    DOCS["oauth2"].validate("oauth2.tokeninfo", answer.get_json())
