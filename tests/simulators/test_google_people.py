"""People API v1 against the simulator with google-api-python-client over https."""

from __future__ import annotations

from typing import Any

import pytest
from googleapiclient.errors import HttpError

from simulators.platform.control import control_of
from simulators.world.google import SCOPE_CONTACTS

CAROL = "carol@northwind.example"
FIELDS = "names,emailAddresses,phoneNumbers,organizations,metadata"


@pytest.fixture
def people(google_service: Any, google_token: Any) -> Any:
    return google_service("people", "v1", google_token(CAROL, SCOPE_CONTACTS))


def _person(given: str, family: str) -> dict[str, Any]:
    return {
        "names": [{"givenName": given, "familyName": family}],
        "emailAddresses": [{"value": f"{given.lower()}@example.org"}],
        "clientData": [{"key": "superofficePersonId", "value": "77"}],
    }


def _full_sync(people: Any, **params: Any) -> tuple[list[dict[str, Any]], str]:
    items, page_token = [], None
    while True:
        page = (
            people.people()
            .connections()
            .list(resourceName="people/me", personFields=FIELDS, pageToken=page_token, **params)
            .execute()
        )
        items += page.get("connections", [])
        page_token = page.get("nextPageToken")
        if not page_token:
            return items, page["nextSyncToken"]


def test_list_and_sync_token(people: Any) -> None:
    seeded, sync_token = _full_sync(people, pageSize=3, requestSyncToken=True)
    assert len(seeded) == 4
    assert seeded[0]["names"][0]["displayName"]
    assert seeded[0]["metadata"]["sources"][0]["type"] == "CONTACT"

    created = people.people().createContact(body=_person("Nora", "Nes")).execute()
    assert created["resourceName"].startswith("people/c")
    people.people().deleteContact(resourceName=seeded[0]["resourceName"]).execute()

    # The same parameters as the full sync that gave the token, as the API requires.
    delta = (
        people.people()
        .connections()
        .list(
            resourceName="people/me",
            personFields=FIELDS,
            pageSize=3,
            requestSyncToken=True,
            syncToken=sync_token,
        )
        .execute()
    )
    by_name = {p["resourceName"]: p for p in delta["connections"]}
    assert set(by_name) == {created["resourceName"], seeded[0]["resourceName"]}
    assert by_name[seeded[0]["resourceName"]]["metadata"]["deleted"] is True
    assert "nextSyncToken" in delta


def test_person_fields_are_required(people: Any) -> None:
    with pytest.raises(HttpError) as err:
        people.people().connections().list(resourceName="people/me").execute()
    assert err.value.resp.status == 400


def test_expired_sync_token(
    people: Any, google_app: Any, google_store: Any, google_service: Any, google_token: Any
) -> None:
    _, sync_token = _full_sync(people, requestSyncToken=True)
    control_of(google_app).faults.add({"kind": "delta_expired"})
    request = (
        people.people()
        .connections()
        .list(
            resourceName="people/me",
            personFields=FIELDS,
            requestSyncToken=True,
            syncToken=sync_token,
        )
    )
    with pytest.raises(HttpError) as err:
        request.execute()
    assert err.value.resp.status == 400
    assert err.value.error_details[0]["reason"] == "EXPIRED_SYNC_TOKEN"
    assert request.execute()  # one-shot fault
    google_store.clock_offset += 7 * 24 * 3600 + 60  # Google: seven days after the full sync
    later = google_service("people", "v1", google_token(CAROL, SCOPE_CONTACTS))
    with pytest.raises(HttpError) as err:
        later.people().connections().list(
            resourceName="people/me",
            personFields=FIELDS,
            requestSyncToken=True,
            syncToken=sync_token,
        ).execute()
    assert "expired" in err.value.reason.lower()


def test_update_needs_the_current_etag(people: Any) -> None:
    created = people.people().createContact(body=_person("Olav", "Lie")).execute()
    body = {"etag": created["etag"], "names": [{"givenName": "Olav", "familyName": "Lien"}]}
    updated = (
        people.people()
        .updateContact(resourceName=created["resourceName"], updatePersonFields="names", body=body)
        .execute()
    )
    assert updated["names"][0]["familyName"] == "Lien" and updated["etag"] != created["etag"]
    assert updated["emailAddresses"][0]["value"] == "olav@example.org"  # untouched field kept
    with pytest.raises(HttpError) as err:
        people.people().updateContact(
            resourceName=created["resourceName"], updatePersonFields="names", body=body
        ).execute()
    assert err.value.resp.status == 400
    assert "etag" in err.value.reason
    with pytest.raises(HttpError) as err:
        people.people().updateContact(
            resourceName=created["resourceName"],
            updatePersonFields="names",
            body={"names": body["names"]},
        ).execute()
    assert err.value.resp.status == 400


def test_batch_create_and_update(people: Any) -> None:
    created = (
        people.people()
        .batchCreateContacts(
            body={
                "contacts": [{"contactPerson": _person(g, "Batch")} for g in ("Ada", "Bo")],
                "readMask": "names,clientData",
            }
        )
        .execute()["createdPeople"]
    )
    assert [c["person"]["names"][0]["givenName"] for c in created] == ["Ada", "Bo"]
    assert created[0]["person"]["clientData"][0]["value"] == "77"
    update = {
        c["person"]["resourceName"]: {
            "etag": c["person"]["etag"],
            "names": [{"givenName": c["person"]["names"][0]["givenName"], "familyName": "New"}],
        }
        for c in created
    }
    result = (
        people.people()
        .batchUpdateContacts(body={"contacts": update, "updateMask": "names", "readMask": "names"})
        .execute()["updateResult"]
    )
    assert {r["person"]["names"][0]["familyName"] for r in result.values()} == {"New"}
    with pytest.raises(HttpError) as err:  # the etags are stale now
        people.people().batchUpdateContacts(
            body={"contacts": update, "updateMask": "names", "readMask": "names"}
        ).execute()
    assert err.value.resp.status == 400


def test_people_batch_endpoint(people: Any, google_server: Any) -> None:
    from googleapiclient.http import BatchHttpRequest

    answers: list[Any] = []
    batch = BatchHttpRequest(
        callback=lambda _id, response, exc: answers.append(exc or response),
        batch_uri=google_server.url + "/batch",
    )
    batch.add(people.people().createContact(body=_person("Per", "Batch")))
    batch.add(people.people().connections().list(resourceName="people/me", personFields="names"))
    batch.execute()
    assert answers[0]["resourceName"].startswith("people/c")
    assert answers[1]["totalPeople"] == 5
