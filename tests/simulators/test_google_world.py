"""The Google part of the demo world, and the simulator inside the whole simulator stack."""

from __future__ import annotations

from datetime import date
from typing import Any

import httplib2
from googleapiclient.discovery import build

from simulators.world import google as world_google
from simulators.world.google import HEALTHY_DOMAIN, SYNCHRONIZER_CLIENT_ID, UNTRUSTED_DOMAIN


def test_domains_trust_and_roles() -> None:
    world = world_google.demo(date(2026, 11, 16))
    healthy, untrusted = world.domain(HEALTHY_DOMAIN), world.domain(UNTRUSTED_DOMAIN)
    assert healthy.app_allowed(SYNCHRONIZER_CLIENT_ID)
    assert not untrusted.app_allowed(SYNCHRONIZER_CLIENT_ID)
    assert world_google.SERVICE_ACCOUNT_CLIENT_ID in healthy.delegation
    assert not untrusted.delegation
    roles = {u.email: u.roles for u in healthy.users}
    assert roles["alice@northwind.example"] == ["_SEED_ADMIN_ROLE"]
    assert roles["harry@northwind.example"] == ["_HELP_DESK_ADMIN_ROLE"]
    assert sum(1 for r in roles.values() if not r) >= 3


def test_calendars_cover_the_tricky_shapes() -> None:
    carol = world_google.demo(date(2026, 11, 16)).user("carol@northwind.example")
    events = carol.events
    assert any("date" in e["start"] for e in events)  # all-day
    assert any(
        "date" in e["start"]
        and date.fromisoformat(e["end"]["date"]) - date.fromisoformat(e["start"]["date"])
        > (date(2026, 1, 2) - date(2026, 1, 1))
        for e in events
    )  # multi-day
    assert any(e.get("visibility") == "private" for e in events)
    assert any(e.get("_exceptions") for e in events)  # recurring with exceptions
    zones = {e["start"].get("timeZone") for e in events if "dateTime" in e["start"]}
    assert {"Europe/Oslo", "America/New_York", "Asia/Tokyo"} <= zones
    assert len(carol.contacts) == 4


def test_dns_records() -> None:
    records = world_google.dns_records(None)
    northwind = [(t, v) for n, t, v in records if n == HEALTHY_DOMAIN]
    assert ("MX", "1 aspmx.l.google.com.") in northwind
    assert any(t == "TXT" and "google-site-verification=" in v for t, v in northwind)


def test_google_in_the_simulator_stack(sims: Any, sim_resolver: Any) -> None:
    """The registered simulator answers over https at its URL, and the DNS knows its domains."""
    answer = sim_resolver.resolve(HEALTHY_DOMAIN, "MX")
    assert sorted(str(r.exchange) for r in answer)[0] == "alt1.aspmx.l.google.com."
    txt = [b"".join(r.strings).decode() for r in sim_resolver.resolve(UNTRUSTED_DOMAIN, "TXT")]
    assert any(t.startswith("google-site-verification=") for t in txt)

    url = sims.urls["google"]
    store = sims.apps["google"].extensions["google_store"]
    token = "ya29.stack-test"
    store.issue_access_token(
        token, "test", "alice@northwind.example", [world_google.SCOPE_DIRECTORY_USER_RO]
    )
    directory = build(
        "admin",
        "directory_v1",
        http=httplib2.Http(ca_certs=sims.ca_file),
        static_discovery=True,
        client_options={"api_endpoint": url + "/"},
    )
    request = directory.users().get(userKey="alice@northwind.example")
    request.headers["Authorization"] = f"Bearer {token}"
    assert request.execute()["isAdmin"] is True
