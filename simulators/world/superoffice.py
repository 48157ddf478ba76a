"""The SuperOffice part of the demo world: Online tenants, one Onsite installation, their people
and a realistic calendar.

Plain data only; `simulators.superoffice.create_app(world)` turns it into a running CRM. Dates are
anchored on the Monday of the week the world is built (or a given anchor), so the calendar always
falls inside a sync window, and it deliberately crosses the next DST change of each time zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEMO_PASSWORD = "Demo-Pass-2026!"
DEMO_CLIENT_ID = "synchronizer-demo-client"
DEMO_CLIENT_SECRET = "synchronizer-demo-secret"
DEMO_REDIRECT_URIS = (
    "http://127.0.0.1:5000/auth/superoffice/callback",
    "http://localhost:5000/auth/superoffice/callback",
)


@dataclass
class Associate:
    associate_id: int
    username: str  # Onsite login name; Online users sign in to SuperID with their e-mail
    firstname: str
    lastname: str
    email: str
    password: str = DEMO_PASSWORD
    is_administrator: bool = False
    role_name: str = "User"
    group: str = "Sales"
    deleted: bool = False

    @property
    def full_name(self) -> str:
        return f"{self.firstname} {self.lastname}"


@dataclass
class Company:
    contact_id: int
    name: str
    domain: str
    department: str = ""
    phone: str = ""
    city: str = ""
    country: str = "Norway"


@dataclass
class Person:
    person_id: int
    contact_id: int
    firstname: str
    lastname: str
    email: str
    phone: str = ""
    mobile: str = ""
    position: str = ""
    title: str = ""


@dataclass
class Recurrence:
    """An RFC 5545 RRULE for the series, plus exceptions: a moved/renamed occurrence (overrides
    of start/end/title) or a deleted one (None), keyed by the occurrence's original local date."""

    rrule: str
    exceptions: dict[dt.date, dict[str, object] | None] = field(default_factory=dict)


@dataclass
class Appointment:
    owner: str  # associate username
    title: str
    start: dt.datetime  # aware
    end: dt.datetime  # aware
    description: str = ""
    location: str = ""
    all_day: bool = False
    private: str = "Public"  # Public | PrivateUser | PrivateGroup
    is_free: bool = False
    task: str = "Meeting"
    type: str = "inDiary"  # inDiary | inChecklist
    contact_id: int = 0
    person_id: int = 0
    participants: list[str] = field(default_factory=list)  # usernames, "person:<id>" or e-mails
    alarm_minutes: int | None = None
    recurrence: Recurrence | None = None


@dataclass
class Tenant:
    context_id: str  # Cust12345 for Online; the virtual directory name for Onsite
    name: str
    kind: str  # "online" | "onsite"
    mail_domain: str
    base_time_zone: str = "Europe/Oslo"
    version: str = "11.10.721"
    state: str = "Running"  # an /api/state State name
    api_host: str | None = None  # the only Host the API answers on (else 421); None = any
    associates: list[Associate] = field(default_factory=list)
    companies: list[Company] = field(default_factory=list)
    persons: list[Person] = field(default_factory=list)
    appointments: list[Appointment] = field(default_factory=list)

    @property
    def base_path(self) -> str:
        return f"/{self.context_id}"


@dataclass
class PartnerApp:
    """An application registered in the (simulated) Developer Portal."""

    client_id: str
    client_secret: str
    name: str
    redirect_uris: tuple[str, ...]
    server_to_server: bool = True
    consented_tenants: tuple[str, ...] = ()  # tenants whose administrator consented

    @cached_property
    def private_key(self) -> rsa.RSAPrivateKey:
        """The partner's key pair for the system-user flow (the public half is "registered")."""
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def private_key_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @property
    def public_key_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def system_token(self, context_id: str) -> str:
        """Constant per tenant and app, as SuperOffice issues it after the administrator's consent."""
        return f"{self.name.replace(' ', '')}-{context_id.lower()}-7f3a9c"


@dataclass
class SuperOfficeWorld:
    tenants: list[Tenant]
    apps: list[PartnerApp]
    anchor: dt.date

    def tenant(self, context_id: str) -> Tenant:
        return next(t for t in self.tenants if t.context_id.lower() == context_id.lower())


def dns_records(addresses: object) -> list[tuple[str, str, str]]:
    """The simulator runs on 127.0.0.1 with a configurable URL: no simulated DNS names needed."""
    return []


# --- the demo world ----------------------------------------------------------------------------

User = tuple[str, str, str]  # login (the mailbox's local part), first name, last name

# Users without a mailbox anywhere: linking them by e-mail finds nothing, as in real life.
_NO_MAILBOX: list[User] = [
    ("lee", "Lee", "Gu"),
    ("nora", "Nora", "Hansen"),
    ("ivar", "Ivar", "Aasen"),
]


def _associates(domain: str, first_id: int, onsite: bool, users: list[User]) -> list[Associate]:
    """The first user is the administrator; the list is padded to four users."""
    padded = (users + [u for u in _NO_MAILBOX if u[0] not in {x[0] for x in users}])[:4]
    out = []
    for offset, (login, first, last) in enumerate(padded):
        admin = offset == 0
        out.append(
            Associate(
                associate_id=first_id + offset,
                username=login.upper() if onsite else f"{login}@{domain}",
                firstname=first,
                lastname=last,
                email=f"{login}@{domain}",
                is_administrator=admin,
                role_name="General Administrator" if admin else "User",
                group="Management" if admin else "Sales",
            )
        )
    return out


_CUSTOMERS = [
    ("Bergen Shipping AS", "bergenshipping.example", "Bergen", "Norway"),
    ("Rotterdam Logistics BV", "rotterdamlogistics.example", "Rotterdam", "Netherlands"),
    ("Boston Analytics Inc", "bostonanalytics.example", "Boston", "USA"),
    ("Sydney Solar Pty", "sydneysolar.example", "Sydney", "Australia"),
]
_CUSTOMER_PEOPLE = [
    ("Ingrid", "Berg", "CEO"),
    ("Jan", "de Vries", "Purchasing manager"),
    ("Maria", "Lopez", "CFO"),
    ("Tom", "Nguyen", "Project lead"),
]


def _companies_and_persons(first_id: int) -> tuple[list[Company], list[Person]]:
    companies, persons = [], []
    for offset, (name, domain, city, country) in enumerate(_CUSTOMERS):
        cid = first_id + offset
        companies.append(
            Company(cid, name, domain, phone=f"+47 5555 {cid:04d}", city=city, country=country)
        )
        first, last, position = _CUSTOMER_PEOPLE[offset]
        for n, suffix in enumerate(("", " Jr")):
            pid = first_id * 10 + offset * 2 + n
            persons.append(
                Person(
                    person_id=pid,
                    contact_id=cid,
                    firstname=first if not n else "Kim",
                    lastname=(last + suffix) if not n else last,
                    email=f"{first.lower() if not n else 'kim'}.{last.lower().replace(' ', '')}@{domain}",
                    phone=f"+47 2222 {pid:04d}",
                    mobile=f"+47 9999 {pid:04d}",
                    position=position if not n else "Assistant",
                )
            )
    return companies, persons


def _next_dst_change(zone: str, after: dt.date) -> dt.date:
    """The first date after `after` whose UTC offset differs from the day before."""
    tz = ZoneInfo(zone)
    day = after
    for _ in range(400):
        noon = dt.datetime.combine(day, dt.time(12), tz)
        next_noon = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(12), tz)
        if noon.utcoffset() != next_noon.utcoffset():
            return day + dt.timedelta(days=1)
        day += dt.timedelta(days=1)
    return after  # a zone without DST


def _calendar(tenant: Tenant, anchor: dt.date) -> list[Appointment]:
    tz = ZoneInfo(tenant.base_time_zone)

    def at(day_offset: int, hour: int, minute: int = 0, zone: ZoneInfo = tz) -> dt.datetime:
        return dt.datetime.combine(
            anchor + dt.timedelta(days=day_offset), dt.time(hour, minute), zone
        )

    admin, user1, user2, user3 = (a.username for a in tenant.associates)
    c = tenant.companies
    p = tenant.persons
    dst = _next_dst_change(tenant.base_time_zone, anchor)
    dst_offset = (dst - anchor).days
    weekly_day = anchor.strftime("%a")[:2].upper()
    items = [
        Appointment(
            admin,
            "Quarterly review",
            at(1, 9),
            at(1, 10, 30),
            "Numbers and pipeline",
            "Board room",
            contact_id=c[0].contact_id,
            person_id=p[0].person_id,
            participants=[user1, f"person:{p[0].person_id}"],
            alarm_minutes=15,
        ),
        Appointment(
            admin,
            "Company offsite",
            at(10, 0),
            at(13, 0),
            "Three days in the mountains",
            "Geilo",
            all_day=True,
            task="Internal",
        ),
        Appointment(admin, "Doctor", at(2, 14), at(2, 15), private="PrivateUser", task="Personal"),
        Appointment(
            admin,
            "Weekly sales meeting",
            at(0, 8, 30),
            at(0, 9, 15),
            "Pipeline walk-through",
            "Teams",
            participants=[user1, user2, user3],
            recurrence=Recurrence(
                f"FREQ=WEEKLY;BYDAY={weekly_day};COUNT=30",
                {
                    anchor + dt.timedelta(days=14): {
                        "start_hour": 10,
                        "title": "Weekly sales meeting (moved)",
                    },
                    anchor + dt.timedelta(days=21): None,
                },
            ),
        ),
        Appointment(
            user1,
            "Demo for Boston Analytics",
            at(3, 11),
            at(3, 12),
            "Product demo",
            "Video call",
            contact_id=c[2].contact_id,
            person_id=p[4].person_id,
            participants=[f"person:{p[4].person_id}", "guest@outside.example"],
        ),
        Appointment(
            user1,
            "Call Sydney (their morning)",
            at(4, 8, 0, ZoneInfo("Australia/Sydney")),
            at(4, 8, 30, ZoneInfo("Australia/Sydney")),
            "Across the date line",
            task="Phone",
            contact_id=c[3].contact_id,
            person_id=p[6].person_id,
        ),
        Appointment(
            user1,
            "Trade fair Rotterdam",
            at(15, 0),
            at(18, 0),
            "Booth 12",
            "Ahoy Rotterdam",
            all_day=True,
            contact_id=c[1].contact_id,
            task="Event",
        ),
        Appointment(
            user1,
            "Flight to Boston",
            at(20, 10, 5),
            at(20, 12, 35, ZoneInfo("America/New_York")),
            "Multi-zone trip: departs Oslo, lands Boston",
            task="Travel",
            is_free=False,
        ),
        Appointment(
            user2,
            "Follow-up Bergen Shipping",
            at(dst_offset - 1, 23, 30),
            at(dst_offset, 4, 30),
            "Night shift over the DST change",
            contact_id=c[0].contact_id,
        ),
        Appointment(
            user2,
            "Lunch",
            at(1, 11, 30),
            at(1, 12, 30),
            is_free=True,
            task="Personal",
            private="PrivateGroup",
        ),
        Appointment(
            user2,
            "Daily stand-up",
            at(0, 9),
            at(0, 9, 15),
            "Team sync",
            "Teams",
            recurrence=Recurrence(
                "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=40",
                {anchor + dt.timedelta(days=2): {"title": "Stand-up (short)"}},
            ),
        ),
        Appointment(
            user2,
            "Send proposal",
            at(5, 12),
            at(5, 12),
            "To Rotterdam Logistics",
            type="inChecklist",
            task="To-do",
            contact_id=c[1].contact_id,
        ),
        Appointment(
            user3,
            "Monthly report",
            at(6, 14),
            at(6, 15),
            "First working week",
            recurrence=Recurrence("FREQ=MONTHLY;BYMONTHDAY=7;COUNT=8"),
        ),
        Appointment(
            user3,
            "Workshop across DST",
            at(dst_offset - 2, 9),
            at(dst_offset + 2, 16),
            "Multi-day workshop spanning the clock change",
            "Oslo",
            task="Event",
        ),
        Appointment(
            user3,
            "Yesterday's call",
            at(-1, 15),
            at(-1, 15, 30),
            task="Phone",
            contact_id=c[2].contact_id,
            person_id=p[5].person_id,
        ),
    ]
    return items


def _tenant(
    context_id: str,
    name: str,
    kind: str,
    domain: str,
    first_id: int,
    users: list[User],
    **extra: object,
) -> Tenant:
    companies, persons = _companies_and_persons(first_id)
    return Tenant(
        context_id=context_id,
        name=name,
        kind=kind,
        mail_domain=domain,
        associates=_associates(domain, first_id, kind == "onsite", users),
        companies=companies,
        persons=persons,
        **extra,  # type: ignore[arg-type]
    )


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


_EXCHANGE_USERS: list[User] = [("alice", "Alice", "Andersen"), ("bob", "Bob", "Berg")]

# SuperOffice customers of the demo, one per groupware set-up of the other world parts; the users'
# e-mail addresses are the mailboxes there (simulators/world/microsoft.py, google.py, exchange.py).
SO_UNCONSENTED = "Cust34567"  # its administrator never consented to our app: no system user
SO_MOVED = "Cust56789"  # answers only on its own host ("localhost"): 421 elsewhere
SO_OFFLINE = "Cust67890"  # OfflineMaintenance: the API is down


def _tenants() -> list[Tenant]:
    return [
        _tenant("Cust12345", "Contoso", "online", "contoso.example", 100,
                [("adele", "Adele", "Vance"), ("megan", "Megan", "Bowen"), ("nomail", "Nora", "Nomail")]),
        _tenant("Cust23456", "Apps Only AS", "online", "appsonly.example", 200, [("ola", "Ola", "Nordmann")]),
        _tenant(SO_UNCONSENTED, "Relecloud", "online", "relecloud.example", 300, _EXCHANGE_USERS),
        _tenant("Cust45678", "Fourth Coffee", "online", "fourthcoffee.example", 400, [("jon", "Jon", "Barista")]),
        _tenant("Cust51234", "Litware Inc", "online", "litware.example", 500, [("kim", "Kim", "Akers")]),
        _tenant("Cust52345", "Tailwind Traders", "online", "tailwindtraders.example", 600, [("alex", "Alex", "Wilber")]),
        _tenant("Cust52346", "Tailspin Toys", "online", "tailspin.example", 1300,
                [("tom", "Tom", "Owner"), ("uma", "Uma", "Berg"), ("victor", "Victor", "Lie")]),
        _tenant("Cust57890", "Fabrikam", "online", "fabrikam.example", 1400, _EXCHANGE_USERS,
                base_time_zone="Europe/London"),
        _tenant("Cust53456", "Northwind Traders", "online", "northwind.example", 800,
                [("alice", "Alice", "Admin"), ("carol", "Carol", "Olsen"), ("dave", "Dave", "Nilsen"), ("erin", "Erin", "Dahl")],
                base_time_zone="America/New_York"),
        _tenant("Cust54567", "Proseware", "online", "proseware.example", 900, _EXCHANGE_USERS),
        _tenant("Cust55678", "Lucerne Publishing", "online", "lucerne.example", 1000, _EXCHANGE_USERS),
        _tenant(SO_MOVED, "Wingtip Toys", "online", "wingtip.example", 1100, _EXCHANGE_USERS, api_host="localhost"),
        _tenant(SO_OFFLINE, "Woodgrove Bank", "online", "woodgrove.example", 1200, _EXCHANGE_USERS,
                state="OfflineMaintenance"),
        _tenant("SuperOffice", "Adatum (Onsite)", "onsite", "adatum.example", 700, _EXCHANGE_USERS,
                base_time_zone="Europe/Amsterdam", version="10.3.5"),
        _tenant("Cust58901", "Old Corp", "online", "oldcorp.example", 1500, _EXCHANGE_USERS),
        _tenant("Cust59012", "Trey Research", "online", "treyresearch.example", 1600, _EXCHANGE_USERS),
        _tenant("Cust62345", "Margie's Travel", "online", "margiestravel.example", 1900, _EXCHANGE_USERS),
        _tenant("Cust63456", "Coho Winery", "online", "cohowinery.example", 2000, _EXCHANGE_USERS),
        # Customers whose mail has no groupware we can sync with (world/mail_domains.py).
        _tenant("Cust60123", "IMAP Only AS", "online", "imaponly.example", 1700,
                [("ivar", "Ivar", "Imsen"), ("ingrid", "Ingrid", "Moe"), ("ida", "Ida", "Lund")]),
        _tenant("Cust61234", "iCloud Mail Ltd", "online", "icloudmail.example", 1800,
                [("chris", "Chris", "Apfel"), ("cora", "Cora", "Birn"), ("cal", "Cal", "Kern")],
                base_time_zone="Europe/London"),
        # The set-ups where the MX alone gives the wrong verdict (Check site, issue 9).
        _tenant("Cust66789", "Alpine Ski House", "online", "alpineskihouse.example", 2300, _EXCHANGE_USERS),
        _tenant("Cust68901", "Wide World Importers", "online", "wideworldimporters.example", 2400,
                _EXCHANGE_USERS),
        _tenant("Cust64567", "Humongous Insurance", "online", "humongousinsurance.example", 2100,
                [("dan", "Dan", "Park"), ("lynne", "Lynne", "Robbins")]),
        _tenant("Cust65678", "Munson's Pickles", "online", "munsonspickles.example", 2200,
                [("mia", "Mia", "Munson"), ("max", "Max", "Munson")]),
    ]  # fmt: skip


def demo(anchor: dt.date | None = None) -> SuperOfficeWorld:
    anchor = anchor or monday_of(dt.datetime.now(dt.UTC).date())
    tenants = _tenants()
    for tenant in tenants:
        tenant.appointments = _calendar(tenant, anchor)
    online = tuple(t.context_id for t in tenants if t.kind == "online")
    apps = [
        PartnerApp(
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            name="Synchronizer Demo",
            redirect_uris=DEMO_REDIRECT_URIS,
            consented_tenants=tuple(c for c in online if c != SO_UNCONSENTED),
        )
    ]
    return SuperOfficeWorld(tenants=tenants, apps=apps, anchor=anchor)
