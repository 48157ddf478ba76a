"""The Google Workspace side of the demo world.

Two domains: ``northwind.example`` is healthy (our OAuth app trusted, domain-wide delegation
configured for our service account, a super admin, a Help Desk admin and ordinary users), and
``tailspin.example`` blocks unconfigured third-party apps and never trusted ours, so consent and
token requests end in ``admin_policy_enforced``. Besides the Workspaces, one personal (consumer)
Google account registered with a Northwind address: it belongs to no Workspace.

Calendars and contacts are anchored on the current week (``today``) so a sync window around
"now" always finds data, and they cover the shapes sync code trips over: single, all-day,
multi-day, private, recurring with a moved and a cancelled occurrence, and series that cross a
daylight-saving change in different time zones.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SCOPE_CALENDAR = "https://www.googleapis.com/auth/calendar"
SCOPE_CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events"
SCOPE_CONTACTS = "https://www.googleapis.com/auth/contacts"
SCOPE_DIRECTORY_USER_RO = "https://www.googleapis.com/auth/admin.directory.user.readonly"
SCOPE_ROLES_RO = "https://www.googleapis.com/auth/admin.directory.rolemanagement.readonly"
SCOPE_DOMAINS_RO = "https://www.googleapis.com/auth/admin.directory.domain.readonly"
SCOPE_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
SCOPE_PROFILE = "https://www.googleapis.com/auth/userinfo.profile"

# Our product's OAuth client (web application) and service account, as registered at Google.
SYNCHRONIZER_CLIENT_ID = (
    "318526794120-5kq1v0demo7synchronizer0a1b2c3d4e5f.apps.googleusercontent.com"
)
SYNCHRONIZER_CLIENT_SECRET = "GOCSPX-demo-synchronizer-secret"
SERVICE_ACCOUNT_EMAIL = "synchronizer@synchronizer-demo.iam.gserviceaccount.com"
SERVICE_ACCOUNT_CLIENT_ID = "104857316598213074462"

# A second, never-trusted app (what an unknown third party looks like).
OTHER_CLIENT_ID = "555000111222-otherappdemo.apps.googleusercontent.com"
OTHER_CLIENT_SECRET = "GOCSPX-other-app-secret"

HEALTHY_DOMAIN = "northwind.example"
# A personal Google account whose address is on Northwind's domain (not a Northwind account).
PERSONAL_ON_WORKSPACE_DOMAIN = "pat@northwind.example"
SECONDARY_DOMAIN = "northwindtraders.example"  # northwind's second verified domain
UNTRUSTED_DOMAIN = "tailspin.example"
SITE_VERIFICATION = {
    HEALTHY_DOMAIN: "google-site-verification=nW7dEmoNorthwindVerif1cationT0ken",
    UNTRUSTED_DOMAIN: "google-site-verification=tA1lSpinDemoVerificationT0kenXyz",
}

DWD_SCOPES = [
    SCOPE_CALENDAR,
    SCOPE_CALENDAR_EVENTS,
    SCOPE_CONTACTS,
    SCOPE_DIRECTORY_USER_RO,
    SCOPE_EMAIL,
]


@dataclass
class Role:
    """A Workspace admin role (system roles keep Google's ``_..._ROLE`` names)."""

    role_id: str
    name: str
    description: str
    privileges: list[str]
    is_super_admin: bool = False
    is_system: bool = True


# Privilege names follow the Directory API's roles.list output; only the ones our checks
# reason about are listed. USERS_RETRIEVE lets an admin read users; ROLE_MANAGEMENT lets them
# read roles and role assignments (a Help Desk admin lacks it, hence its 403).
ROLES = [
    Role(
        "9170516996784129",
        "_SEED_ADMIN_ROLE",
        "Super Admin",
        ["SUPER_ADMIN", "USERS_RETRIEVE", "USERS_ALL", "ROLE_MANAGEMENT", "GROUPS_ALL"],
        is_super_admin=True,
    ),
    Role(
        "9170516996784130",
        "_HELP_DESK_ADMIN_ROLE",
        "Help Desk Admin",
        ["USERS_RETRIEVE", "USERS_RESET_PASSWORD", "ORGANIZATION_UNITS_RETRIEVE"],
    ),
    Role(
        "9170516996784131",
        "_USER_MANAGEMENT_ADMIN_ROLE",
        "User Management Admin",
        ["USERS_RETRIEVE", "USERS_ALL", "ORGANIZATION_UNITS_RETRIEVE"],
    ),
    Role("9170516996784132", "_GROUPS_ADMIN_ROLE", "Groups Admin", ["GROUPS_ALL"]),
    Role("9170516996784133", "_SERVICES_ADMIN_ROLE", "Services Admin", ["APP_ADMIN"]),
]


@dataclass
class GoogleUser:
    email: str
    given_name: str
    family_name: str
    user_id: str
    time_zone: str = "Europe/Oslo"
    roles: list[str] = field(default_factory=list)  # role names from ROLES
    suspended: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)  # Event resources, as inserted
    contacts: list[dict[str, Any]] = field(default_factory=list)  # Person resources

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


@dataclass
class GoogleDomain:
    name: str
    customer_id: str
    organisation: str
    site_verification: str
    users: list[GoogleUser]
    trusted_clients: set[str] = field(default_factory=set)
    blocked_clients: set[str] = field(default_factory=set)
    # "Unconfigured third-party apps": when blocked, only trusted apps get through.
    unconfigured_apps_blocked: bool = False
    # Domain-wide delegation: numeric client id -> scopes the super admin authorised.
    delegation: dict[str, list[str]] = field(default_factory=dict)
    # Other verified domains of the same Workspace (customer), e.g. after a merger.
    secondary_domains: list[str] = field(default_factory=list)

    def app_allowed(self, client_id: str) -> bool:
        if client_id in self.blocked_clients:
            return False
        return client_id in self.trusted_clients or not self.unconfigured_apps_blocked


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str
    name: str
    redirect_uris: list[str] = field(default_factory=list)
    # The demo portal runs on a port chosen at start; any loopback http(s) redirect is accepted
    # for such a client (real Google only allows the registered list, or loopback for "desktop").
    allow_loopback_redirects: bool = True


@dataclass
class ServiceAccount:
    client_email: str
    client_id: str
    project_id: str
    private_key_id: str
    private_key_pem: str

    def key_info(self, token_uri: str) -> dict[str, str]:
        """The JSON key file Google hands out, pointed at the simulated token endpoint."""
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": token_uri.rsplit("/", 1)[0] + "/o/oauth2/auth",
            "token_uri": token_uri,
        }

    def public_key_pem(self) -> bytes:
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class GoogleWorld:
    domains: list[GoogleDomain]
    oauth_clients: list[OAuthClient]
    service_accounts: list[ServiceAccount]
    roles: list[Role] = field(default_factory=lambda: list(ROLES))
    # Consumer Google accounts, members of no Workspace, even when the address is on a
    # Workspace's domain (Google's "unmanaged accounts": the owner registered the company address).
    personal_accounts: list[GoogleUser] = field(default_factory=list)

    def domain(self, name: str) -> GoogleDomain:
        return next(d for d in self.domains if d.name == name)

    def accounts(self) -> list[GoogleUser]:
        """Every Google account: the Workspaces' users and the personal accounts."""
        return [u for d in self.domains for u in d.users] + self.personal_accounts

    def user(self, email: str) -> GoogleUser:
        return next(u for u in self.accounts() if u.email == email.lower())

    def workspace_of(self, user: GoogleUser) -> GoogleDomain | None:
        """The Workspace the account belongs to; None for a personal account."""
        return next((d for d in self.domains if any(u is user for u in d.users)), None)


@functools.cache
def _service_account_key() -> str:
    # One key per process: generating RSA keys is slow and the demo needs no fresh one per run.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _timed(day: date, start: time, minutes: int, zone: str, **fields: Any) -> dict[str, Any]:
    begin = datetime.combine(day, start, tzinfo=ZoneInfo(zone))
    end = begin + timedelta(minutes=minutes)
    return {
        "start": {"dateTime": begin.isoformat(), "timeZone": zone},
        "end": {"dateTime": end.isoformat(), "timeZone": zone},
        **fields,
    }


def _all_day(first: date, days: int, **fields: Any) -> dict[str, Any]:
    return {
        "start": {"date": first.isoformat()},
        "end": {"date": (first + timedelta(days=days)).isoformat()},
        **fields,
    }


def _monday(today: date) -> date:
    return today - timedelta(days=today.weekday())


def _next_dst_sunday(today: date, zone: str) -> date:
    """The first Sunday on or after a UTC-offset change in ``zone`` within the next year."""
    tz = ZoneInfo(zone)
    day = today
    offset = datetime.combine(day, time(12), tz).utcoffset()
    for _ in range(370):
        day += timedelta(days=1)
        if datetime.combine(day, time(12), tz).utcoffset() != offset:
            break
    return day + timedelta(days=(6 - day.weekday()) % 7)


def _ordinary_calendar(user: GoogleUser, today: date, colleagues: list[str]) -> list[dict]:
    monday = _monday(today)
    zone = user.time_zone
    standup_start = monday - timedelta(days=14)
    moved_day = standup_start + timedelta(days=16)  # a Wednesday two weeks in
    cancelled_day = standup_start + timedelta(days=18)  # the Friday of that week
    dst_sunday = _next_dst_sunday(today, "America/New_York")
    weekly_ny_start = dst_sunday - timedelta(days=13)  # a Monday, two weeks before the change
    return [
        _timed(
            monday + timedelta(days=1),
            time(10),
            60,
            zone,
            summary="Customer meeting: Fabrikam renewal",
            location="Fabrikam HQ, Oslo",
            description="Bring the renewal offer.",
            attendees=[{"email": colleagues[0]}, {"email": "buyer@fabrikam.example"}],
        ),
        _all_day(monday + timedelta(days=3), 1, summary="Company day", transparency="transparent"),
        _all_day(monday + timedelta(days=7), 3, summary="Trade fair, Stockholm"),
        _timed(
            monday + timedelta(days=2),
            time(22, 30),
            120,
            zone,
            summary="Release window (overnight)",
            description="Crosses midnight on purpose.",
        ),
        _timed(
            monday + timedelta(days=4),
            time(13),
            45,
            zone,
            summary="Doctor",
            visibility="private",
        ),
        {
            **_timed(
                standup_start,
                time(9),
                15,
                zone,
                summary="Team stand-up",
                attendees=[{"email": c} for c in colleagues],
            ),
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=30"],
            "_exceptions": [
                {
                    "originalStart": datetime.combine(moved_day, time(9), ZoneInfo(zone)),
                    "patch": _timed(moved_day, time(11), 15, zone, summary="Team stand-up (moved)"),
                },
                {
                    "originalStart": datetime.combine(cancelled_day, time(9), ZoneInfo(zone)),
                    "cancel": True,
                },
            ],
        },
        {
            **_timed(
                weekly_ny_start,
                time(9),
                30,
                "America/New_York",
                summary="Weekly call with the New York office",
            ),
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6"],
        },
        {
            **_all_day(monday + timedelta(days=5), 1, summary="Gym"),
            "recurrence": [
                "RRULE:FREQ=WEEKLY;UNTIL=" + (monday + timedelta(days=60)).strftime("%Y%m%d")
            ],
        },
        _timed(
            monday + timedelta(days=9),
            time(15),
            60,
            "Asia/Tokyo",
            summary="Supplier call, Tokyo",
            extendedProperties={"private": {"note": "seeded by the demo world"}},
        ),
    ]


def _contacts(seed: int) -> list[dict[str, Any]]:
    people = [
        ("Ingrid", "Hansen", "Fabrikam AS", "Purchasing manager", "+47 22 00 00 01"),
        ("Lars", "Berg", "Fabrikam AS", "CFO", "+47 22 00 00 02"),
        ("Sofia", "Lindqvist", "Contoso AB", "Account manager", "+46 8 000 00 03"),
        ("Kenji", "Sato", "Litware KK", "Sales engineer", "+81 3 0000 0004"),
        ("Maria", "García", "Adventure Works", "Owner", "+34 91 000 00 05"),
    ]
    rotated = people[seed % len(people) :] + people[: seed % len(people)]
    out = []
    for given, family, company, title, phone in rotated[:4]:
        company_domain = company.split()[0].lower() + ".example"
        out.append(
            {
                "names": [{"givenName": given, "familyName": family}],
                "emailAddresses": [
                    {"value": f"{given.lower()}.{family.lower()}@{company_domain}", "type": "work"}
                ],
                "phoneNumbers": [{"value": phone, "type": "work"}],
                "organizations": [{"name": company, "title": title}],
            }
        )
    return out


def _user(
    email: str, given: str, family: str, number: int, zone: str = "Europe/Oslo", **kw: Any
) -> GoogleUser:
    return GoogleUser(email, given, family, f"1098765432100000{number:05d}", zone, **kw)


def demo(today: date | None = None) -> GoogleWorld:
    """The Google part of the demo world, with calendars anchored on ``today``."""
    today = today or date.today()
    northwind = GoogleDomain(
        name=HEALTHY_DOMAIN,
        customer_id="C03nw4k8d",
        organisation="Northwind Traders",
        site_verification=SITE_VERIFICATION[HEALTHY_DOMAIN],
        users=[
            _user("alice@northwind.example", "Alice", "Admin", 1, roles=["_SEED_ADMIN_ROLE"]),
            _user(
                "harry@northwind.example", "Harry", "Helpdesk", 2, roles=["_HELP_DESK_ADMIN_ROLE"]
            ),
            _user("carol@northwind.example", "Carol", "Olsen", 3),
            _user("dave@northwind.example", "Dave", "Nilsen", 4, zone="America/New_York"),
            _user("erin@northwind.example", "Erin", "Dahl", 5),
            _user("sam@northwind.example", "Sam", "Suspended", 6, suspended=True),
        ],
        trusted_clients={SYNCHRONIZER_CLIENT_ID},
        unconfigured_apps_blocked=True,
        delegation={SERVICE_ACCOUNT_CLIENT_ID: list(DWD_SCOPES)},
        secondary_domains=[SECONDARY_DOMAIN],
    )
    tailspin = GoogleDomain(
        name=UNTRUSTED_DOMAIN,
        customer_id="C01ts9q2x",
        organisation="Tailspin Toys",
        site_verification=SITE_VERIFICATION[UNTRUSTED_DOMAIN],
        users=[
            _user("tom@tailspin.example", "Tom", "Owner", 11, roles=["_SEED_ADMIN_ROLE"]),
            _user("uma@tailspin.example", "Uma", "Berg", 12),
            _user("victor@tailspin.example", "Victor", "Lie", 13, zone="Europe/London"),
        ],
        unconfigured_apps_blocked=True,
    )
    for domain in (northwind, tailspin):
        emails = [u.email for u in domain.users if not u.suspended]
        for index, user in enumerate(domain.users):
            if user.suspended:
                continue
            colleagues = [e for e in emails if e != user.email][:2]
            user.events = _ordinary_calendar(user, today, colleagues)
            user.contacts = _contacts(index)
    personal = _user(PERSONAL_ON_WORKSPACE_DOMAIN, "Pat", "Private", 21)
    return GoogleWorld(
        domains=[northwind, tailspin],
        personal_accounts=[personal],
        oauth_clients=[
            OAuthClient(SYNCHRONIZER_CLIENT_ID, SYNCHRONIZER_CLIENT_SECRET, "Synchronizer"),
            OAuthClient(OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, "Some other app"),
        ],
        service_accounts=[
            ServiceAccount(
                client_email=SERVICE_ACCOUNT_EMAIL,
                client_id=SERVICE_ACCOUNT_CLIENT_ID,
                project_id="synchronizer-demo",
                private_key_id="5d2c7a1e9b8f4c3d2e1f0a9b8c7d6e5f4a3b2c1d",
                private_key_pem=_service_account_key(),
            )
        ],
    )


def dns_records(addresses: Any = None) -> list[tuple[str, str, str]]:
    """MX and TXT records of the Google-hosted demo domains (Google's own hosts, not ours)."""
    records: list[tuple[str, str, str]] = []
    verifications = {**SITE_VERIFICATION, SECONDARY_DOMAIN: SITE_VERIFICATION[HEALTHY_DOMAIN]}
    for name, verification in verifications.items():
        records += [
            (name, "MX", "1 aspmx.l.google.com."),
            (name, "MX", "5 alt1.aspmx.l.google.com."),
            (name, "MX", "5 alt2.aspmx.l.google.com."),
            (name, "MX", "10 alt3.aspmx.l.google.com."),
            (name, "MX", "10 alt4.aspmx.l.google.com."),
            (name, "TXT", f'"{verification}"'),
            (name, "TXT", '"v=spf1 include:_spf.google.com ~all"'),
        ]
    return records
