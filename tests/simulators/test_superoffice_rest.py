"""The SuperOffice simulator's REST API: auth, OData, CRUD, concurrency headers, SO-TimeZone."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.http import http_date

from tests.fixtures.superoffice import ADMIN, ONSITE, SO_ANCHOR, USER, basic


def odata(
    client: FlaskClient, path: str, headers: dict[str, str] = ADMIN, **options: Any
) -> list[dict[str, Any]]:
    query = {f"${k}": v for k, v in options.items()}
    response = client.get(f"{ONSITE}/{path}", headers=headers, query_string=query)
    assert response.status_code == 200, response.json
    return response.json["value"]  # type: ignore[no-any-return]


def error_of(response: Any) -> str:
    body = response.json
    assert body["Error"] is True and body["ErrorSource"]
    return str(body["ErrorType"])


# --- authentication (Onsite) ---------------------------------------------------------------------


def test_basic_credentials_give_the_current_principal(so_client: FlaskClient) -> None:
    response = so_client.get(f"{ONSITE}/User/currentPrincipal", headers=ADMIN)
    assert response.status_code == 200
    body = response.json
    assert (body["UserName"], body["FullName"], body["EMailAddress"]) == (
        "ALICE",
        "Alice Andersen",
        "alice@adatum.example",
    )
    assert body["RoleName"] == "General Administrator"
    assert so_client.get(f"{ONSITE}/User/currentPrincipal", headers=USER).json["RoleName"] == "User"


@pytest.mark.parametrize(
    "headers",
    [
        basic("ALICE", "wrong"),
        basic("NOBODY"),
        {},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer nope"},
    ],
)
def test_bad_credentials_are_401_with_the_error_json(
    so_client: FlaskClient, headers: dict[str, str]
) -> None:
    response = so_client.get(f"{ONSITE}/User/currentPrincipal", headers=headers)
    assert response.status_code == 401
    assert error_of(response) == "SoAuthenticationException"
    assert "Basic" in response.headers["WWW-Authenticate"]


def test_login_names_and_emails_are_case_insensitive(so_client: FlaskClient) -> None:
    assert (
        so_client.get(
            f"{ONSITE}/User/currentPrincipal", headers=basic("alice@adatum.example")
        ).status_code
        == 200
    )


def test_unknown_tenant_is_404(so_client: FlaskClient) -> None:
    response = so_client.get("/Cust00000/api/v1/User/currentPrincipal", headers=ADMIN)
    assert response.status_code == 404 and error_of(response) == "SoNotFoundException"


def test_version_endpoint_needs_no_credentials(so_client: FlaskClient) -> None:
    body = so_client.get("/SuperOffice/api").json
    assert body["NetServerVersion"] == "10.3.5" and body["ServicesCurrent"] == "Services88"


# --- OData lists ---------------------------------------------------------------------------------


def test_select_returns_exactly_the_columns_asked(so_client: FlaskClient) -> None:
    rows = odata(
        so_client, "Appointment", select="appointmentId,appointment/title,associateId", top=3
    )
    assert len(rows) == 3
    assert all(
        set(r) == {"PrimaryKey", "EntityName", "appointmentId", "appointment/title", "associateId"}
        for r in rows
    )
    # slim rows carry the primary key as text
    assert all(
        r["EntityName"] == "appointment" and r["PrimaryKey"] == str(r["appointmentId"])
        for r in rows
    )


def test_filter_on_associate_and_order_and_paging(so_client: FlaskClient) -> None:
    megan = so_client.get(f"{ONSITE}/User/currentPrincipal", headers=USER).json["AssociateId"]
    everything = odata(
        so_client,
        "Appointment",
        select="appointmentId,associateId,date",
        filter=f"associateId associateIsOneOf ({megan})",
        orderBy="date desc,appointmentId",
    )
    assert everything and {r["associateId"] for r in everything} == {megan}
    dates = [r["date"] for r in everything]
    assert dates == sorted(dates, reverse=True)
    first = odata(
        so_client,
        "Appointment",
        select="appointmentId",
        filter=f"associateId associateIsOneOf ({megan})",
        orderBy="date desc,appointmentId",
        top=5,
    )
    second = odata(
        so_client,
        "Appointment",
        select="appointmentId",
        filter=f"associateId associateIsOneOf ({megan})",
        orderBy="date desc,appointmentId",
        top=5,
        skip=5,
    )
    assert [r["appointmentId"] for r in first + second] == [
        r["appointmentId"] for r in everything[:10]
    ]
    mine = odata(
        so_client,
        "Appointment",
        headers=USER,
        select="appointmentId",
        filter="associateId currentAssociate",
    )
    assert {r["appointmentId"] for r in mine} == {r["appointmentId"] for r in everything}


def test_filter_on_updated_date_finds_changes_since(so_client: FlaskClient) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None) - dt.timedelta(seconds=1)
    # not a meeting: a meeting's change is written to each participant's booking row too
    target = odata(
        so_client, "Appointment", select="appointmentId", filter="booking set false", top=1
    )[0]["appointmentId"]
    assert (
        so_client.put(
            f"{ONSITE}/Appointment/{target}", headers=ADMIN, json={"Title": "Changed"}
        ).status_code
        == 200
    )
    changed = odata(
        so_client,
        "Appointment",
        select="appointmentId,updatedDate",
        filter=f"updatedDate afterTime '{before.isoformat()}'",
    )
    assert [r["appointmentId"] for r in changed] == [target]
    # `after` compares whole days: nothing was updated after today
    assert (
        odata(so_client, "Appointment", filter=f"updatedDate after '{before.date().isoformat()}'")
        == []
    )


def test_filter_operators(so_client: FlaskClient) -> None:
    week = odata(
        so_client,
        "Appointment",
        select="date,appointment/title",
        filter=f"date between ('{SO_ANCHOR}', '{SO_ANCHOR + dt.timedelta(days=6)}')",
    )
    assert week and all(
        SO_ANCHOR.isoformat() <= r["date"][:10] <= str(SO_ANCHOR + dt.timedelta(days=6))
        for r in week
    )
    titled = odata(
        so_client,
        "Appointment",
        select="appointment/title",
        filter="appointment/title begins 'Weekly' and not (appointment/title contains 'moved')",
    )
    assert titled and all(r["appointment/title"] == "Weekly sales meeting" for r in titled)
    either = odata(
        so_client,
        "Person",
        select="firstName",
        filter="firstName eq 'Ingrid' or firstName eq 'Kim'",
    )
    assert {r["firstName"] for r in either} == {"Ingrid", "Kim"}
    assert (
        odata(so_client, "Person", select="lastName", filter="startswith(lastName,'Ngu')")[0][
            "lastName"
        ]
        == "Nguyen"
    )
    assert (
        odata(
            so_client,
            "Contact",
            select="name",
            filter="contactId between (700, 702)",
            orderBy="name",
        )[0]["name"]
        == "Bergen Shipping AS"
    )
    recurring = odata(
        so_client, "Appointment", select="recurring,recurrenceRuleId", filter="recurring set true"
    )
    assert recurring and all(r["recurrenceRuleId"] for r in recurring)


@pytest.mark.parametrize(
    "options",
    [{"filter": "nosuch eq 1"}, {"filter": "appointment/title eq"},
     {"filter": "appointment/title gt 'x'"}, {"select": "nosuch"}, {"top": "-1"},
     {"orderBy": "nosuch"}, {"orderBy": "date sideways"}, {"filter": "date after 'not a date'"}],
)  # fmt: skip
def test_bad_query_options_are_400(so_client: FlaskClient, options: dict[str, str]) -> None:
    query = {f"${k}": v for k, v in options.items()}
    response = so_client.get(f"{ONSITE}/Appointment", headers=ADMIN, query_string=query)
    assert response.status_code == 400 and error_of(response) == "SoArgumentException"


@pytest.mark.parametrize(
    ("path", "column"),
    [("Appointment", "title"), ("Appointment", "allDay"), ("Appointment", "private"),
     ("Appointment", "associate/name"), ("Person", "updatedDate"), ("Person", "registeredDate"),
     ("Person", "isAssociate"), ("Contact", "domain"), ("User", "name")],
)  # fmt: skip
@pytest.mark.parametrize("option", ["select", "filter", "orderBy"])
def test_columns_the_archive_does_not_document_are_refused(
    so_client: FlaskClient, path: str, column: str, option: str
) -> None:
    value = {"select": column, "filter": f"{column} isNot ''", "orderBy": column}[option]
    response = so_client.get(f"{ONSITE}/{path}", headers=ADMIN, query_string={f"${option}": value})
    assert response.status_code == 400 and error_of(response) == "SoArgumentException"
    assert "Unknown column" in response.json["ErrorMessage"]


def test_documented_columns_without_simulated_data_say_so(so_client: FlaskClient) -> None:
    response = so_client.get(
        f"{ONSITE}/Appointment", headers=ADMIN, query_string={"$select": "priority"}
    )
    assert response.status_code == 400 and "documented" in response.json["ErrorMessage"]


def test_every_column_the_simulator_fills_is_documented() -> None:
    from simulators.superoffice import archives

    for provider in {p.name: p for p in archives.PROVIDERS.values()}.values():
        assert provider.served <= set(provider.columns), provider.name
    documented = archives.documented()
    # the documented names the issue lists, with their restriction types
    assert documented["FindAppointment"]["appointment/title"] == ("positiveString", True)
    assert documented["FindAppointment"]["visibleFor"] == ("listAny", False)
    assert documented["Person"]["personUpdatedDate"] == ("date", True)
    assert documented["Person"]["personRegisteredDate"] == ("date", True)
    assert "title" not in documented["FindAppointment"]


@pytest.mark.parametrize(
    "expression",
    ["associateId eq 700", "recurring eq 1", "date gt '2026-03-10'", "date afterOrEqual '2026-03-10'",
     "date yesterday", "visibleFor eq 'All'", "time eq '10:00'", "startswith(associateId, '7')"],
)  # fmt: skip
def test_operators_follow_the_column_restriction(so_client: FlaskClient, expression: str) -> None:
    response = so_client.get(
        f"{ONSITE}/Appointment", headers=ADMIN, query_string={"$filter": expression}
    )
    assert response.status_code == 400 and error_of(response) == "SoArgumentException"


@pytest.mark.parametrize(
    "expression",
    ["date beforeOrEqual '2026-03-10'", "date dateBetween ('2026-03-01', '2026-03-31')",
     "date thisYear", "date beforeToday", "date nextQuarter", "associateId associateIsNotOneOf (1)",
     "recurring set false", "contactId equals 700", "appointmentId = 5", "appointmentId unequals 5",
     "appointment/title in ('Lunch', 'Doctor')", "appointment/title between ('A', 'M')"],
)  # fmt: skip
def test_documented_operators_are_accepted(so_client: FlaskClient, expression: str) -> None:
    response = so_client.get(
        f"{ONSITE}/Appointment", headers=ADMIN, query_string={"$filter": expression}
    )
    assert response.status_code == 200, response.json


def test_date_literals_with_offsets_are_converted(so_client: FlaskClient) -> None:
    aid = new_appointment(so_client, Title="Offsets")["AppointmentId"]  # 10:00 Amsterdam, CET

    def hits(expression: str, headers: dict[str, str] = ADMIN) -> bool:
        rows = odata(so_client, "Appointment", headers=headers, select="appointmentId",
                     filter=f"appointment/title eq 'Offsets' and {expression}")  # fmt: skip
        return [r["appointmentId"] for r in rows] == [aid]

    assert hits("date dateTime '2026-03-10T10:00:00'")  # no offset: the request's zone
    assert hits("date dateTime '2026-03-10T09:00:00Z'")  # the same moment in UTC
    assert hits("date dateTime '2026-03-10T04:00:00-05:00'")
    assert not hits("date dateTime '2026-03-10T10:00:00+00:00'")  # an hour later
    assert hits("date dateTime '2026-03-10T09:00:00'", {"SO-TimeZone": "UTC", **ADMIN})
    # whole days are taken in the column's zone: 23:30 in New York is the next day in Amsterdam
    assert hits("date date '2026-03-09T23:30:00-05:00'")
    assert not hits("date date '2026-03-10T23:30:00-05:00'")
    # UTC columns: an offset is converted, a time without one is UTC
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)
    in_oslo = later.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    assert not hits(f"updatedDate afterTime '{in_oslo}'")
    earlier = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).replace(microsecond=0)
    assert hits(
        f"updatedDate afterTime '{earlier.astimezone(dt.timezone(dt.timedelta(hours=5))).isoformat()}'"
    )
    assert hits(f"updatedDate afterTime '{earlier.replace(tzinfo=None).isoformat()}'")


def test_paging_is_the_clients_and_pages_are_computed_afresh(so_client: FlaskClient) -> None:
    query = {"$select": "appointmentId,date", "$orderBy": "date,appointmentId", "$top": "5"}
    first = so_client.get(f"{ONSITE}/Appointment", headers=ADMIN, query_string=query).json
    assert first["odata.nextLink"] is None  # the service never hands out a next link
    assert len(first["value"]) == 5
    # a row that sorts before the page boundary, added between two requests, shifts the pages
    new_appointment(so_client, StartDate="2000-01-03T10:00:00", EndDate="2000-01-03T11:00:00")
    second = so_client.get(
        f"{ONSITE}/Appointment", headers=ADMIN, query_string={**query, "$skip": "5"}
    ).json["value"]
    assert second[0]["appointmentId"] == first["value"][-1]["appointmentId"]
    refused = so_client.get(
        f"{ONSITE}/Appointment", headers=ADMIN, query_string={"$orderBy": "visibleFor"}
    )
    assert refused.status_code == 400  # visibleFor is not orderable


def test_users_archive_lists_users_with_their_email(so_client: FlaskClient) -> None:
    rows = odata(so_client, "User", select="userName,personEmail,role", orderBy="userName")
    assert [(r["userName"], r["personEmail"]) for r in rows][:2] == [
        ("ALICE", "alice@adatum.example"),
        ("BOB", "bob@adatum.example"),
    ]
    assert odata(
        so_client,
        "Archive/AllUsers",
        select="userName",
        filter="role equals 'General Administrator'",
    ) == [{"PrimaryKey": "700", "EntityName": "associate", "userName": "ALICE"}]


# --- the calendar as seeded ----------------------------------------------------------------------


def test_recurring_series_has_exceptions(so_client: FlaskClient) -> None:
    rows = odata(
        so_client,
        "Appointment",
        select="appointmentId,date,appointment/title,recurrenceRuleId",
        filter="appointment/title begins 'Weekly sales' and associateId associateIsOneOf (700)",
        orderBy="date",
    )
    assert len(rows) == 29  # 30 weekly occurrences of ALICE's, one deleted
    assert len({r["recurrenceRuleId"] for r in rows}) == 1
    moved = [r for r in rows if r["appointment/title"].endswith("(moved)")]
    assert len(moved) == 1 and moved[0]["date"].endswith("T10:30:00")
    assert str(SO_ANCHOR + dt.timedelta(days=21)) not in {r["date"][:10] for r in rows}
    entity = so_client.get(f"{ONSITE}/Appointment/{rows[0]['appointmentId']}", headers=ADMIN).json
    assert entity["Recurrence"]["IsRecurrence"] is True
    assert (
        entity["Recurrence"]["Pattern"] == "Weekly"
        and entity["Recurrence"]["WeekPattern"]["Weekdays"] == "Monday"
    )
    assert len(entity["Recurrence"]["Dates"]) == 29


def test_weekly_series_keeps_local_time_across_dst(so_client: FlaskClient) -> None:
    rows = odata(
        so_client,
        "Appointment",
        select="date,appointment/title",
        filter="appointment/title eq 'Weekly sales meeting'",
    )
    assert {r["date"][11:] for r in rows} == {"08:30:00"}  # Amsterdam wall-clock time all year
    utc = {"SO-TimeZone": "UTC", **ADMIN}
    utc_rows = odata(
        so_client,
        "Appointment",
        headers=utc,
        select="date",
        filter="appointment/title eq 'Weekly sales meeting'",
    )
    assert {r["date"][11:] for r in utc_rows} == {"07:30:00", "06:30:00"}  # CET and CEST


def test_private_appointments_are_hidden_from_others(so_client: FlaskClient) -> None:
    private = odata(
        so_client,
        "Appointment",
        select="appointmentId,visibleFor",
        filter="visibleFor equals 'Associate'",
    )
    assert private
    target = private[0]["appointmentId"]
    assert (
        so_client.get(f"{ONSITE}/Appointment/{target}", headers=ADMIN).json["VisibleFor"][0][
            "Visibility"
        ]
        == "Associate"
    )
    assert so_client.get(f"{ONSITE}/Appointment/{target}", headers=USER).status_code == 404
    assert target not in {
        r["appointmentId"]
        for r in odata(so_client, "Appointment", headers=USER, select="appointmentId")
    }


def test_all_day_and_multi_day_items(so_client: FlaskClient) -> None:
    (row,) = odata(
        so_client,
        "Appointment",
        select="appointmentId,date,endDate",
        filter="appointment/title eq 'Company offsite'",
    )
    # the archive has no all-day column: the entity tells
    entity = so_client.get(f"{ONSITE}/Appointment/{row['appointmentId']}", headers=ADMIN).json
    assert (
        entity["IsAlldayEvent"] is True
        and row["date"].endswith("T00:00:00")
        and row["endDate"].endswith("T00:00:00")
    )
    assert (
        dt.datetime.fromisoformat(row["endDate"]) - dt.datetime.fromisoformat(row["date"])
    ).days == 3


# --- CRUD, 412 and 304 ---------------------------------------------------------------------------


def new_appointment(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    body = {"Title": "Planning", "StartDate": "2026-03-10T10:00:00", "EndDate": "2026-03-10T11:00:00",
            "Contact": {"ContactId": 700}, **fields}  # fmt: skip
    response = client.post(f"{ONSITE}/Appointment", headers=ADMIN, json=body)
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def test_create_read_update_delete_an_appointment(so_client: FlaskClient) -> None:
    created = new_appointment(
        so_client, Participants=[{"PersonId": 7000}, {"EmailAddress": "x@outside.example"}]
    )
    aid = created["AppointmentId"]
    assert (
        created["Contact"]["Name"] == "Bergen Shipping AS"
        and created["Associate"]["Name"] == "ALICE"
    )
    assert created["_Links"]["Self"].endswith(f"/SuperOffice/api/v1/Appointment/{aid}")
    assert [p["EmailAddress"] for p in created["Participants"]] == ["", "x@outside.example"]
    got = so_client.get(f"{ONSITE}/Appointment/{aid}", headers=ADMIN)
    assert got.json["StartDate"] == "2026-03-10T10:00:00" and "Last-Modified" in got.headers
    updated = so_client.put(
        f"{ONSITE}/Appointment/{aid}",
        headers=ADMIN,
        json={**got.json, "Title": "Planning v2", "Private": "PrivateUser"},
    )
    assert updated.status_code == 200 and updated.json["Title"] == "Planning v2"
    assert updated.json["VisibleFor"][0]["Visibility"] == "Associate"
    patched = so_client.patch(
        f"{ONSITE}/Appointment/{aid}",
        headers=ADMIN,
        json=[{"op": "replace", "path": "/Location", "value": "Room 4"}],
    )
    assert patched.json["Location"] == "Room 4" and patched.json["Title"] == "Planning v2"
    merge = so_client.patch(f"{ONSITE}/Appointment/{aid}", headers=ADMIN, json={"IsFree": True})
    assert merge.json["IsFree"] is True
    assert so_client.delete(f"{ONSITE}/Appointment/{aid}", headers=ADMIN).status_code == 204
    gone = so_client.get(f"{ONSITE}/Appointment/{aid}", headers=ADMIN)
    assert gone.status_code == 404 and error_of(gone) == "SoNotFoundException"


@pytest.mark.parametrize(
    "body",
    [{}, {"StartDate": "2026-03-10T10:00:00", "EndDate": "2026-03-10T09:00:00"}, {"StartDate": "tuesday"},
     {"Contact": {"ContactId": 99999}}, {"Private": "Secret"}],
)  # fmt: skip
def test_invalid_appointments_are_400(so_client: FlaskClient, body: dict[str, Any]) -> None:
    response = so_client.post(f"{ONSITE}/Appointment", headers=ADMIN, json=body)
    assert response.status_code == 400 and error_of(response) == "SoArgumentException"


def test_if_unmodified_since_gives_412_after_a_change(so_client: FlaskClient) -> None:
    aid = new_appointment(so_client)["AppointmentId"]
    long_ago = {"If-Unmodified-Since": http_date(dt.datetime(2020, 1, 1, tzinfo=dt.UTC)), **ADMIN}
    later = {
        "If-Unmodified-Since": http_date(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)),
        **ADMIN,
    }
    refused = so_client.put(
        f"{ONSITE}/Appointment/{aid}", headers=long_ago, json={"Title": "Lost update"}
    )
    assert refused.status_code == 412 and error_of(refused) == "SoPreconditionFailedException"
    assert so_client.get(f"{ONSITE}/Appointment/{aid}", headers=ADMIN).json["Title"] == "Planning"
    assert so_client.delete(f"{ONSITE}/Appointment/{aid}", headers=long_ago).status_code == 412
    assert (
        so_client.put(
            f"{ONSITE}/Appointment/{aid}", headers=later, json={"Title": "Fine"}
        ).status_code
        == 200
    )
    assert so_client.delete(f"{ONSITE}/Appointment/{aid}", headers=later).status_code == 204


def test_if_modified_since_gives_304(so_client: FlaskClient) -> None:
    aid = new_appointment(so_client)["AppointmentId"]
    later = {
        "If-Modified-Since": http_date(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)),
        **ADMIN,
    }
    assert so_client.get(f"{ONSITE}/Appointment/{aid}", headers=later).status_code == 304


def test_creating_a_recurring_appointment_makes_one_row_per_occurrence(
    so_client: FlaskClient,
) -> None:
    recurrence = {"IsRecurrence": True, "Pattern": "Weekly", "WeekPattern": {"Weekdays": "Tuesday", "Cycle": 1},
                  "RecurrenceEndType": "Counter", "RecurrenceCounter": 4}  # fmt: skip
    first = new_appointment(so_client, Title="Series", Recurrence=recurrence)
    assert (
        first["Recurrence"]["IsRecurrence"] is True
        and first["Recurrence"]["RecurrenceCounter"] == 4
    )
    rows = odata(
        so_client,
        "Appointment",
        select="date,recurrenceRuleId",
        filter="appointment/title eq 'Series'",
        orderBy="date",
    )
    assert [r["date"][:10] for r in rows] == [
        "2026-03-10",
        "2026-03-17",
        "2026-03-24",
        "2026-03-31",
    ]
    # the wall-clock time stays 10:00 across the DST change of 29 March
    assert {r["date"][11:] for r in rows} == {"10:00:00"}


def test_person_and_contact_crud(so_client: FlaskClient) -> None:
    company = so_client.post(
        f"{ONSITE}/Contact",
        headers=ADMIN,
        json={"Name": "Delft Dynamics", "Domains": ["delft.example"]},
    )
    assert company.status_code == 200
    cid = company.json["ContactId"]
    person = so_client.post(f"{ONSITE}/Person", headers=ADMIN, json={
        "Firstname": "Eva", "Lastname": "Jansen", "Contact": {"ContactId": cid},
        "Emails": [{"Value": "eva@delft.example"}], "MobilePhones": [{"Value": "+31 6 1234 5678"}]})  # fmt: skip
    assert person.status_code == 200 and person.json["Contact"]["Name"] == "Delft Dynamics"
    pid = person.json["PersonId"]
    assert person.json["Emails"][0]["Value"] == "eva@delft.example"
    assert person.json["MobilePhones"][0]["StrippedValue"] == "+310612345678".replace("0612", "612")
    changed = so_client.put(
        f"{ONSITE}/Person/{pid}", headers=ADMIN, json={"Position": {"Value": "CTO"}}
    )
    assert changed.json["Position"]["Value"] == "CTO"
    listed = odata(so_client, f"Contact/{cid}/Persons", select="fullName,email/emailAddress")
    assert listed == [
        {
            "PrimaryKey": str(pid),
            "EntityName": "person",
            "fullName": "Eva Jansen",
            "email/emailAddress": "eva@delft.example",
        }
    ]
    # deleting the company soft-deletes its persons with it
    assert so_client.delete(f"{ONSITE}/Contact/{cid}", headers=ADMIN).status_code == 204
    assert so_client.get(f"{ONSITE}/Person/{pid}", headers=ADMIN).status_code == 404
    assert so_client.get(f"{ONSITE}/Contact/{cid}", headers=ADMIN).status_code == 404


def test_whose_persons_by_the_company_and_by_their_own_our_contact(so_client: FlaskClient) -> None:
    """`personContact/associateId` is the company's our-contact, `personAssociateId` the
    person's own (PersonEntity.Associate, set by a POST or PUT)."""
    company = so_client.post(f"{ONSITE}/Contact", headers=ADMIN,
                             json={"Name": "Bob's customer", "Associate": {"AssociateId": 701}})  # fmt: skip
    cid = company.json["ContactId"]
    staff = so_client.post(f"{ONSITE}/Person", headers=ADMIN,
                           json={"Firstname": "Ann", "Contact": {"ContactId": cid}})  # fmt: skip
    alone = so_client.post(f"{ONSITE}/Person", headers=ADMIN,
                           json={"Firstname": "Solo", "Associate": {"AssociateId": 701}})  # fmt: skip
    assert alone.json["Associate"]["AssociateId"] == 701 and alone.json["Contact"] is None
    assert staff.json["Associate"] is None
    rows = odata(so_client, "Person", select="personContact/associateId,personAssociateId",
                 filter="personContact/associateId associateIsOneOf (701) or "
                 "personAssociateId associateIsOneOf (701)")  # fmt: skip
    assert {r["PrimaryKey"]: (r["personContact/associateId"], r["personAssociateId"]) for r in rows} == {
        str(staff.json["PersonId"]): (701, 0), str(alone.json["PersonId"]): (0, 701)}  # fmt: skip
    moved = so_client.put(f"{ONSITE}/Person/{alone.json['PersonId']}", headers=ADMIN,
                          json={"Associate": {"AssociateId": 700}})  # fmt: skip
    assert moved.json["Associate"]["AssociateId"] == 700
    bad = so_client.put(f"{ONSITE}/Person/{alone.json['PersonId']}", headers=ADMIN,
                        json={"Associate": {"AssociateId": 999}})  # fmt: skip
    assert bad.status_code == 400


def test_a_static_selections_person_members_are_listed(so_client: FlaskClient) -> None:
    state = {"tenants": {"SuperOffice": {"selections": [
        {"selection_id": 9000, "name": "Newsletter", "associate_id": 700, "person_ids": [7000, 7004]},
        {"selection_id": 9001, "name": "Other", "associate_id": 700, "person_ids": [7002]},
    ]}}}  # fmt: skip
    assert so_client.post("/_sim/state", json=state).status_code == 204
    rows = odata(so_client, "Archive/ContactPersonStaticSelectionV2", filter="selectionId eq 9000",
                 select="personId,firstName,name,personEmail/emailAddress", orderBy="personId")  # fmt: skip
    assert [(r["personId"], r["name"]) for r in rows] == [
        (7000, "Bergen Shipping AS"), (7004, "Boston Analytics Inc")]  # fmt: skip
    assert rows[0]["personEmail/emailAddress"] == "ingrid.berg@bergenshipping.example"
    # the Person archive's names for the person's e-mail are not this provider's
    wrong = so_client.get(f"{ONSITE}/Archive/ContactPersonStaticSelectionV2", headers=ADMIN,
                          query_string={"$select": "email/emailAddress,personContact/name"})  # fmt: skip
    assert wrong.status_code == 400
    # a soft-deleted person leaves every list, selections included
    assert so_client.delete(f"{ONSITE}/Person/7004", headers=ADMIN).status_code == 204
    rows = odata(so_client, "Archive/ContactPersonStaticSelectionV2", filter="selectionId eq 9000",
                 select="personId")  # fmt: skip
    assert [r["personId"] for r in rows] == [7000]


def test_entity_select_nulls_out_other_fields(so_client: FlaskClient) -> None:
    body = so_client.get(
        f"{ONSITE}/Person/7000", headers=ADMIN, query_string={"$select": "Firstname"}
    ).json
    assert body["Firstname"] == "Ingrid" and body["Lastname"] is None and body["PersonId"] is None


# --- SO-TimeZone ---------------------------------------------------------------------------------


def test_dates_follow_the_so_timezone_header(so_client: FlaskClient) -> None:
    aid = new_appointment(so_client)["AppointmentId"]  # 10:00 Amsterdam (CET, +01:00)
    url = f"{ONSITE}/Appointment/{aid}"
    assert so_client.get(url, headers=ADMIN).json["StartDate"] == "2026-03-10T10:00:00"
    assert (
        so_client.get(url, headers={"SO-TimeZone": "US-NY", **ADMIN}).json["StartDate"]
        == "2026-03-10T05:00:00"
    )
    body = so_client.get(url, headers={"SO-TimeZone": "UTC, includeTZOffset", **ADMIN}).json
    assert body["StartDate"] == "2026-03-10T09:00:00+00:00"
    assert (
        body["UpdatedDate"].count(":") == 2 and "+" not in body["UpdatedDate"]
    )  # always UTC, no offset
    # a date sent with SO-TimeZone is read in that zone; an explicit offset wins
    so_client.put(
        url,
        headers={"SO-TimeZone": "UTC", **ADMIN},
        json={"StartDate": "2026-03-10T12:00:00", "EndDate": "2026-03-10T13:00:00+01:00"},
    )
    stored = so_client.get(url, headers=ADMIN).json
    assert (stored["StartDate"], stored["EndDate"]) == (
        "2026-03-10T13:00:00",
        "2026-03-10T13:00:00",
    )
    assert so_client.get(url, headers={"SO-TimeZone": "Mars/Olympus", **ADMIN}).status_code == 400
    assert so_client.get(f"{ONSITE}/TimeZone/base", headers=ADMIN).json["TZLocationCode"] == "NL"


# --- ForeignKey ----------------------------------------------------------------------------------


def test_foreign_keys_store_correlation_ids(so_client: FlaskClient) -> None:
    aid = new_appointment(so_client)["AppointmentId"]
    base = f"{ONSITE}/ForeignApp/Synchronizer/graph/tenant-1/Key"
    saved = so_client.put(
        base,
        headers=ADMIN,
        json={"Key": "eventId", "Value": "AAMkAD=", "TableName": "appointment", "RecordId": aid},
    )
    assert saved.status_code == 200 and saved.json["Value"] == "AAMkAD="
    again = so_client.post(
        base,
        headers=ADMIN,
        json={"Key": "eventId", "Value": "AAMkAE=", "TableName": "appointment", "RecordId": aid},
    )
    assert again.json["Value"] == "AAMkAE="
    assert (
        so_client.get(f"{base}/eventId/appointment/{aid}", headers=ADMIN).json["Value"] == "AAMkAE="
    )
    found = so_client.get(
        f"{base}/eventId/appointment", headers=ADMIN, query_string={"Value": "AAMkAE="}
    )
    assert found.json["RecordId"] == aid
    assert so_client.get(f"{ONSITE}/Appointment/{aid}/ForeignKey", headers=ADMIN).json == {
        "Synchronizer.graph.eventId": "AAMkAE="
    }
    assert so_client.delete(f"{base}/eventId/appointment/{aid}", headers=ADMIN).status_code == 204
    assert so_client.get(f"{base}/eventId/appointment/{aid}", headers=ADMIN).status_code == 404


def test_foreign_keys_are_found_by_record_among_thousands_and_after_every_change(
    so_client: FlaskClient,
) -> None:
    """SuperOffice finds a record's foreign key through its table's index: among 6,000 keys
    a lookup costs what it costs among ten (mistake: a scan of every key per request, which
    made each stamp of a 5,000-item sync cost milliseconds more under the tenant's lock).
    The index follows every change: a key saved, changed, deleted, its appointment deleted,
    the table replaced."""
    base = f"{ONSITE}/ForeignApp/Synchronizer/graph/tenant-1/Key"
    stamp = "2026-03-01T00:00:00"
    many = [{"app": "Synchronizer", "device": "graph", "device_identifier": "tenant-1",
             "key": "eventId", "value": f"v{n}", "table": "appointment", "record_id": 90000 + n,
             "created": stamp, "updated": stamp} for n in range(6000)]  # fmt: skip
    tenant = ONSITE.split("/")[1]
    assert (
        so_client.post(
            "/_sim/state", json={"tenants": {tenant: {"foreign_keys": many}}}
        ).status_code
        == 204
    )
    started = time.monotonic()
    for n in range(5700, 6000):
        found = so_client.get(f"{base}/eventId/appointment/{90000 + n}", headers=ADMIN)
        assert found.json["Value"] == f"v{n}"
    assert time.monotonic() - started < 300 * 0.005  # a scan of 6,000 takes longer each
    aid = new_appointment(so_client)["AppointmentId"]
    for value in ("one", "two"):
        body = {"Key": "eventId", "Value": value, "TableName": "appointment", "RecordId": aid}
        assert so_client.put(base, headers=ADMIN, json=body).status_code == 200
        assert (
            so_client.get(f"{base}/eventId/appointment/{aid}", headers=ADMIN).json["Value"] == value
        )
    assert so_client.delete(f"{base}/eventId/appointment/90000", headers=ADMIN).status_code == 204
    assert so_client.get(f"{base}/eventId/appointment/90000", headers=ADMIN).status_code == 404
    assert so_client.delete(f"{ONSITE}/Appointment/{aid}", headers=ADMIN).status_code == 204
    assert so_client.get(f"{base}/eventId/appointment/{aid}", headers=ADMIN).status_code == 404
    replaced = [dict(many[1], value="new")]
    assert (
        so_client.post(
            "/_sim/state", json={"tenants": {tenant: {"foreign_keys": replaced}}}
        ).status_code
        == 204
    )
    assert so_client.get(f"{base}/eventId/appointment/90001", headers=ADMIN).json["Value"] == "new"
    assert so_client.get(f"{base}/eventId/appointment/90002", headers=ADMIN).status_code == 404


# --- control API: faults, stats, state -----------------------------------------------------------


def test_stats_count_requests_per_endpoint(so_client: FlaskClient) -> None:
    so_client.delete("/_sim/stats")
    for _ in range(3):
        odata(so_client, "Appointment", select="appointmentId", top=1)
    so_client.get(f"{ONSITE}/Person/7000", headers=ADMIN)
    stats = so_client.get("/_sim/stats").json
    assert stats["total"] == 4
    assert stats["endpoints"] == {
        "GET /<tenant_id>/api/v1/Appointment": 3,
        "GET /<tenant_id>/api/v1/Person/<int:person_id>": 1,
    }


def test_status_fault_has_superoffice_error_body_and_retry_after(so_client: FlaskClient) -> None:
    so_client.post(
        "/_sim/faults",
        json={
            "kind": "status",
            "status": 429,
            "retry_after": 7,
            "path": "/Appointment$",
            "count": 2,
        },
    )
    for _ in range(2):
        response = so_client.get(f"{ONSITE}/Appointment", headers=ADMIN)
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"
        assert error_of(response) == "SoTooManyRequestsException"
    assert so_client.get(f"{ONSITE}/Appointment", headers=ADMIN).status_code == 200


def test_token_expired_fault_rejects_valid_credentials_once(so_client: FlaskClient) -> None:
    so_client.post("/_sim/faults", json={"kind": "token_expired"})
    assert so_client.get(f"{ONSITE}/User/currentPrincipal", headers=ADMIN).status_code == 401
    assert so_client.get(f"{ONSITE}/User/currentPrincipal", headers=ADMIN).status_code == 200


def test_state_export_and_replace(so_client: FlaskClient) -> None:
    state = so_client.get("/_sim/state").json
    onsite = state["tenants"]["SuperOffice"]
    assert (
        onsite["kind"] == "onsite" and len(onsite["associates"]) == 5
    )  # four users and the system user
    kept = [a for a in onsite["appointments"] if a["title"] == "Doctor"]
    assert (
        so_client.post(
            "/_sim/state", json={"tenants": {"SuperOffice": {"appointments": kept}}}
        ).status_code
        == 204
    )
    rows = odata(so_client, "Appointment", select="appointment/title")
    assert [r["appointment/title"] for r in rows] == ["Doctor"]
    assert so_client.post("/_sim/state", json={"tenants": {"Cust00000": {}}}).status_code == 400


def test_group_private_appointments_are_visible_to_the_owners_group(so_client: FlaskClient) -> None:
    (lunch,) = odata(
        so_client,
        "Appointment",
        headers=USER,
        select="appointmentId,visibleFor",
        filter="appointment/title eq 'Lunch'",
    )
    assert lunch["visibleFor"] == "Group"  # BOB's, group Sales
    assert (
        so_client.get(
            f"{ONSITE}/Appointment/{lunch['appointmentId']}", headers=basic("LEE")
        ).status_code
        == 200
    )
    assert (
        so_client.get(f"{ONSITE}/Appointment/{lunch['appointmentId']}", headers=ADMIN).status_code
        == 404
    )  # Management
    assert (
        odata(so_client, "Appointment", headers=ADMIN, filter="appointment/title eq 'Lunch'") == []
    )


def test_state_can_take_a_tenant_down(so_client: FlaskClient) -> None:
    assert (
        so_client.post(
            "/_sim/state", json={"tenants": {"Cust12345": {"state": "Suspended"}}}
        ).status_code
        == 204
    )
    state = so_client.get("/api/state/Cust12345").json
    assert (state["State"], state["IsRunning"]) == ("Suspended", False)
    response = so_client.get("/Cust12345/api/v1/User/currentPrincipal")
    assert response.status_code == 503 and error_of(response) == "SoServiceUnavailableException"


def test_soap_service_addresses_answer_like_wcf(so_client: FlaskClient) -> None:
    page = so_client.get("/SuperOffice/Remote/Services88/SoPrincipal.svc")
    assert page.status_code == 200 and "You have created a service." in page.text
    assert so_client.get("/Cust12345/Remote/Services88/SoPrincipal.svc").status_code == 200
    assert so_client.get("/SuperOffice/Remote/Services88/Nothing.svc").status_code == 404
    assert so_client.get("/Cust00000/Remote/Services88/SoPrincipal.svc").status_code == 404


# --- meetings: one booking row per participant ---------------------------------------------------


def _me(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    return client.get(f"{ONSITE}/User/currentPrincipal", headers=headers).json  # type: ignore[no-any-return]


def _rows_of(client: FlaskClient, title: str) -> list[dict[str, Any]]:
    return odata(
        client,
        "Appointment",
        select="appointmentId,associateId,booking,invitedPersonId",
        filter=f"appointment/title eq '{title}'",
        orderBy="appointmentId",
    )


def test_a_meeting_is_one_booking_per_participant(so_client: FlaskClient) -> None:
    alice, bob = _me(so_client, ADMIN), _me(so_client, USER)
    mother = new_appointment(
        so_client,
        Title="Board meeting",
        Participants=[{"AssociateId": bob["AssociateId"]}, {"PersonId": 7000},
                      {"EmailAddress": "guest@outside.example"}],
    )  # fmt: skip
    mid = mother["AppointmentId"]
    assert mother["MotherId"] == mid and mother["BookingType"] == "Owner"
    rows = _rows_of(so_client, "Board meeting")
    # the owner's mother row, BOB's booking, the customer's booking; the e-mail guest has none
    assert [(r["associateId"], r["booking"], r["invitedPersonId"]) for r in rows] == [
        (alice["AssociateId"], True, alice["PersonId"]),
        (bob["AssociateId"], True, bob["PersonId"]),
        (0, True, 7000),
    ]
    bobs = so_client.get(f"{ONSITE}/Appointment/{rows[1]['appointmentId']}", headers=USER).json
    assert bobs["MotherId"] == mid and bobs["BookingType"] == "Participant"
    assert (bobs["Type"], bobs["InvitationStatus"]) == ("BookingForDiary", "Invitation")
    assert bobs["Participants"] == mother["Participants"]
    assert bobs["StartDate"] == mother["StartDate"] and bobs["Title"] == "Board meeting"
    mine = odata(so_client, "Appointment", headers=USER, select="appointmentId",
                 filter="associateId currentAssociate and appointment/title eq 'Board meeting'")  # fmt: skip
    assert [r["appointmentId"] for r in mine] == [rows[1]["appointmentId"]]


def test_only_the_owner_changes_a_meeting_and_bookings_follow(so_client: FlaskClient) -> None:
    bob = _me(so_client, USER)
    mid = new_appointment(
        so_client, Title="Review", Participants=[{"AssociateId": bob["AssociateId"]}]
    )["AppointmentId"]
    booking = _rows_of(so_client, "Review")[1]["appointmentId"]
    refused = so_client.put(f"{ONSITE}/Appointment/{booking}", headers=USER, json={"Title": "Mine"})
    assert refused.status_code == 400 and error_of(refused) == "SoArgumentException"
    own_alarm = so_client.put(
        f"{ONSITE}/Appointment/{booking}",
        headers=USER,
        json={"HasAlarm": True, "AlarmLeadTime": "00:10:00"},
    )
    assert own_alarm.status_code == 200 and own_alarm.json["HasAlarm"] is True
    moved = so_client.put(
        f"{ONSITE}/Appointment/{mid}",
        headers=ADMIN,
        json={"StartDate": "2026-03-10T14:00:00", "EndDate": "2026-03-10T15:00:00"},
    )
    assert moved.status_code == 200
    bobs = so_client.get(f"{ONSITE}/Appointment/{booking}", headers=USER).json
    assert bobs["StartDate"] == "2026-03-10T14:00:00" and bobs["InvitationStatus"] == "Moved"
    assert bobs["HasAlarm"] is True  # the participant's own alarm is kept
    # the owner takes BOB off the meeting: his booking goes
    so_client.put(f"{ONSITE}/Appointment/{mid}", headers=ADMIN, json={"Participants": []})
    assert so_client.get(f"{ONSITE}/Appointment/{booking}", headers=USER).status_code == 404
    assert [r["appointmentId"] for r in _rows_of(so_client, "Review")] == [mid]


def test_deleting_a_meeting_deletes_its_bookings(so_client: FlaskClient) -> None:
    bob = _me(so_client, USER)
    mid = new_appointment(
        so_client,
        Title="Gone together",
        Participants=[{"AssociateId": bob["AssociateId"]}, {"PersonId": 7000}],
    )["AppointmentId"]
    rows = _rows_of(so_client, "Gone together")
    assert len(rows) == 3
    # a participant removing their booking leaves the meeting
    customer = rows[2]["appointmentId"]
    assert so_client.delete(f"{ONSITE}/Appointment/{customer}", headers=ADMIN).status_code == 204
    participants = so_client.get(f"{ONSITE}/Appointment/{mid}", headers=ADMIN).json["Participants"]
    assert [(p["AssociateId"], p["PersonId"]) for p in participants] == [(bob["AssociateId"], 0)]
    assert so_client.delete(f"{ONSITE}/Appointment/{mid}", headers=ADMIN).status_code == 204
    assert _rows_of(so_client, "Gone together") == []
