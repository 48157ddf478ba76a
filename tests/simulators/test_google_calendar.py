"""Calendar v3 against the simulator over https with google-api-python-client, unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from simulators.platform.control import control_of
from simulators.world.google import SCOPE_CALENDAR

ALICE = "alice@northwind.example"


@pytest.fixture
def calendar(google_service: Any, google_token: Any) -> Any:
    return google_service("calendar", "v3", google_token(ALICE, SCOPE_CALENDAR))


def _event(summary: str, day: str = "2026-11-24", **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "start": {"dateTime": f"{day}T10:00:00+01:00", "timeZone": "Europe/Oslo"},
        "end": {"dateTime": f"{day}T11:00:00+01:00", "timeZone": "Europe/Oslo"},
        **extra,
    }


def _full_sync(calendar: Any, **params: Any) -> tuple[list[dict[str, Any]], str, int]:
    items, page_token, pages = [], None, 0
    while True:
        page = (
            calendar.events().list(calendarId="primary", pageToken=page_token, **params).execute()
        )
        pages += 1
        items += page["items"]
        page_token = page.get("nextPageToken")
        if not page_token:
            assert "nextSyncToken" in page
            return items, page["nextSyncToken"], pages
        assert "nextSyncToken" not in page  # only the last page carries it


def test_insert_with_client_chosen_id_is_idempotent(calendar: Any) -> None:
    body = _event("Offer review", id="so0appointment00042")
    created = calendar.events().insert(calendarId="primary", body=body).execute()
    assert created["id"] == "so0appointment00042"
    assert created["status"] == "confirmed" and created["etag"].startswith('"')
    assert created["start"] == {"dateTime": "2026-11-24T10:00:00+01:00", "timeZone": "Europe/Oslo"}
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId="primary", body=body).execute()
    assert err.value.resp.status == 409
    assert err.value.error_details[0]["reason"] == "duplicate"


def test_invalid_ids_and_times_are_refused(calendar: Any) -> None:
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId="primary", body=_event("x", id="UPPER-case")).execute()
    assert err.value.resp.status == 400
    no_end = {"summary": "x", "start": {"dateTime": "2026-11-24T10:00:00Z"}}
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId="primary", body=no_end).execute()
    assert err.value.resp.status == 400
    recurring_without_zone = {
        "start": {"dateTime": "2026-11-24T10:00:00Z"},
        "end": {"dateTime": "2026-11-24T11:00:00Z"},
        "recurrence": ["RRULE:FREQ=DAILY;COUNT=2"],
    }
    with pytest.raises(HttpError) as err:
        calendar.events().insert(calendarId="primary", body=recurring_without_zone).execute()
    assert "time zone" in str(err.value)


def test_paging_and_incremental_sync(calendar: Any) -> None:
    items, sync_token, pages = _full_sync(calendar, maxResults=4)
    assert pages > 1 and len(items) == len({e["id"] for e in items}) == 11
    # The stand-up's cancelled occurrence comes even without showDeleted (events.list).
    [cancelled] = [e for e in items if e["status"] == "cancelled"]
    assert {"id", "recurringEventId", "originalStartTime"} <= set(cancelled)
    assert "summary" not in cancelled and "start" not in cancelled
    items = [e for e in items if e["status"] != "cancelled"]
    assert len(items) == 10

    created = calendar.events().insert(calendarId="primary", body=_event("New")).execute()
    target = next(e for e in items if e["summary"] == "Doctor")
    calendar.events().patch(
        calendarId="primary", eventId=target["id"], body={"location": "Clinic"}
    ).execute()
    gone = next(e for e in items if e["summary"] == "Company day")
    calendar.events().delete(calendarId="primary", eventId=gone["id"]).execute()

    delta = calendar.events().list(calendarId="primary", syncToken=sync_token).execute()
    by_id = {e["id"]: e for e in delta["items"]}
    assert set(by_id) == {created["id"], target["id"], gone["id"]}
    assert by_id[target["id"]]["location"] == "Clinic"
    assert by_id[gone["id"]]["status"] == "cancelled"
    again = calendar.events().list(calendarId="primary", syncToken=delta["nextSyncToken"]).execute()
    assert again["items"] == []


def test_sync_token_expiry_gives_410_full_sync_required(
    calendar: Any, google_app: Any, google_server: Any, sim_session: Any
) -> None:
    _, sync_token, _ = _full_sync(calendar)
    control_of(google_app).faults.add({"kind": "delta_expired"})
    with pytest.raises(HttpError) as err:
        calendar.events().list(calendarId="primary", syncToken=sync_token).execute()
    assert err.value.resp.status == 410
    assert err.value.error_details[0]["reason"] == "fullSyncRequired"
    assert calendar.events().list(calendarId="primary", syncToken=sync_token).execute()
    sim_session.post(
        google_server.url + "/_sim/state/actions", json={"action": "expire_sync_tokens"}
    ).raise_for_status()
    with pytest.raises(HttpError) as err:
        calendar.events().list(calendarId="primary", syncToken=sync_token).execute()
    assert err.value.resp.status == 410


@pytest.mark.parametrize(
    "restriction",
    [
        {"timeMin": "2026-11-01T00:00:00Z"},
        {"timeMax": "2026-12-01T00:00:00Z"},
        {"q": "Doctor"},
        {"updatedMin": "2026-11-01T00:00:00Z"},
        {"iCalUID": "x@google.com"},
        {"privateExtendedProperty": "k=v"},
        {"orderBy": "updated"},
        {"showDeleted": False},
    ],
)
def test_sync_token_refuses_filters(calendar: Any, restriction: dict[str, Any]) -> None:
    _, sync_token, _ = _full_sync(calendar)
    with pytest.raises(HttpError) as err:
        calendar.events().list(calendarId="primary", syncToken=sync_token, **restriction).execute()
    assert err.value.resp.status == 400
    assert err.value.error_details[0]["reason"] == "syncTokenWithRequestRestrictions"
    # showDeleted=true is what a sync token implies anyway; singleEvents may be repeated.
    calendar.events().list(calendarId="primary", syncToken=sync_token, showDeleted=True).execute()


def test_cancelled_occurrences_and_show_deleted(calendar: Any) -> None:
    def cancelled(**params: Any) -> list[dict[str, Any]]:
        items, _, _ = _full_sync(calendar, **params)
        return [e for e in items if e["status"] == "cancelled"]

    series = (
        calendar.events()
        .insert(
            calendarId="primary",
            body={
                **_event("Weekly 1:1"),
                "start": {"dateTime": "2026-12-01T09:00:00", "timeZone": "Europe/Oslo"},
                "end": {"dateTime": "2026-12-01T09:30:00", "timeZone": "Europe/Oslo"},
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
            },
        )
        .execute()
    )
    plain = calendar.events().insert(calendarId="primary", body=_event("One-off")).execute()
    instances = calendar.events().instances(calendarId="primary", eventId=series["id"]).execute()
    second = instances["items"][1]["id"]
    calendar.events().delete(calendarId="primary", eventId=second).execute()
    calendar.events().delete(calendarId="primary", eventId=plain["id"]).execute()

    # Default (showDeleted and singleEvents false): cancelled instances, not deleted events.
    ids = {e["id"] for e in cancelled()}
    assert second in ids and plain["id"] not in ids
    # singleEvents=true without showDeleted: no cancelled items at all.
    assert cancelled(singleEvents=True) == []
    # showDeleted=true: the deleted one-off too.
    assert {second, plain["id"]} <= {e["id"] for e in cancelled(showDeleted=True)}


def test_patch_and_delete_honour_if_match(calendar: Any) -> None:
    created = calendar.events().insert(calendarId="primary", body=_event("Etag")).execute()
    changed = (
        calendar.events()
        .patch(calendarId="primary", eventId=created["id"], body={"summary": "Etag 2"})
        .execute()
    )
    assert changed["etag"] != created["etag"]

    stale = calendar.events().patch(
        calendarId="primary", eventId=created["id"], body={"summary": "lost update"}
    )
    stale.headers["If-Match"] = created["etag"]
    with pytest.raises(HttpError) as err:
        stale.execute()
    assert err.value.resp.status == 412
    assert err.value.error_details[0]["reason"] == "conditionNotMet"

    update = calendar.events().update(
        calendarId="primary", eventId=created["id"], body=_event("Replaced")
    )
    update.headers["If-Match"] = changed["etag"]
    replaced = update.execute()
    assert replaced["summary"] == "Replaced" and "location" not in replaced

    delete = calendar.events().delete(calendarId="primary", eventId=created["id"])
    delete.headers["If-Match"] = changed["etag"]
    with pytest.raises(HttpError) as err:
        delete.execute()
    assert err.value.resp.status == 412
    calendar.events().delete(calendarId="primary", eventId=created["id"]).execute()
    assert (
        calendar.events().get(calendarId="primary", eventId=created["id"]).execute()["status"]
        == "cancelled"
    )
    with pytest.raises(HttpError) as err:
        calendar.events().delete(calendarId="primary", eventId=created["id"]).execute()
    assert err.value.resp.status == 410


def test_import_is_keyed_by_ical_uid(calendar: Any) -> None:
    body = _event("Imported", iCalUID="so-appointment-99@superoffice.example")
    first = calendar.events().import_(calendarId="primary", body=body).execute()
    again = (
        calendar.events().import_(calendarId="primary", body={**body, "summary": "Re"}).execute()
    )
    assert again["id"] == first["id"] and again["summary"] == "Re"
    found = calendar.events().list(calendarId="primary", iCalUID=body["iCalUID"]).execute()
    assert [e["id"] for e in found["items"]] == [first["id"]]


def test_concurrent_inserts_are_all_kept(
    calendar: Any, google_service: Any, google_token: Any
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def insert(n: int) -> str:
        # httplib2 connections are not thread-safe: one client per thread.
        own = google_service("calendar", "v3", google_token(ALICE, SCOPE_CALENDAR))
        body = _event(f"Parallel {n}", id=f"parallel{n:04d}")
        return own.events().insert(calendarId="primary", body=body).execute()["id"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = set(pool.map(insert, range(12)))
    assert len(ids) == 12
    listed = {e["id"] for e in _full_sync(calendar, q="Parallel")[0]}
    assert listed == ids


def test_extended_properties_private_lookup(calendar: Any) -> None:
    body = _event("Linked", extendedProperties={"private": {"soAppointmentId": "4711"}})
    created = calendar.events().insert(calendarId="primary", body=body).execute()
    found = (
        calendar.events()
        .list(calendarId="primary", privateExtendedProperty="soAppointmentId=4711")
        .execute()["items"]
    )
    assert [e["id"] for e in found] == [created["id"]]
    patched = (
        calendar.events()
        .patch(
            calendarId="primary",
            eventId=created["id"],
            body={"extendedProperties": {"private": {"corr": "abc"}}},
        )
        .execute()
    )
    assert patched["extendedProperties"]["private"] == {"soAppointmentId": "4711", "corr": "abc"}
    with pytest.raises(HttpError) as err:
        calendar.events().insert(
            calendarId="primary",
            body=_event("bad", extendedProperties={"private": {"n": 1}}),
        ).execute()
    assert err.value.resp.status == 400


def test_recurring_series_with_exceptions(calendar: Any) -> None:
    masters = calendar.events().list(calendarId="primary", q="stand-up").execute()["items"]
    master = next(e for e in masters if "recurrence" in e)
    moved = next(e for e in masters if e.get("recurringEventId") == master["id"])
    assert moved["summary"] == "Team stand-up (moved)"
    assert moved["originalStartTime"]["dateTime"].endswith("T09:00:00+01:00")

    instances = (
        calendar.events()
        .instances(calendarId="primary", eventId=master["id"], maxResults=100)
        .execute()["items"]
    )
    assert len(instances) == 29  # COUNT=30, one occurrence cancelled
    assert all(i["recurringEventId"] == master["id"] for i in instances)
    with_deleted = (
        calendar.events()
        .instances(calendarId="primary", eventId=master["id"], showDeleted=True, maxResults=100)
        .execute()["items"]
    )
    assert [i["status"] for i in with_deleted].count("cancelled") == 1

    third = instances[2]
    calendar.events().patch(
        calendarId="primary", eventId=third["id"], body={"summary": "Stand-up with CEO"}
    ).execute()
    single = (
        calendar.events()
        .list(
            calendarId="primary",
            singleEvents=True,
            orderBy="startTime",
            timeMin="2026-11-02T00:00:00Z",
            timeMax="2026-11-09T00:00:00Z",
            q="stand-up",
        )
        .execute()["items"]
    )
    # Monday 2, Wednesday 4 and Friday 6 November; the third one is the patched exception.
    assert [e["summary"] for e in single] == ["Team stand-up", "Team stand-up", "Stand-up with CEO"]
    assert single[2]["id"] == third["id"] and single[2]["recurringEventId"] == master["id"]

    calendar.events().delete(calendarId="primary", eventId=instances[0]["id"]).execute()
    remaining = (
        calendar.events()
        .instances(calendarId="primary", eventId=master["id"], maxResults=100)
        .execute()["items"]
    )
    assert len(remaining) == 28


def test_recurring_series_keeps_wall_time_across_dst(calendar: Any) -> None:
    items = (
        calendar.events()
        .list(calendarId="primary", singleEvents=True, q="New York office", maxResults=50)
        .execute()["items"]
    )
    assert len(items) == 6
    assert {i["start"]["dateTime"][11:19] for i in items} == {"09:00:00"}
    offsets = {i["start"]["dateTime"][19:] for i in items}
    assert offsets == {"-04:00", "-05:00"}  # the series crosses a DST change


def test_batch_request(calendar: Any, google_server: Any, google_app: Any) -> None:
    control_of(google_app).stats.reset()
    results: dict[str, Any] = {}

    def collect(request_id: str, response: Any, exception: Exception | None) -> None:
        results[request_id] = exception or response

    batch = BatchHttpRequest(callback=collect, batch_uri=google_server.url + "/batch/calendar/v3")
    for n in range(3):
        batch.add(calendar.events().insert(calendarId="primary", body=_event(f"Batch {n}")))
    batch.add(calendar.events().get(calendarId="primary", eventId="doesnotexist0"))
    batch.execute()
    assert [results[str(n)]["summary"] for n in (1, 2, 3)] == ["Batch 0", "Batch 1", "Batch 2"]
    assert isinstance(results["4"], HttpError) and results["4"].resp.status == 404
    endpoints = control_of(google_app).stats.snapshot()["endpoints"]
    assert endpoints["POST /batch/<path:api>"] == 1
    assert endpoints["POST /calendar/v3/calendars/<calendar_id>/events"] == 3


@pytest.mark.parametrize(
    ("fault", "status", "reason"),
    [
        ({"kind": "rate_limit"}, 403, "rateLimitExceeded"),
        ({"kind": "user_rate_limit"}, 403, "userRateLimitExceeded"),
        ({"kind": "status", "status": 429, "retry_after": 1}, 429, "rateLimitExceeded"),
        ({"kind": "status", "status": 503}, 503, "backendError"),
    ],
)
def test_rate_limits_look_like_google_and_client_retries(
    calendar: Any,
    google_app: Any,
    monkeypatch: pytest.MonkeyPatch,
    fault: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    sleeps: list[float] = []
    # Record googleapiclient's backoff instead of waiting it out.
    monkeypatch.setattr("googleapiclient.http.time.sleep", sleeps.append)
    control = control_of(google_app)
    control.faults.add({**fault, "path": "/events$"})
    with pytest.raises(HttpError) as err:
        calendar.events().list(calendarId="primary").execute()
    assert err.value.resp.status == status
    assert err.value.error_details[0]["reason"] == reason
    # googleapiclient backs off and retries these by itself.
    control.faults.add({**fault, "path": "/events$", "count": 2})
    control.stats.reset()
    assert calendar.events().list(calendarId="primary").execute(num_retries=3)["items"]
    assert (
        control.stats.snapshot()["endpoints"]["GET /calendar/v3/calendars/<calendar_id>/events"]
        == 3
    )
    assert len(sleeps) == 2


def test_per_user_quota(calendar: Any, google_server: Any, sim_session: Any) -> None:
    sim_session.post(
        google_server.url + "/_sim/state/actions",
        json={"action": "set_user_quota", "requests": 2, "window_seconds": 100},
    ).raise_for_status()
    calendar.events().list(calendarId="primary").execute()
    calendar.calendarList().list().execute()
    with pytest.raises(HttpError) as err:
        calendar.events().list(calendarId="primary").execute()
    assert err.value.resp.status == 403
    assert err.value.error_details[0]["reason"] == "userRateLimitExceeded"
    sim_session.post(
        google_server.url + "/_sim/state/actions", json={"action": "advance_clock", "seconds": 101}
    ).raise_for_status()
    assert "items" in calendar.events().list(calendarId="primary").execute()


def test_calendar_list_and_other_users_calendars(calendar: Any) -> None:
    entries = calendar.calendarList().list().execute()["items"]
    assert [(e["id"], e["primary"], e["accessRole"]) for e in entries] == [(ALICE, True, "owner")]
    with pytest.raises(HttpError) as err:
        calendar.events().list(calendarId="carol@northwind.example").execute()
    assert err.value.resp.status == 404


def test_token_problems(
    google_service: Any, google_token: Any, google_app: Any, google_server: Any, sim_session: Any
) -> None:
    events_only = google_service(
        "calendar", "v3", google_token(ALICE, "https://www.googleapis.com/auth/contacts")
    )
    with pytest.raises(HttpError) as err:
        events_only.events().list(calendarId="primary").execute()
    assert err.value.resp.status == 403

    url = google_server.url + "/calendar/v3/calendars/primary/events"
    answer = sim_session.get(url, headers={"Authorization": "Bearer ya29.unknown"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.json()["error"]["errors"][0]["reason"] == "authError"

    valid = {"Authorization": "Bearer " + google_token(ALICE, SCOPE_CALENDAR)}
    bad_number = sim_session.get(url, params={"maxResults": "ten"}, headers=valid)
    assert bad_number.status_code == 400
    control_of(google_app).faults.add({"kind": "token_expired"})
    assert sim_session.get(url, headers=valid).status_code == 401
    assert sim_session.get(url, headers=valid).status_code == 200
