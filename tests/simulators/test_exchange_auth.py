"""Authentication and server identity as on-premises Exchange presents them, seen with requests,
requests_ntlm and exchangelib."""

from __future__ import annotations

import base64

import pytest
import requests
from exchangelib import BASIC, DELEGATE, NTLM, Account, Configuration, Credentials
from exchangelib.errors import (
    ErrorServerBusy,
    RateLimitError,
    RedirectError,
    TransportError,
    UnauthorizedError,
)
from exchangelib.protocol import FailFast, FaultTolerance
from lxml import etree
from requests_ntlm import HttpNtlmAuth

from simulators.exchange.xmlns import SOAP, TYPES
from simulators.platform.control import control_of
from tests.fixtures.exchange import PASSWORDS

CONVERT_ID = """<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
 <s:Header><t:RequestServerVersion Version="{version}"/></s:Header>
 <s:Body><m:ConvertId DestinationFormat="HexEntryId"><m:SourceIds>
  <t:AlternateId Format="EwsId" Id="DUMMY" Mailbox="DUMMY"/></m:SourceIds></m:ConvertId></s:Body>
</s:Envelope>"""


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def _post(ews_url: str, host: str, version: str = "Exchange2013", auth=None) -> requests.Response:
    return _session().post(
        ews_url,
        data=CONVERT_ID.format(version=version).encode(),
        headers={"Host": host, "Content-Type": "text/xml; charset=utf-8"},
        auth=auth,
        timeout=5,
    )


def test_unauthenticated_request_gets_iis_challenges(ews_url):
    response = _post(ews_url, "mail.proseware.example")
    assert response.status_code == 401
    offered = [v.strip() for v in response.headers["WWW-Authenticate"].split(",")]
    assert offered == ["Negotiate", "NTLM", 'Basic realm="mail.proseware.example"']
    assert response.headers["X-OWA-Version"] == "15.2.1544.4"
    # The Exchange 2013 organisation only has Basic enabled.
    basic_only = _post(ews_url, "mail.lucerne.example")
    assert basic_only.headers["WWW-Authenticate"] == 'Basic realm="mail.lucerne.example"'


def test_ntlm_negotiate_is_answered_with_a_challenge(ews_url):
    negotiate = base64.b64encode(
        b"NTLMSSP\x00\x01\x00\x00\x00" + (0x62088215).to_bytes(4, "little") + b"\x00" * 16
    ).decode()
    response = _session().post(
        ews_url, headers={"Authorization": f"NTLM {negotiate}"}, data=b"", timeout=5
    )
    assert response.status_code == 401
    scheme, token = response.headers["WWW-Authenticate"].split(" ", 1)
    challenge = base64.b64decode(token)
    assert scheme == "NTLM"
    assert challenge[:12] == b"NTLMSSP\x00\x02\x00\x00\x00"
    assert "PROSEWARE".encode("utf-16-le") in challenge
    assert challenge[48:52] == bytes([10, 0]) + (17763).to_bytes(2, "little")  # Windows Server 2019


def test_ntlm_handshake_with_requests_ntlm(ews_url):
    good = _post(
        ews_url,
        "mail.proseware.example",
        "Exchange2016",
        HttpNtlmAuth("PROSEWARE\\alice", PASSWORDS["alice"]),
    )
    assert good.status_code == 200
    bad = _post(
        ews_url, "mail.proseware.example", "Exchange2016", HttpNtlmAuth("PROSEWARE\\alice", "wrong")
    )
    assert bad.status_code == 401


def test_wrong_password_is_a_401(ews_url):
    for user in ("alice@proseware.example", "PROSEWARE\\alice", "alice"):
        response = _post(ews_url, "mail.proseware.example", auth=(user, "wrong"))
        assert response.status_code == 401
        assert "Basic" in response.headers["WWW-Authenticate"]
        right = _post(ews_url, "mail.proseware.example", auth=(user, PASSWORDS["alice"]))
        assert right.status_code == 200


@pytest.mark.parametrize("auth_type", [NTLM, BASIC, None], ids=["ntlm", "basic", "guessed"])
def test_exchangelib_reports_a_wrong_password_as_unauthorized(ews_url, auth_type):
    config = Configuration(
        service_endpoint=ews_url,
        credentials=Credentials("alice@proseware.example", "wrong"),
        auth_type=auth_type,
        retry_policy=FailFast(),
    )
    account = Account(
        "alice@proseware.example", config=config, autodiscover=False, access_type=DELEGATE
    )
    with pytest.raises(UnauthorizedError, match="Invalid credentials"):
        _ = account.calendar


def test_exchangelib_keeps_retrying_a_401_under_fault_tolerance(ews_account):
    # As against a real server: with FaultTolerance a 401 may be throttling, so exchangelib
    # retries it until max_wait and then gives up.
    account = ews_account("alice", password="wrong", retry_policy=FaultTolerance(max_wait=1))
    with pytest.raises(RateLimitError):
        _ = account.calendar


def _woodgrove_account(user: str, auth_type: str | None) -> Account:
    config = Configuration(
        service_endpoint="https://mail.woodgrove.example/EWS/Exchange.asmx",
        credentials=Credentials(f"{user}@woodgrove.example", PASSWORDS[user]),
        auth_type=auth_type,
        retry_policy=FailFast(),
    )
    return Account(
        f"{user}@woodgrove.example", config=config, autodiscover=False, access_type=DELEGATE
    )


def test_exchangelib_is_redirected_to_the_netscaler_login_page(exchange_dns):
    with pytest.raises(RedirectError) as raised:
        _ = _woodgrove_account("alice", NTLM).calendar
    assert raised.value.url == "https://mail.woodgrove.example/logon/LogonPoint/tmindex.html"
    # Guessing the auth type finds no WWW-Authenticate to taste, only the 302.
    with pytest.raises(TransportError, match="Failed to get auth type"):
        _ = _woodgrove_account("bob", None).calendar


@pytest.mark.parametrize(
    ("host", "user", "build", "schema"),
    [
        ("mail.lucerne.example", "alice@lucerne.example", ("15", "0", "1497", "2"), "V2_23"),
        (
            "mail.fabrikam.example",
            "alice@fabrikam.example",
            ("15", "1", "2507", "6"),
            "V2017_07_11",
        ),
        (
            "mail.proseware.example",
            "alice@proseware.example",
            ("15", "2", "1544", "4"),
            "V2017_07_11",
        ),
    ],
)
def test_server_version_info_tells_versions_apart(ews_url, host, user, build, schema):
    response = _post(ews_url, host, auth=(user, PASSWORDS["alice"]))
    assert response.status_code == 200
    info = etree.fromstring(response.content).find(f"{{{SOAP}}}Header/{{{TYPES}}}ServerVersionInfo")
    attrs = ("MajorVersion", "MinorVersion", "MajorBuildNumber", "MinorBuildNumber")
    assert tuple(info.get(a) for a in attrs) == build
    assert info.get("Version") == schema
    assert response.headers["X-OWA-Version"] == ".".join(build)
    # "DUMMY" is not an id: one error message, as exchangelib's version probe expects.
    assert b"ErrorInvalidIdMalformed" in response.content


def test_exchange_2013_refuses_a_newer_schema(ews_url):
    response = _post(
        ews_url,
        "mail.lucerne.example",
        "Exchange2016",
        ("alice@lucerne.example", PASSWORDS["alice"]),
    )
    assert response.status_code == 500
    assert b"ErrorInvalidServerVersion" in response.content


def test_status_fault_on_ews_is_a_soap_server_busy(ews_account, exchange_app):
    control_of(exchange_app).faults.add(
        {"kind": "status", "status": 500, "retry_after": 2, "count": 1}
    )
    account = ews_account("alice", retry_policy=FailFast())
    with pytest.raises(ErrorServerBusy) as raised:
        _ = account.calendar
    assert raised.value.back_off == 2.0


def test_sim_state_exports_and_resets(ews_url, ews_account):
    session = _session()
    state_url = ews_url.replace("/EWS/Exchange.asmx", "/_sim/state")
    state = session.get(state_url, timeout=5).json()
    proseware = state["organisations"]["proseware.example"]
    assert proseware["build"] == "15.2.1544.4"
    calendar = proseware["mailboxes"]["alice@proseware.example"]["calendar"]
    series = next(i for i in calendar if i["subject"] == "Weekly sales stand-up")
    assert len(series["exceptions"]) == 1 and len(series["deleted_occurrences"]) == 1
    cleared = session.post(state_url, json={"clear": ["alice@proseware.example"]}, timeout=5).json()
    assert (
        cleared["organisations"]["proseware.example"]["mailboxes"]["alice@proseware.example"][
            "calendar"
        ]
        == []
    )
    assert ews_account("alice").calendar.total_count == 0
    reset = session.post(state_url, json={"reset": True}, timeout=5).json()
    assert (
        len(
            reset["organisations"]["proseware.example"]["mailboxes"]["alice@proseware.example"][
                "calendar"
            ]
        )
        == 10
    )


def test_sim_state_adds_items_from_json(ews_url, ews_account):
    session = _session()
    state_url = ews_url.replace("/EWS/Exchange.asmx", "/_sim/state")
    payload = {
        "clear": ["bob@proseware.example"],
        "add": {
            "bob@proseware.example": {
                "appointments": [
                    {
                        "subject": "Seeded series",
                        "start": "2030-03-04T09:00:00+01:00",
                        "end": "2030-03-04T09:30:00+01:00",
                        "tz": "Europe/Oslo",
                        "recurrence": {"pattern": "weekly", "days": ["Monday"], "count": 6},
                        "edits": [{"index": 2, "subject": "Seeded (moved)", "shift_minutes": 30}],
                        "deleted": [3],
                    }
                ],
                "contacts": [{"given_name": "Per", "surname": "Hansen", "email": "per@x.example"}],
            }
        },
    }
    state = session.post(state_url, json=payload, timeout=5).json()
    bob = state["organisations"]["proseware.example"]["mailboxes"]["bob@proseware.example"]
    [series] = bob["calendar"]
    assert series["subject"] == "Seeded series"
    assert len(series["exceptions"]) == 1 and len(series["deleted_occurrences"]) == 1
    assert [c["surname"] for c in bob["contacts"]] == ["Hansen"]
    account = ews_account("bob")
    [contact] = account.contacts.all()
    assert contact.email_addresses[0].email == "per@x.example"
    bad = session.post(
        state_url, json={"add": {"bob@proseware.example": {"appointments": [{}]}}}, timeout=5
    )
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<not-xml", "ErrorSchemaValidation"),
        (CONVERT_ID.replace("ConvertId", "GetUserOofSettings").encode(), "ErrorInvalidRequest"),
        (
            CONVERT_ID.replace(
                '<m:ConvertId DestinationFormat="HexEntryId"><m:SourceIds>'
                '\n  <t:AlternateId Format="EwsId" Id="DUMMY" Mailbox="DUMMY"/></m:SourceIds></m:ConvertId>',
                '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
                "</m:ItemShape><m:Restriction><t:IsEqualTo/></m:Restriction><m:ParentFolderIds>"
                '<t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>',
            ).encode(),
            "ErrorInternalServerError",
        ),
    ],
    ids=["malformed", "unsupported-operation", "broken-restriction"],
)
def test_requests_it_cannot_serve_are_soap_faults(ews_url, body, code):
    response = _session().post(
        ews_url,
        data=body.replace(b"{version}", b"Exchange2016"),
        auth=("alice@proseware.example", PASSWORDS["alice"]),
        timeout=5,
    )
    assert response.status_code == 500
    fault = etree.fromstring(response.content).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault.findtext("faultcode") == f"a:{code}"
