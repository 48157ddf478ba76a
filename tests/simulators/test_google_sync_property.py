"""Property: whatever happens between syncs (creates, patches, deletes, pages of any size), a
client that applies each incremental sync to its copy ends up with exactly what a fresh full
sync returns. The same for People contacts."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.google import create_app
from simulators.world.google import SCOPE_CALENDAR, SCOPE_CONTACTS, demo

ALICE = "alice@northwind.example"
HEADERS = {"Authorization": "Bearer ya29.property"}
EVENTS = "/calendar/v3/calendars/primary/events"
# Same examples on every run, no example database on disk.
DETERMINISTIC: dict[str, Any] = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
}

operation = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 10**6)),
    st.tuples(st.just("patch"), st.integers(0, 50)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("sync"), st.integers(1, 7)),
)


def _client() -> Any:
    app = create_app(demo())
    app.extensions["google_store"].issue_access_token(
        "ya29.property", "test", ALICE, [SCOPE_CALENDAR, SCOPE_CONTACTS]
    )
    return app.test_client()


def _sync_events(client: Any, page_size: int, token: str | None) -> tuple[list[dict], str]:
    items, page = [], None
    while True:
        query = {"maxResults": page_size, "pageToken": page, "syncToken": token}
        answer = client.get(
            EVENTS, query_string={k: v for k, v in query.items() if v}, headers=HEADERS
        ).get_json()
        items += answer["items"]
        page = answer.get("nextPageToken")
        if not page:
            return items, answer["nextSyncToken"]


def _apply(copy: dict[str, dict], changes: list[dict]) -> None:
    for item in changes:
        if item["status"] == "cancelled":
            copy.pop(item["id"], None)
        else:
            copy[item["id"]] = item


@settings(max_examples=25, **DETERMINISTIC)
@given(st.lists(operation, max_size=25), st.integers(1, 6))
def test_incremental_calendar_sync_converges(ops: list[tuple[str, int]], first_page: int) -> None:
    client = _client()
    items, token = _sync_events(client, first_page, None)
    copy: dict[str, dict] = {}
    _apply(copy, items)
    for kind, n in ops:
        live = sorted(copy)
        if kind == "create":
            body = {
                "summary": f"E{n}",
                "start": {"dateTime": "2026-12-01T10:00:00Z"},
                "end": {"dateTime": "2026-12-01T11:00:00Z"},
            }
            client.post(EVENTS, json=body, headers=HEADERS)
        elif kind in ("patch", "delete") and live:
            target = f"{EVENTS}/{live[n % len(live)]}"
            if kind == "patch":
                client.patch(target, json={"description": f"v{n}"}, headers=HEADERS)
            else:
                client.delete(target, headers=HEADERS)
        else:
            changes, token = _sync_events(client, n, token)
            _apply(copy, changes)
    changes, token = _sync_events(client, 3, token)
    _apply(copy, changes)
    fresh, _ = _sync_events(client, 250, None)
    # A full listing holds cancelled occurrences of series too (events.list, showDeleted).
    assert copy == {e["id"]: e for e in fresh if e["status"] != "cancelled"}


@settings(max_examples=20, **DETERMINISTIC)
@given(st.lists(operation, max_size=20), st.integers(1, 5))
def test_incremental_contact_sync_converges(ops: list[tuple[str, int]], size: int) -> None:
    # One page size for the whole chain: "When the page_token or sync_token is specified, all
    # other request parameters must match the first call" (connections.list).
    client = _client()
    url = "/v1/people/me/connections"

    def sync(token: str | None) -> tuple[list[dict], str]:
        people, page = [], None
        while True:
            query = {"personFields": "names,metadata", "pageSize": size, "pageToken": page,
                     "syncToken": token, "requestSyncToken": "true"}  # fmt: skip
            answer = client.get(
                url, query_string={k: v for k, v in query.items() if v}, headers=HEADERS
            ).get_json()
            people += answer.get("connections", [])
            page = answer.get("nextPageToken")
            if not page:
                return people, answer["nextSyncToken"]

    people, token = sync(None)
    copy = {p["resourceName"]: p for p in people}
    for kind, n in ops:
        live = sorted(copy)
        if kind == "create":
            client.post(
                "/v1/people:createContact",
                json={"names": [{"givenName": f"P{n}"}]},
                headers=HEADERS,
            )
        elif kind in ("patch", "delete") and live:
            name = live[n % len(live)]
            if kind == "patch":
                client.patch(
                    f"/v1/{name}:updateContact?updatePersonFields=names",
                    json={"etag": copy[name]["etag"], "names": [{"givenName": f"Q{n}"}]},
                    headers=HEADERS,
                )
            else:
                client.delete(f"/v1/{name}:deleteContact", headers=HEADERS)
        else:
            changes, token = sync(token)
            for person in changes:
                if person.get("metadata", {}).get("deleted"):
                    copy.pop(person["resourceName"], None)
                else:
                    copy[person["resourceName"]] = person
    changes, token = sync(token)
    for person in changes:
        if person.get("metadata", {}).get("deleted"):
            copy.pop(person["resourceName"], None)
        else:
            copy[person["resourceName"]] = person
    fresh, _ = sync(None)
    assert copy == {p["resourceName"]: p for p in fresh}


series_operation = st.tuples(
    st.sampled_from(["patch_instance", "delete_instance", "patch_series", "delete_series", "sync"]),
    st.integers(0, 40),
)


@settings(max_examples=15, **DETERMINISTIC)
@given(st.lists(series_operation, max_size=12))
def test_incremental_sync_of_expanded_series_converges(ops: list[tuple[str, int]]) -> None:
    """With singleEvents=true: edited or deleted occurrences, edited or deleted series."""
    client = _client()

    def sync(token: str | None, size: int) -> tuple[list[dict], str]:
        items, page = [], None
        while True:
            query = {"singleEvents": "true", "maxResults": size, "pageToken": page,
                     "syncToken": token}  # fmt: skip
            answer = client.get(
                EVENTS, query_string={k: v for k, v in query.items() if v}, headers=HEADERS
            ).get_json()
            items += answer["items"]
            page = answer.get("nextPageToken")
            if not page:
                return items, answer["nextSyncToken"]

    items, token = sync(None, 7)
    copy: dict[str, dict] = {}
    _apply(copy, items)
    listing = client.get(EVENTS, headers=HEADERS).get_json()["items"]
    series = [e["id"] for e in listing if "recurrence" in e]
    for kind, n in ops:
        occurrences = sorted(i for i in copy if "_" in i)
        if kind.endswith("_instance") and occurrences:
            target = f"{EVENTS}/{occurrences[n % len(occurrences)]}"
        else:
            target = f"{EVENTS}/{series[n % len(series)]}"
        if kind.startswith("patch"):
            client.patch(target, json={"description": f"v{n}"}, headers=HEADERS)
        elif kind.startswith("delete"):
            client.delete(target, headers=HEADERS)
        else:
            changes, token = sync(token, 1 + n % 9)
            _apply(copy, changes)
    changes, token = sync(token, 5)
    _apply(copy, changes)
    fresh, _ = sync(None, 2500)
    assert copy == {e["id"]: e for e in fresh}
