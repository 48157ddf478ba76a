"""Meetings with several synced participants (Sync engine II, point 10), on both stores.

SuperOffice keeps one booking per participant (the mother appointment and its children);
the groupware delivers one meeting to each attendee. Whatever order the users' syncs run in,
a participant holds the meeting once on each side, and nobody outside the organisation gets
mail unless the profile says so explicitly. `Directory` plays both services' part: it books
colleagues' diaries and delivers or mails invitations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.connectors.memory import Clock, Directory, MemoryConnector
from common.items import Appointment, Attendee
from common.kinds import ItemKind, RunStatus, Side
from daemon.policies import Invitations, InviteMode, Policy
from daemon.sync import sync
from tests.fixtures.engine import NOW, MemoryStore, another_user, make_sql_store

ANN, BEN, CUSTOMER = "ann@contoso.example", "ben@contoso.example", "carl@customer.example"
TEAM = frozenset({ANN, BEN})


class User:
    def __init__(self, address: str, directory: Directory, clock: Clock, store: Any) -> None:
        self.address = address
        name = address.split("@")[0]
        self.crm: MemoryConnector[Appointment] = MemoryConnector(
            f"crm-{name}", owner=address, directory=directory, clock=clock
        )
        self.gw: MemoryConnector[Appointment] = MemoryConnector(
            f"gw-{name}", owner=address, directory=directory, clock=clock
        )
        self.store = store

    def sync(self, policy: Policy) -> None:
        outcome = sync(
            ItemKind.APPOINTMENT,
            {Side.CRM: self.crm, Side.GROUPWARE: self.gw},
            self.store,
            policy,
            NOW,
            me=self.address,
            colleagues=TEAM,
        )
        assert outcome.status is RunStatus.SUCCEEDED, outcome


@pytest.fixture(params=["memory", "sql"])
def users(request: pytest.FixtureRequest) -> Iterator[tuple[User, User, Directory]]:
    directory, clock = Directory(), Clock()
    if request.param == "memory":
        stores: list[Any] = [MemoryStore(), MemoryStore()]
    else:
        first = make_sql_store()
        stores = [first, another_user(first)]
    yield User(ANN, directory, clock, stores[0]), User(BEN, directory, clock, stores[1]), directory
    if request.param == "sql":
        stores[0].db.dispose()


def meeting(**more: Any) -> Appointment:
    start = datetime(2026, 3, 23, 10, tzinfo=UTC)
    attendees = (Attendee(ANN), Attendee(BEN), Attendee(CUSTOMER))
    return Appointment(
        "Contract review", start, start + timedelta(hours=1), attendees=attendees, **more
    )


def book_in_crm(ann: User, ben: User) -> None:
    """Ann books a meeting with Ben and a customer in SuperOffice: her mother appointment
    and Ben's child booking."""
    ann.crm.user_create(meeting(organizer=ANN, uid="mother-1"))
    ben.crm.user_create(meeting(organizer=ANN, uid="mother-1"))


def subjects(connector: MemoryConnector[Appointment]) -> list[str]:
    return [item.subject for _, item, _ in connector.items.values()]


@pytest.mark.parametrize("ann_first", [True, False])
def test_by_default_nobody_is_invited_and_each_participant_holds_one(
    users: tuple[User, User, Directory], ann_first: bool
) -> None:
    """Mistakes caught: writing the CRM's participants as attendees (the customer gets an
    invitation from a sync), or each participant's sync making its own copy of an
    invitation it also receives."""
    ann, ben, directory = users
    book_in_crm(ann, ben)
    policy = Policy()
    for user in [ann, ben] if ann_first else [ben, ann]:
        user.sync(policy)
    ann.sync(policy)
    ben.sync(policy)
    assert subjects(ann.gw) == subjects(ben.gw) == ["Contract review"]
    assert subjects(ann.crm) == subjects(ben.crm) == ["Contract review"]
    assert directory.outbox == []
    ((_, written, _),) = ann.gw.items.values()
    assert written.attendees == ()  # nobody invited


@pytest.mark.parametrize("ann_first", [True, False])
def test_inviting_colleagues_pairs_the_invitation_with_the_booking(
    users: tuple[User, User, Directory], ann_first: bool
) -> None:
    """A profile that invites colleagues: Ann's sync invites Ben (never the customer), and
    Ben's sync pairs the invitation with his CRM booking instead of copying either way,
    whichever sync runs first."""
    ann, ben, directory = users
    book_in_crm(ann, ben)
    policy = Policy(invitations=Invitations(InviteMode.INTERNAL))
    for user in [ann, ben, ann, ben] if ann_first else [ben, ann, ben, ann]:
        user.sync(policy)
    assert subjects(ben.gw) == ["Contract review"]  # the invitation, and no copy of ours
    assert subjects(ben.crm) == ["Contract review"]
    assert subjects(ann.gw) == ["Contract review"]
    assert directory.outbox == []  # the customer got nothing
    ((_, written, _),) = ann.gw.items.values()
    assert [a.email for a in written.attendees] == [BEN]


@pytest.mark.parametrize("ben_first", [True, False])
def test_a_meeting_made_in_outlook_reaches_the_crm_once_per_participant(
    users: tuple[User, User, Directory], ben_first: bool
) -> None:
    """Ann invites Ben in Outlook; the groupware delivers it to Ben. Ann's sync books it in
    the CRM with its participants (Ben's child booking); Ben's sync does not book it a second
    time, whichever runs first, and pairs his invitation with his booking."""
    ann, ben, directory = users
    invitation = meeting(organizer=ANN, uid="outlook-1")
    ann.gw.user_create(invitation)
    ben.gw.user_create(invitation)
    policy = Policy()
    for user in [ben, ann, ben] if ben_first else [ann, ben]:
        user.sync(policy)
    ann.sync(policy)
    ben.sync(policy)
    assert subjects(ann.crm) == subjects(ben.crm) == ["Contract review"]
    assert subjects(ann.gw) == subjects(ben.gw) == ["Contract review"]
    assert directory.outbox == []


def test_outside_people_are_invited_only_when_the_profile_says_so(
    users: tuple[User, User, Directory],
) -> None:
    """The one setting that mails customers, checked to be the one that does (mistake: an
    inverted or ignored invitation policy)."""
    ann, ben, directory = users
    book_in_crm(ann, ben)
    ann.sync(Policy(invitations=Invitations(InviteMode.ALL)))
    assert directory.outbox == [(CUSTOMER, "Contract review")]
