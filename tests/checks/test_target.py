"""Reading what a person typed into the form or on the command line."""

from __future__ import annotations

import pytest

from checksite.checks.context import TargetError, parse_target


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
    "text",
    [
        "",
        "<script>alert(1)</script>.example",
        "contoso",
        "127.0.0.1",
        "2130706433",
        "a..b",
        "-bad.example",
        "bad local@contoso.example",
    ],
)
def test_rejects_what_is_not_a_domain(text: str) -> None:
    with pytest.raises(TargetError):
        parse_target(text)


def test_a_password_needs_a_mailbox() -> None:
    with pytest.raises(TargetError, match="needs a mailbox address"):
        parse_target("contoso.example", password="secret")


def test_urls_must_be_http() -> None:
    with pytest.raises(TargetError, match="SuperOffice URL"):
        parse_target("contoso.example", superoffice_url="javascript:alert(1)")
    with pytest.raises(TargetError, match="OAB URL needs the EWS URL"):
        parse_target("contoso.example", oab_url="https://mail.contoso.example/OAB/")
