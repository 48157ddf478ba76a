"""Autodiscover on the simulated hosts: exchangelib's own discovery (SOAP) through the simulated
DNS and per-host loopback addresses on port 443, plus POX, the HTTP redirect method, SRV, and
the broken set-ups (redirect loops, none at all, a NetScaler login page)."""

from __future__ import annotations

import socket
import ssl
import warnings

import pytest
from exchangelib import DELEGATE, Account, Credentials
from exchangelib.errors import AutoDiscoverCircularRedirect, AutoDiscoverFailed
from lxml import etree

from simulators.exchange.xmlns import AUTOD, POX_OUTLOOK, POX_REQUEST, POX_RESPONSE
from simulators.platform.control import control_of
from tests.fixtures.exchange import PASSWORDS

POX_NS = {"r": POX_RESPONSE, "o": POX_OUTLOOK}


def _discover(user: str, domain: str) -> Account:
    return Account(
        f"{user}@{domain}",
        credentials=Credentials(f"{user}@{domain}", PASSWORDS[user]),
        autodiscover=True,
        access_type=DELEGATE,
    )


@pytest.mark.parametrize(
    ("domain", "ews_url", "api_version"),
    [
        ("proseware.example", "https://mail.proseware.example/EWS/Exchange.asmx", "Exchange2016"),
        ("fabrikam.example", "https://mail.fabrikam.example/EWS/Exchange.asmx", "Exchange2016"),
        ("adatum.example", "https://mail.adatum.example/EWS/Exchange.asmx", "Exchange2016"),
        ("relecloud.example", "https://exch01.relecloud.example/EWS/Exchange.asmx", "Exchange2016"),
        (
            "lucerne.example",
            "https://mail.lucerne.example/EWS/Exchange.asmx",
            "Exchange2013_SP1",
        ),
        ("oldcorp.example", "https://mail.oldcorp.example/EWS/Exchange.asmx", "Exchange2016"),
    ],
    ids=[
        "autodiscover-host",
        "domain-itself",
        "http-redirect",
        "srv-only",
        "exchange-2013-basic",
        "tls-1.0-still-on",
    ],
)
def test_exchangelib_autodiscover_finds_ews(exchange_dns, domain, ews_url, api_version):
    account = _discover("alice", domain)
    assert account.protocol.service_endpoint == ews_url
    assert account.version.api_version == api_version
    # And EWS itself answers over https on the discovered host.
    assert account.calendar.total_count == 10


def test_url_redirect_loop_is_stopped(exchange_dns, sims):
    with pytest.raises(AutoDiscoverFailed):
        _discover("svc-sync", "treyresearch.example")
    endpoints = control_of(sims.apps["exchange"]).stats.snapshot()["endpoints"]
    posts = sum(n for key, n in endpoints.items() if key.startswith("POST /autodiscover/"))
    # Per host: an unauthenticated probe and the NTLM exchange; the client then saw the first
    # URL again and stopped (8 requests, not MAX_REDIRECTS rounds).
    assert 2 <= posts <= 10, endpoints


def test_address_redirect_loop_is_stopped(exchange_dns):
    with pytest.raises(AutoDiscoverCircularRedirect):
        _discover("alice", "treyresearch.example")


def test_domain_without_autodiscover_fails(exchange_dns):
    with pytest.raises(AutoDiscoverFailed):
        _discover("alice", "wingtip.example")


def _pox(session, host: str, email: str, auth=("alice@proseware.example", PASSWORDS["alice"])):
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{POX_REQUEST}"><Request>'
        f"<EMailAddress>{email}</EMailAddress><AcceptableResponseSchema>{POX_OUTLOOK}"
        "</AcceptableResponseSchema></Request></Autodiscover>"
    )
    return session.post(
        f"https://{host}/autodiscover/autodiscover.xml",
        data=body.encode(),
        headers={"Content-Type": "text/xml"},
        auth=auth,
        allow_redirects=False,
        timeout=5,
    )


def test_pox_settings_with_protocols(exchange_dns, sim_session):
    response = _pox(sim_session, "autodiscover.proseware.example", "alice@proseware.example")
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    account = root.find("o:Response/o:Account", POX_NS)
    assert account.findtext("o:Action", namespaces=POX_NS) == "settings"
    protocols = {
        p.findtext("o:Type", namespaces=POX_NS): p for p in account.findall("o:Protocol", POX_NS)
    }
    assert {"EXCH", "EXPR", "WEB"} <= set(protocols)
    expr = protocols["EXPR"]
    assert (
        expr.findtext("o:EwsUrl", namespaces=POX_NS)
        == "https://mail.proseware.example/EWS/Exchange.asmx"
    )
    assert expr.findtext("o:OABUrl", namespaces=POX_NS).startswith(
        "https://mail.proseware.example/OAB/"
    )
    # 15.2 build 1544 in MS-OXDISCO's packed form.
    assert protocols["EXCH"].findtext("o:ServerVersion", namespaces=POX_NS) == "73C28608"


def test_pox_redirects_and_unknown_address(exchange_dns, sim_session):
    auth = ("alice@treyresearch.example", PASSWORDS["alice"])
    addr = etree.fromstring(
        _pox(
            sim_session, "autodiscover.treyresearch.example", "alice@treyresearch.example", auth
        ).content
    )
    assert addr.findtext("o:Response/o:Account/o:Action", namespaces=POX_NS) == "redirectAddr"
    assert (
        addr.findtext("o:Response/o:Account/o:RedirectAddr", namespaces=POX_NS)
        == "bob@treyresearch.example"
    )
    url = etree.fromstring(
        _pox(
            sim_session, "autodiscover.treyresearch.example", "svc-sync@treyresearch.example", auth
        ).content
    )
    assert url.findtext("o:Response/o:Account/o:Action", namespaces=POX_NS) == "redirectUrl"
    assert url.findtext("o:Response/o:Account/o:RedirectUrl", namespaces=POX_NS) == (
        "https://mail.treyresearch.example/autodiscover/autodiscover.xml"
    )
    unknown = etree.fromstring(
        _pox(sim_session, "autodiscover.proseware.example", "nobody@proseware.example").content
    )
    assert unknown.findtext("r:Response/r:Error/r:ErrorCode", namespaces=POX_NS) == "500"


def test_http_redirect_method_on_port_80(exchange_dns, sim_session):
    response = sim_session.get(
        "http://autodiscover.adatum.example/autodiscover/autodiscover.xml",
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 302
    assert (
        response.headers["Location"] == "https://mail.adatum.example/autodiscover/autodiscover.xml"
    )


def test_srv_record_names_the_ews_host(sim_resolver):
    [srv] = sim_resolver.resolve("_autodiscover._tcp.relecloud.example", "SRV")
    assert (srv.port, srv.target.to_text()) == (443, "exch01.relecloud.example.")
    [mx] = sim_resolver.resolve("relecloud.example", "MX")
    assert mx.exchange.to_text() == "exch01.relecloud.example."


def test_netscaler_answers_with_a_login_page(exchange_dns, sim_session):
    response = _pox(sim_session, "autodiscover.woodgrove.example", "alice@woodgrove.example")
    assert response.status_code == 302
    assert "WWW-Authenticate" not in response.headers
    assert response.headers["Location"].endswith("/logon/LogonPoint/tmindex.html")
    page = sim_session.get(
        "https://autodiscover.woodgrove.example/logon/LogonPoint/tmindex.html", timeout=5
    )
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<title>Citrix Gateway</title>" in page.text
    assert page.headers["Set-Cookie"].startswith("NSC_")


def test_netscaler_stops_exchangelib_autodiscover(exchange_dns):
    with pytest.raises(AutoDiscoverFailed):
        _discover("alice", "woodgrove.example")


def _tls10_handshake(address: str, hostname: str) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS 1.0 otherwise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
    try:
        with (
            socket.create_connection((address, 443), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            return str(tls.version())
    except (ssl.SSLError, ConnectionResetError):
        return "refused"


def test_old_organisation_still_speaks_tls_1_0(sims):
    # Its only problem: an Exchange 2016 that works (see the autodiscover test above) but still
    # accepts TLS 1.0, on the EWS and the Autodiscover host alike.
    assert sims.world.part("exchange").organisation("oldcorp.example").version == "2016"
    for host in ("mail.oldcorp.example", "autodiscover.oldcorp.example"):
        assert _tls10_handshake(sims.hosts[host], host) == "TLSv1"
    assert (
        _tls10_handshake(sims.hosts["mail.proseware.example"], "mail.proseware.example")
        == "refused"
    )


def test_pox_get_is_an_invalid_request(exchange_dns, sim_session):
    unauthenticated = sim_session.get(
        "https://autodiscover.proseware.example/autodiscover/autodiscover.xml", timeout=5
    )
    assert unauthenticated.status_code == 401
    response = sim_session.get(
        "https://autodiscover.proseware.example/autodiscover/autodiscover.xml",
        auth=("alice@proseware.example", PASSWORDS["alice"]),
        timeout=5,
    )
    assert response.status_code == 200
    assert (
        etree.fromstring(response.content).findtext(
            "r:Response/r:Error/r:ErrorCode", namespaces=POX_NS
        )
        == "600"
    )


def test_autodiscover_v2_json_on_2016_and_later(exchange_dns, sim_session):
    url = "https://autodiscover.proseware.example/autodiscover/autodiscover.json/v1.0/alice@proseware.example"
    response = sim_session.get(url, params={"Protocol": "EWS"}, timeout=5)
    assert response.json() == {
        "Protocol": "EWS",
        "Url": "https://mail.proseware.example/EWS/Exchange.asmx",
    }
    assert sim_session.get(url, params={"Protocol": "Foo"}, timeout=5).status_code == 400
    older = "https://autodiscover.lucerne.example/autodiscover/autodiscover.json/v1.0/alice@lucerne.example"
    assert sim_session.get(older, params={"Protocol": "EWS"}, timeout=5).status_code == 404


def test_owa_sign_in_page_carries_the_version(exchange_dns, sim_session):
    response = sim_session.get("https://mail.fabrikam.example/owa/", timeout=5)
    assert response.status_code == 200
    assert response.url.endswith("/owa/auth/logon.aspx?replaceCurrent=1&url=%2fowa%2f")
    assert "<title>Outlook</title>" in response.text
    assert response.headers["X-OWA-Version"] == "15.1.2507.6"


def test_exchangelib_guesses_auth_and_falls_back_to_the_2013_schema(exchange_dns):
    from exchangelib import Configuration

    config = Configuration(
        server="mail.lucerne.example",
        credentials=Credentials("alice@lucerne.example", PASSWORDS["alice"]),
    )
    account = Account(
        "alice@lucerne.example", config=config, autodiscover=False, access_type=DELEGATE
    )
    assert account.protocol.auth_type == "basic"
    assert account.version.api_version == "Exchange2013_SP1"
    assert str(account.version.build) == "15.0.1497.2"
    assert account.calendar.total_count == 10


GET_USER_SETTINGS = """<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover"
  xmlns:wsa="http://www.w3.org/2005/08/addressing">
 <s:Header><a:RequestedServerVersion>Exchange2010</a:RequestedServerVersion>
  <wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action>
  <wsa:To>https://{host}/autodiscover/autodiscover.svc</wsa:To></s:Header>
 <s:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><a:Mailbox>{mailbox}</a:Mailbox>
  </a:User></a:Users><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting>
  <a:Setting>NoSuchSetting</a:Setting></a:RequestedSettings></a:Request>
 </a:GetUserSettingsRequestMessage></s:Body></s:Envelope>"""


def _get_user_settings(session, host: str, mailbox: str, auth: tuple[str, str]) -> etree._Element:
    response = session.post(
        f"https://{host}/autodiscover/autodiscover.svc",
        data=GET_USER_SETTINGS.format(host=host, mailbox=mailbox).encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        auth=auth,
        timeout=5,
    )
    assert response.status_code == 200, response.text
    [user] = etree.fromstring(response.content).iter(f"{{{AUTOD}}}UserResponse")
    return user


@pytest.mark.parametrize(
    ("host", "mailbox", "code", "target"),
    [
        ("autodiscover.proseware.example", "nobody@proseware.example", "InvalidUser", None),
        (
            "autodiscover.treyresearch.example",
            "alice@treyresearch.example",
            "RedirectAddress",
            "bob@treyresearch.example",
        ),
        (
            "autodiscover.treyresearch.example",
            "svc-sync@treyresearch.example",
            "RedirectUrl",
            "https://mail.treyresearch.example/autodiscover/autodiscover.svc",
        ),
    ],
)
def test_soap_user_errors_and_redirects(exchange_dns, sim_session, host, mailbox, code, target):
    domain = mailbox.rpartition("@")[2]
    user = _get_user_settings(sim_session, host, mailbox, (f"alice@{domain}", PASSWORDS["alice"]))
    assert user.findtext(f"{{{AUTOD}}}ErrorCode") == code
    if target is not None:
        assert user.findtext(f"{{{AUTOD}}}RedirectTarget") == target


def test_soap_unknown_setting_is_an_invalid_setting_error(exchange_dns, sim_session):
    user = _get_user_settings(
        sim_session,
        "autodiscover.proseware.example",
        "alice@proseware.example",
        ("alice@proseware.example", PASSWORDS["alice"]),
    )
    assert user.findtext(f"{{{AUTOD}}}ErrorCode") == "NoError"
    values = {
        s.findtext(f"{{{AUTOD}}}Name"): s.findtext(f"{{{AUTOD}}}Value")
        for s in user.iter(f"{{{AUTOD}}}UserSetting")
    }
    assert values == {"ExternalEwsUrl": "https://mail.proseware.example/EWS/Exchange.asmx"}
    [error] = user.iter(f"{{{AUTOD}}}UserSettingError")
    assert error.findtext(f"{{{AUTOD}}}ErrorCode") == "InvalidSetting"
    assert error.findtext(f"{{{AUTOD}}}SettingName") == "NoSuchSetting"
