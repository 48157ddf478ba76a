"""The SuperOffice part of the demo world fits the others: its users are their mailboxes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from simulators.world import load_world, mail_domains
from simulators.world.superoffice import SO_MOVED, SO_OFFLINE, SO_UNCONSENTED, demo

EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$")


def emails_in(value: Any, seen: set[int] | None = None) -> set[str]:
    """Every e-mail-looking string anywhere in a world part (independent of its field names)."""
    seen = seen if seen is not None else set()
    if id(value) in seen:
        return set()
    seen.add(id(value))
    if isinstance(value, str):
        return {value.lower()} if EMAIL.match(value) else set()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return set().union(
            *(emails_in(getattr(value, f.name), seen) for f in dataclasses.fields(value))
        )
    if isinstance(value, dict):
        return set().union(*(emails_in(v, seen) for v in value.values()), set())
    if isinstance(value, list | tuple | set):
        return set().union(*(emails_in(v, seen) for v in value), set())
    return set()


def test_every_tenant_has_one_administrator_and_users_with_mailboxes_elsewhere() -> None:
    world = load_world()
    others = set().union(
        *(emails_in(part) for name, part in world.parts.items() if name != "superoffice")
    )
    mail_only = {domain.domain for domain in mail_domains.demo()}
    for tenant in demo().tenants:
        admins = [a for a in tenant.associates if a.is_administrator]
        assert len(admins) == 1 and len(tenant.associates) >= 3, tenant.context_id
        assert all(a.email.endswith("@" + tenant.mail_domain) for a in tenant.associates)
        if tenant.mail_domain in mail_only:
            continue  # mail without groupware: no mailbox to sync with, by design
        # the administrator (the one who sets up sync) has a mailbox in another world part
        assert admins[0].email in others, f"{tenant.context_id}: {admins[0].email} has no mailbox"


def test_every_demo_organisation_is_a_superoffice_customer() -> None:
    # Each organisation of every other world part (and the mail-only domains) is a customer
    # with associates, persons and a calendar, so the sync and the Check site meet all of them.
    world = load_world()
    organisations = (
        {tenant.domains[0] for tenant in world.part("microsoft").tenants}
        | {org.domain for org in world.part("exchange").organisations}
        | {domain.name for domain in world.part("google").domains}
        | {domain.domain for domain in mail_domains.demo() if domain.kind != "personal"}
    )
    tenants = {t.mail_domain: t for t in demo().tenants}
    assert organisations - set(tenants) == set()
    for domain in organisations:
        tenant = tenants[domain]
        assert tenant.associates and tenant.companies and tenant.persons, domain
        assert len(tenant.appointments) >= 10, domain


def test_the_special_tenants_exist() -> None:
    tenants = {t.context_id: t for t in demo().tenants}
    assert tenants[SO_MOVED].api_host == "localhost"
    assert tenants[SO_OFFLINE].state == "OfflineMaintenance"
    assert SO_UNCONSENTED not in demo().apps[0].consented_tenants
    assert [t.context_id for t in tenants.values() if t.kind == "onsite"] == ["SuperOffice"]


def test_each_calendar_has_every_kind_of_item() -> None:
    anchor = dt.date(2026, 10, 5)  # three weeks before Europe's autumn DST change
    for tenant in demo(anchor=anchor).tenants:
        items = tenant.appointments
        assert any(a.all_day for a in items) and any(a.private != "Public" for a in items)
        assert any(
            (a.end - a.start) > dt.timedelta(days=1) and not a.all_day for a in items
        )  # multi-day
        assert any(a.recurrence and a.recurrence.exceptions for a in items)
        assert any(a.type == "inChecklist" for a in items) and any(a.participants for a in items)
        assert len({str(a.start.tzinfo) for a in items}) >= 2  # more than one time zone
        offsets = {a.start.utcoffset() for a in items} | {a.end.utcoffset() for a in items}
        assert len(offsets) >= 3, tenant.context_id  # across a DST change and zones
