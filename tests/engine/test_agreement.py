"""Agreement per side (Sync engine II, points 5-7): what a server rewrites, or a side cannot
express, is never an edit, never lost, never pushed back; coarse versions never hide one.

Each case syncs a SuperOffice-like CRM with a Graph-like groupware (their declared
capabilities), lets the server rewrite what it holds, and checks that the next run writes
nothing, and that a real edit made after it is still carried."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from common.capabilities import GRAPH_EVENT, SUPEROFFICE_APPOINTMENT
from common.connectors.memory import Clock, MemoryConnector
from common.items import Appointment, Recurrence, ShowAs
from common.kinds import ItemKind, RunStatus, Side
from daemon.policies import ConflictPolicy, Policy
from daemon.sync import SyncOutcome, sync
from tests.fixtures.engine import NOW, MemoryStore

START = datetime(2026, 3, 23, 9, tzinfo=UTC)


def world() -> tuple[MemoryConnector[Appointment], MemoryConnector[Appointment], MemoryStore]:
    clock = Clock()
    crm: MemoryConnector[Appointment] = MemoryConnector(
        "crm", capabilities=SUPEROFFICE_APPOINTMENT, clock=clock, exact_versions=False
    )
    gw: MemoryConnector[Appointment] = MemoryConnector("gw", capabilities=GRAPH_EVENT, clock=clock)
    return crm, gw, MemoryStore()


def run(crm: object, gw: object, store: MemoryStore, **kw: object) -> SyncOutcome[Appointment]:
    policy = Policy(conflict=ConflictPolicy.NEWEST_WINS)
    outcome = sync(
        ItemKind.APPOINTMENT,
        {Side.CRM: crm, Side.GROUPWARE: gw},
        store,
        policy,
        NOW,  # type: ignore[dict-item]
    )
    assert outcome.status is RunStatus.SUCCEEDED, outcome
    return outcome


def series(**more: object) -> Appointment:
    return Appointment(
        "Weekly",
        START,
        START + timedelta(hours=1),
        timezone="Europe/Berlin",
        recurrence=Recurrence("FREQ=WEEKLY;COUNT=4"),
        **more,  # type: ignore[arg-type]
    )


REWRITES: dict[str, tuple[Appointment, Callable[[Appointment], Appointment]]] = {
    "a default reminder added": (
        Appointment("Call", START, START + timedelta(hours=1)),
        lambda i: dataclasses.replace(i, reminder_minutes=15),
    ),
    "the zone under its Windows name's IANA twin": (
        series(),
        lambda i: dataclasses.replace(i, timezone="Europe/Amsterdam"),
    ),
    "UTC named Etc/UTC": (
        Appointment("Call", START, START + timedelta(hours=1), timezone="UTC"),
        lambda i: dataclasses.replace(i, timezone="Etc/UTC"),
    ),
    "COUNT written as UNTIL": (
        series(),
        lambda i: dataclasses.replace(
            i, recurrence=Recurrence("FREQ=WEEKLY;UNTIL=20260413T080000Z")
        ),
    ),
    "the body escaped and wrapped in HTML": (
        Appointment("Call", START, START + timedelta(hours=1), body="Q&A <ann@example.com>"),
        lambda i: dataclasses.replace(
            i, body="<html><body><p>Q&amp;A &lt;ann@example.com&gt;</p></body></html>"
        ),
    ),
}


@pytest.mark.parametrize("what", sorted(REWRITES))
def test_a_server_rewrite_is_never_an_edit(what: str) -> None:
    """Mistake: one agreed hash for both sides, or a normalisation missing one rewrite:
    the rewrite is carried back as an edit, and newest-wins is decided by a phantom."""
    item, rewrite = REWRITES[what]
    crm, gw, store = world()
    crm_id = crm.user_create(item)
    run(crm, gw, store)
    (gw_id,) = gw.items
    gw.server_rewrite(gw_id, rewrite)
    quiet = run(crm, gw, store)
    assert quiet.writes() == 0, quiet.plans
    crm.user_edit(crm_id, subject="Call, moved")  # a real edit still goes across
    run(crm, gw, store)
    assert gw.item(gw_id).subject == "Call, moved"


def test_a_value_one_side_cannot_express_is_neither_lost_nor_pushed_back() -> None:
    """The groupware says "working elsewhere"; SuperOffice knows only busy and free. The CRM
    holds busy; a later CRM edit of the subject leaves "elsewhere" on the groupware
    (mistake: overwriting every field both sides keep)."""
    crm, gw, store = world()
    gw_id = gw.user_create(
        Appointment("Site visit", START, START + timedelta(hours=2), show_as=ShowAs.ELSEWHERE)
    )
    run(crm, gw, store)
    ((crm_id, (_, held, _)),) = crm.items.items()
    assert held.show_as is ShowAs.BUSY
    assert run(crm, gw, store).writes() == 0  # busy is not an edit of "elsewhere"
    crm.user_edit(crm_id, subject="Site visit, Utrecht")
    run(crm, gw, store)
    assert gw.item(gw_id).subject == "Site visit, Utrecht"
    assert gw.item(gw_id).show_as is ShowAs.ELSEWHERE


def test_an_edit_on_a_side_with_day_grained_versions_is_seen() -> None:
    """SuperOffice's updatedDate changes once a day: an edit the same day keeps the version.
    Mistake: trusting an equal version there, so the edit is never carried."""
    crm, gw, store = world()
    crm_id = crm.user_create(Appointment("Call", START, START + timedelta(hours=1)))
    run(crm, gw, store)
    version = crm.items[crm_id][0]
    crm.user_edit(crm_id, subject="Call (agenda changed)")
    assert crm.items[crm_id][0] == version  # the same day, the same version
    run(crm, gw, store)
    ((_, (_, copy, _)),) = gw.items.items()
    assert copy.subject == "Call (agenda changed)"


def test_a_plain_text_body_with_an_address_in_angle_brackets_stays_whole() -> None:
    crm, gw, store = world()
    crm.user_create(
        Appointment("Call", START, START + timedelta(hours=1), body="Ring <ann@example.com>")
    )
    run(crm, gw, store)
    ((_, (_, copy, _)),) = gw.items.items()
    assert "ann@example.com" in copy.body
    assert run(crm, gw, store).writes() == 0
