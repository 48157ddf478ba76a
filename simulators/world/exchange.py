"""The demo world, Exchange on-premises side: organisations, their hosts, mailboxes and data.

Each organisation shows one Autodiscover set-up (or a broken one) so the Check site and the
sync engine meet every case: SE / 2019 / 2016 / 2013 servers, Autodiscover on the domain itself,
on `autodiscover.<domain>`, only through the HTTP redirect method, only through a DNS SRV
record, none at all, a redirect loop, TLS 1.0 still enabled, a NetScaler-style login page, an
ordinary website with a sign-in form on the bare domain, a server that speaks TLS 1.0 only,
Windows authentication that accepts Kerberos only, and a hybrid organisation whose Microsoft
365 tenant (in `simulators/world/microsoft.py`) holds some of its mailboxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulators.platform.hosts import SimHost

# Autodiscover set-ups an organisation can have.
AD_ROOT = "root"  # https://<domain>/autodiscover/autodiscover.{xml,svc}
AD_HOST = "autodiscover_host"  # https://autodiscover.<domain>/...
AD_HTTP_REDIRECT = "http_redirect"  # http://autodiscover.<domain>/... answers 302 to the EWS host
AD_SRV = "srv"  # only _autodiscover._tcp.<domain> SRV -> the EWS host
AD_NONE = "none"
AD_LOOP = "loop"  # autodiscover.<domain> and the EWS host redirect to each other


@dataclass
class RecurrenceRule:
    """A series pattern: pattern is daily|weekly|monthly|yearly; count or until ends it."""

    pattern: str
    interval: int = 1
    days: tuple[str, ...] = ()  # weekly: ("Monday", "Wednesday")
    count: int | None = None
    until: date | None = None


@dataclass
class OccurrenceEdit:
    """An exception: occurrence `index` (1-based) moved and/or renamed."""

    index: int
    subject: str | None = None
    shift: timedelta = timedelta(0)


@dataclass
class Appointment:
    subject: str
    start: datetime  # aware; all-day events: midnight in `tz`
    end: datetime
    tz: str = "Europe/Berlin"
    all_day: bool = False
    private: bool = False
    location: str = ""
    body: str = ""
    categories: tuple[str, ...] = ()
    recurrence: RecurrenceRule | None = None
    edits: tuple[OccurrenceEdit, ...] = ()
    deleted: tuple[int, ...] = ()  # indexes of deleted occurrences


@dataclass
class ContactCard:
    given_name: str
    surname: str
    company: str = ""
    email: str = ""
    business_phone: str = ""
    mobile_phone: str = ""
    job_title: str = ""
    city: str = ""


@dataclass(frozen=True)
class ImpersonationRole:
    """An ApplicationImpersonation role assignment (`New-ManagementRoleAssignment -Role
    ApplicationImpersonation -User <account>`); `scope` lists the mailboxes of its
    CustomRecipientWriteScope, None when it has none (every mailbox of the organisation)."""

    scope: tuple[str, ...] | None = None

    def covers(self, address: str) -> bool:
        return self.scope is None or address.lower() in (a.lower() for a in self.scope)


@dataclass
class Mailbox:
    address: str
    password: str
    display_name: str
    appointments: list[Appointment] = field(default_factory=list)
    contacts: list[ContactCard] = field(default_factory=list)
    impersonation: ImpersonationRole | None = None  # None: no ApplicationImpersonation role
    redirect_to: str | None = None  # Autodiscover answers redirectAddr with this address
    # False for an account that signs in but has no mailbox on this server (a service account,
    # a user whose mailbox was removed or moved to Exchange Online).
    has_mailbox: bool = True


@dataclass
class Organisation:
    domain: str
    version: str  # "2013" | "2016" | "2019" | "SE" (Subscription Edition)
    netbios: str
    autodiscover: str = AD_HOST
    ews_host: str = ""  # default mail.<domain>
    # IIS's Windows authentication: "Negotiate" alone means the Kerberos provider only.
    auth: tuple[str, ...] = ("Negotiate", "NTLM", "Basic")
    tls: str = "modern"
    netscaler: bool = False  # a reverse proxy answers unauthenticated requests with a login page
    # The bare domain is the company's ordinary website (every path: a page with a sign-in form).
    website: bool = False
    ews_max_concurrency: int = 27  # EWSMaxConcurrency of the default throttling policy
    mailboxes: list[Mailbox] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ews_host = self.ews_host or f"mail.{self.domain}"
        if self.website and self.autodiscover == AD_ROOT:
            raise ValueError(f"{self.domain}: the bare domain cannot be both website and CAS")

    @property
    def ews_url(self) -> str:
        return f"https://{self.ews_host}/EWS/Exchange.asmx"

    @property
    def autodiscover_host(self) -> str:
        return f"autodiscover.{self.domain}"


@dataclass
class ExchangeWorld:
    organisations: list[Organisation]

    def organisation(self, domain: str) -> Organisation:
        return next(o for o in self.organisations if o.domain == domain.lower())


def _week_start() -> datetime:
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def _at(
    base: datetime, days: int, hour: int, minute: int = 0, tz: str = "Europe/Berlin"
) -> datetime:
    from zoneinfo import ZoneInfo

    day = (base + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(tz))


def _calendar(base: datetime, owner: str, tz: str = "Europe/Berlin") -> list[Appointment]:
    """A realistic mixed calendar around the current week."""
    hour = timedelta(hours=1)
    kickoff = _at(base, 1, 10, tz=tz)
    standup = _at(base, -14, 9, tz=tz)
    return [
        Appointment(f"Customer visit ({owner})", kickoff, kickoff + 2 * hour, tz, location="Oslo"),
        Appointment(
            "Quarterly review",
            _at(base, 3, 14, tz=tz),
            _at(base, 3, 15, 30, tz=tz),
            tz,
            body="Agenda: pipeline, renewals, churn.",
            categories=("Red category",),
        ),
        Appointment(
            "Company day", _at(base, 4, 0, tz=tz), _at(base, 5, 0, tz=tz), tz, all_day=True
        ),
        Appointment(
            "Trade fair",
            _at(base, 8, 0, tz=tz),
            _at(base, 11, 0, tz=tz),
            tz,
            all_day=True,
            location="Messe Frankfurt",
        ),
        Appointment("Doctor", _at(base, 2, 8, tz=tz), _at(base, 2, 9, tz=tz), tz, private=True),
        Appointment(
            "Call with Tokyo office",
            _at(base, 2, 9, tz="Asia/Tokyo"),
            _at(base, 2, 10, tz="Asia/Tokyo"),
            "Asia/Tokyo",
        ),
        Appointment(
            "New York pipeline sync",
            _at(base, 1, 11, tz="America/New_York"),
            _at(base, 1, 12, tz="America/New_York"),
            "America/New_York",
        ),
        # Runs across the DST changes in March/October, so occurrences keep their local time.
        Appointment(
            "Weekly sales stand-up",
            standup,
            standup + timedelta(minutes=30),
            tz,
            recurrence=RecurrenceRule("weekly", days=("Monday",), count=40),
            edits=(OccurrenceEdit(3, subject="Sales stand-up (moved)", shift=hour),),
            deleted=(5,),
        ),
        Appointment(
            "Monthly board meeting",
            _at(base, -30, 13, tz=tz),
            _at(base, -30, 15, tz=tz),
            tz,
            recurrence=RecurrenceRule("monthly", count=12),
        ),
        Appointment(
            "Gym",
            _at(base, 0, 7, tz=tz),
            _at(base, 0, 8, tz=tz),
            tz,
            private=True,
            recurrence=RecurrenceRule(
                "daily", interval=2, until=(base + timedelta(days=60)).date()
            ),
        ),
    ]


def _contacts(domain: str) -> list[ContactCard]:
    return [
        ContactCard(
            "Ola",
            "Nordmann",
            "Nordic Traders AS",
            "ola@nordic-traders.example",
            "+47 22 00 00 01",
            "+47 900 00 001",
            "CEO",
            "Oslo",
        ),
        ContactCard(
            "Kari",
            "Hansen",
            "Nordic Traders AS",
            "kari@nordic-traders.example",
            "+47 22 00 00 02",
            "",
            "CFO",
            "Oslo",
        ),
        ContactCard(
            "Jürgen",
            "Müller",
            "Bäckerei Müller GmbH",
            "j.mueller@baeckerei.example",
            "+49 30 1234567",
            "",
            "Inhaber",
            "Berlin",
        ),
        ContactCard(
            "Amélie",
            "Dubois",
            "Éclair SARL",
            "amelie@eclair.example",
            "+33 1 23 45 67 89",
            "",
            "Directrice",
            "Paris",
        ),
        ContactCard(
            "Hiro",
            "Tanaka",
            "Sakura KK",
            "hiro@sakura.example",
            "+81 3 1234 5678",
            "",
            "Sales",
            "Tokyo",
        ),
        ContactCard("Support", "Desk", f"{domain}", f"support@{domain}", "+1 555 0100", "", "", ""),
    ]


def _mailboxes(domain: str, base: datetime, tz: str = "Europe/Berlin") -> list[Mailbox]:
    return [
        Mailbox(
            f"alice@{domain}",
            "Alice-Passw0rd!",
            "Alice Andersen",
            _calendar(base, "Alice", tz),
            _contacts(domain),
        ),
        Mailbox(
            f"bob@{domain}",
            "Bob-Passw0rd!",
            "Bob Andersen",
            _calendar(base, "Bob", tz)[:4],
            _contacts(domain)[:2],
        ),
        Mailbox(
            f"svc-sync@{domain}",
            "Svc-Passw0rd!",
            "Synchronizer service",
            impersonation=ImpersonationRole(),
        ),
    ]


def _service_accounts(domain: str) -> list[Mailbox]:
    """Service accounts as administrators get them wrong: one nobody gave the impersonation
    role, one whose role is scoped to bob only. Neither has a mailbox of its own."""
    return [
        Mailbox(f"svc-norole@{domain}", "Norole-Passw0rd!", "Sync (no role)", has_mailbox=False),
        Mailbox(
            f"svc-scoped@{domain}",
            "Scoped-Passw0rd!",
            "Sync (scoped to bob)",
            impersonation=ImpersonationRole(scope=(f"bob@{domain}",)),
            has_mailbox=False,
        ),
    ]


def demo() -> ExchangeWorld:
    base = _week_start()
    organisations = [
        Organisation(
            "proseware.example",
            "2019",
            "PROSEWARE",
            AD_HOST,
            mailboxes=_mailboxes("proseware.example", base)
            + _service_accounts("proseware.example"),
        ),
        Organisation(
            "fabrikam.example",
            "2016",
            "FABRIKAM",
            AD_ROOT,
            mailboxes=_mailboxes("fabrikam.example", base, "Europe/London"),
        ),
        Organisation(
            "lucerne.example",
            "2013",
            "LUCERNE",
            AD_HOST,
            auth=("Basic",),
            mailboxes=_mailboxes("lucerne.example", base, "America/New_York"),
        ),
        Organisation(
            "adatum.example",
            "2016",
            "ADATUM",
            AD_HTTP_REDIRECT,
            mailboxes=_mailboxes("adatum.example", base),
        ),
        Organisation(
            "relecloud.example",
            "2019",
            "RELECLOUD",
            AD_SRV,
            ews_host="exch01.relecloud.example",
            mailboxes=_mailboxes("relecloud.example", base),
        ),
        # Healthy but for TLS 1.0/1.1 still enabled: the Check site warns, nothing fails.
        Organisation(
            "oldcorp.example",
            "2016",
            "OLDCORP",
            AD_HOST,
            tls="legacy",
            mailboxes=_mailboxes("oldcorp.example", base),
        ),
        Organisation(
            "treyresearch.example",
            "2016",
            "TREYRESEARCH",
            AD_LOOP,
            mailboxes=_mailboxes("treyresearch.example", base),
        ),
        Organisation(
            "woodgrove.example",
            "2019",
            "WOODGROVE",
            AD_HOST,
            netscaler=True,
            mailboxes=_mailboxes("woodgrove.example", base),
        ),
        Organisation(
            "wingtip.example",
            "2016",
            "WINGTIP",
            AD_NONE,
            mailboxes=_mailboxes("wingtip.example", base),
        ),
        # Exchange 2016 on a server that speaks TLS 1.0 only (Windows Server as shipped, never
        # hardened): Autodiscover fails in the handshake, and the TLS check must say why.
        Organisation(
            "margiestravel.example",
            "2016",
            "MARGIESTRAVEL",
            AD_HOST,
            tls="tls10_only",
            mailboxes=_mailboxes("margiestravel.example", base),
        ),
        # Windows authentication with the Kerberos provider only (no NTLM, no Basic): clients
        # outside the domain cannot sign in, whatever the password.
        Organisation(
            "cohowinery.example",
            "2019",
            "COHOWINERY",
            AD_HOST,
            auth=("Negotiate",),
            mailboxes=_mailboxes("cohowinery.example", base),
        ),
    ]
    # An address redirect that loops: alice -> bob -> alice (clients must stop).
    trey = organisations[6]
    trey.mailboxes[0].redirect_to = f"bob@{trey.domain}"
    trey.mailboxes[1].redirect_to = f"alice@{trey.domain}"
    organisations += _verdict_set_ups(base)
    return ExchangeWorld(organisations)


HYBRID_DOMAIN = "wideworldimporters.example"
# Exchange Online's routing domain of the hybrid tenant (tenant.mail.onmicrosoft.com in Azure).
HYBRID_ROUTING_DOMAIN = "wideworldimporters.mail.onmicrosoft.example"


def _verdict_set_ups(base: datetime) -> list[Organisation]:
    """Set-ups where a careless checker gives the wrong verdict (issue 9, points 4, 5, 13)."""
    hybrid = Organisation(
        HYBRID_DOMAIN,
        "SE",
        "WIDEWORLD",
        AD_HOST,
        mailboxes=_mailboxes(HYBRID_DOMAIN, base),
    )
    # bob's mailbox moved to Exchange Online: the on-premises Autodiscover answers redirectAddr
    # with his routing address (the remote mailbox's targetAddress), as Exchange hybrid does.
    hybrid.mailboxes[1].redirect_to = f"bob@{HYBRID_ROUTING_DOMAIN}"
    return [
        # Current Exchange (Subscription Edition) whose bare domain is the company website with
        # a members' sign-in form: not Autodiscover, not a pre-authentication gateway.
        Organisation(
            "alpineskihouse.example",
            "SE",
            "ALPINESKIHOUSE",
            AD_HOST,
            website=True,
            mailboxes=_mailboxes("alpineskihouse.example", base),
        ),
        hybrid,
    ]


def hosts(world: ExchangeWorld) -> list[SimHost]:
    """Every host an organisation runs: the EWS host always, Autodiscover where its set-up says."""
    result = []
    for org in world.organisations:
        result.append(SimHost(org.ews_host, tls=org.tls))
        if org.autodiscover in (AD_HOST, AD_LOOP):
            result.append(SimHost(org.autodiscover_host, tls=org.tls))
        if org.autodiscover == AD_HTTP_REDIRECT:
            result.append(SimHost(org.autodiscover_host, https_port=None, http_port=80))
        if org.autodiscover == AD_ROOT or org.website:
            result.append(SimHost(org.domain, tls=org.tls))
    return result


def dns_records(addresses: Any) -> list[tuple[str, str, str]]:
    """MX for every organisation, SRV where the set-up says; A records come with `hosts`."""
    world = demo()
    records = []
    for org in world.organisations:
        records.append((org.domain, "MX", f"10 {org.ews_host}."))
        records.append((org.domain, "TXT", '"v=spf1 mx -all"'))
        if org.autodiscover == AD_SRV:
            records.append((f"_autodiscover._tcp.{org.domain}", "SRV", f"0 0 443 {org.ews_host}."))
        if org.autodiscover != AD_ROOT and not org.website:
            # The public web site lives elsewhere and knows nothing about Autodiscover.
            records.append((org.domain, "A", addresses.allocate(f"www.{org.domain}")))
    return records
