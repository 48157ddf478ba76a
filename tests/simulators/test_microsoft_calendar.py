"""Graph calendar behaviour of the simulator: shapes, recurrence, time zones, CRUD, idempotency,
extended properties and calendarView/delta. The demo calendar is laid out around Monday
2026-03-23; Europe moves to summer time on 2026-03-29."""

from __future__ import annotations

import pytest

ADELE = "/users/adele@contoso.example"
WINDOW = {"startDateTime": "2026-03-23T00:00:00Z", "endDateTime": "2026-04-13T00:00:00Z"}
BERLIN = 'outlook.timezone="W. Europe Standard Time"'
PROP_ID = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name SuperOfficeAppointmentId"


def view(graph, params=WINDOW, prefer: str | None = None) -> list[dict]:
    headers = {"Prefer": prefer} if prefer else {}
    items, url, query = [], f"{ADELE}/calendarView", dict(params)
    while url:
        page = graph.get(url, params=query, headers=headers)
        assert page.status_code == 200, page.text
        items += page.json()["value"]
        url, query = page.json().get("@odata.nextLink"), None
    return items


def by_subject(items: list[dict], subject: str) -> list[dict]:
    return [i for i in items if i["subject"] == subject]


def new_event(**extra) -> dict:
    return {
        "subject": "Visit",
        "start": {"dateTime": "2026-03-26T13:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-03-26T14:00:00", "timeZone": "W. Europe Standard Time"},
        **extra,
    }


def test_calendar_view_shapes_and_recurrence_with_exceptions(graph):
    items = view(graph)
    weekly = by_subject(items, "Weekly sales meeting")
    moved = by_subject(items, "Weekly sales meeting (moved)")
    # 23 Mar and 13 Apr are outside/at the edge; 30 Mar moved to the 31st; 6 Apr cancelled.
    assert [w["start"]["dateTime"] for w in weekly] == ["2026-03-23T08:00:00.0000000"]
    assert weekly[0]["type"] == "occurrence" and weekly[0]["seriesMasterId"]
    assert weekly[0]["start"]["timeZone"] == "UTC"
    assert weekly[0]["originalStartTimeZone"] == "W. Europe Standard Time"
    assert len(moved) == 1 and moved[0]["type"] == "exception"
    assert moved[0]["start"]["dateTime"] == "2026-03-31T12:00:00.0000000"  # 14:00 CEST
    assert moved[0]["seriesMasterId"] == weekly[0]["seriesMasterId"]
    assert not any(i["type"] == "seriesMaster" for i in items)
    single = by_subject(items, "Kick-off with Fabrikam")[0]
    assert single["type"] == "singleInstance" and single["seriesMasterId"] is None
    assert single["@odata.etag"] == f'W/"{single["changeKey"]}"'
    assert single["attendees"][0]["emailAddress"]["address"] == "pat@fabrikam.example"
    assert by_subject(items, "Doctor")[0]["sensitivity"] == "private"
    company_day = by_subject(items, "Company day")[0]
    assert company_day["isAllDay"] is True
    assert company_day["start"]["dateTime"] == "2026-03-25T00:00:00.0000000"
    fair = by_subject(items, "Trade fair Hannover")[0]
    assert fair["end"]["dateTime"] == "2026-04-02T00:00:00.0000000"


def test_wall_time_survives_dst_and_prefer_timezone(graph):
    items = view(
        graph,
        {"startDateTime": "2026-03-16T00:00:00Z", "endDateTime": "2026-04-21T00:00:00Z"},
        BERLIN,
    )
    weekly = by_subject(items, "Weekly sales meeting")
    assert [w["start"]["dateTime"][:16] for w in weekly] == [
        "2026-03-16T09:00",
        "2026-03-23T09:00",
        "2026-04-13T09:00",
        "2026-04-20T09:00",
    ]
    assert {w["start"]["timeZone"] for w in weekly} == {"W. Europe Standard Time"}
    new_york = by_subject(items, "Call with New York office")[0]
    assert new_york["start"]["dateTime"] == "2026-03-27T14:00:00.0000000"  # 09:00 EDT
    assert new_york["originalStartTimeZone"] == "Eastern Standard Time"


def test_relative_monthly_series_in_pacific_time(graph):
    masters = graph.get(f"{ADELE}/events", params={"$top": 50}).json()["value"]
    board = by_subject(masters, "Monthly board review")[0]
    assert board["type"] == "seriesMaster"
    assert board["recurrence"]["pattern"]["type"] == "relativeMonthly"
    assert board["recurrence"]["range"]["endDate"] == "0001-01-01"
    instances = graph.get(
        f"{ADELE}/events/{board['id']}/instances",
        params={"startDateTime": "2026-04-01T00:00:00Z", "endDateTime": "2026-07-01T00:00:00Z"},
        headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'},
    ).json()["value"]
    assert [i["start"]["dateTime"][:16] for i in instances] == [
        "2026-04-06T15:00",
        "2026-05-04T15:00",
        "2026-06-01T15:00",
    ]


def test_event_crud_with_etags(graph):
    created = graph.post(f"{ADELE}/events", new_event(sensitivity="private", categories=["CRM"]))
    assert created.status_code == 201
    event = created.json()
    assert event["type"] == "singleInstance" and event["sensitivity"] == "private"
    assert event["start"] == {"dateTime": "2026-03-26T12:00:00.0000000", "timeZone": "UTC"}
    path = f"{ADELE}/events/{event['id']}"
    changed = graph.patch(
        path, {"subject": "Visit (confirmed)"}, headers={"If-Match": event["@odata.etag"]}
    )
    assert changed.status_code == 200
    assert changed.json()["subject"] == "Visit (confirmed)"
    assert changed.json()["changeKey"] != event["changeKey"]
    stale = graph.patch(
        path, {"subject": "lost update"}, headers={"If-Match": event["@odata.etag"]}
    )
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "ErrorIrresolvableConflict"
    assert graph.delete(path).status_code == 204
    gone = graph.get(path)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "ErrorItemNotFound"


def test_unknown_property_and_bad_all_day_are_refused(graph):
    unknown = graph.post(f"{ADELE}/events", new_event(colour="red"))
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "RequestBodyRead"
    bad_all_day = graph.post(f"{ADELE}/events", new_event(isAllDay=True))
    assert bad_all_day.status_code == 400
    bad_zone = graph.post(
        f"{ADELE}/events",
        new_event(start={"dateTime": "2026-03-26T13:00:00", "timeZone": "Mars/Olympus"}),
    )
    assert bad_zone.json()["error"]["code"] == "TimeZoneNotSupportedException"


def test_transaction_id_makes_create_idempotent(graph):
    body = new_event(transactionId="7E163156-7762-4BEB-A1C6-729EA81755A7")
    first = graph.post(f"{ADELE}/events", body).json()
    second = graph.post(f"{ADELE}/events", body).json()
    assert first["id"] == second["id"]
    assert first["transactionId"] == "7E163156-7762-4BEB-A1C6-729EA81755A7"
    visits = by_subject(view(graph), "Visit")
    assert len(visits) == 1


def test_single_value_extended_properties(graph):
    created = graph.post(
        f"{ADELE}/events",
        new_event(singleValueExtendedProperties=[{"id": PROP_ID, "value": "4711"}]),
    ).json()
    path = f"{ADELE}/events/{created['id']}"
    assert "singleValueExtendedProperties" not in graph.get(path).json()
    expanded = graph.get(
        path, params={"$expand": f"singleValueExtendedProperties($filter=id eq '{PROP_ID}')"}
    )
    assert expanded.json()["singleValueExtendedProperties"] == [{"id": PROP_ID, "value": "4711"}]
    found = graph.get(
        f"{ADELE}/events",
        params={
            "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{PROP_ID}' and ep/value eq '4711')"
        },
    ).json()["value"]
    assert [f["id"] for f in found] == [created["id"]]


def _find_by_property(graph, prop_id: str, value: str):
    return graph.get(
        f"{ADELE}/events",
        params={
            "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{prop_id}' and ep/value eq '{value}')"
        },
    )


def test_extended_property_name_is_case_sensitive_and_value_is_not(graph):
    created = graph.post(
        f"{ADELE}/events",
        new_event(singleValueExtendedProperties=[{"id": PROP_ID, "value": "SO-AbC"}]),
    )
    assert created.status_code == 201
    # what was written is not echoed: only $expand with a filter on the id shows it
    assert "singleValueExtendedProperties" not in created.json()
    event_id = created.json()["id"]
    # the GUID and type are case-insensitive, the value too
    same = PROP_ID.replace("String", "string").replace("66f5a359", "66F5A359")
    assert [e["id"] for e in _find_by_property(graph, same, "so-abc").json()["value"]] == [event_id]
    # a Name differing only in case is another property
    other_name = PROP_ID.replace("SuperOfficeAppointmentId", "superofficeappointmentid")
    assert _find_by_property(graph, other_name, "SO-AbC").json()["value"] == []
    expanded = graph.get(
        f"{ADELE}/events/{event_id}",
        params={"$expand": f"singleValueExtendedProperties($filter=id eq '{other_name}')"},
    ).json()
    assert expanded["singleValueExtendedProperties"] == []


@pytest.mark.parametrize(
    "bad_id",
    [
        "SuperOfficeAppointmentId",
        "String 66f5a359-4659-4830-9070-00047ec6ac6e Name X",  # GUID without braces
        "Text {66f5a359-4659-4830-9070-00047ec6ac6e} Name X",  # no such type
        "String {66f5a359-4659-4830-9070-00047ec6ac6e} Label X",
        "String {66f5a359-4659-4830-9070} Name X",
    ],
)
def test_extended_property_ids_are_checked(graph, bad_id):
    answer = graph.post(
        f"{ADELE}/events", new_event(singleValueExtendedProperties=[{"id": bad_id, "value": "1"}])
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ErrorInvalidExtendedProperty"
    assert _find_by_property(graph, bad_id, "1").status_code == 400
    assert by_subject(view(graph), "Visit") == []  # the refused create wrote nothing


@pytest.mark.parametrize(
    "good_id",
    [
        "Integer {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Id 0x8012",
        "String 0x4001001E",
        "String {00020329-0000-0000-C000-000000000046} Name with spaces inside",
    ],
)
def test_documented_extended_property_id_formats_are_accepted(graph, good_id):
    answer = graph.post(
        f"{ADELE}/events", new_event(singleValueExtendedProperties=[{"id": good_id, "value": "1"}])
    )
    assert answer.status_code == 201, answer.text
    expanded = graph.get(
        f"{ADELE}/events/{answer.json()['id']}",
        params={"$expand": f"singleValueExtendedProperties($filter=id eq '{good_id}')"},
    ).json()
    assert expanded["singleValueExtendedProperties"] == [{"id": good_id, "value": "1"}]


@pytest.mark.parametrize(
    "expand",
    ["singleValueExtendedProperties", "singleValueExtendedProperties($filter=value eq '1')"],
)
def test_extended_properties_expand_only_with_a_filter_on_id(graph, expand):
    event_id = view(graph)[0]["id"]
    answer = graph.get(f"{ADELE}/events/{event_id}", params={"$expand": expand})
    assert answer.status_code == 400
    listed = graph.get(f"{ADELE}/calendarView", params={**WINDOW, "$expand": expand})
    assert listed.status_code == 400


def test_extended_filter_takes_nothing_else(graph):
    answer = graph.get(
        f"{ADELE}/events",
        params={
            "$filter": "subject eq 'Visit' and "
            f"singleValueExtendedProperties/Any(ep: ep/id eq '{PROP_ID}' and ep/value eq '1')"
        },
    )
    assert answer.status_code == 400


def test_recurring_event_occurrence_edit_and_delete(graph):
    series = graph.post(
        f"{ADELE}/events",
        new_event(
            subject="Stand-up",
            recurrence={
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2026-03-26", "numberOfOccurrences": 5},
            },
        ),
    ).json()
    assert series["type"] == "seriesMaster"
    assert series["recurrence"]["range"]["recurrenceTimeZone"] == "W. Europe Standard Time"
    window = {"startDateTime": "2026-03-20T00:00:00Z", "endDateTime": "2026-04-10T00:00:00Z"}
    occurrences = graph.get(f"{ADELE}/events/{series['id']}/instances", params=window).json()[
        "value"
    ]
    assert [o["start"]["dateTime"][:13] for o in occurrences] == [
        "2026-03-26T12",
        "2026-03-27T12",
        "2026-03-28T12",
        "2026-03-29T11",  # summer time from the 29th: 13:00 local is 11:00 UTC
        "2026-03-30T11",
    ]
    second, third = occurrences[1], occurrences[2]
    edited = graph.patch(f"{ADELE}/events/{second['id']}", {"subject": "Stand-up (long)"}).json()
    assert edited["type"] == "exception" and edited["seriesMasterId"] == series["id"]
    assert edited["id"] == second["id"]  # an exception keeps its occurrence's id
    assert graph.delete(f"{ADELE}/events/{third['id']}").status_code == 204
    after = graph.get(f"{ADELE}/events/{series['id']}/instances", params=window).json()["value"]
    assert [o["type"] for o in after] == ["occurrence", "exception", "occurrence", "occurrence"]
    assert graph.get(f"{ADELE}/events/{third['id']}").status_code == 404


def delta_pages(
    graph, url: str, params: dict | None = None, size: int = 4
) -> tuple[list[dict], str, int]:
    """Follow nextLinks to the deltaLink; returns (items, deltaLink, pages)."""
    items, pages = [], 0
    headers = {"Prefer": f"odata.maxpagesize={size}"}
    while True:
        answer = graph.get(url, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["value"]
        pages += 1
        params = None
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]
        assert "$skiptoken=" in url


def test_calendar_view_delta_pages_changes_and_removals(graph):
    items, delta_link, pages = delta_pages(graph, f"{ADELE}/calendarView/delta", WINDOW)
    assert pages > 1 and "$deltatoken=" in delta_link
    assert {i["id"] for i in items} == {i["id"] for i in view(graph)}
    assert not any(i["type"] == "seriesMaster" for i in items)

    nothing, delta_link, _ = delta_pages(graph, delta_link)
    assert nothing == []

    doctor = by_subject(items, "Doctor")[0]
    kickoff = by_subject(items, "Kick-off with Fabrikam")[0]
    created = graph.post(f"{ADELE}/events", new_event()).json()
    graph.delete(f"{ADELE}/events/{doctor['id']}")
    graph.patch(  # moved out of the window: reported as removed
        f"{ADELE}/events/{kickoff['id']}",
        {
            "start": {"dateTime": "2026-06-01T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-06-01T11:00:00", "timeZone": "UTC"},
        },
    )
    changes, delta_link, _ = delta_pages(graph, delta_link)
    assert [c["id"] for c in changes if "@removed" not in c] == [created["id"]]
    removed = {c["id"]: c["@removed"] for c in changes if "@removed" in c}
    assert removed == {doctor["id"]: {"reason": "deleted"}, kickoff["id"]: {"reason": "deleted"}}


def test_expired_delta_token_is_410_sync_state_not_found(graph, ms_server, ms_session):
    _, delta_link, _ = delta_pages(graph, f"{ADELE}/calendarView/delta", WINDOW, size=100)
    ms_session.post(
        f"{ms_server.url}/_sim/faults", json={"kind": "delta_expired", "path": "calendarView/delta"}
    )
    gone = graph.get(delta_link)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "syncStateNotFound"
    # The state is forgotten for good: the client must start over with a full sync.
    assert graph.get(delta_link).status_code == 410
    items, _, _ = delta_pages(graph, f"{ADELE}/calendarView/delta", WINDOW, size=100)
    assert items


@pytest.mark.parametrize("option", ["$select", "$filter", "$orderby"])
def test_delta_refuses_query_options(graph, option):
    answer = graph.get(f"{ADELE}/calendarView/delta", params={**WINDOW, option: "subject"})
    assert answer.status_code == 400


def test_delta_needs_a_window(graph):
    answer = graph.get(f"{ADELE}/calendarView/delta")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ErrorInvalidParameter"


def test_delta_items_carry_their_odata_type(graph):
    items, delta_link, _ = delta_pages(graph, f"{ADELE}/calendarView/delta", WINDOW, size=100)
    assert items and {i["@odata.type"] for i in items} == {"#microsoft.graph.event"}
    created = graph.post(f"{ADELE}/events", new_event()).json()
    changes, _, _ = delta_pages(graph, delta_link)
    assert [(c["id"], c["@odata.type"]) for c in changes] == [
        (created["id"], "#microsoft.graph.event")
    ]
    contacts = graph.get(f"{ADELE}/contacts/delta").json()["value"]
    assert {c["@odata.type"] for c in contacts} == {"#microsoft.graph.contact"}


def test_delta_reports_removals_of_items_the_client_never_saw(graph):
    _, delta_link, _ = delta_pages(graph, f"{ADELE}/calendarView/delta", WINDOW, size=100)
    # created and deleted between two delta calls: the client never saw it
    short_lived = graph.post(f"{ADELE}/events", new_event(subject="Short-lived")).json()
    assert graph.delete(f"{ADELE}/events/{short_lived['id']}").status_code == 204
    # created inside the window, then moved out of it before the client looked
    moved = graph.post(f"{ADELE}/events", new_event(subject="Moved away")).json()
    graph.patch(
        f"{ADELE}/events/{moved['id']}",
        {
            "start": {"dateTime": "2026-07-01T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-07-01T11:00:00", "timeZone": "UTC"},
        },
    )
    changes, delta_link, _ = delta_pages(graph, delta_link)
    assert {c["id"]: c.get("@removed") for c in changes} == {
        short_lived["id"]: {"reason": "deleted"},
        moved["id"]: {"reason": "deleted"},
    }
    assert all(c["@odata.type"] == "#microsoft.graph.event" for c in changes)
    # a contact deleted before any delta of contacts ever ran is reported too
    contacts = graph.get(f"{ADELE}/contacts/delta").json()
    gone = graph.post(f"{ADELE}/contacts", {"givenName": "Gone"}).json()
    graph.delete(f"{ADELE}/contacts/{gone['id']}")
    later = graph.get(contacts["@odata.deltaLink"]).json()["value"]
    assert later == [
        {
            "@odata.type": "#microsoft.graph.contact",
            "id": gone["id"],
            "@removed": {"reason": "deleted"},
        }
    ]


IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


def test_prefer_immutable_id_is_honoured(graph):
    default_items = view(graph)
    immutable_items = view(graph, prefer='IdType="ImmutableId"')
    default_ids = sorted(i["id"] for i in default_items)
    immutable_ids = sorted(i["id"] for i in immutable_items)
    assert len(immutable_ids) == len(default_ids) and not set(immutable_ids) & set(default_ids)
    occurrence = next(i for i in immutable_items if i["type"] == "occurrence")
    assert occurrence["seriesMasterId"] not in {i["seriesMasterId"] for i in default_items}
    # both forms address the same item, with or without the header
    first = immutable_items[0]
    by_immutable = graph.get(f"{ADELE}/events/{first['id']}")
    assert by_immutable.status_code == 200
    assert by_immutable.json()["id"] in default_ids
    assert graph.get(f"{ADELE}/events/{first['id']}", headers=IMMUTABLE).json()["id"] == first["id"]
    created = graph.post(f"{ADELE}/events", new_event(), headers=IMMUTABLE).json()
    assert created["id"] not in default_ids
    assert graph.patch(f"{ADELE}/events/{created['id']}", {"subject": "Renamed"}).status_code == 200
    # delta in immutable ids, removals included
    items, delta_link, _ = delta_pages(graph, f"{ADELE}/calendarView/delta", WINDOW, size=100)
    headers = {**IMMUTABLE, "Prefer": 'IdType="ImmutableId", odata.maxpagesize=100'}
    body = graph.get(f"{ADELE}/calendarView/delta", params=WINDOW, headers=headers).json()
    assert created["id"] in {i["id"] for i in body["value"]}
    assert graph.delete(f"{ADELE}/events/{created['id']}").status_code == 204
    removed = graph.get(body["@odata.deltaLink"], headers=headers).json()["value"]
    assert [r["id"] for r in removed] == [created["id"]]
    plain = graph.get(delta_link).json()["value"]
    assert [r["id"] for r in plain] != [created["id"]] and plain[0]["@removed"]
