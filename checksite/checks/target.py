"""What a person typed, read as they meant it: a domain or a mailbox address, also pasted as a
URL (`https://www.contoso.com/about`), a `mailto:` link, `Name <someone@contoso.com>` or
`contoso.com:443`; internationalised names by IDNA 2008 / UTS #46 (`faß.de` stays `faß.de`,
it is not `fass.de`). Every refusal names the field it is about, so the page shows it there."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

import idna

from checksite.checks.names_for_people import text_for_people
from common.netguard_policy import InvalidHost, parse_ip_literal

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$")
WEB_PORTS = ("80", "443")  # a port a browser shows; it adds nothing to a domain


class TargetError(ValueError):
    """The input is not usable; the message says why, `field` which input it is about."""

    def __init__(self, message: str, field: str = "target") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Target:
    domain: str  # lower-case, IDNA (ASCII) form
    mailbox: str | None = None
    password: str | None = field(default=None, repr=False)
    superoffice_url: str | None = None
    ews_url: str | None = None
    oab_url: str | None = None
    superoffice_username: str | None = None
    superoffice_password: str | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()  # how the input was read, when it was not typed as checked

    @property
    def text(self) -> str:
        return self.mailbox or self.domain

    @property
    def text_for_people(self) -> str:
        """What was checked, as a person writes it: the domain in Unicode (faß.de)."""
        return text_for_people(self.text, self.domain)


def parse_target(
    text: str,
    *,
    password: str | None = None,
    superoffice_url: str | None = None,
    ews_url: str | None = None,
    oab_url: str | None = None,
    superoffice_username: str | None = None,
    superoffice_password: str | None = None,
) -> Target:
    """A Target from what a person typed; TargetError (with the field) when it cannot be."""
    local, domain_text, notes = _split_input(text)
    domain = normalise_domain(domain_text)
    mailbox = f"{local}@{domain}" if local is not None else None
    ews_url = (ews_url or "").strip() or None
    oab_url = (oab_url or "").strip() or None
    superoffice_url = (superoffice_url or "").strip() or None
    if ews_url:
        _check_https_url("EWS URL", ews_url, "ews_url")
    if oab_url:
        _check_https_url("OAB URL", oab_url, "oab_url")
    if superoffice_url:
        _check_superoffice_url(superoffice_url, with_password=bool(superoffice_password))
    if password and mailbox is None:
        raise TargetError(
            "a password needs a mailbox address (someone@contoso.com), not only a domain",
            "password",
        )
    if (superoffice_username or superoffice_password) and not superoffice_url:
        raise TargetError("SuperOffice credentials need the SuperOffice URL", "superoffice_url")
    if oab_url and not ews_url:
        raise TargetError("an OAB URL needs the EWS URL too", "ews_url")
    return Target(
        domain=domain,
        mailbox=mailbox,
        password=password or None,
        superoffice_url=superoffice_url,
        ews_url=ews_url,
        oab_url=oab_url,
        superoffice_username=superoffice_username or None,
        superoffice_password=superoffice_password or None,
        notes=tuple(notes),
    )


def _split_input(text: str) -> tuple[str | None, str, list[str]]:
    """(local part or None, domain text, notes on how the input was read)."""
    raw = (text or "").strip()
    notes: list[str] = []
    if not raw:
        raise TargetError("enter a domain (contoso.com) or a mailbox address")
    if raw.lower().startswith("mailto:"):
        raw = unquote(raw[len("mailto:") :]).split("?", 1)[0].strip()
        if "," in raw:
            raise TargetError("a mailto: link with several addresses: enter one address")
        notes.append(f"Read the mailto: link as the address {raw}.")
    elif raw.endswith(">") and "<" in raw:  # Name <someone@contoso.com>, copied from mail
        raw = raw[raw.rindex("<") + 1 : -1].strip()
        notes.append(f"Read the address {raw} out of the name and address given.")
    if "://" in raw:
        return None, _domain_of_url(raw, notes), notes
    if "/" in raw and "@" not in raw:  # contoso.com/contact: a web address without https://
        host = raw.split("/", 1)[0]
        normalise_domain(_without_web_port(host, []))  # refuses what is not a domain at all
        return None, _domain_of_url(f"https://{raw}", notes), notes
    if "@" in raw:
        local, _, domain_text = raw.rpartition("@")
        if not _LOCAL_PART.match(local):
            raise TargetError("the part before @ is not a valid mailbox name")
        return local, _without_web_port(domain_text, notes), notes
    return None, _without_web_port(raw, notes), notes


def _domain_of_url(url: str, notes: list[str]) -> str:
    """The domain of a pasted web address; `www.` is the website, not the mail domain."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetError("this web address is not valid; enter the domain (contoso.com)") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise TargetError(
            f"a {parts.scheme}: link is not a domain; enter the domain (contoso.com) or a mailbox "
            "address"
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetError("this web address has no host name; enter the domain (contoso.com)")
    if port is not None and str(port) not in WEB_PORTS:
        raise TargetError(_PORT_HELP)
    domain = host
    if host.lower().startswith("www.") and host.count(".") >= 2:
        domain = host[4:]
    # The host only: a pasted address may carry a user name, a password or a token.
    notes.append(f"Read the web address {parts.scheme}://{host}/… as the domain {domain}.")
    return domain


_PORT_HELP = (
    "a domain has no port; enter the domain alone, and give an Exchange server on another "
    "port as the EWS URL (https://mail.contoso.com:8443/EWS/Exchange.asmx)"
)


def _without_web_port(domain_text: str, notes: list[str]) -> str:
    if domain_text.startswith("[") or domain_text.count(":") > 1:
        raise TargetError("enter a domain name, not an IP address")
    if ":" not in domain_text:
        return domain_text
    host, _, port = domain_text.rpartition(":")
    if port not in WEB_PORTS:
        raise TargetError(_PORT_HELP)
    notes.append(f"Left out :{port}: the checks use the ports each service uses.")
    return host


def normalise_domain(text: str) -> str:
    """The domain's ASCII (A-label) form by UTS #46 non-transitional processing (IDNA 2008)."""
    name = text.strip().rstrip(".")
    try:
        if parse_ip_literal(name) is not None:
            raise TargetError("enter a domain name, not an IP address")
    except InvalidHost:
        raise TargetError("enter a domain name, not an IP address") from None
    if not name or len(name) > 253 * 4:  # before any costly work on absurd input
        raise TargetError("this is not a valid domain name (like contoso.com)")
    try:
        ascii_name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as exc:
        raise TargetError(f"this is not a valid domain name ({_idna_reason(exc)})") from None
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > 253 or not all(_LABEL.match(x) for x in labels):
        raise TargetError("this is not a valid domain name (like contoso.com)")
    return ascii_name


def _idna_reason(exc: idna.IDNAError) -> str:
    text = str(exc)
    if "Codepoint U+0020" in text:
        return "it contains a space"
    if "Codepoint" in text:
        return "it contains a character domain names cannot have"
    if "Empty" in text or "empty" in text:
        return "it has an empty part between dots"
    return "like contoso.com"


def _check_https_url(name: str, url: str, field_name: str) -> None:
    parts = _url_parts(name, url, field_name)
    if parts.scheme.lower() != "https":
        raise TargetError(
            f"the {name} must start with https://: Exchange publishes it over https, and a "
            "password is never sent over plain http",
            field_name,
        )


def _check_superoffice_url(url: str, *, with_password: bool) -> None:
    parts = _url_parts("SuperOffice URL", url, "superoffice_url")
    if parts.scheme.lower() not in ("https", "http"):
        raise TargetError("the SuperOffice URL must be an https:// address", "superoffice_url")
    if parts.scheme.lower() == "http" and with_password:
        raise TargetError(
            "the SuperOffice URL must start with https:// when a SuperOffice password is given: "
            "a password is never sent over plain http",
            "superoffice_url",
        )


def _url_parts(name: str, url: str, field_name: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        raise TargetError(f"the {name} is not a valid address", field_name) from None
    if not parts.scheme or not parts.hostname or any(c.isspace() for c in url):
        raise TargetError(f"the {name} must be a full https:// address", field_name)
    if parts.username or parts.password:
        raise TargetError(
            f"the {name} must not contain a user name or password; use the password field",
            field_name,
        )
    return parts
