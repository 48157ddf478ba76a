"""The Exchange connection from a profile, the server's version, and Exchange's answers as
typed errors: exchangelib unchanged (FailFast, no Autodiscover in the daemon) against the
EWS simulator, over https with the demo CA."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from exchangelib.errors import ErrorServerBusy

from common.connectors.base import AuthExpired, Permanent, Throttled, Transient
from common.connectors.ews.client import (
    DEFAULT_BACK_OFF,
    EwsClient,
    EwsProfile,
    Login,
    discover,
    error_of,
)
from common.connectors.ews.events import EwsEvents
from common.items import Appointment
from tests.connectors.contract import appointment_sample, read_all
from tests.fixtures.ews_connector import ALICE, NOW, WINDOW, Exchange
from tests.fixtures.exchange import PASSWORDS

# --- the profile ----------------------------------------------------------------------------


def test_a_profile_without_an_ews_url_or_with_an_unknown_setting_is_refused_clearly() -> None:
    """Mistake: a lenient parser (an empty URL or a typo of the authentication taken for a
    default), so a run fails later with an error nobody understands."""
    with pytest.raises(Permanent, match="no EWS URL"):
        EwsProfile.from_settings({"auth": "ntlm"})
    with pytest.raises(Permanent, match="authentication 'kerberos'"):
        EwsProfile.from_settings({"ews_url": "https://mail.example/EWS/Exchange.asmx",
                                  "auth": "kerberos"})  # fmt: skip
    with pytest.raises(Permanent, match="access 'delegate'"):
        EwsProfile.from_settings({"ews_url": "https://mail.example/EWS/Exchange.asmx",
                                  "access": "delegate"})  # fmt: skip
    with pytest.raises(AuthExpired, match="no EWS username"):
        Login.from_secrets({"username": "svc-sync"})
    profile = EwsProfile.from_settings({"ews_url": "https://mail.example/EWS/Exchange.asmx"})
    assert (profile.auth, profile.access) == ("ntlm", "impersonation")


# --- who -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"access": "impersonation", "auth": "ntlm"},
        {"access": "impersonation", "auth": "basic"},
        {"access": "user", "auth": "ntlm"},
        {"access": "user", "auth": "basic"},
    ],
)
def test_a_service_account_impersonating_or_the_users_own_credentials_read_the_calendar(
    exchange: Exchange, settings: dict[str, str]
) -> None:
    """Mistake: the access type not passed (impersonation taken for delegate access: the
    service account reads its own mailbox, or is refused alice's)."""
    client = exchange.connect(ALICE, **settings)
    events = EwsEvents(client)
    made = events.create(_sample(), "cid-who")
    assert made.item.subject == "Who am I" and made.correlation_id == "cid-who"
    assert exchange.mailbox(ALICE)["calendar"][0]["subject"] == "Who am I"
    assert client.release == "Exchange Server 2019"


def test_refused_credentials_and_impersonation_are_auth_expired(exchange: Exchange) -> None:
    """Mistake: a refused sign-in or impersonation taken for a passing failure (retried
    for ever) instead of asking a person to fix the credentials or the role."""
    profile = EwsProfile(exchange.ews_url)
    wrong = EwsClient.connect(profile, Login("svc-sync@proseware.example", "wrong"), ALICE)
    with pytest.raises(AuthExpired, match="UnauthorizedError"):
        EwsEvents(wrong).changes(None, WINDOW)
    no_role = EwsClient.connect(
        profile, Login("svc-norole@proseware.example", "Norole-Passw0rd!"), ALICE
    )
    with pytest.raises(AuthExpired, match="ErrorImpersonateUserDenied"):
        EwsEvents(no_role).changes(None, WINDOW)


def test_the_demo_ca_is_trusted_per_request_whatever_requests_ca_bundle_says(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DESIGN.md's trap: REQUESTS_CA_BUNDLE overriding the configured CA. Mistake: the CA
    set on a session (requests lets the environment win)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    pages, _ = read_all(EwsEvents(exchange.connect()), None, WINDOW)
    assert pages and not pages[0].upserts


# --- which server ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain, auth, release",
    [
        ("fabrikam.example", "ntlm", "Exchange Server 2016"),
        ("proseware.example", "ntlm", "Exchange Server 2019"),
        ("alpineskihouse.example", "ntlm", "Exchange Server Subscription Edition"),
    ],
)
def test_2016_2019_and_subscription_edition_are_recognised(
    exchange_dns: Any, domain: str, auth: str, release: str
) -> None:
    """Mistake: Subscription Edition (still 15.2) taken for 2019, or refused."""
    client = _client_at(domain, auth)
    assert client.release == release
    client.close()


def test_exchange_2013_is_refused_before_anything_is_read_or_written(exchange_dns: Any) -> None:
    """Mistake: the version never checked, so a 2013 server is synced with an API level it
    does not have."""
    client = _client_at("lucerne.example", "basic")
    with pytest.raises(Permanent, match="2016, 2019 and Subscription Edition"):
        EwsEvents(client).changes(None, WINDOW)
    client.close()


def test_autodiscover_finds_the_ews_url_for_the_profile(exchange_dns: Any) -> None:
    found = discover(
        "alice@proseware.example", Login("alice@proseware.example", PASSWORDS["alice"])
    )
    assert found.ews_url == "https://mail.proseware.example/EWS/Exchange.asmx"
    assert found.mailbox == "alice@proseware.example"


# --- throttling and lost connections ---------------------------------------------------------


def test_server_busy_is_throttled_with_exchanges_back_off_and_never_slept_out(
    exchange: Exchange,
) -> None:
    """Mistakes: exchangelib's FaultTolerance (the worker sleeps for minutes), or the
    BackOffMilliseconds dropped (the engine retries too soon, and is throttled again)."""
    events = EwsEvents(exchange.connect())
    events.changes(None, WINDOW)  # the version is known: the next call is the listing
    exchange.fault(kind="server_busy", back_off_ms=297_749, count=1)
    began = time.monotonic()
    with pytest.raises(Throttled) as caught:
        events.changes(None, WINDOW)
    assert caught.value.retry_after == pytest.approx(297.749)
    assert time.monotonic() - began < 5


def test_busy_without_a_back_off_and_a_dropped_connection_are_told_apart() -> None:
    """exchangelib says "busy" for both a server's ErrorServerBusy without
    BackOffMilliseconds (the concurrency budget) and a connection it lost."""
    budget = error_of(ErrorServerBusy("The server cannot service this request right now."))
    assert isinstance(budget, Throttled) and budget.retry_after == DEFAULT_BACK_OFF
    lost = error_of(ErrorServerBusy("Caused by closed connection"))
    assert isinstance(lost, Transient)


def _client_at(domain: str, auth: str) -> EwsClient:
    profile = EwsProfile(f"https://mail.{domain}/EWS/Exchange.asmx", auth, "user")
    address = f"alice@{domain}"
    return EwsClient.connect(profile, Login(address, PASSWORDS["alice"]), address)


def _sample() -> Appointment:
    return replace(appointment_sample(1, NOW), subject="Who am I")
