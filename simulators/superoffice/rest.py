"""The tenant REST API: `/{tenant}/api/v1/...` (Online: `/Cust12345/api/v1`, Onsite: the virtual
directory, e.g. `/SuperOffice/api/v1`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, request

from simulators.superoffice import (
    archives,
    bookings,
    carriers,
    deletions,
    events,
    odata,
    timezones,
    writes,
)
from simulators.superoffice.auth import authenticate
from simulators.superoffice.errors import ApiError
from simulators.superoffice.faults import TENANT_MOVED, claim
from simulators.superoffice.model import (
    AppointmentRecord,
    ContactRecord,
    ForeignKeyRecord,
    PersonRecord,
    TenantData,
    WebhookRecord,
    utcnow,
)

bp = Blueprint("so_rest", __name__, url_prefix="/<tenant_id>/api")

UNAVAILABLE_STATES = {"OfflineMaintenance", "Suspended", "Deleted", "Provisioning", "Unknown"}
# These call the webhook target synchronously; the target may call back into the API meanwhile.
UNLOCKED_ENDPOINTS = {"so_rest.webhook_create", "so_rest.webhook_put", "so_rest.webhook_test"}


def sim() -> Any:
    return current_app.extensions["superoffice"]


def ok(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(payload), status=status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


def tenant() -> TenantData:
    data: TenantData = g.so_tenant
    return data


def api_base() -> str:
    return f"{request.host_url.rstrip('/')}/{tenant().context_id}/api/v1"


@bp.url_value_preprocessor
def _take_tenant(endpoint: str | None, values: dict[str, Any] | None) -> None:
    g.so_tenant_id = (values or {}).pop("tenant_id", "")


@bp.before_request
def _authenticate() -> None:
    data = sim().tenant(g.so_tenant_id)
    if data is None:
        raise ApiError(404, f"Unknown tenant {g.so_tenant_id}")
    g.so_tenant = data
    expected_host = data.config.api_host
    if claim(TENANT_MOVED) or (expected_host and request.host.split(":")[0] != expected_host):
        raise ApiError(421, "Wrong subdomain used to access tenant")
    if data.config.state in UNAVAILABLE_STATES:
        raise ApiError(503, f"Tenant {data.context_id} is not available ({data.config.state})")
    if request.endpoint == "so_rest.version":
        return
    g.so_me = authenticate(sim(), data)
    try:
        g.so_pres = timezones.presentation(
            request.headers.get("SO-TimeZone"), data.config.base_time_zone
        )
    except timezones.UnknownTimeZone as exc:
        raise ApiError(400, f"Unknown SO-TimeZone {exc}") from exc
    if request.endpoint not in UNLOCKED_ENDPOINTS:
        data.lock.acquire()  # one request at a time per tenant: reads never see a half-done write
        g.so_locked = data


@bp.teardown_request
def _unlock(exc: BaseException | None) -> None:
    data = g.pop("so_locked", None)
    if data is not None:
        data.lock.release()


@bp.get("")
def version() -> Response:
    v = tenant().config.version
    return ok({"v1": f"{api_base()}", "NetServerVersion": v, "Services": "Services87",
               "ServicesCurrent": "Services88"})  # fmt: skip


# --- helpers -------------------------------------------------------------------------------------


def _query(provider: archives.Provider) -> odata.Query:
    return odata.Query(
        documented=provider.columns,
        served=provider.served,
        current_associate=g.so_me.associate_id,
        today=dt.datetime.now(g.so_pres.zone).date(),
    )


def _format(value: Any) -> Any:
    """Archive dates are ISO strings without offset, in the column's zone."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="seconds")
    return value


def archive_response(
    provider: archives.Provider, preset: Callable[[dict[str, Any]], bool] | None = None
) -> Response:
    data = tenant()
    with data.lock:
        rows = sorted(provider.rows(data, g.so_pres), key=lambda r: r["PrimaryKey"])
    if preset is not None:
        rows = [r for r in rows if preset(r)]
    select, page = odata.run(rows, request.args, _query(provider), provider.default_select)
    value = [
        {
            # slim rows carry the primary key as text, as the reference pages show
            "PrimaryKey": str(r["PrimaryKey"]),
            "EntityName": provider.entity,
            **{c: _format(r.get(c)) for c in select},
        }
        for r in page
    ]
    # The service never pages by itself: no next link, the client pages with $top/$skip.
    return ok(
        {
            "odata.metadata": f"{api_base()}/archive/$metadata",
            "odata.nextLink": None,
            "value": value,
        }
    )


def _check_unmodified(updated: dt.datetime) -> None:
    """If-Unmodified-Since (HTTP date, second precision) → 412 when the record changed since."""
    since = request.if_unmodified_since
    if since is not None and updated.replace(microsecond=0) > since:
        raise ApiError(412, "The entity was modified after the If-Unmodified-Since date")


def _not_modified(updated: dt.datetime) -> bool:
    since = request.if_modified_since
    return since is not None and updated.replace(microsecond=0) <= since


def _last_modified(updated: dt.datetime) -> dict[str, str]:
    from werkzeug.http import http_date

    return {"Last-Modified": http_date(updated)}


def _body() -> Any:
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(400, "Entity to save is not in request body")
    return payload


def _fk_dict(table: str, record_id: int) -> dict[str, str]:
    return {
        f"{k.app}.{k.device}.{k.key}": k.value
        for k in tenant().foreign_keys
        if k.table == table and k.record_id == record_id
    }


def _emit(event: str, primary_key: int, values: dict[str, Any], changes: list[str]) -> None:
    sim().webhooks.emit(
        tenant(), event, primary_key, associate_id=g.so_me.associate_id, values=values,
        changes=changes,
    )  # fmt: skip


def _emit_all(fired: list[deletions.Event]) -> None:
    for e in fired:
        _emit(e.name, e.primary_key, e.values, e.changes)


def _activity_created(records: list[AppointmentRecord]) -> None:
    for item in records:
        root = events.appointment_root(item)
        _emit("activity.created", item.appointment_id, events.activity_fields(item),
              events.created("appointment_id", root))  # fmt: skip


def _bookings_follow(mother: AppointmentRecord, before: dict[int, dict[str, Any]]) -> None:
    """Write the mother's participants and shared fields to its booking rows, with events."""
    created, changed, deleted = bookings.sync(tenant(), mother)
    _activity_created(created)
    for row in changed:
        _emit("activity.changed", row.appointment_id, events.activity_fields(row),
              events.changes("appointment_id", before.get(row.appointment_id, {}),
                             events.appointment_root(row), stamped=True))  # fmt: skip
    for row in deleted:
        _emit("activity.deleted", row.appointment_id, events.activity_keys(row), [])


def _select_fields(carrier: dict[str, Any]) -> dict[str, Any]:
    """Entity `$select`: the other fields are nulled out."""
    wanted = {s.strip().lower() for s in request.args.get("$select", "").split(",") if s.strip()}
    if not wanted:
        return carrier
    keep = {"_links", "tableright"} | wanted
    return {k: (v if k.lower() in keep else None) for k, v in carrier.items()}


# --- Appointment ---------------------------------------------------------------------------------


def _appointment(appointment_id: int) -> AppointmentRecord:
    record = tenant().appointments.get(appointment_id)
    if record is None or not _may_see(record):
        raise ApiError(404, f"Appointment id {appointment_id} not found")
    return record


def _may_see(record: AppointmentRecord) -> bool:
    return _visible(record.associate_id, record.private)


def _visible(owner_id: int, private: str) -> bool:
    """PrivateUser: the owner only; PrivateGroup: the owner's user group; the system user sees all."""
    me = g.so_me
    if private == "Public" or me.associate_id == owner_id or me.kind == "SystemAssociate":
        return True
    owner = tenant().associates.get(owner_id)
    return private == "PrivateGroup" and owner is not None and owner.group == me.group


_PRIVACY_OF = {shown: private for private, shown in archives.VISIBILITY.items()}


def _visible_row(row: dict[str, Any]) -> bool:
    return _visible(row["associateId"], _PRIVACY_OF[row["visibleFor"]])


def _appointment_json(record: AppointmentRecord) -> dict[str, Any]:
    url = f"{api_base()}/Appointment/{record.appointment_id}"
    return _select_fields(carriers.appointment(tenant(), record, g.so_pres, url))


@bp.get("/v1/Appointment")
def appointment_list() -> Response:
    provider = archives.PROVIDERS["findappointment"]
    return archive_response(provider, _visible_row)


@bp.get("/v1/Appointment/default")
def appointment_default() -> Response:
    now = utcnow().replace(minute=0, second=0) + dt.timedelta(hours=1)
    record = AppointmentRecord(0, g.so_me.associate_id, "", "", now, now + dt.timedelta(hours=1),
                               now, now, g.so_me.associate_id, g.so_me.associate_id)  # fmt: skip
    body = carriers.appointment(tenant(), record, g.so_pres, f"{api_base()}/Appointment/0")
    body.pop("_Links")
    return ok(body)


@bp.post("/v1/Appointment")
def appointment_create() -> Response:
    body = writes.body_object(_body())
    data, me = tenant(), g.so_me
    with data.lock:
        now = utcnow()
        record = AppointmentRecord(data.new_id(), me.associate_id, "", "", now, now, now, now,
                                   me.associate_id, me.associate_id)  # fmt: skip
        writes.apply_appointment(data, record, body, g.so_pres)
        created = [record]
        recurrence = body.get("Recurrence")
        if isinstance(recurrence, dict) and recurrence.get("IsRecurrence"):
            created = writes.expand_recurrence(data, record, recurrence, g.so_pres)
        else:
            data.appointments[record.appointment_id] = record
        rows = []
        for mother in created:  # a meeting: one booking row per participant
            rows += [mother, *bookings.sync(data, mother)[0]]
    _activity_created(rows)
    return ok(_appointment_json(record))


@bp.get("/v1/Appointment/<int:appointment_id>")
def appointment_get(appointment_id: int) -> Response:
    record = _appointment(appointment_id)
    if _not_modified(record.updated):
        return Response(status=304)
    return ok(_appointment_json(record), headers=_last_modified(record.updated))


def _update_appointment(
    appointment_id: int, changes: Callable[[dict[str, Any]], dict[str, Any]]
) -> Response:
    data = tenant()
    with data.lock:
        record = _appointment(appointment_id)
        _check_unmodified(record.updated)
        current = carriers.appointment(data, record, g.so_pres, "")
        if bookings.is_booking(record):
            _update_booking(data, record, changes(current))
        else:
            root_before = events.appointment_root(record)
            texts_before = (record.title, record.description)
            rows_before = {b.appointment_id: events.appointment_root(b)
                           for b in bookings.bookings_of(data, record)}  # fmt: skip
            before = dict(vars(record))
            try:
                writes.apply_appointment(data, record, changes(current), g.so_pres)
                record_changes = events.changes(
                    "appointment_id", root_before, events.appointment_root(record),
                    stamped=(record.title, record.description) != texts_before,
                )  # fmt: skip
                if record_changes:
                    record.updated, record.updated_by = utcnow(), g.so_me.associate_id
                _bookings_follow(record, rows_before)
            except ApiError:
                vars(record).update(before)
                raise
            if record_changes:
                _emit("activity.changed", record.appointment_id, events.activity_fields(record),
                      record_changes)  # fmt: skip
    return ok(_appointment_json(record), headers=_last_modified(record.updated))


def _update_booking(data: TenantData, record: AppointmentRecord, body: dict[str, Any]) -> None:
    """A participant's own booking: the alarm and the status are theirs, the meeting is not."""
    mother = bookings.mother_of(data, record)
    draft = dataclasses.replace(record, participants=list(mother.participants))
    writes.apply_appointment(data, draft, body, g.so_pres)
    bookings.check_booking_change(
        dataclasses.replace(record, participants=list(mother.participants)), draft
    )
    root_before = events.appointment_root(record)
    record.alarm_minutes, record.completed = draft.alarm_minutes, draft.completed
    record_changes = events.changes("appointment_id", root_before, events.appointment_root(record))
    if record_changes:
        record.updated, record.updated_by = utcnow(), g.so_me.associate_id
        _emit("activity.changed", record.appointment_id, events.activity_fields(record),
              record_changes)  # fmt: skip


@bp.put("/v1/Appointment/<int:appointment_id>")
def appointment_put(appointment_id: int) -> Response:
    body = writes.body_object(_body())
    return _update_appointment(appointment_id, lambda current: body)


@bp.patch("/v1/Appointment/<int:appointment_id>")
def appointment_patch(appointment_id: int) -> Response:
    body = _body()
    return _update_appointment(appointment_id, lambda current: writes.json_patch(current, body))


@bp.delete("/v1/Appointment/<int:appointment_id>")
def appointment_delete(appointment_id: int) -> Response:
    data = tenant()
    with data.lock:
        record = _appointment(appointment_id)
        _check_unmodified(record.updated)
        # the owner deleting a meeting deletes every booking; a participant removes their own
        gone = (
            [record]
            if bookings.is_booking(record)
            else [record, *bookings.bookings_of(data, record)]
        )
        if bookings.is_booking(record):
            mother = bookings.mother_of(data, record)
            key = record.associate_id or record.invited_person_id
            mother.participants = [
                p for p in mother.participants if key not in (p.associate_id, p.person_id)
            ]
        ids = {row.appointment_id for row in gone}
        for row in gone:
            del data.appointments[row.appointment_id]
        data.foreign_keys = [
            k for k in data.foreign_keys if not (k.table == "appointment" and k.record_id in ids)
        ]
    for row in gone:
        _emit("activity.deleted", row.appointment_id, events.activity_keys(row), [])
    return Response(status=204)


@bp.get("/v1/Appointment/<int:appointment_id>/Participants")
def appointment_participants(appointment_id: int) -> Response:
    record = _appointment(appointment_id)
    value = []
    meeting = bookings.mother_of(tenant(), record)
    for index, p in enumerate(meeting.participants, start=1):
        person = tenant().persons.get(p.person_id)
        value.append({
            "PrimaryKey": str(index), "EntityName": "participant", "associateId": p.associate_id,
            "personId": p.person_id, "contactId": p.contact_id, "emailAddress": p.email,
            "fullName": person.full_name if person else p.email, "invitationStatus": p.status,
        })  # fmt: skip
    return ok(
        {
            "odata.metadata": f"{api_base()}/archive/$metadata",
            "odata.nextLink": None,
            "value": value,
        }
    )


@bp.get("/v1/Appointment/<int:appointment_id>/ForeignKey")
def appointment_foreign_keys(appointment_id: int) -> Response:
    _appointment(appointment_id)
    return ok(_fk_dict("appointment", appointment_id))


# --- Person --------------------------------------------------------------------------------------


def _person(person_id: int) -> PersonRecord:
    record = tenant().persons.get(person_id)
    if record is None or not record.visible:  # soft-deleted: as if gone
        raise ApiError(404, f"Person id {person_id} not found")
    return record


def _person_json(record: PersonRecord) -> dict[str, Any]:
    return _select_fields(
        carriers.person(tenant(), record, f"{api_base()}/Person/{record.person_id}")
    )


@bp.get("/v1/Person")
def person_list() -> Response:
    return archive_response(archives.PROVIDERS["person"])


@bp.get("/v1/Person/default")
def person_default() -> Response:
    now = utcnow()
    me = g.so_me.associate_id
    record = PersonRecord(0, 0, "", "", [], [], [], "", "", now, now, me, me)
    body = carriers.person(tenant(), record, "")
    body.pop("_Links")
    return ok(body)


@bp.post("/v1/Person")
def person_create() -> Response:
    body = writes.body_object(_body())
    data, me = tenant(), g.so_me.associate_id
    with data.lock:
        now = utcnow()
        record = PersonRecord(data.new_id(), 0, "", "", [], [], [], "", "", now, now, me, me)
        writes.apply_person(data, record, body)
        data.persons[record.person_id] = record
    _emit("person.created", record.person_id, events.person_fields(data, record),
          events.created("person_id", events.person_root(record)))  # fmt: skip
    return ok(_person_json(record))


@bp.get("/v1/Person/<int:person_id>")
def person_get(person_id: int) -> Response:
    record = _person(person_id)
    if _not_modified(record.updated):
        return Response(status=304)
    return ok(_person_json(record), headers=_last_modified(record.updated))


def _update_person(person_id: int, make: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
    return _update_record(
        ("person.changed", "person_id"),
        lambda: _person(person_id),
        writes.apply_person,
        carriers.person,
        (events.person_root, events.person_fields),
        _person_json,
        make,
    )


def _update_record(
    event: tuple[str, str],
    find: Callable[[], Any],
    apply: Callable[[Any, Any, dict[str, Any]], None],
    carrier: Callable[[Any, Any, str], dict[str, Any]],
    row: tuple[Callable[[Any], dict[str, Any]], Callable[[Any, Any], dict[str, Any]]],
    to_json: Callable[[Any], dict[str, Any]],
    make: Callable[[dict[str, Any]], dict[str, Any]],
) -> Response:
    """PUT/PATCH of a person or a company: If-Unmodified-Since, all-or-nothing, and an event
    when the root row changed (e-mail, phone and domain rows are other tables: no event, and
    the record's updated date stays)."""
    (name, primary_key), (root, fields) = event, row
    data = tenant()
    with data.lock:
        record = find()
        _check_unmodified(record.updated)
        before = dict(vars(record))
        root_before = root(record)
        try:
            apply(data, record, make(carrier(data, record, "")))
        except ApiError:
            vars(record).update(before)  # a refused write changes nothing
            raise
        changed = events.changes(primary_key, root_before, root(record))
        if changed:
            record.updated, record.updated_by = utcnow(), g.so_me.associate_id
            _emit(name, getattr(record, primary_key), fields(data, record), changed)
    return ok(to_json(record), headers=_last_modified(record.updated))


@bp.put("/v1/Person/<int:person_id>")
def person_put(person_id: int) -> Response:
    body = writes.body_object(_body())
    return _update_person(person_id, lambda current: body)


@bp.patch("/v1/Person/<int:person_id>")
def person_patch(person_id: int) -> Response:
    body = _body()
    return _update_person(person_id, lambda current: writes.json_patch(current, body))


@bp.delete("/v1/Person/<int:person_id>")
def person_delete(person_id: int) -> Response:
    data = tenant()
    with data.lock:
        record = _person(person_id)
        _check_unmodified(record.updated)
        fired = deletions.soft_delete_person(data, record, utcnow())
    _emit_all(fired)
    return Response(status=204)


@bp.get("/v1/Person/<int:person_id>/Appointments")
def person_appointments(person_id: int) -> Response:
    _person(person_id)
    return archive_response(
        archives.PROVIDERS["findappointment"],
        lambda r: r["personId"] == person_id and _visible_row(r),
    )


@bp.get("/v1/Person/<int:person_id>/ForeignKey")
def person_foreign_keys(person_id: int) -> Response:
    _person(person_id)
    return ok(_fk_dict("person", person_id))


# --- Contact -------------------------------------------------------------------------------------


def _contact(contact_id: int) -> ContactRecord:
    record = tenant().contacts.get(contact_id)
    if record is None or not record.visible:  # soft-deleted: as if gone
        raise ApiError(404, f"Contact id {contact_id} not found")
    return record


def _contact_json(record: ContactRecord) -> dict[str, Any]:
    return _select_fields(
        carriers.contact(tenant(), record, f"{api_base()}/Contact/{record.contact_id}")
    )


@bp.get("/v1/Contact")
def contact_list() -> Response:
    return archive_response(archives.PROVIDERS["simplecontact"])


@bp.get("/v1/Contact/default")
def contact_default() -> Response:
    now, me = utcnow(), g.so_me.associate_id
    record = ContactRecord(0, "", "", [], [], [], "", "", me, now, now, me, me)
    body = carriers.contact(tenant(), record, "")
    body.pop("_Links")
    return ok(body)


@bp.post("/v1/Contact")
def contact_create() -> Response:
    body = writes.body_object(_body())
    data, me = tenant(), g.so_me.associate_id
    with data.lock:
        now = utcnow()
        record = ContactRecord(data.new_id(), "", "", [], [], [], "", "", me, now, now, me, me)
        writes.apply_contact(data, record, body)
        data.contacts[record.contact_id] = record
    _emit("contact.created", record.contact_id, events.contact_fields(data, record),
          events.created("contact_id", events.contact_root(record)))  # fmt: skip
    return ok(_contact_json(record))


@bp.get("/v1/Contact/<int:contact_id>")
def contact_get(contact_id: int) -> Response:
    record = _contact(contact_id)
    if _not_modified(record.updated):
        return Response(status=304)
    return ok(_contact_json(record), headers=_last_modified(record.updated))


def _update_contact(contact_id: int, make: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
    return _update_record(
        ("contact.changed", "contact_id"),
        lambda: _contact(contact_id),
        writes.apply_contact,
        carriers.contact,
        (events.contact_root, events.contact_fields),
        _contact_json,
        make,
    )


@bp.put("/v1/Contact/<int:contact_id>")
def contact_put(contact_id: int) -> Response:
    body = writes.body_object(_body())
    return _update_contact(contact_id, lambda current: body)


@bp.patch("/v1/Contact/<int:contact_id>")
def contact_patch(contact_id: int) -> Response:
    body = _body()
    return _update_contact(contact_id, lambda current: writes.json_patch(current, body))


@bp.delete("/v1/Contact/<int:contact_id>")
def contact_delete(contact_id: int) -> Response:
    data = tenant()
    with data.lock:
        record = _contact(contact_id)
        _check_unmodified(record.updated)
        fired = deletions.soft_delete_contact(data, record, utcnow())
    _emit_all(fired)
    return Response(status=204)


@bp.get("/v1/Contact/<int:contact_id>/Persons")
def contact_persons(contact_id: int) -> Response:
    _contact(contact_id)
    return archive_response(archives.PROVIDERS["person"], lambda r: r["contactId"] == contact_id)


@bp.get("/v1/Contact/<int:contact_id>/Appointments")
def contact_appointments(contact_id: int) -> Response:
    _contact(contact_id)
    return archive_response(
        archives.PROVIDERS["findappointment"],
        lambda r: r["contactId"] == contact_id and _visible_row(r),
    )


@bp.get("/v1/Contact/<int:contact_id>/ForeignKey")
def contact_foreign_keys(contact_id: int) -> Response:
    _contact(contact_id)
    return ok(_fk_dict("contact", contact_id))


# --- User ----------------------------------------------------------------------------------------


@bp.get("/v1/User/currentPrincipal")
def current_principal() -> Response:
    return ok(carriers.principal(tenant(), g.so_me))


@bp.get("/v1/User/currentAssociate")
def current_associate() -> Response:
    return ok(carriers.associate(tenant(), g.so_me.associate_id))


@bp.get("/v1/User")
def user_list() -> Response:
    return archive_response(archives.PROVIDERS["allusers"])


@bp.get("/v1/User/<int:associate_id>")
def user_get(associate_id: int) -> Response:
    record = tenant().associates.get(associate_id)
    if record is None or record.kind != "InternalAssociate":
        raise ApiError(404, f"User id {associate_id} not found")
    return ok(carriers.user(tenant(), record, f"{api_base()}/User/{associate_id}"))


# --- Archive and TimeZone ------------------------------------------------------------------------


@bp.get("/v1/Archive/<provider_name>")
def archive(provider_name: str) -> Response:
    provider = archives.PROVIDERS.get(provider_name.lower())
    if provider is None:
        raise ApiError(404, f"Unknown archive provider {provider_name}")
    if provider.entity == "appointment":
        return appointment_list()
    return archive_response(provider)


@bp.get("/v1/TimeZone")
def time_zones() -> Response:
    value = [
        {
            "PrimaryKey": str(loc.location_id),
            "EntityName": "timezone",
            "tzLocationId": loc.location_id,
            "code": loc.code,
            "name": loc.name,
            "cities": loc.cities,
        }  # fmt: skip
        for loc in timezones.LOCATIONS
    ]
    return ok(
        {
            "odata.metadata": f"{api_base()}/archive/$metadata",
            "odata.nextLink": None,
            "value": value,
        }
    )


@bp.get("/v1/TimeZone/base")
def base_time_zone() -> Response:
    return ok(carriers.time_zone(timezones.by_iana(tenant().config.base_time_zone)))


@bp.get("/v1/TimeZone/current")
def current_time_zone() -> Response:
    loc = timezones.find(str(g.so_pres.zone)) or timezones.by_iana(tenant().config.base_time_zone)
    return ok(carriers.time_zone(loc))


# --- ForeignApp / ForeignKey ---------------------------------------------------------------------

FK_BASE = "/v1/ForeignApp/<app_name>/<device>/<device_id>/Key"
KeyId = tuple[str, str, str, str, str, int]  # app, device, device id, key, table, record id


@dataclasses.dataclass
class _KeyIndex:
    """A tenant's foreign keys by record, as the service's table index finds them (a scan of
    thousands per request made each stamp cost the simulator milliseconds, under the
    tenant's lock). Rebuilt when the list was replaced or changed size elsewhere."""

    keys: list[ForeignKeyRecord]
    size: int
    by_record: dict[KeyId, ForeignKeyRecord]


_KEY_INDEXES: dict[int, _KeyIndex] = {}  # by id() of the tenant's data


def _key_id(record: ForeignKeyRecord) -> KeyId:
    return (record.app, record.device, record.device_identifier, record.key, record.table,
            record.record_id)  # fmt: skip


def _key_index(data: Any) -> _KeyIndex:
    index = _KEY_INDEXES.get(id(data))
    if index is None or index.keys is not data.foreign_keys or index.size != len(index.keys):
        keys = data.foreign_keys
        index = _KeyIndex(keys, len(keys), {_key_id(k): k for k in keys})
        _KEY_INDEXES[id(data)] = index
    return index


def _find_key(
    app_name: str, device: str, device_id: str, key: str, table: str, **match: Any
) -> ForeignKeyRecord:
    if set(match) == {"record_id"}:
        wanted = (app_name, device, device_id, key, table.lower(), int(match["record_id"]))
        data = tenant()
        with data.lock:
            found = _key_index(data).by_record.get(wanted)
        if found is None:
            raise ApiError(404, "Foreign key not found")
        return found
    for record in tenant().foreign_keys:
        if (record.app, record.device, record.device_identifier, record.key, record.table) == (
            app_name,
            device,
            device_id,
            key,
            table.lower(),
        ) and all(getattr(record, k) == v for k, v in match.items()):
            return record
    raise ApiError(404, "Foreign key not found")


@bp.route(FK_BASE, methods=["PUT", "POST"])
def foreign_key_save(app_name: str, device: str, device_id: str) -> Response:
    body = writes.body_object(_body())
    table = str(body.get("TableName") or "").lower()
    if not body.get("Key") or not table or not body.get("RecordId"):
        raise ApiError(400, "Key, TableName and RecordId are required")
    data = tenant()
    with data.lock:
        now = utcnow()
        try:
            record = _find_key(
                app_name,
                device,
                device_id,
                str(body["Key"]),
                table,
                record_id=int(body["RecordId"]),
            )
            record.value, record.updated = str(body.get("Value") or ""), now
        except ApiError:
            record = ForeignKeyRecord(app_name, device, device_id, str(body["Key"]), str(body.get("Value") or ""),
                                      table, int(body["RecordId"]), now, now)  # fmt: skip
            index = _key_index(data)
            data.foreign_keys.append(record)
            index.by_record[_key_id(record)] = record
            index.size += 1
    return ok(carriers.foreign_key(record))


@bp.get(FK_BASE + "/<key>/<table>/<int:record_id>")
def foreign_key_get(
    app_name: str, device: str, device_id: str, key: str, table: str, record_id: int
) -> Response:
    return ok(
        carriers.foreign_key(
            _find_key(app_name, device, device_id, key, table, record_id=record_id)
        )
    )


@bp.delete(FK_BASE + "/<key>/<table>/<int:record_id>")
def foreign_key_delete(
    app_name: str, device: str, device_id: str, key: str, table: str, record_id: int
) -> Response:
    data = tenant()
    with data.lock:
        record = _find_key(app_name, device, device_id, key, table, record_id=record_id)
        index = _key_index(data)
        data.foreign_keys.remove(record)
        index.by_record.pop(_key_id(record), None)
        index.size -= 1
    return Response(status=204)


@bp.get(FK_BASE + "/<key>/<table>")
def foreign_key_by_value(
    app_name: str, device: str, device_id: str, key: str, table: str
) -> Response:
    value = request.args.get("Value", "")
    return ok(carriers.foreign_key(_find_key(app_name, device, device_id, key, table, value=value)))


# --- Webhook -------------------------------------------------------------------------------------


def _webhook(webhook_id: int) -> WebhookRecord:
    record = tenant().webhooks.get(webhook_id)
    if record is None:
        raise ApiError(404, f"Webhook id {webhook_id} not found")
    return record


def _webhook_json(record: WebhookRecord) -> dict[str, Any]:
    return carriers.webhook(tenant(), record, f"{api_base()}/Webhook/{record.webhook_id}")


def _check_target(record: WebhookRecord) -> None:
    """The target must be https (plain http only on loopback, for the demo) and answer a test
    POST with 200."""
    url = urlsplit(record.target_url)
    loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
    allow_http = loopback and current_app.config["SO_WEBHOOK_ALLOW_LOOPBACK_HTTP"]
    if url.scheme != "https" and not (url.scheme == "http" and allow_http):
        raise ApiError(400, "TargetUrl must use https")
    body = json.dumps({"EventId": "00000000-0000-0000-0000-000000000000", "Event": "test",
                       "WebhookName": record.name}).encode()  # fmt: skip
    error = sim().webhooks.post(record, "test", body)
    if error is not None:
        raise ApiError(400, f"Webhook target did not accept the test POST: {error}")


def _apply_webhook(record: WebhookRecord, body: dict[str, Any]) -> None:
    if "Name" in body:
        record.name = str(body["Name"] or "")
    if "Events" in body:
        record.events = [str(e) for e in body["Events"] or []]
    if "TargetUrl" in body:
        record.target_url = str(body["TargetUrl"] or "")
    if "Secret" in body:
        record.secret = str(body["Secret"] or "")
    if body.get("State") in ("Active", "Stopped"):
        record.state = body["State"]
        if record.state == "Active":
            record.consecutive_errors = 0  # "Restart" after TooManyErrors
    if isinstance(body.get("Headers"), dict):
        record.headers = {str(k): str(v) for k, v in body["Headers"].items()}
    if isinstance(body.get("Properties"), dict):
        record.properties = body["Properties"]
    if not record.events or not record.target_url:
        raise ApiError(400, "Events and TargetUrl are required")


@bp.get("/v1/Webhook")
def webhook_list() -> Response:
    data = tenant()
    return ok([carriers.webhook(data, w, None) for w in data.webhooks.values()])


@bp.get("/v1/Webhook/default")
def webhook_default() -> Response:
    now = utcnow()
    record = WebhookRecord(0, "", [], "", "", "Active", {}, {}, now, now, g.so_me.associate_id)
    return ok(carriers.webhook(tenant(), record, None))


@bp.post("/v1/Webhook")
def webhook_create() -> Response:
    body = writes.body_object(_body())
    data = tenant()
    now = utcnow()
    record = WebhookRecord(
        data.new_id(), "", [], "", "", "Active", {}, {}, now, now, g.so_me.associate_id
    )
    _apply_webhook(record, body)
    _check_target(record)
    with data.lock:
        data.webhooks[record.webhook_id] = record
    return ok(_webhook_json(record))


@bp.get("/v1/Webhook/<int:webhook_id>")
def webhook_get(webhook_id: int) -> Response:
    return ok(_webhook_json(_webhook(webhook_id)))


@bp.put("/v1/Webhook/<int:webhook_id>")
def webhook_put(webhook_id: int) -> Response:
    body = writes.body_object(_body())
    data = tenant()
    with data.lock:
        current = _webhook(webhook_id)
        changed = dataclasses.replace(current)
        _apply_webhook(changed, body)
    if changed.target_url != current.target_url:
        _check_target(changed)  # outside the lock: the target may call the API back
    with data.lock:
        vars(current).update(vars(changed), updated=utcnow())
    return ok(_webhook_json(current))


@bp.delete("/v1/Webhook/<int:webhook_id>")
def webhook_delete(webhook_id: int) -> Response:
    data = tenant()
    with data.lock:
        _webhook(webhook_id)
        del data.webhooks[webhook_id]
    return Response(status=204)


@bp.post("/v1/Webhook/Test")
def webhook_test() -> Response:
    body = writes.body_object(_body())
    now = utcnow()
    record = WebhookRecord(
        0, "", ["test"], "", "", "Active", {}, {}, now, now, g.so_me.associate_id
    )
    try:
        _apply_webhook(record, {**body, "Events": body.get("Events") or ["test"]})
        _check_target(record)
    except ApiError as exc:
        return ok({"Success": False, "Message": exc.message})
    return ok({"Success": True, "Message": "OK"})


@bp.get("/v1/Webhook/<int:webhook_id>/LastError")
def webhook_last_error(webhook_id: int) -> Response:
    return ok(_webhook(webhook_id).last_error)
