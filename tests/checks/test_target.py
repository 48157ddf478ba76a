"""Reading what a person typed into the form or on the command line: as they meant it, or
refused with the reason, named after the field it is about."""

from __future__ import annotations

import pytest

from checksite.checks.context import TargetError, parse_target
from common.ip_port import BadIpPort, parse_ip_port


def test_domain_and_mailbox() -> None:
    assert parse_target(" Contoso.Example. ").domain == "contoso.example"
    target = parse_target("Alice@Contoso.example", password="pw")
    assert (target.domain, target.mailbox, target.password) == (
        "contoso.example",
        "Alice@contoso.example",
        "pw",
    )
    assert "pw" not in repr(target)
    assert parse_target("bücher.example").domain == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("typed", "domain"),
    [
        # IDNA 2008 / UTS #46 non-transitional: ß and ς stay themselves (IDNA 2003 made
        # faß.de into fass.de, somebody else's domain).
        ("faß.de", "xn--fa-hia.de"),
        ("FASS.de", "fass.de"),
        ("βόλος.example", "xn--nxasmm1c.example"),
        ("ＣＯＮＴＯＳＯ.example", "contoso.example"),  # full-width letters, as typed on a phone
        ("münchen.de.", "xn--mnchen-3ya.de"),
    ],
)
def test_internationalised_names_by_uts46(typed: str, domain: str) -> None:
    assert parse_target(typed).domain == domain


@pytest.mark.parametrize(
    ("typed", "text", "note"),
    [
        ("https://www.contoso.example/about?x=1", "contoso.example", "web address"),
        ("contoso.example/contact", "contoso.example", "web address"),
        ("http://contoso.example:80/", "contoso.example", "web address"),
        ("contoso.example:443", "contoso.example", "Left out :443"),
        ("mailto:Alice@contoso.example?subject=Hi", "Alice@contoso.example", "mailto:"),
        ("mailto:alice%40contoso.example", "alice@contoso.example", "mailto:"),
        ("Alice Andersen <alice@contoso.example>", "alice@contoso.example", "name and address"),
        ("-sales@contoso.example", "-sales@contoso.example", None),
    ],
)
def test_pasted_input_is_understood_and_said(typed: str, text: str, note: str | None) -> None:
    target = parse_target(typed)
    assert target.text == text
    if note is None:
        assert target.notes == ()
    else:
        assert note in " ".join(target.notes)


def test_a_pasted_address_with_credentials_is_not_repeated() -> None:
    target = parse_target("https://user:Secret-1@contoso.example/")
    assert target.domain == "contoso.example"
    assert "Secret-1" not in " ".join(target.notes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "enter a domain"),
        ("<script>alert(1)</script>.example", "not a valid domain name"),
        ("contoso", "not a valid domain name"),
        ("127.0.0.1", "not an IP address"),
        ("2130706433", "not an IP address"),
        ("[::1]", "not an IP address"),
        ("a..b", "not a valid domain name"),
        ("-bad.example", "not a valid domain name"),
        ("con toso.example", "it contains a space"),
        ("bad local@contoso.example", "not a valid mailbox name"),
        ("contoso.example:8443", "as the EWS URL"),
        ("ftp://contoso.example", "a ftp: link is not a domain"),
        ("mailto:a@contoso.example,b@contoso.example", "enter one address"),
    ],
)
def test_rejects_what_is_not_a_domain(text: str, message: str) -> None:
    with pytest.raises(TargetError, match=message) as raised:
        parse_target(text)
    assert raised.value.field == "target"


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"password": "secret"}, "password", "needs a mailbox address"),
        (
            {"ews_url": "http://mail.contoso.example/EWS/Exchange.asmx"},
            "ews_url",
            "must start with https://",
        ),
        (
            {
                "ews_url": "https://mail.contoso.example/EWS/Exchange.asmx",
                "oab_url": "http://mail.contoso.example/OAB/",
            },
            "oab_url",
            "must start with https://",
        ),
        ({"oab_url": "https://mail.contoso.example/OAB/"}, "ews_url", "needs the EWS URL"),
        (
            {"ews_url": "https://admin:pw@mail.contoso.example/EWS/Exchange.asmx"},
            "ews_url",
            "must not contain a user name or password",
        ),
        ({"superoffice_url": "javascript:alert(1)"}, "superoffice_url", "SuperOffice URL"),
        (
            {
                "superoffice_url": "http://crm.contoso.example/SuperOffice",
                "superoffice_username": "admin",
                "superoffice_password": "pw",
            },
            "superoffice_url",
            "password is never sent over plain http",
        ),
        ({"superoffice_username": "admin"}, "superoffice_url", "need the SuperOffice URL"),
    ],
)
def test_refusals_name_their_field(options: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(TargetError, match=message) as raised:
        parse_target(
            "alice@contoso.example" if field != "password" else "contoso.example", **options
        )
    assert raised.value.field == field


def test_superoffice_over_http_without_a_password_is_allowed() -> None:
    target = parse_target("contoso.example", superoffice_url="http://crm.contoso.example/SO")
    assert target.superoffice_url == "http://crm.contoso.example/SO"


@pytest.mark.parametrize(
    ("text", "address", "port", "canonical"),
    [
        ("192.0.2.53", "192.0.2.53", None, "192.0.2.53"),
        (" 192.0.2.53:5353 ", "192.0.2.53", 5353, "192.0.2.53:5353"),
        ("2001:db8::53", "2001:db8::53", None, "2001:db8::53"),
        ("[::1]:5353", "::1", 5353, "[::1]:5353"),
        ("[::1]", "::1", None, "::1"),
    ],
)
def test_ip_port(text: str, address: str, port: int | None, canonical: str) -> None:
    parsed = parse_ip_port(text)
    assert (str(parsed.address), parsed.port, str(parsed)) == (address, port, canonical)
    assert parse_ip_port(str(parsed)) == parsed


@pytest.mark.parametrize(
    "text", ["", "dns.example", "[::1", "[::1]5353", "[127.0.0.1]:53", "1.2.3.4:0", "1.2.3.4:+53"]
)
def test_ip_port_refuses(text: str) -> None:
    with pytest.raises(BadIpPort):
        parse_ip_port(text)


def test_the_setting_the_option_and_the_guard_read_ip_port_alike(tmp_path: object) -> None:
    from checksite.checks.wiring import parse_dns_server
    from common.config import ConfigError, Settings
    from common.netguard import make_resolver

    resolver = make_resolver((parse_dns_server("[::1]:5353"),))
    assert [(n.address, n.port) for n in resolver.nameservers] == [("::1", 5353)]  # type: ignore[union-attr]
    settings = Settings.load(environ={}, instance_path=tmp_path, check_dns_servers="[::1]:5353")
    resolver = make_resolver(settings.check_dns_servers)
    assert [(n.address, n.port) for n in resolver.nameservers] == [("::1", 5353)]  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="CHECK_DNS_SERVERS"):
        Settings.load(environ={}, instance_path=tmp_path, check_dns_servers="[::1]:x")
