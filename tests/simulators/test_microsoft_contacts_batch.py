"""Graph contacts, $batch and Outlook throttling in the simulator."""

from __future__ import annotations

import threading
import time

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
    # The default folder by its well-known name (`contactFolders` lists only its children).
    folder = graph.get(f"{ADELE}/contactFolders/contacts").json()
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
    responses = graph.post("/$batch", {"requests": parts}).json()["responses"]
    # the parts run in parallel: which one the fault hit is not fixed, that only one was is
    assert sorted(r["status"] for r in responses) == [200, 200, 429]
    throttled = next(r for r in responses if r["status"] == 429)
    assert throttled["headers"]["Retry-After"] == "3"


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
    folder = graph.get(f"{ADELE}/contactFolders/contacts").json()
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


def _post_batch(ms_server, ms_session, token: str, parts: list[dict], **headers: str) -> dict:
    """POST a batch on its own connection (so several can run at once); {id: response}."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ms_session.verify
    answer = session.post(
        f"{ms_server.url}/v1.0/$batch",
        json={"requests": parts},
        headers={"Authorization": f"Bearer {token}", **headers},
        timeout=20,
    )
    assert answer.status_code == 200, answer.text
    return {r["id"]: r for r in answer.json()["responses"]}


def _in_background(work) -> tuple[threading.Thread, list]:
    box: list = []
    thread = threading.Thread(target=lambda: box.append(work()))
    thread.start()
    return thread, box


def test_parallel_batches_to_one_mailbox_get_per_part_429s(graph, ms_server, ms_session):
    # Outlook runs four parts of a batch at a time, inside the mailbox's four-request limit:
    # while one batch holds all four slots, the parts of a second batch are throttled.
    fault(ms_server, ms_session, kind="mailbox_hold", latency_ms=1500, count=4, path="/contacts$")
    parts = [{"id": str(i), "method": "GET", "url": f"{ADELE}/contacts"} for i in range(1, 5)]
    thread, first = _in_background(lambda: _post_batch(ms_server, ms_session, graph.token, parts))
    time.sleep(0.7)  # the first batch's four parts are now holding their slots
    second = _post_batch(ms_server, ms_session, graph.token, parts)
    thread.join()
    assert [first[0][str(i)]["status"] for i in range(1, 5)] == [200] * 4
    assert [second[str(i)]["status"] for i in range(1, 5)] == [429] * 4
    for part in second.values():
        assert part["body"]["error"]["code"] == "ApplicationThrottled"
        assert int(part["headers"]["Retry-After"]) >= 1


def test_a_depends_on_chain_runs_one_part_at_a_time(graph, ms_server, ms_session):
    # The documented alternative: a sequential batch takes one slot at a time, so three more
    # parallel requests to the same mailbox still fit in the four-request limit.
    fault(ms_server, ms_session, kind="mailbox_hold", latency_ms=600, count=7, path="/contacts$")
    chain = [
        {"id": str(i), "method": "GET", "url": f"{ADELE}/contacts"}
        | ({"dependsOn": [str(i - 1)]} if i > 1 else {})
        for i in range(1, 5)
    ]
    thread, sequential = _in_background(
        lambda: _post_batch(ms_server, ms_session, graph.token, chain)
    )
    time.sleep(0.3)
    started = time.monotonic()
    trio = [{"id": c, "method": "GET", "url": f"{ADELE}/contacts"} for c in "abc"]
    parallel = _post_batch(ms_server, ms_session, graph.token, trio)
    elapsed = time.monotonic() - started
    thread.join()
    assert [sequential[0][str(i)]["status"] for i in range(1, 5)] == [200] * 4
    assert [parallel[c]["status"] for c in "abc"] == [200] * 3
    # the three ran side by side (one 0.6 s hold, not three in a row)
    assert elapsed < 1.5


def test_part_urls_are_relative_to_the_version(graph):
    parts = [
        {"id": "1", "method": "GET", "url": f"{ADELE}/contacts"},
        {"id": "2", "method": "GET", "url": f"/v1.0{ADELE}/contacts"},
    ]
    responses = {r["id"]: r for r in graph.post("/$batch", {"requests": parts}).json()["responses"]}
    assert responses["1"]["status"] == 200
    assert responses["2"]["status"] == 400  # /v1.0/v1.0/... does not exist
    absolute = graph.post(
        "/$batch",
        {"requests": [{"id": "1", "method": "GET", "url": f"{graph.base}/v1.0{ADELE}/contacts"}]},
    )
    assert absolute.status_code == 400
    assert absolute.json()["error"]["code"] == "BadRequest"


def test_parts_do_not_inherit_the_outer_prefer_header(graph):
    event = graph.post(
        f"{ADELE}/events",
        {
            "subject": "Zone check",
            "start": {"dateTime": "2026-03-26T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-26T11:00:00", "timeZone": "UTC"},
        },
    ).json()
    zone = 'outlook.timezone="Pacific Standard Time"'
    parts = [
        {"id": "plain", "method": "GET", "url": f"{ADELE}/events/{event['id']}"},
        {
            "id": "own",
            "method": "GET",
            "url": f"{ADELE}/events/{event['id']}",
            "headers": {"Prefer": zone},
        },
    ]
    answer = graph.post("/$batch", {"requests": parts}, headers={"Prefer": zone})
    responses = {r["id"]: r for r in answer.json()["responses"]}
    assert responses["plain"]["body"]["start"]["timeZone"] == "UTC"
    assert responses["own"]["body"]["start"] == {
        "dateTime": "2026-03-26T03:00:00.0000000",
        "timeZone": "Pacific Standard Time",
    }


def test_contact_folders_of_ones_own(graph):
    """A folder made under the default Contacts folder: listed by `contactFolders` (which
    lists only those), one name once (409 ErrorFolderExists), contacts, their delta and their
    deletions kept apart from the default folder's."""
    assert graph.get(f"{ADELE}/contactFolders").json()["value"] == []
    made = graph.post(f"{ADELE}/contactFolders", {"displayName": "Synchronizer"})
    assert made.status_code == 201
    folder = made.json()
    assert folder["parentFolderId"] == graph.get(f"{ADELE}/contactFolders/contacts").json()["id"]
    again = graph.post(f"{ADELE}/contactFolders", {"displayName": "synchronizer"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "ErrorFolderExists"
    assert [f["id"] for f in graph.get(f"{ADELE}/contactFolders").json()["value"]] == [folder["id"]]

    mine = f"{ADELE}/contactFolders/{folder['id']}/contacts"
    inside = graph.post(mine, {"givenName": "In", "surname": "Folder"}).json()
    assert inside["parentFolderId"] == folder["id"]
    default_ids = {c["id"] for c in graph.get(f"{ADELE}/contacts").json()["value"]}
    assert inside["id"] not in default_ids
    assert [c["id"] for c in graph.get(mine).json()["value"]] == [inside["id"]]
    # Under another folder's path the contact does not exist; by its id alone it does.
    other = graph.get(f"{ADELE}/contactFolders/contacts/contacts/{inside['id']}")
    assert other.status_code == 404
    assert graph.get(f"{ADELE}/contacts/{inside['id']}").status_code == 200

    ours = graph.get(f"{mine}/delta").json()
    theirs = graph.get(f"{ADELE}/contactFolders/contacts/contacts/delta").json()
    assert [c["id"] for c in ours["value"]] == [inside["id"]]
    assert inside["id"] not in {c["id"] for c in theirs["value"]}
    # A deletion in the default folder is not reported to our folder's delta, and the
    # other way round; a token of one folder is unknown to the other.
    default_one = next(iter(default_ids))
    assert graph.delete(f"{ADELE}/contacts/{default_one}").status_code == 204
    assert graph.delete(f"{mine}/{inside['id']}").status_code == 204
    ours_after = graph.get(ours["@odata.deltaLink"]).json()["value"]
    theirs_after = graph.get(theirs["@odata.deltaLink"]).json()["value"]
    assert [c["id"] for c in ours_after] == [inside["id"]]
    assert [c["id"] for c in theirs_after] == [default_one]
    token = ours["@odata.deltaLink"].split("$deltatoken=")[1]
    crossed = graph.get(f"{ADELE}/contactFolders/contacts/contacts/delta?$deltatoken={token}")
    assert crossed.status_code == 410


def test_state_shows_how_close_a_client_came_to_the_mailbox_limit(graph, ms_server, ms_session):
    """`throttling.peakInFlight` and `concurrencyRefusals` per mailbox in /_sim/state."""
    fault(ms_server, ms_session, kind="mailbox_hold", latency_ms=800, count=5, path="/contacts$")
    threads = [threading.Thread(target=graph.get, args=(f"{ADELE}/contacts",)) for _ in range(5)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    state = ms_session.get(f"{ms_server.url}/_sim/state").json()
    adele = next(
        u
        for t in state["tenants"]
        for u in t["users"]
        if u["userPrincipalName"] == "adele@contoso.example"
    )
    assert adele["throttling"] == {"peakInFlight": 4, "concurrencyRefusals": 1}


def test_network_latency_delays_a_batch_once_not_each_part(graph, ms_server, ms_session):
    """The simulator's network latency (create_app config `SIM_LATENCY_MS` or `PUT
    /_sim/latency`) is one round trip per request from the network: a batch of eight parts
    costs one, as on the wire. Mistake caught: the parts (dispatched inside the server)
    delayed again, which would make a batch cost more round trips than the requests sent."""
    put = ms_session.put(f"{ms_server.url}/_sim/latency", json={"latency_ms": 400})
    assert put.status_code == 200
    try:
        started = time.monotonic()
        assert graph.get(f"{ADELE}/contacts").status_code == 200
        assert time.monotonic() - started >= 0.4
        parts = [{"id": str(n), "method": "GET", "url": f"{ADELE}/contacts"} for n in range(8)]
        started = time.monotonic()
        answer = _post_batch(ms_server, ms_session, graph.token, parts)
        elapsed = time.monotonic() - started
    finally:
        ms_session.put(f"{ms_server.url}/_sim/latency", json={"latency_ms": 0})
    assert sorted(r["status"] for r in answer.values()) == [200] * 8
    assert 0.4 <= elapsed < 0.8  # one round trip; delayed parts (4 at a time) would take 1.2 s
