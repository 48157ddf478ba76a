"""The Google simulator's /_sim/state: export, seed, and the admin actions tests and the demo
use (block the app, change delegation, revoke tokens)."""

from __future__ import annotations

from typing import Any

from simulators.world.google import (
    HEALTHY_DOMAIN,
    SCOPE_CALENDAR,
    SCOPE_CONTACTS,
    SYNCHRONIZER_CLIENT_ID,
)

ALICE = "alice@northwind.example"


def test_export_and_seed(google_app: Any, google_token: Any) -> None:
    client = google_app.test_client()
    state = client.get("/_sim/state").get_json()
    assert len(state["calendars"][ALICE]["events"]) == 11  # 9 seeded + a moved and a cancelled
    assert len(state["contacts"][ALICE]) == 4
    seeded = client.post(
        "/_sim/state",
        json={
            "calendars": {
                ALICE: {
                    "events": [
                        {
                            "id": "seeded00001",
                            "summary": "Only one",
                            "start": {"date": "2026-12-01"},
                            "end": {"date": "2026-12-02"},
                        }
                    ]
                }
            },
            "contacts": {ALICE: [{"names": [{"givenName": "Solo"}]}]},
        },
    )
    assert seeded.status_code == 200
    headers = {"Authorization": "Bearer " + google_token(ALICE, SCOPE_CALENDAR, SCOPE_CONTACTS)}
    events = client.get("/calendar/v3/calendars/primary/events", headers=headers).get_json()
    assert [e["id"] for e in events["items"]] == ["seeded00001"]
    people = client.get("/v1/people/me/connections?personFields=names", headers=headers).get_json()
    assert [p["names"][0]["givenName"] for p in people["connections"]] == ["Solo"]
    assert client.post("/_sim/state", json={"domains": [{"name": "x.example"}]}).status_code == 400


def test_actions(google_app: Any, google_token: Any, google_store: Any) -> None:
    client = google_app.test_client()
    token = google_token(ALICE, SCOPE_CALENDAR)
    headers = {"Authorization": f"Bearer {token}"}
    url = "/calendar/v3/calendars/primary/events"
    # revoke_tokens drops every access token of the user and revokes their refresh grants.
    assert client.get(url, headers=headers).status_code == 200
    revoked = client.post("/_sim/state/actions", json={"action": "revoke_tokens", "email": ALICE})
    assert revoked.status_code == 200
    assert client.get(url, headers=headers).status_code == 401

    answer = client.post(
        "/_sim/state/actions", json={"action": "set_delegation", "domain": HEALTHY_DOMAIN}
    )
    assert answer.status_code == 200
    assert google_store.find_domain(HEALTHY_DOMAIN).delegation == {}
    client.post("/_sim/state/actions", json={"action": "block_app", "domain": HEALTHY_DOMAIN})
    assert not google_store.find_domain(HEALTHY_DOMAIN).app_allowed(SYNCHRONIZER_CLIENT_ID)
    before = google_store.now()
    client.post("/_sim/state/actions", json={"action": "advance_clock", "seconds": 3600})
    assert google_store.now() - before >= 3600
    assert client.post("/_sim/state/actions", json={"action": "nope"}).status_code == 400
    assert client.post("/_sim/state/actions", json={"action": "block_app"}).status_code == 400


def test_credentials_for_the_demo(google_app: Any) -> None:
    from google.oauth2 import service_account

    answer = google_app.test_client().get("/_sim/state/credentials").get_json()
    assert answer["web"]["client_id"] == SYNCHRONIZER_CLIENT_ID
    assert answer["web"]["token_uri"].endswith("/token")
    creds = service_account.Credentials.from_service_account_info(answer["service_account"])
    assert creds.service_account_email.endswith(".iam.gserviceaccount.com")
