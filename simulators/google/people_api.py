"""People API v1 routes (``people.googleapis.com/v1/…``): the contact operations sync needs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from simulators.google.auth import check_rate_limits, require_token, store
from simulators.google.contacts import ContactBookOps, failed_precondition, parse_mask
from simulators.google.errors import bad_request, not_found

bp = Blueprint("google_people", __name__, url_prefix="/v1")

_P = "https://www.googleapis.com/auth/contacts"
WRITE = (_P,)
READ = (_P, _P + ".readonly")
MAX_BATCH_WRITE = 200
MAX_BATCH_DELETE = 500


def _book(*scopes: str) -> ContactBookOps:
    token = require_token(*scopes)
    check_rate_limits(token)
    if token.email not in store().books:
        raise not_found("Requested entity was not found.")
    return ContactBookOps(store(), token.email)


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise bad_request("Invalid JSON payload received.")
    return body


def _read_mask(name: str) -> set[str] | None:
    fields = parse_mask(request.args.get(name), name, required=False)
    return fields or None


@bp.get("/people/<person_id>/connections")
def connections_list(person_id: str) -> Response:
    if person_id != "me":
        raise bad_request("Only people/me is supported for connections.")
    return jsonify(_book(*READ).connections(request.args.to_dict()))


@bp.get("/people/<person_id>")
def people_get(person_id: str) -> Response:
    fields = parse_mask(request.args.get("personFields"), "personFields", required=True)
    if person_id == "me":
        return jsonify(_profile(fields))
    book = _book(*READ)
    return jsonify(book.render(book.get(f"people/{person_id}"), fields))


def _profile(fields: set[str]) -> dict[str, Any]:
    """``people/me``: the signed-in user's own profile (any valid token may read it)."""
    token = require_token()
    check_rate_limits(token)
    user = store().find_user(token.email)
    if user is None:
        raise not_found("Requested entity was not found.")
    source = {"type": "PROFILE", "id": user.user_id}
    person: dict[str, Any] = {
        "resourceName": f"people/{user.user_id}",
        "etag": "%" + user.user_id,
        "names": [
            {
                "displayName": user.full_name,
                "givenName": user.given_name,
                "familyName": user.family_name,
                "metadata": {"primary": True, "source": source},
            }
        ],
        "emailAddresses": [
            {"value": user.email, "metadata": {"primary": True, "verified": True, "source": source}}
        ],
        "metadata": {"sources": [source], "objectType": "PERSON"},
    }
    return {k: v for k, v in person.items() if k in ("resourceName", "etag") or k in fields}


@bp.post("/people:createContact")
def create_contact() -> Response:
    book = _book(*WRITE)
    return jsonify(book.render(book.create(_body()), _read_mask("personFields")))


@bp.patch("/people/<person_id>:updateContact")
def update_contact(person_id: str) -> Response:
    book = _book(*WRITE)
    update_fields = parse_mask(
        request.args.get("updatePersonFields"), "updatePersonFields", required=True
    )
    contact = book.update(f"people/{person_id}", _body(), update_fields)
    return jsonify(book.render(contact, _read_mask("personFields")))


@bp.delete("/people/<person_id>:deleteContact")
def delete_contact(person_id: str) -> Response:
    _book(*WRITE).delete(f"people/{person_id}")
    return jsonify({})


@bp.post("/people:batchCreateContacts")
def batch_create() -> Response:
    book = _book(*WRITE)
    body = _body()
    contacts = body.get("contacts") or []
    if not isinstance(contacts, list) or not 1 <= len(contacts) <= MAX_BATCH_WRITE:
        raise bad_request(f"contacts must hold 1 to {MAX_BATCH_WRITE} items.")
    fields = parse_mask(body.get("readMask"), "readMask", required=True)
    created = [book.create(item.get("contactPerson") or {}) for item in contacts]
    return jsonify(
        createdPeople=[
            {"httpStatusCode": 200, "person": book.render(c, fields), "status": {}} for c in created
        ]
    )


@bp.post("/people:batchUpdateContacts")
def batch_update() -> Response:
    book = _book(*WRITE)
    body = _body()
    contacts = body.get("contacts") or {}
    if not isinstance(contacts, dict) or not 1 <= len(contacts) <= MAX_BATCH_WRITE:
        raise bad_request(f"contacts must hold 1 to {MAX_BATCH_WRITE} entries.")
    update_fields = parse_mask(body.get("updateMask"), "updateMask", required=True)
    fields = parse_mask(body.get("readMask"), "readMask", required=True)
    # Checked up front so that a stale etag fails the whole batch, changing nothing.
    for resource_name, person in contacts.items():
        current = book.get(resource_name)
        if person.get("etag") not in (current.etag, book.source_etag(current)):
            raise failed_precondition(
                "Request person.etag is different than the current person.etag. Clear local "
                "cache and get the latest person."
            )
    results = {}
    for resource_name, person in contacts.items():
        contact = book.update(resource_name, person, update_fields)
        results[resource_name] = {
            "httpStatusCode": 200,
            "person": book.render(contact, fields),
            "requestedResourceName": resource_name,
            "status": {},
        }
    return jsonify(updateResult=results)


@bp.post("/people:batchDeleteContacts")
def batch_delete() -> Response:
    book = _book(*WRITE)
    names = _body().get("resourceNames") or []
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_BATCH_DELETE:
        raise bad_request(f"resourceNames must hold 1 to {MAX_BATCH_DELETE} items.")
    for name in names:
        book.get(name)
    for name in names:
        book.delete(name)
    return jsonify({})
