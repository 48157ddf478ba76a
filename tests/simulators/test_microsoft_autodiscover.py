"""Exchange Online's Autodiscover v2 in the Microsoft simulator answers as Microsoft documents:
a 200 with its own EWS URL for a cloud mailbox, a 302 to the on-premises Autodiscover for a
hybrid's mailbox still on-premises, a 302 within Microsoft's cloud for an unknown address."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from simulators.runner import SimulatorStack


def ask(session: requests.Session, sims: SimulatorStack, address: str, protocol: str = "EWS"):
    url = f"{sims.urls['outlook']}/autodiscover/autodiscover.json/v1.0/{address}"
    return session.get(url, params={"Protocol": protocol}, allow_redirects=False, timeout=10)


def test_a_cloud_mailbox_gets_exchange_onlines_own_url(sims, sim_session):
    answer = ask(sim_session, sims, "bob@wideworldimporters.example")
    assert answer.status_code == 200
    assert answer.json() == {"Protocol": "EWS", "Url": f"{sims.urls['outlook']}/EWS/Exchange.asmx"}


@pytest.mark.parametrize("protocol", ["EWS", "ActiveSync"])
def test_a_mailbox_still_on_premises_is_redirected_to_the_on_premises_autodiscover(
    sims, sim_session, protocol
):
    answer = ask(sim_session, sims, "alice@wideworldimporters.example", protocol)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert (location.scheme, location.hostname, location.path) == (
        "https",
        "autodiscover.wideworldimporters.example",
        "/autodiscover/autodiscover.json",
    )
    query = parse_qs(location.query)
    assert query["Email"] == ["alice@wideworldimporters.example"]
    assert query["Protocol"] == [protocol]


def test_an_unknown_address_is_passed_on_within_microsofts_cloud(sims, sim_session):
    answer = ask(sim_session, sims, "carol@wideworldimporters.example")
    assert answer.status_code == 302
    assert urlsplit(answer.headers["Location"]).hostname == "autodiscover-s.outlook.com"


def test_an_unknown_protocol_is_refused(sims, sim_session):
    answer = ask(sim_session, sims, "bob@wideworldimporters.example", "Foo")
    assert answer.status_code == 400
    assert answer.json()["ErrorCode"] == "InvalidProtocol"
