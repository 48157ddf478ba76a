"""A profile's sync settings as typed values, and the filters they imply.

`Profile.settings` (JSON) is read with `Policy.from_settings`; anything missing takes the
default below. Defaults follow what users of other engines asked for: private items are not
synced unless chosen, and a plan that deletes a lot waits for an administrator.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.capabilities import Capabilities
from common.items import Appointment, Contact, overlaps_window, utc_window
from common.kinds import ItemKind, Side


class Direction(enum.StrEnum):
    TWO_WAY = "two_way"
    CRM_TO_GROUPWARE = "crm_to_groupware"
    GROUPWARE_TO_CRM = "groupware_to_crm"
    OFF = "off"

    def leads(self, side: Side) -> bool:
        """Whether changes made on `side` are carried to the other side."""
        if self is Direction.TWO_WAY:
            return True
        if self is Direction.CRM_TO_GROUPWARE:
            return side is Side.CRM
        if self is Direction.GROUPWARE_TO_CRM:
            return side is Side.GROUPWARE
        return False

    @property
    def one_way(self) -> bool:
        return self in (Direction.CRM_TO_GROUPWARE, Direction.GROUPWARE_TO_CRM)


class ConflictPolicy(enum.StrEnum):
    CRM_WINS = "crm_wins"
    GROUPWARE_WINS = "groupware_wins"
    NEWEST_WINS = "newest_wins"


class PrivatePolicy(enum.StrEnum):
    SYNC_AS_PRIVATE = "sync_as_private"
    SKIP = "skip"


class InviteMode(enum.StrEnum):
    """Who gets a meeting invitation when Synchronizer writes a meeting to the groupware."""

    NONE = "none"  # nobody: participants stay in the CRM (the connector lists them in the body)
    INTERNAL = "internal"  # colleagues in the organisation's own domains
    ALL = "all"  # everyone, customers included: only when a profile says so explicitly

    def allows(self, needed: InviteMode) -> bool:
        """Whether this mode lets us mail everyone that `needed` stands for."""
        order = (InviteMode.NONE, InviteMode.INTERNAL, InviteMode.ALL)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True, slots=True)
class Invitations:
    mode: InviteMode = InviteMode.NONE
    internal_domains: frozenset[str] = frozenset()  # besides the synced users' own domains

    def invites(self, address: str, colleagues: frozenset[str]) -> bool:
        """Whether writing a meeting may send `address` an invitation (or an update, or a
        cancellation: any meeting mail)."""
        if self.mode is InviteMode.ALL:
            return True
        if self.mode is InviteMode.NONE:
            return False
        return self.internal(address, colleagues)

    def internal(self, address: str, colleagues: frozenset[str]) -> bool:
        """Whether `address` is in the organisation: a synced user's domain or one named."""
        domain = address.rpartition("@")[2].lower()
        domains = {c.rpartition("@")[2].lower() for c in colleagues} | {
            d.lower() for d in self.internal_domains
        }
        return domain in domains

    def needed(self, recipients: Iterable[str], colleagues: frozenset[str]) -> InviteMode:
        """The least mode that lets us mail all of `recipients`."""
        if all(self.internal(r, colleagues) for r in recipients):
            return InviteMode.INTERNAL
        return InviteMode.ALL


def mail_hold_reason(op: str, where: str, named: Sequence[str], needed: InviteMode) -> str:
    """Why a write to a meeting organised on the groupware was not made, in plain words,
    and what a person can do about it. `op`: the write; `where`: the service; `named`: the
    attendees to name (the outside ones when there are any); `needed`: what the profile
    would have to allow."""
    outside = needed is InviteMode.ALL
    verb, doing, mail = (
        ("delete", "deleting", "a cancellation")
        if op == "delete"
        else ("change", "changing", "an update")
    )
    return (
        f"this meeting is organised in {where} with {'outside ' if outside else ''}attendees "
        f"({', '.join(named)}); {doing} it there would mail its attendees {mail}: {verb} it "
        f"in {where}, or allow updates to {'outside attendees' if outside else 'colleagues'} "
        "in the profile"
    )


@dataclass(frozen=True, slots=True)
class Window:
    days_back: int = 30
    days_ahead: int = 120

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """From the start of today's UTC day: the window moves once a day, so a listing's
        cursor stays valid all day and a new day's listing takes in what entered it."""
        today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return utc_window(today, self.days_back, self.days_ahead)


@dataclass(frozen=True, slots=True)
class AppointmentFilter:
    activity_types: frozenset[str] | None = None  # CRM types to sync; None = all
    include_categories: frozenset[str] | None = None  # None = any category
    exclude_categories: frozenset[str] = frozenset()
    private: PrivatePolicy = PrivatePolicy.SKIP


@dataclass(frozen=True, slots=True)
class ContactFilter:
    selections: frozenset[str] | None = None  # CRM selections whose persons sync; None = all
    require_email: bool = False


@dataclass(frozen=True, slots=True)
class DeletionGuard:
    """Hold a plan for approval when it deletes more than `max_deletes` items, or more than
    `max_percent` % of a side's linked items (counted from `min_for_percent` deletions on, so
    removing one of three items is not a "mass deletion")."""

    max_deletes: int = 50
    max_percent: float = 20.0
    min_for_percent: int = 5
    deletes_enabled: bool = True  # off during onboarding: deletions are reported, not applied

    def exceeded(self, deletes: int, side_size: int) -> bool:
        if deletes > self.max_deletes:
            return True
        if deletes >= self.min_for_percent and side_size > 0:
            return deletes * 100.0 > self.max_percent * side_size
        return False


@dataclass(frozen=True, slots=True)
class Policy:
    appointments: Direction = Direction.TWO_WAY
    contacts: Direction = Direction.OFF
    conflict: ConflictPolicy = ConflictPolicy.NEWEST_WINS
    window: Window = field(default_factory=Window)
    appointment_filter: AppointmentFilter = field(default_factory=AppointmentFilter)
    contact_filter: ContactFilter = field(default_factory=ContactFilter)
    guard: DeletionGuard = field(default_factory=DeletionGuard)
    invitations: Invitations = field(default_factory=Invitations)

    def direction(self, kind: ItemKind) -> Direction:
        return self.appointments if kind is ItemKind.APPOINTMENT else self.contacts

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Policy:
        af = dict(settings.get("appointment_filter", {}))
        cf = dict(settings.get("contact_filter", {}))
        inv = dict(settings.get("invitations", {}))
        return cls(
            appointments=Direction(settings.get("appointments", Direction.TWO_WAY)),
            contacts=Direction(settings.get("contacts", Direction.OFF)),
            conflict=ConflictPolicy(settings.get("conflict", ConflictPolicy.NEWEST_WINS)),
            window=Window(**settings.get("window", {})),
            appointment_filter=AppointmentFilter(
                activity_types=_set_or_none(af.get("activity_types")),
                include_categories=_set_or_none(af.get("include_categories")),
                exclude_categories=frozenset(af.get("exclude_categories", ())),
                private=PrivatePolicy(af.get("private", PrivatePolicy.SKIP)),
            ),
            contact_filter=ContactFilter(
                selections=_set_or_none(cf.get("selections")),
                require_email=bool(cf.get("require_email", False)),
            ),
            guard=DeletionGuard(**settings.get("guard", {})),
            invitations=Invitations(
                mode=InviteMode(inv.get("mode", InviteMode.NONE)),
                internal_domains=frozenset(inv.get("internal_domains", ())),
            ),
        )

    def to_settings(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, frozenset):
                return sorted(value)
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, enum.Enum):
                return value.value
            return value

        return {k: plain(v) for k, v in asdict(self).items()}


def _set_or_none(value: Any) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


def refusal(
    item: Appointment | Contact,
    origin: Side,
    policy: Policy,
    now: datetime,
    caps: Capabilities | None = None,
) -> str | None:
    """Why `item` (read on `origin`) must not be carried to the other side, or None.
    A filter on a field the origin does not keep (`caps`) does not apply to its items."""
    if isinstance(item, Contact):
        return _contact_refusal(item, origin, policy.contact_filter)
    rules = policy.appointment_filter
    if item.private and rules.private is PrivatePolicy.SKIP:
        return "private item (profile: skip private items)"
    if (
        origin is Side.CRM
        and rules.activity_types is not None
        and item.activity_type not in rules.activity_types
    ):
        return f"appointment type {item.activity_type!r} is not synced"
    if caps is not None and "categories" not in caps.fields:
        return _window_refusal(item, policy, now)
    folded = {c.casefold() for c in item.categories}
    if folded & {c.casefold() for c in rules.exclude_categories}:
        return "category excluded"
    if rules.include_categories is not None and not folded & {
        c.casefold() for c in rules.include_categories
    }:
        return "no included category"
    return _window_refusal(item, policy, now)


def _window_refusal(item: Appointment, policy: Policy, now: datetime) -> str | None:
    start, end = policy.window.bounds(now)
    if not overlaps_window(item, start, end):
        return "outside the sync window"
    return None


def _contact_refusal(item: Contact, origin: Side, rules: ContactFilter) -> str | None:
    if rules.require_email and not item.emails:
        return "contact has no email address"
    if (
        origin is Side.CRM
        and rules.selections is not None
        and not item.selections & rules.selections
    ):
        return "person is in no synced selection"
    return None
