"""People API sync rules in the simulator, through google-api-python-client: writes reach sync
listings only after the propagation delay (no read-after-write), and a sync or page token is
refused with other request parameters than the call that started it."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError

from simulators.world.google import SCOPE_CONTACTS

CAROL = "carol@northwind.example"
FIELDS = "names,metadata"
DELAY = 180.0


@pytest.fixture
def people(google_service: Any, google_token: Any) -> Any:
    return google_service("people", "v1", google_token(CAROL, SCOPE_CONTACTS))


def _action(google_server: Any, sim_session: Any, **body: Any) -> None:
    sim_session.post(google_server.url + "/_sim/state/actions", json=body).raise_for_status()


def _listing(people: Any, sync_token: str | None = None, **params: Any) -> tuple[list, str]:
    items, page_token = [], None
    while True:
        page = (
            people.people()
            .connections()
            .list(
                resourceName="people/me",
                personFields=FIELDS,
                requestSyncToken=True,
                pageToken=page_token,
                syncToken=sync_token,
                **params,
            )
            .execute()
        )
        items += page.get("connections", [])
        page_token = page.get("nextPageToken")
        if not page_token:
            return items, page["nextSyncToken"]


def _names(items: list) -> dict[str, str]:
    return {
        p["resourceName"]: "deleted" if p["metadata"].get("deleted") else p["names"][0]["givenName"]
        for p in items
    }


def test_writes_reach_sync_listings_after_the_propagation_delay(
    people: Any, google_server: Any, sim_session: Any
) -> None:
    _action(google_server, sim_session, action="set_people_propagation_delay", seconds=DELAY)
    seeded, token = _listing(people)
    created = people.people().createContact(body={"names": [{"givenName": "Nora"}]}).execute()
    target = seeded[0]
    people.people().updateContact(
        resourceName=target["resourceName"],
        updatePersonFields="names",
        body={"etag": target["etag"], "names": [{"givenName": "Renamed"}]},
    ).execute()

    # A read of the item itself sees the write; listings do not, yet.
    fetched = people.people().get(resourceName=created["resourceName"], personFields=FIELDS)
    assert fetched.execute()["names"][0]["givenName"] == "Nora"
    early, early_token = _listing(people, token)
    assert early == []
    full, _ = _listing(people)
    assert created["resourceName"] not in _names(full)
    assert _names(full)[target["resourceName"]] == target["names"][0]["givenName"]

    _action(google_server, sim_session, action="advance_clock", seconds=DELAY + 1)
    # The token handed out while the writes were pending did not skip them.
    late, _ = _listing(people, early_token)
    assert _names(late) == {created["resourceName"]: "Nora", target["resourceName"]: "Renamed"}


def test_a_deletion_is_not_listed_before_it_propagates(
    people: Any, google_server: Any, sim_session: Any
) -> None:
    seeded, token = _listing(people)
    _action(google_server, sim_session, action="set_people_propagation_delay", seconds=DELAY)
    gone = seeded[1]["resourceName"]
    people.people().deleteContact(resourceName=gone).execute()
    early, token = _listing(people, token)
    assert early == []
    _action(google_server, sim_session, action="advance_clock", seconds=DELAY + 1)
    late, _ = _listing(people, token)
    assert _names(late) == {gone: "deleted"}


@pytest.mark.parametrize(
    "changed",
    [
        {"pageSize": 2},
        {"personFields": "names"},
        {"requestSyncToken": False},
        {"sortOrder": "LAST_NAME_ASCENDING"},
    ],
)
def test_a_sync_token_is_bound_to_the_parameters_of_its_first_call(
    people: Any, changed: dict[str, Any]
) -> None:
    _, token = _listing(people)
    params: dict[str, Any] = {
        "resourceName": "people/me",
        "personFields": FIELDS,
        "requestSyncToken": True,
        "syncToken": token,
    }
    with pytest.raises(HttpError) as err:
        people.people().connections().list(**{**params, **changed}).execute()
    assert err.value.resp.status == 400
    people.people().connections().list(**params).execute()  # the same parameters: fine


def test_a_page_token_is_bound_to_the_parameters_of_its_first_call(people: Any) -> None:
    first = (
        people.people()
        .connections()
        .list(resourceName="people/me", personFields=FIELDS, pageSize=2)
        .execute()
    )
    with pytest.raises(HttpError) as err:
        people.people().connections().list(
            resourceName="people/me",
            personFields=FIELDS,
            pageSize=3,
            pageToken=first["nextPageToken"],
        ).execute()
    assert err.value.resp.status == 400
