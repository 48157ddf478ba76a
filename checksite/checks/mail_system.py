"""Which mail system a domain probably uses, from its MX records: the fact that decides which
of the other checks apply. Computed once per run and shared (`CheckContext.fact`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.exception
import dns.resolver

from checksite.checks.context import CheckContext

MICROSOFT_365 = "microsoft365"
GOOGLE = "google"
ICLOUD = "icloud"
ON_PREMISES = "onpremises"
OTHER = "other"
NO_MX = "none"
UNKNOWN = "unknown"  # the DNS lookup itself failed

LABELS = {
    MICROSOFT_365: "Microsoft 365",
    GOOGLE: "Google Workspace",
    ICLOUD: "iCloud Mail",
    ON_PREMISES: "an on-premises mail server (probably Exchange)",
    OTHER: "another mail service",
    NO_MX: "no mail server at all",
    UNKNOWN: "unknown (DNS did not answer)",
}

_MICROSOFT_SUFFIXES = (
    ".mail.protection.outlook.com",
    ".mail.protection.outlook.de",
    ".mail.protection.partner.outlook.cn",
    ".mail.protection.office365.us",
)
_GOOGLE_SUFFIXES = (".aspmx.l.google.com", ".googlemail.com")
_GOOGLE_HOSTS = ("aspmx.l.google.com", "smtp.google.com")
_ICLOUD_SUFFIXES = (".mail.icloud.com",)


@dataclass(frozen=True)
class MxRecord:
    preference: int
    host: str


@dataclass(frozen=True)
class MailSystem:
    kind: str
    mx: tuple[MxRecord, ...] = ()
    domain_exists: bool = True
    error: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return LABELS[self.kind]


def classify_host(host: str, domain: str) -> str:
    name = host.lower().rstrip(".")
    if name.endswith(_MICROSOFT_SUFFIXES):
        return MICROSOFT_365
    if name in _GOOGLE_HOSTS or name.endswith(_GOOGLE_SUFFIXES):
        return GOOGLE
    if name == "mail.icloud.com" or name.endswith(_ICLOUD_SUFFIXES):
        return ICLOUD
    if name == domain or name.endswith("." + domain):
        return ON_PREMISES
    return OTHER


def classify(domain: str, records: list[MxRecord]) -> MailSystem:
    """The system behind the most preferred MX records (lowest preference first)."""
    if not records:
        return MailSystem(NO_MX)
    ordered = tuple(sorted(records, key=lambda r: (r.preference, r.host)))
    kinds = [classify_host(r.host, domain) for r in ordered]
    notes: tuple[str, ...] = ()
    if len(set(kinds)) > 1:
        notes = ("The MX records point to different systems; the most preferred one decides.",)
    return MailSystem(kinds[0], ordered, notes=notes)


def lookup_mail_system(context: CheckContext) -> MailSystem:
    domain = context.target.domain
    try:
        answers = context.guard.query(domain, "MX")
    except dns.resolver.NXDOMAIN:
        return MailSystem(NO_MX, domain_exists=False, error=f"{domain} does not exist in DNS")
    except dns.resolver.NoAnswer:
        return MailSystem(NO_MX)
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
        return MailSystem(UNKNOWN, error=f"the DNS lookup failed: {exc}")
    records = [
        MxRecord(int(r.preference), r.exchange.to_text(omit_final_dot=True).lower())
        for r in answers
    ]
    # A "null MX" (RFC 7505: preference 0, host ".") says the domain takes no mail.
    records = [r for r in records if r.host not in ("", ".")]
    return classify(domain, records)


def mail_system(context: CheckContext) -> MailSystem:
    """The shared, computed-once classification for this run."""
    return context.fact("mail_system", lambda: lookup_mail_system(context))
