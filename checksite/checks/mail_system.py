"""Which mail system a domain uses, from all the evidence there is, not from the MX alone: the
fact that decides which of the other checks apply. Computed once per run and shared.

- Microsoft 365: Microsoft's public tenant lookup knows the domain, whatever the MX says
  (a filtering service such as Mimecast in front, a hybrid Exchange); unless the MX points
  plainly to another mail system (Google, iCloud): then the tenant serves other Microsoft
  services. Without an answer from Microsoft, its MX hosts or SPF include say so.
- Google Workspace: Google's MX hosts, or the SPF include of Google's senders behind a filter.
- Cannot tell: a filtering service's MX and nothing else that names the system behind it.
- Personal mail services (gmail.com, outlook.com, …) are recognised by name, with no lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.exception
import dns.resolver

from checksite.checks import own_network
from checksite.checks.context import CheckContext
from checksite.checks.tenant_lookup import Tenant, tenant_of

MICROSOFT_365 = "microsoft365"
GOOGLE = "google"
ICLOUD = "icloud"
ON_PREMISES = "onpremises"
OTHER = "other"
UNDETERMINED = "undetermined"  # a filtering service in front, nothing names what is behind it
PERSONAL = "personal"
NO_MX = "none"
UNKNOWN = "unknown"  # the DNS lookup itself failed

LABELS = {
    MICROSOFT_365: "Microsoft 365",
    GOOGLE: "Google Workspace",
    ICLOUD: "iCloud Mail",
    ON_PREMISES: "an on-premises mail server (probably Exchange)",
    OTHER: "a mail hosting service",
    UNDETERMINED: "cannot tell (a mail filtering service hides the system behind it)",
    PERSONAL: "a personal mail service",
    NO_MX: "no mail server at all",
    UNKNOWN: "unknown (DNS did not answer)",
}
# Kinds where on-premises Exchange may answer Autodiscover (Microsoft 365: a hybrid).
MAY_BE_EXCHANGE = (ON_PREMISES, OTHER, UNDETERMINED, NO_MX, MICROSOFT_365)

_MICROSOFT_SUFFIXES = (
    ".mail.protection.outlook.com",
    ".mail.protection.outlook.de",
    ".mail.protection.partner.outlook.cn",
    ".mail.protection.office365.us",
)
_GOOGLE_SUFFIXES = (".l.google.com", ".googlemail.com")  # aspmx., gmail-smtp-in.
_GOOGLE_HOSTS = ("aspmx.l.google.com", "smtp.google.com")
_ICLOUD_SUFFIXES = (".mail.icloud.com",)
# Mail filtering services customers put in front of Microsoft 365, Google or Exchange: their MX
# says nothing about the mailboxes behind them.
FILTERS = {
    ".mimecast.com": "Mimecast",
    ".mimecast.co.za": "Mimecast",
    ".mimecast-offshore.com": "Mimecast",
    ".pphosted.com": "Proofpoint",
    ".ppe-hosted.com": "Proofpoint Essentials",
    ".barracudanetworks.com": "Barracuda",
    ".iphmx.com": "Cisco Secure Email",
    ".messagelabs.com": "Symantec Email Security",
    ".hornetsecurity.com": "Hornetsecurity",
    ".antispameurope.com": "Hornetsecurity",
    ".tmes.trendmicro.com": "Trend Micro Email Security",
    ".tmes.trendmicro.eu": "Trend Micro Email Security",
    ".hydra.sophos.com": "Sophos Email",
    ".mailcontrol.com": "Forcepoint Email Security",
    ".antispamcloud.com": "SpamExperts",
}
# Consumer mail services: one address per person, no organisation to connect to.
PERSONAL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.de",
        "hotmail.fr",
        "live.com",
        "live.co.uk",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.de",
        "ymail.com",
        "aol.com",
        "gmx.de",
        "gmx.net",
        "gmx.com",
        "web.de",
        "t-online.de",
        "proton.me",
        "protonmail.com",
        "zoho.com",
        "yandex.ru",
        "yandex.com",
        "mail.ru",
        "mail.com",
        "fastmail.com",
        "tutanota.com",
        "online.no",
        "telia.com",
    }
)
MICROSOFT_SPF = "spf.protection.outlook.com"
GOOGLE_SPF = "_spf.google.com"


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
    evidence: tuple[str, ...] = field(default=())  # what the kind was told from, in words
    filter: str | None = None  # the filtering service in front, if any
    ours: bool = False  # UNKNOWN because the Check site's own resolver failed

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
    if filter_of(name) is not None:
        return UNDETERMINED
    return OTHER


def filter_of(host: str) -> str | None:
    name = host.lower().rstrip(".")
    return next((label for suffix, label in FILTERS.items() if name.endswith(suffix)), None)


def classify(domain: str, records: list[MxRecord]) -> MailSystem:
    """The system behind the most preferred MX records (lowest preference first)."""
    if not records:
        return MailSystem(NO_MX)
    ordered = tuple(sorted(records, key=lambda r: (r.preference, r.host)))
    kinds = [classify_host(r.host, domain) for r in ordered]
    notes: tuple[str, ...] = ()
    if len(set(kinds)) > 1:
        notes = ("The MX records point to different systems; the most preferred one decides.",)
    first = ordered[0].host
    evidence = f"MX: mail goes to {first}"
    gateway = filter_of(first)
    if gateway is not None:
        evidence = f"MX: mail first passes through {gateway} ({first}), a filtering service"
    return MailSystem(kinds[0], ordered, notes=notes, evidence=(evidence,), filter=gateway)


@dataclass(frozen=True)
class TxtEvidence:
    spf_includes: tuple[str, ...] = ()
    google_verification: bool = False
    microsoft_verification: bool = False


def read_txt(records: list[str]) -> TxtEvidence:
    includes: list[str] = []
    for text in records:
        lowered = text.lower()
        if lowered.startswith("v=spf1"):
            includes += [t.split(":", 1)[1] for t in lowered.split() if t.startswith("include:")]
    return TxtEvidence(
        tuple(includes),
        any(t.startswith("google-site-verification=") for t in records),
        any(t.startswith("MS=ms") for t in records),
    )


def decide(domain: str, by_mx: MailSystem, txt: TxtEvidence, tenant: Tenant) -> MailSystem:
    """Weigh the MX, the TXT records and Microsoft's tenant lookup (see the module docstring)."""
    evidence = list(by_mx.evidence)
    notes = list(by_mx.notes)
    kind = by_mx.kind
    if tenant.id is not None:
        if kind in (GOOGLE, ICLOUD):
            notes.append(
                f"Microsoft also knows a tenant for {domain} ({tenant.id}), used for other "
                f"Microsoft services; mail goes to {LABELS[kind]}."
            )
        else:
            kind = MICROSOFT_365
            evidence.append(f"Microsoft's tenant lookup: {domain} belongs to tenant {tenant.id}")
    elif tenant.lookup_failed:
        notes.append(f"{tenant.error}; the other evidence decides.")
        if (
            kind != MICROSOFT_365
            and MICROSOFT_SPF in txt.spf_includes
            and kind
            not in (
                GOOGLE,
                ICLOUD,
            )
        ):
            kind = MICROSOFT_365
            evidence.append(f"SPF: {domain} sends through Microsoft 365 ({MICROSOFT_SPF})")
    if kind in (UNDETERMINED, OTHER, NO_MX) and GOOGLE_SPF in txt.spf_includes:
        kind = GOOGLE
        evidence.append(f"SPF: {domain} sends through Google ({GOOGLE_SPF})")
    if kind == UNDETERMINED and txt.google_verification:
        notes.append(
            "A google-site-verification record suggests Google Workspace, but Google Search "
            "Console uses the same record, so it proves nothing on its own."
        )
    return MailSystem(
        kind,
        by_mx.mx,
        notes=tuple(notes),
        evidence=tuple(evidence),
        filter=by_mx.filter,
    )


def lookup_mail_system(context: CheckContext) -> MailSystem:
    domain = context.target.domain
    if domain in PERSONAL_DOMAINS:
        return MailSystem(PERSONAL, evidence=(f"{domain} is a personal mail service",))
    try:
        answers = context.guard.query(domain, "MX")
    except dns.resolver.NXDOMAIN:
        return MailSystem(NO_MX, domain_exists=False, error=f"{domain} does not exist in DNS")
    except dns.resolver.NoAnswer:
        answers = []
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
        ours = own_network.resolver(context)
        if ours.ok is False:
            return MailSystem(UNKNOWN, error=f"{ours.detail}.", ours=True)
        return MailSystem(UNKNOWN, error=f"the DNS lookup failed: {exc}")
    records = [
        MxRecord(int(r.preference), r.exchange.to_text(omit_final_dot=True).lower())
        for r in answers
    ]
    # A "null MX" (RFC 7505: preference 0, host ".") says the domain takes no mail.
    records = [r for r in records if r.host not in ("", ".")]
    return decide(domain, classify(domain, records), _txt(context, domain), tenant_of(context))


def _txt(context: CheckContext, domain: str) -> TxtEvidence:
    try:
        answers = context.guard.query(domain, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return TxtEvidence()
    except dns.exception.Timeout:
        return TxtEvidence()
    texts = [b"".join(r.strings).decode("utf-8", "replace") for r in answers]
    return read_txt(texts)


def mail_system(context: CheckContext) -> MailSystem:
    """The shared, computed-once classification for this run."""
    return context.fact("mail_system", lambda: lookup_mail_system(context))


def not_applicable(context: CheckContext) -> str | None:
    """Why no check beyond [dns] and [unsupported] applies (said once there), else None."""
    system = mail_system(context)
    if not system.domain_exists:
        return f"{context.target.domain} does not exist (see the DNS check)."
    if system.kind == UNKNOWN:
        return "The domain's DNS could not be read (see the DNS check)."
    if system.kind == PERSONAL:
        return "A personal mail address (see Unsupported set-ups)."
    return None
