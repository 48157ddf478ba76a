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
from daemon.sync import SyncOutcome, sync
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

    def run(self, policy: Policy) -> SyncOutcome[Appointment]:
        return sync(
            ItemKind.APPOINTMENT,
            {Side.CRM: self.crm, Side.GROUPWARE: self.gw},
            self.store,
            policy,
            NOW,
            me=self.address,
            colleagues=TEAM,
        )

    def sync(self, policy: Policy) -> None:
        outcome = self.run(policy)
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


def organised_in_outlook(ann: User, ben: User, subject: str, *guests: str) -> tuple[str, str]:
    """Ann organises a meeting in Outlook (Ben gets the invitation); her sync books it in
    the CRM. Her event's id and her CRM booking's id."""
    start = datetime(2026, 3, 24, 9, tzinfo=UTC)
    invitation = Appointment(
        subject,
        start,
        start + timedelta(hours=1),
        attendees=tuple(Attendee(a) for a in (ANN, *guests)),
        organizer=ANN,
        uid=f"outlook-{subject}",
    )
    event = ann.gw.user_create(invitation)
    ben.gw.user_create(invitation)
    ann.sync(Policy())
    (booking,) = [i for i, (_, item, _) in ann.crm.items.items() if item.subject == subject]
    return event, booking


def moved(connector: MemoryConnector[Appointment], item_id: str) -> None:
    item = connector.item(item_id)
    connector.user_edit(
        item_id, start=item.start + timedelta(hours=2), end=item.end + timedelta(hours=2)
    )


def test_a_crm_change_the_organisers_event_would_mail_outside_is_held_once_then_allowed(
    users: tuple[User, User, Directory],
) -> None:
    """Ann moves in the CRM a meeting she organised in Outlook with Ben and a customer.
    Writing her event would mail both an update: by default it is held (her event keeps its
    time, the CRM keeps the move, the run says why), the next runs neither write nor record
    it again, and once the profile allows mail to outside people it goes across.

    Mistakes caught: the organiser's event updated whatever the profile says (the customer
    mailed), the held write planned and refused again on every run, the CRM's move given up
    for the old time, the hold never lifted."""
    ann, ben, directory = users
    event, booking = organised_in_outlook(ann, ben, "Pricing workshop", BEN, CUSTOMER)
    before = ann.gw.item(event)
    moved(ann.crm, booking)
    first = ann.run(Policy())
    assert first.status is RunStatus.PARTIAL
    assert first.report is not None
    (failure,) = first.report.failures
    assert "outside attendees (carl@customer.example)" in failure.error, failure
    assert not failure.retryable
    assert ann.gw.item(event) == before and directory.outbox == []
    assert ann.crm.item(booking).start == before.start + timedelta(hours=2)
    writes, reads = list(ann.gw.writes), ann.gw.calls["get"]
    for _ in range(2):
        ann.sync(Policy())
    assert ann.gw.writes == writes and ann.gw.calls["get"] == reads  # not even looked at

    ann.sync(Policy(invitations=Invitations(InviteMode.ALL)))
    assert ann.gw.item(event).start == before.start + timedelta(hours=2)
    assert directory.outbox == [(CUSTOMER, "Pricing workshop")]
    assert ann.run(Policy()).writes() == 0  # the pair agrees again: nothing held any more


def test_colleagues_only_meetings_follow_the_crm_when_the_profile_invites_colleagues(
    users: tuple[User, User, Directory],
) -> None:
    """With colleagues invited, a move in the CRM of a meeting Ann organised in Outlook with
    Ben only reaches her event, and Ben's invitation follows; one with a customer is held.
    Mistakes caught: "colleagues" read as nobody (an internal meeting held) or as everyone
    (the customer mailed)."""
    ann, ben, directory = users
    policy = Policy(invitations=Invitations(InviteMode.INTERNAL))
    event, booking = organised_in_outlook(ann, ben, "Team sync", BEN)
    workshop, offer = organised_in_outlook(ann, ben, "Pricing workshop", BEN, CUSTOMER)
    before = ann.gw.item(workshop)
    moved(ann.crm, booking)
    moved(ann.crm, offer)
    outcome = ann.run(policy)
    assert outcome.status is RunStatus.PARTIAL and outcome.report is not None
    assert [f.item for f in outcome.report.failures] == [workshop]
    start = ann.crm.item(booking).start
    assert ann.gw.item(event).start == start
    assert ann.gw.item(workshop) == before
    (copy,) = [i for i, (_, item, _) in ben.gw.items.items() if item.subject == "Team sync"]
    assert ben.gw.item(copy).start == start  # delivered inside the organisation
    assert directory.outbox == []


def test_a_held_colleagues_meeting_goes_across_once_the_profile_invites_colleagues(
    users: tuple[User, User, Directory],
) -> None:
    """Held by default, a move of a meeting Ann organised with Ben only needs colleagues to
    be invited, no more: it goes across once the profile invites them (Ben's invitation
    follows), not only when it allows everyone. Mistake caught: every hold taken to need
    mail to outside people (a colleagues' meeting never lifted by the setting that covers
    it), or a colleagues' hold lifted by nothing."""
    ann, ben, directory = users
    event, booking = organised_in_outlook(ann, ben, "Team sync", BEN)
    moved(ann.crm, booking)
    assert ann.run(Policy()).status is RunStatus.PARTIAL
    ann.sync(Policy())
    assert ann.gw.item(event).start != ann.crm.item(booking).start
    ann.sync(Policy(invitations=Invitations(InviteMode.INTERNAL)))
    assert ann.gw.item(event).start == ann.crm.item(booking).start
    assert directory.outbox == []


@pytest.mark.parametrize(
    ("mode", "needed", "allowed"),
    [
        (InviteMode.NONE, InviteMode.INTERNAL, False),
        (InviteMode.INTERNAL, InviteMode.INTERNAL, True),
        (InviteMode.INTERNAL, InviteMode.ALL, False),
        (InviteMode.ALL, InviteMode.ALL, True),
        (InviteMode.ALL, InviteMode.INTERNAL, True),
    ],
)
def test_invite_modes_are_ordered_nobody_colleagues_everyone(
    mode: InviteMode, needed: InviteMode, allowed: bool
) -> None:
    assert mode.allows(needed) is allowed


def test_what_a_hold_needs_is_colleagues_unless_someone_is_outside() -> None:
    invitations = Invitations(internal_domains=frozenset({"contoso.no"}))
    assert invitations.needed([BEN, "kari@contoso.no"], TEAM) is InviteMode.INTERNAL
    assert invitations.needed([BEN, CUSTOMER], TEAM) is InviteMode.ALL
