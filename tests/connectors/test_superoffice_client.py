"""The SuperOffice client against the simulator over https: where the tenant lives (the
/api/state lookup, a 421 looks it up again), the user's SuperID tokens renewed and handed
over, SO-TimeZone on every call, and the service's answers as typed errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests

from common.connectors.base import AuthExpired, NotFound, Throttled, Transient
from common.connectors.superoffice import (
    Online,
    SuperOfficeAppointments,
    SuperOfficeClient,
    Tenant,
)
from common.connectors.superoffice.auth import OAuthTokens
from common.kinds import Side, Window
from tests.connectors.contract import read_all
from tests.fixtures.superoffice_connector import (
    CONTOSO_ZONE,
    MEGAN,
    online_client,
    onsite_client,
    sign_in,
)

WINDOW = Window(dt.datetime(2026, 2, 28, tzinfo=dt.UTC), dt.datetime(2026, 5, 1, tzinfo=dt.UTC))


def fault(http: requests.Session, base: str, **rule: Any) -> None:
    answer = http.post(f"{base}/_sim/faults", json=rule)
    assert answer.status_code in (200, 201), answer.text


def stats(http: requests.Session, base: str) -> dict[str, int]:
    endpoints: dict[str, int] = http.get(f"{base}/_sim/stats").json()["endpoints"]
    return endpoints


def test_every_call_says_which_time_zone_it_speaks(so_http: requests.Session, so_base: str) -> None:
    """Mistake: a call path that forgets SO-TimeZone (its dates would then be the tenant's
    local time without an offset, read as something else)."""
    seen: list[requests.PreparedRequest] = []
    so_http.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
    client = online_client(so_http, so_base, "megan@contoso.example")
    connector = SuperOfficeAppointments(client, MEGAN, Tenant(CONTOSO_ZONE, context="Cust12345"))
    pages, cursor = read_all(connector, None, WINDOW)
    made = connector.create(list(pages[0].upserts)[0].item, "cid-1")
    connector.get(made.id)
    fault(so_http, so_base, kind="token_expired", path="/Cust12345/api/v1/Appointment")
    read_all(connector, cursor, WINDOW)  # a renewal and the call again
    api = [r for r in seen if "/Cust12345/api/v1/" in str(r.url)]
    assert len(api) > 10
    assert all(r.headers.get("SO-TimeZone") == "UTC, includeTZOffset" for r in api), [
        (r.method, r.url) for r in api if r.headers.get("SO-TimeZone") != "UTC, includeTZOffset"
    ]
    assert all(r.headers.get("Accept") == "application/json" for r in api)


def test_the_tenant_is_found_through_its_state_and_found_again_after_a_421(
    so_http: requests.Session, so_base: str
) -> None:
    """Cust56789 answers only on `localhost`; the client starts from an address it was given
    on 127.0.0.1 (as an id_token's webapi_url goes stale). Mistake: retrying the same host,
    or hard-coding it."""
    port = so_base.rsplit(":", 1)[1]
    stale = f"https://127.0.0.1:{port}/Cust56789"
    client = online_client(so_http, so_base, "alice@wingtip.example", "Cust56789", endpoint=stale)
    principal = client.get("/User/currentPrincipal")
    assert principal["DatabaseContextIdentifier"] == "Cust56789"
    assert isinstance(client.site, Online)
    assert client.site.endpoint == f"https://localhost:{port}/Cust56789"
    assert client.calls["GET /api"] == 1  # one lookup, then the right host
    # The tenant moves while the client works: one 421, one lookup, the call made again.
    fault(so_http, so_base, kind="tenant_moved", path="/Cust56789/api/v1/User")
    assert client.get("/User/currentPrincipal")["AssociateId"] == principal["AssociateId"]
    assert client.calls["GET /api"] == 2
    # A host that keeps answering 421 is an error, not a loop.
    fault(so_http, so_base, kind="tenant_moved", path="/Cust56789/api/v1/User", count=2)
    with pytest.raises(Transient, match="421"):
        client.get("/User/currentPrincipal")


def test_an_offline_or_unknown_tenant_is_said_so(so_http: requests.Session, so_base: str) -> None:
    tokens = sign_in(so_http, so_base, "megan@contoso.example")
    offline = SuperOfficeClient(Online("Cust67890", superid_url=so_base), tokens, http=so_http)
    with pytest.raises(Transient, match="OfflineMaintenance"):
        offline.get("/User/currentPrincipal")
    unknown = SuperOfficeClient(Online("Cust99999", superid_url=so_base), tokens, http=so_http)
    with pytest.raises(Exception, match="Unknown") as caught:
        unknown.get("/User/currentPrincipal")
    assert not isinstance(caught.value, Transient)  # a wrong tenant does not heal by waiting


def test_an_expired_access_token_is_renewed_and_the_new_tokens_handed_over(
    so_http: requests.Session, so_base: str
) -> None:
    """Mistakes: the call not made again after the renewal; the new tokens not handed over
    (the next process would start from a dead access token); a revoked grant retried."""
    saved: list[OAuthTokens] = []
    client = online_client(so_http, so_base, "megan@contoso.example")
    tokens = client.auth
    assert isinstance(tokens, OAuthTokens)
    tokens.on_refresh = saved.append
    first = tokens.access_token
    fault(so_http, so_base, kind="token_expired", path="/Cust12345/api/v1/User")
    assert client.get("/User/currentPrincipal")["AssociateId"] == MEGAN
    assert len(saved) == 1 and saved[0].access_token == tokens.access_token != first
    assert saved[0].refresh_token == tokens.refresh_token
    # The old access token is not used again: the next call goes straight through.
    before = stats(so_http, so_base).get("POST /login/common/oauth/tokens", 0)
    client.get("/User/currentPrincipal")
    assert stats(so_http, so_base).get("POST /login/common/oauth/tokens", 0) == before
    # A token at the end of its life is renewed before it is used (no 401 first).
    tokens.expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    client.get("/User/currentPrincipal")
    assert len(saved) == 2 and tokens.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(
        minutes=50
    )
    # Consent withdrawn: the refresh is refused and the user must sign in again.
    fault(so_http, so_base, kind="token_expired", path="/Cust12345/api/v1/User")
    fault(so_http, so_base, kind="token_revoked")
    with pytest.raises(AuthExpired, match="sign-in needs renewing") as refused:
        client.get("/User/currentPrincipal")
    assert refused.value.side is Side.CRM  # the CRM's credentials: the daemon knows whose
    assert len(saved) == 2


def test_basic_credentials_refused_are_an_expired_authorisation(
    so_http: requests.Session, so_base: str
) -> None:
    client = onsite_client(so_http, so_base, "ALICE")
    assert client.get("/User/currentPrincipal")["AssociateId"] == 700
    client.auth.password = "wrong"  # type: ignore[attr-defined]
    with pytest.raises(AuthExpired, match="wrong password") as refused:
        client.get("/User/currentPrincipal")
    assert refused.value.side is Side.CRM


def test_the_services_refusals_are_typed(so_http: requests.Session, so_base: str) -> None:
    client = online_client(so_http, so_base, "megan@contoso.example")
    fault(so_http, so_base, kind="status", status=429, retry_after=7, path="/Cust12345/api/v1/User")
    with pytest.raises(Throttled) as throttled:
        client.get("/User/currentPrincipal")
    assert throttled.value.retry_after == 7
    fault(so_http, so_base, kind="status", status=500, path="/Cust12345/api/v1/User")
    with pytest.raises(Transient):
        client.get("/User/currentPrincipal")
    fault(so_http, so_base, kind="drop", path="/Cust12345/api/v1/User")
    with pytest.raises(Transient):
        client.get("/User/currentPrincipal")
    with pytest.raises(NotFound, match="not found"):
        client.get("/Appointment/99999999")
