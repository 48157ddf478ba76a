"""Graph contacts, $batch and Outlook throttling in the simulator."""

from __future__ import annotations

import threading

import requests

ADELE = "/users/adele@contoso.example"


def fault(ms_server, ms_session, **rule) -> None:
    answer = ms_session.post(f"{ms_server.url}/_sim/faults", json=rule)
    assert answer.status_code == 201, answer.text


def test_contact_crud_and_delta(graph):
    first = graph.get(f"{ADELE}/contacts/delta").json()
    assert {c["displayName"] for c in first["value"]} == {"Pat Buyer", "Lee Partner"}
    delta_link = first["@odata.deltaLink"]

    created = graph.post(
        f"{ADELE}/contacts",
        {
            "givenName": "Sam",
            "surname": "New",
            "emailAddresses": [{"address": "sam@new.example", "name": "Sam New"}],
        },
    )
    assert created.status_code == 201
    sam = created.json()
    assert sam["@odata.etag"] == f'W/"{sam["changeKey"]}"'
    pat = next(c for c in first["value"] if c["displayName"] == "Pat Buyer")
    lee = next(c for c in first["value"] if c["displayName"] == "Lee Partner")
    updated = graph.patch(
        f"{ADELE}/contacts/{pat['id']}",
        {"jobTitle": "CFO"},
        headers={"If-Match": pat["@odata.etag"]},
    )
    assert updated.json()["jobTitle"] == "CFO"
    assert graph.delete(f"{ADELE}/contacts/{lee['id']}").status_code == 204

    changes = graph.get(delta_link).json()
    assert {c["id"] for c in changes["value"] if "@removed" not in c} == {sam["id"], pat["id"]}
    assert [c["id"] for c in changes["value"] if "@removed" in c] == [lee["id"]]
    assert graph.get(f"{ADELE}/contacts/{lee['id']}").status_code == 404


def test_contacts_delta_in_the_default_folder_pages(graph):
    folder = graph.get(f"{ADELE}/contactFolders").json()["value"][0]
    page = graph.get(
        f"{ADELE}/contactFolders/{folder['id']}/contacts/delta",
        headers={"Prefer": "odata.maxpagesize=1"},
    )
    body = page.json()
    assert len(body["value"]) == 1 and "@odata.nextLink" in body
    assert page.headers["Preference-Applied"] == "odata.maxpagesize=1"
    rest = graph.get(body["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=1"}).json()
    assert len(rest["value"]) == 1 and "@odata.deltaLink" in rest


def test_status_fault_gives_429_with_retry_after(graph, ms_server, ms_session):
    fault(ms_server, ms_session, kind="status", status=429, retry_after=7, path="/contacts$")
    throttled = graph.get(f"{ADELE}/contacts")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert graph.get(f"{ADELE}/contacts").status_code == 200


def test_fifth_concurrent_request_to_a_mailbox_is_mailbox_concurrency(graph, ms_server, ms_session):
    # Four requests hold their slots for a while; the fifth, to the same mailbox, is refused.
    fault(ms_server, ms_session, kind="mailbox_hold", latency_ms=1500, count=4, path="/contacts$")
    results: list[requests.Response] = []
    lock = threading.Lock()

    def call() -> None:
        session = requests.Session()
        session.trust_env = False
        session.verify = ms_session.verify
        answer = session.get(
            f"{ms_server.url}/v1.0{ADELE}/contacts",
            headers={"Authorization": f"Bearer {graph.token}"},
            timeout=10,
        )
        with lock:
            results.append(answer)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 200, 200, 429]
    refused = next(r for r in results if r.status_code == 429)
    assert refused.json()["error"] == {
        **refused.json()["error"],
        "code": "ApplicationThrottled",
        "message": "Application is over its MailboxConcurrency limit.",
    }
    assert refused.headers["Retry-After"]
    # Another mailbox is not affected by adele's load.
    assert graph.get("/users/megan@contoso.example/contacts").status_code == 200


def test_request_budget_per_mailbox(ms_world, graph):
    ms_world.mailbox_requests_per_window = 3
    statuses = [graph.get(f"{ADELE}/contacts").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_batch_runs_parts_and_counts_each(graph, ms_server, ms_session):
    ms_session.delete(f"{ms_server.url}/_sim/stats")
    answer = graph.post(
        "/$batch",
        {
            "requests": [
                {"id": "1", "method": "GET", "url": f"{ADELE}/contacts"},
                {
                    "id": "2",
                    "method": "POST",
                    "url": f"{ADELE}/events",
                    "headers": {"Content-Type": "application/json"},
                    "body": {
                        "subject": "From a batch",
                        "start": {"dateTime": "2026-03-26T10:00:00", "timeZone": "UTC"},
                        "end": {"dateTime": "2026-03-26T11:00:00", "timeZone": "UTC"},
                    },
                },
                {"id": "3", "method": "GET", "url": "/users/nomail@contoso.example/events"},
            ]
        },
    )
    assert answer.status_code == 200
    responses = {r["id"]: r for r in answer.json()["responses"]}
    assert responses["1"]["status"] == 200 and len(responses["1"]["body"]["value"]) == 2
    assert responses["2"]["status"] == 201 and responses["2"]["body"]["subject"] == "From a batch"
    assert responses["3"]["status"] == 404
    assert responses["3"]["body"]["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    stats = ms_session.get(f"{ms_server.url}/_sim/stats").json()["endpoints"]
    assert stats["POST /v1.0/$batch"] == 1
    assert stats["GET /v1.0/users/<user_key>/contacts"] == 1
    assert stats["POST /v1.0/users/<user_key>/events"] == 1


def test_batch_parts_are_throttled_on_their_own(graph, ms_server, ms_session):
    fault(
        ms_server, ms_session, kind="status", status=429, retry_after=3, path="/contacts$", count=1
    )
    parts = [{"id": str(i), "method": "GET", "url": f"{ADELE}/contacts"} for i in range(1, 4)]
    responses = {r["id"]: r for r in graph.post("/$batch", {"requests": parts}).json()["responses"]}
    assert [responses[str(i)]["status"] for i in range(1, 4)] == [429, 200, 200]
    assert responses["1"]["headers"]["Retry-After"] == "3"


def test_batch_depends_on_gives_424_after_a_failure(graph):
    parts = [
        {"id": "a", "method": "GET", "url": f"{ADELE}/events/AAMkADmissing"},
        {
            "id": "b",
            "method": "DELETE",
            "url": f"{ADELE}/contacts/AAMkAGmissing",
            "dependsOn": ["a"],
        },
    ]
    responses = {r["id"]: r for r in graph.post("/$batch", {"requests": parts}).json()["responses"]}
    assert responses["a"]["status"] == 404
    assert responses["b"]["status"] == 424


def test_batch_limit_is_twenty(graph):
    parts = [{"id": str(i), "method": "GET", "url": f"{ADELE}/contacts"} for i in range(21)]
    answer = graph.post("/$batch", {"requests": parts})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest"
    assert graph.post("/$batch", {"requests": parts[:20]}).status_code == 200


def test_contacts_delta_reports_changes_then_expires(graph, ms_server, ms_session):
    folder = graph.get(f"{ADELE}/contactFolders").json()["value"][0]
    url = f"{ADELE}/contactFolders/{folder['id']}/contacts/delta"
    body = graph.get(url).json()
    while "@odata.nextLink" in body:
        body = graph.get(body["@odata.nextLink"]).json()
    delta_link = body["@odata.deltaLink"]
    created = graph.post(f"{ADELE}/contacts", {"givenName": "Delta", "surname": "Person"})
    assert created.status_code == 201
    changes = graph.get(delta_link).json()
    assert [c["id"] for c in changes["value"]] == [created.json()["id"]]
    fault(ms_server, ms_session, kind="delta_expired", path="contacts/delta")
    gone = graph.get(changes["@odata.deltaLink"])
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "syncStateNotFound"
