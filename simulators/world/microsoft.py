"""The Microsoft 365 part of the demo world: tenants, our app, users, calendars, contacts.

Plain data only. The Microsoft simulator (`simulators.microsoft`) serves it; tests build their own
variants with `demo_world(anchor=...)`. Identifiers are derived from names (uuid5) so a run is
reproducible. Calendar items are Graph-shaped create payloads, dated relative to `anchor` (a Monday)
so that a calendar view around "now" always holds them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

_NAMESPACE = uuid.UUID("6f1c5d0e-8a43-4b8e-9a52-3f0c1b7d2e11")

# The Synchronizer multi-tenant application, as registered in the demo world.
SYNCHRONIZER_APP_ID = "8f2f6a3c-1b5e-4c8e-9d3a-5e7b9c1d2f40"
SYNCHRONIZER_SECRET = "demo-secret~Synchronizer.0123456789abcdef"

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Microsoft Graph's application roles and delegated scopes we use (well-known ids).
GRAPH_APP_ROLES = {
    "Calendars.ReadWrite": "ef54d2bf-783f-4e0f-bca1-3210c0444d99",
    "Contacts.ReadWrite": "6918b873-d17a-4dc1-b314-35f528134491",
    "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
    "Organization.Read.All": "498476ce-e0fe-48b0-b801-37ba7e2685c6",
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
}
DELEGATED_SCOPES = [
    "openid",
    "profile",
    "email",
    "offline_access",
    "User.Read",
    "User.ReadBasic.All",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
    "MailboxSettings.Read",
]

Consent = Literal["granted", "none", "admin_approval_required"]


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


@dataclass
class AppRegistration:
    app_id: str
    display_name: str
    client_secret: str
    # Redirect URIs accepted besides any http://localhost or http://127.0.0.1 one (as Entra does
    # for loopback URIs, any port).
    redirect_uris: list[str] = field(default_factory=list)


@dataclass
class TenantSku:
    part_number: str  # skuPartNumber, looked up in simulators/microsoft/skus.json
    enabled: int = 25
    consumed: int = 0  # computed from assigned users when left at 0
    capability_status: str = "Enabled"


@dataclass
class User:
    id: str
    user_principal_name: str
    display_name: str
    given_name: str
    surname: str
    job_title: str = ""
    licenses: list[str] = field(default_factory=list)  # skuPartNumbers
    # Service plans switched off in this user's licence assignment (servicePlanName), e.g.
    # EXCHANGE_S_STANDARD: licensed, but Exchange disabled for that user (no mailbox).
    disabled_plans: list[str] = field(default_factory=list)
    has_mailbox: bool = True  # an Exchange Online mailbox
    # Hybrid: the mailbox is still on the organisation's own Exchange (a remote user here).
    onpremises_mailbox: bool = False
    is_admin: bool = False
    time_zone: str = "W. Europe Standard Time"
    events: list[dict] = field(default_factory=list)
    contacts: list[dict] = field(default_factory=list)

    @property
    def mail(self) -> str | None:
        return self.user_principal_name if self.has_mailbox else None


@dataclass
class Tenant:
    id: str
    display_name: str
    domains: list[str]  # verified domains; the first is the default one
    users: list[User] = field(default_factory=list)
    skus: list[TenantSku] = field(default_factory=list)
    namespace_type: Literal["Managed", "Federated"] = "Managed"
    federation_brand_name: str = ""
    federation_auth_url: str = ""
    # Our application's state in this tenant: "granted" (service principal + grants), "none"
    # (never consented: no service principal) or "admin_approval_required" (users may not consent).
    consent: Consent = "granted"
    granted_scopes: list[str] = field(default_factory=lambda: list(DELEGATED_SCOPES))
    granted_roles: list[str] = field(
        default_factory=lambda: [
            "Calendars.ReadWrite",
            "Contacts.ReadWrite",
            "User.Read.All",
            "Organization.Read.All",
        ]
    )
    # Delegated grants single users gave (consentType "Principal"): user id -> scopes.
    user_consents: dict[str, list[str]] = field(default_factory=dict)
    # DNS the customer publishes for the default domain: MX ("pref host.") and SPF; empty:
    # as Microsoft 365 asks (Exchange Online Protection MX, its SPF include).
    mx: tuple[str, ...] = ()
    spf: str = ""
    # Hybrid Exchange: the on-premises side publishes MX and Autodiscover; Exchange Online's
    # Autodiscover v2 redirects mailboxes still on-premises to this on-premises Autodiscover.
    onpremises_autodiscover_url: str = ""

    @property
    def default_domain(self) -> str:
        return self.domains[0]

    @property
    def initial_domain(self) -> str:
        return self.domains[-1]

    def user(self, key: str) -> User | None:
        key = key.lower()
        for user in self.users:
            if key in (user.id.lower(), user.user_principal_name.lower()):
                return user
        return None


@dataclass
class MicrosoftWorld:
    tenants: list[Tenant]
    apps: list[AppRegistration]
    anchor: date  # the Monday the demo calendars are laid out around
    access_token_lifetime: int = 3600
    # Outlook's published limits: 4 concurrent requests and 10,000 requests per 10 minutes per
    # app and mailbox.
    mailbox_concurrency: int = 4
    mailbox_requests_per_window: int = 10_000
    mailbox_window_seconds: int = 600
    # How long a repeated event transactionId is answered with the first event (Microsoft
    # documents the deduplication for retries, without a duration).
    transaction_id_window_seconds: float = 300.0

    def tenant(self, key: str) -> Tenant | None:
        key = key.lower()
        for tenant in self.tenants:
            if key == tenant.id or key in (d.lower() for d in tenant.domains):
                return tenant
        return None

    def tenant_of_user(self, upn: str) -> Tenant | None:
        domain = upn.rpartition("@")[2].lower()
        return self.tenant(domain) if domain else None

    def app(self, app_id: str) -> AppRegistration | None:
        return next((a for a in self.apps if a.app_id == app_id), None)


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _at(day: date, hour: int, minute: int = 0) -> str:
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00"


def _when(day: date, start: tuple[int, int], end: tuple[int, int], tz: str) -> dict:
    return {
        "start": {"dateTime": _at(day, *start), "timeZone": tz},
        "end": {"dateTime": _at(day, *end), "timeZone": tz},
    }


def _calendar(monday: date) -> list[dict]:
    """A realistic calendar: single, all-day, multi-day, private, recurring (with exceptions),
    across time zones and a DST change (the series runs over the end of March / October)."""
    berlin = "W. Europe Standard Time"
    return [
        {
            "subject": "Kick-off with Fabrikam",
            "body": {"contentType": "text", "content": "Agenda: scope, timeline, owners."},
            "location": {"displayName": "Meeting room Oslo"},
            **_when(monday + timedelta(days=1), (10, 0), (11, 30), berlin),
            "showAs": "busy",
            "categories": ["Customer"],
            "attendees": [
                {
                    "emailAddress": {"name": "Pat Buyer", "address": "pat@fabrikam.example"},
                    "type": "required",
                }
            ],
        },
        {
            "subject": "Company day",
            "isAllDay": True,
            "start": {"dateTime": _at(monday + timedelta(days=2), 0), "timeZone": berlin},
            "end": {"dateTime": _at(monday + timedelta(days=3), 0), "timeZone": berlin},
            "showAs": "free",
        },
        {
            "subject": "Trade fair Hannover",
            "isAllDay": True,
            "start": {"dateTime": _at(monday + timedelta(days=7), 0), "timeZone": berlin},
            "end": {"dateTime": _at(monday + timedelta(days=10), 0), "timeZone": berlin},
            "showAs": "oof",
        },
        {
            "subject": "Doctor",
            "sensitivity": "private",
            **_when(monday + timedelta(days=3), (8, 0), (9, 0), berlin),
        },
        {
            "subject": "Call with New York office",
            **_when(monday + timedelta(days=4), (9, 0), (10, 0), "Eastern Standard Time"),
        },
        {
            "subject": "Weekly sales meeting",
            **_when(monday, (9, 0), (9, 30), berlin),
            "recurrence": {
                "pattern": {
                    "type": "weekly",
                    "interval": 1,
                    "daysOfWeek": ["monday"],
                    "firstDayOfWeek": "monday",
                },
                "range": {
                    "type": "numbered",
                    "startDate": (monday - timedelta(weeks=8)).isoformat(),
                    "numberOfOccurrences": 40,
                    "recurrenceTimeZone": berlin,
                },
            },
            # Simulator seed extras: one moved occurrence, one cancelled.
            "exceptions": [
                {
                    "originalStart": _at(monday + timedelta(weeks=1), 9),
                    "start": {
                        "dateTime": _at(monday + timedelta(weeks=1, days=1), 14),
                        "timeZone": berlin,
                    },
                    "end": {
                        "dateTime": _at(monday + timedelta(weeks=1, days=1), 14, 30),
                        "timeZone": berlin,
                    },
                    "subject": "Weekly sales meeting (moved)",
                }
            ],
            "cancelledOccurrences": [_at(monday + timedelta(weeks=2), 9)],
        },
        {
            "subject": "Monthly board review",
            **_when(monday, (15, 0), (16, 0), "Pacific Standard Time"),
            "recurrence": {
                "pattern": {
                    "type": "relativeMonthly",
                    "interval": 1,
                    "daysOfWeek": ["monday"],
                    "index": "first",
                },
                "range": {"type": "noEnd", "startDate": (monday - timedelta(weeks=12)).isoformat()},
            },
        },
    ]


def _contacts(domain: str) -> list[dict]:
    return [
        {
            "givenName": "Pat",
            "surname": "Buyer",
            "displayName": "Pat Buyer",
            "companyName": "Fabrikam",
            "jobTitle": "Purchasing manager",
            "emailAddresses": [{"address": "pat@fabrikam.example", "name": "Pat Buyer"}],
            "businessPhones": ["+47 22 00 00 01"],
        },
        {
            "givenName": "Lee",
            "surname": "Partner",
            "displayName": "Lee Partner",
            "companyName": "Northwind",
            "emailAddresses": [{"address": f"lee@partner.{domain}", "name": "Lee Partner"}],
            "mobilePhone": "+1 206 555 0100",
        },
    ]


def _user(tenant_key: str, domain: str, login: str, given: str, surname: str, **extra: Any) -> User:
    return User(
        id=stable_id(tenant_key, "user", login),
        user_principal_name=f"{login}@{domain}",
        display_name=f"{given} {surname}",
        given_name=given,
        surname=surname,
        **extra,
    )


def _tenant(key: str, name: str, domain: str, **extra: Any) -> Tenant:
    initial = f"{key}.onmicrosoft.example"
    return Tenant(
        id=stable_id(key, "tenant"), display_name=name, domains=[domain, initial], **extra
    )


def demo_world(anchor: date | None = None) -> MicrosoftWorld:
    monday = _monday(anchor or date.today())
    calendar = _calendar(monday)

    contoso = _tenant("contoso", "Contoso Ltd", "contoso.example")
    standard = ["O365_BUSINESS_PREMIUM"]
    contoso.skus = [
        TenantSku("O365_BUSINESS_PREMIUM", enabled=25),
        TenantSku("O365_BUSINESS", enabled=5),
    ]
    contoso.users = [
        _user(
            "contoso",
            "contoso.example",
            "adele",
            "Adele",
            "Vance",
            job_title="Sales manager",
            licenses=standard,
            events=calendar,
            contacts=_contacts("contoso.example"),
        ),
        _user(
            "contoso",
            "contoso.example",
            "megan",
            "Megan",
            "Bowen",
            job_title="Account manager",
            licenses=standard,
            events=calendar[:2],
            time_zone="Pacific Standard Time",
        ),
        _user(
            "contoso",
            "contoso.example",
            "admin",
            "Contoso",
            "Admin",
            licenses=standard,
            is_admin=True,
        ),
        # Licensed for the Office apps only: no Exchange mailbox (MailboxNotEnabledForRESTAPI).
        _user(
            "contoso",
            "contoso.example",
            "nomail",
            "Nora",
            "Nomail",
            licenses=["O365_BUSINESS"],
            has_mailbox=False,
        ),
    ]

    apps_only = _tenant("appsonly", "Apps Only AS", "appsonly.example")
    apps_only.skus = [TenantSku("O365_BUSINESS", enabled=10)]
    apps_only.users = [
        _user(
            "appsonly",
            "appsonly.example",
            "ola",
            "Ola",
            "Nordmann",
            licenses=["O365_BUSINESS"],
            has_mailbox=False,
        ),
        _user(
            "appsonly",
            "appsonly.example",
            "admin",
            "Apps",
            "Admin",
            licenses=["O365_BUSINESS"],
            has_mailbox=False,
            is_admin=True,
        ),
    ]

    unconsented = _tenant("fourthcoffee", "Fourth Coffee", "fourthcoffee.example", consent="none")
    unconsented.skus = [TenantSku("O365_BUSINESS_PREMIUM", enabled=10)]
    unconsented.users = [
        _user(
            "fourthcoffee",
            "fourthcoffee.example",
            "jon",
            "Jon",
            "Barista",
            licenses=standard,
            events=calendar,
        ),
        _user(
            "fourthcoffee",
            "fourthcoffee.example",
            "admin",
            "Fourth",
            "Admin",
            licenses=standard,
            is_admin=True,
        ),
    ]

    locked = _tenant("litware", "Litware Inc", "litware.example", consent="admin_approval_required")
    locked.skus = [TenantSku("SPB", enabled=50)]
    locked.users = [
        _user(
            "litware",
            "litware.example",
            "kim",
            "Kim",
            "Akers",
            licenses=["SPB"],
            events=calendar,
        ),
        _user(
            "litware",
            "litware.example",
            "admin",
            "Litware",
            "Admin",
            licenses=["SPB"],
            is_admin=True,
        ),
    ]

    federated = _tenant(
        "tailwind",
        "Tailwind Traders",
        "tailwindtraders.example",
        namespace_type="Federated",
        federation_brand_name="Tailwind Traders",
        federation_auth_url="https://tailwindtraders.okta.example/app/office365/exk1tailwind/sso/wsfed/passive",
    )
    federated.skus = [TenantSku("O365_BUSINESS_PREMIUM", enabled=100)]
    federated.users = [
        _user(
            "tailwind",
            "tailwindtraders.example",
            "alex",
            "Alex",
            "Wilber",
            licenses=standard,
            events=calendar,
            time_zone="Eastern Standard Time",
        ),
        _user(
            "tailwind",
            "tailwindtraders.example",
            "admin",
            "Tailwind",
            "Admin",
            licenses=standard,
            is_admin=True,
        ),
    ]

    app = AppRegistration(SYNCHRONIZER_APP_ID, "Synchronizer", SYNCHRONIZER_SECRET)
    return MicrosoftWorld(
        tenants=[contoso, apps_only, unconsented, locked, federated, *_verdict_tenants(calendar)],
        apps=[app],
        anchor=monday,
    )


HYBRID_DOMAIN = "wideworldimporters.example"  # its on-premises side: simulators/world/exchange.py


def _verdict_tenants(calendar: list[dict]) -> list[Tenant]:
    """Tenants where the MX alone gives the wrong verdict (issue 9, point 4)."""
    standard = ["O365_BUSINESS_PREMIUM"]
    # Microsoft 365 behind Mimecast: the MX names the filter, only Microsoft's tenant lookup
    # (or the SPF include) tells where the mailboxes are.
    filtered = _tenant(
        "humongous",
        "Humongous Insurance",
        "humongousinsurance.example",
        mx=("10 eu-smtp-inbound-1.mimecast.com.", "10 eu-smtp-inbound-2.mimecast.com."),
        spf="v=spf1 include:_netblocks.mimecast.com include:spf.protection.outlook.com -all",
    )
    filtered.skus = [TenantSku("O365_BUSINESS_PREMIUM", enabled=40)]
    filtered.users = [
        _user(
            "humongous",
            "humongousinsurance.example",
            key,
            given,
            surname,
            licenses=standard,
            events=calendar,
            is_admin=key == "admin",
        )
        for key, given, surname in (("dan", "Dan", "Park"), ("admin", "Humongous", "Admin"))
    ]
    # Licensed with Exchange Online, but the admin switched Exchange off in her licence
    # assignment: no mailbox, and licenseDetails says the plan is "Disabled".
    filtered.users.append(
        _user(
            "humongous",
            "humongousinsurance.example",
            "lynne",
            "Lynne",
            "Robbins",
            licenses=standard,
            disabled_plans=["EXCHANGE_S_STANDARD"],
            has_mailbox=False,
        )
    )
    # Exchange hybrid: the same domain on-premises (Exchange SE) and in this tenant; bob's
    # mailbox has moved to Exchange Online, alice's is still on-premises.
    hybrid = Tenant(
        id=stable_id("wideworldimporters", "tenant"),
        display_name="Wide World Importers",
        domains=[
            HYBRID_DOMAIN,
            "wideworldimporters.mail.onmicrosoft.example",  # the routing domain of moved mailboxes
            "wideworldimporters.onmicrosoft.example",
        ],
        onpremises_autodiscover_url=(
            f"https://autodiscover.{HYBRID_DOMAIN}/autodiscover/autodiscover.json"
        ),
    )
    hybrid.skus = [TenantSku("O365_BUSINESS_PREMIUM", enabled=20)]
    hybrid.users = [
        _user(
            "wideworldimporters",
            HYBRID_DOMAIN,
            "bob",
            "Bob",
            "Andersen",
            licenses=standard,
            events=calendar,
        ),
        _user(
            "wideworldimporters",
            HYBRID_DOMAIN,
            "alice",
            "Alice",
            "Andersen",
            licenses=standard,
            has_mailbox=False,
            onpremises_mailbox=True,
        ),
        _user(
            "wideworldimporters",
            HYBRID_DOMAIN,
            "admin",
            "Wide World Importers",
            "Admin",
            licenses=standard,
            is_admin=True,
        ),
    ]
    return [filtered, hybrid]


def _mx_name(domain: str) -> str:
    return domain.replace(".", "-") + ".mail.protection.outlook.com"


def dns_records(addresses: object = None) -> list[tuple[str, str, str]]:
    """MX and autodiscover records of every demo tenant's custom domain, as Microsoft 365 asks
    customers to publish them. `addresses` is unused: these names point at Microsoft's hosts."""
    records: list[tuple[str, str, str]] = []
    for tenant in demo_world().tenants:
        domain = tenant.default_domain
        records.append((domain, "TXT", f'"MS=ms{uuid.UUID(tenant.id).int % 10**8:08d}"'))
        if tenant.onpremises_autodiscover_url:
            continue  # a hybrid: MX, SPF and Autodiscover come from the on-premises side
        mx = tenant.mx or (f"0 {_mx_name(domain)}.",)
        spf = tenant.spf or "v=spf1 include:spf.protection.outlook.com -all"
        records += [(domain, "MX", value) for value in mx]
        records += [
            (f"autodiscover.{domain}", "CNAME", "autodiscover.outlook.com."),
            (domain, "TXT", f'"{spf}"'),
        ]
    return records


def demo() -> MicrosoftWorld:
    """The world part `simulators.world.load_world` hands to `simulators.microsoft.create_app`."""
    return demo_world()
