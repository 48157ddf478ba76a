"""The engine with the SuperOffice connector as the CRM side (the simulator over https) and
the in-memory groupware: a first sync copies the diary once (series as series, all-day as
days, private as private), a second one writes nothing, and edits and deletions on either
side are carried across."""

from __future__ import annotations

import datetime as dt

import requests

from common.connectors.memory import MemoryConnector
from common.connectors.superoffice import SuperOfficeAppointments, Tenant
from common.items import Appointment
from common.kinds import ItemKind, RunStatus, Side
from daemon.policies import AppointmentFilter, Policy, PrivatePolicy, Window
from daemon.sync import SyncOutcome, sync
from tests.fixtures.memory_store import MemoryStore
from tests.fixtures.superoffice_connector import (
    ADELE,
    CONTOSO_ZONE,
    SoUser,
    bearer,
    online_client,
    sign_in,
)

NOW = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)  # the demo world's anchor Monday
POLICY = Policy(
    window=Window(days_back=3, days_ahead=60),
    appointment_filter=AppointmentFilter(private=PrivatePolicy.SYNC_AS_PRIVATE),
)
ME = "adele@contoso.example"


def run(crm: SuperOfficeAppointments, gw: MemoryConnector[Appointment],
        store: MemoryStore) -> SyncOutcome[Appointment]:  # fmt: skip
    outcome = sync(ItemKind.APPOINTMENT, {Side.CRM: crm, Side.GROUPWARE: gw}, store, POLICY, NOW,
                   me=ME, colleagues=frozenset({ME}))  # fmt: skip
    assert outcome.status is RunStatus.SUCCEEDED, (outcome.error, outcome.notes)
    return outcome


def test_a_diary_syncs_once_and_then_keeps_in_step(so_http: requests.Session, so_base: str) -> None:
    """Mistakes this finds: content read differently on each pass (every run would write
    again), a series or an all-day item not read back as written, a stamp the engine cannot
    find again, edits or deletions lost on either side."""
    crm = SuperOfficeAppointments(online_client(so_http, so_base, ME), ADELE,
                                  Tenant(CONTOSO_ZONE, context="Cust12345"), page_size=3)  # fmt: skip
    gw: MemoryConnector[Appointment] = MemoryConnector("gw", owner=ME, exact_versions=True)
    store = MemoryStore()
    user = SoUser(so_http, f"{so_base}/Cust12345/api/v1", bearer(sign_in(so_http, so_base, ME)))
    first = run(crm, gw, store)
    copies = {gw.item(i).subject: i for i in gw.items}
    assert set(copies) == {"Quarterly review", "Company offsite", "Doctor", "Weekly sales meeting"}
    assert first.counts.get("create_groupware") == 4, first.counts
    weekly = gw.item(copies["Weekly sales meeting"])
    assert weekly.recurrence is not None and len(weekly.recurrence.exceptions) == 1
    assert gw.item(copies["Company offsite"]).all_day and gw.item(copies["Doctor"]).private
    # Nothing changed: nothing written on either side.
    again = run(crm, gw, store)
    assert again.writes() == 0 and gw.writes == [("create", i) for i in sorted(gw.items)], (
        again.counts
    )
    # A user's edit in SuperOffice reaches the mailbox …
    review = next(s for s in store.links.values() if s.groupware_id == copies["Quarterly review"])
    assert review.crm_id is not None
    user.edit("Appointment", int(review.crm_id), Location="Board room 2")
    run(crm, gw, store)
    assert gw.item(copies["Quarterly review"]).location == "Board room 2"
    # … one in the mailbox reaches SuperOffice (the stamp and the link hold) …
    gw.user_edit(copies["Doctor"], subject="Doctor (moved)")
    run(crm, gw, store)
    doctor = next(s for s in store.links.values() if s.groupware_id == copies["Doctor"])
    assert doctor.crm_id is not None
    held = user.entity("Appointment", int(doctor.crm_id))
    assert held["Title"] == "Doctor (moved)" and held["Private"] == "PrivateUser"
    # … and a deletion in SuperOffice, announced by nobody, deletes the copy.
    user.call("DELETE", f"/Appointment/{review.crm_id}")
    run(crm, gw, store)
    assert copies["Quarterly review"] not in gw.items
    # A meeting made in the mailbox reaches SuperOffice once, carrying our stamp.
    start = dt.datetime(2026, 3, 11, 14, tzinfo=dt.UTC)
    made = gw.user_create(Appointment("From Outlook", start, start + dt.timedelta(hours=1)))
    run(crm, gw, store)
    link = next(s for s in store.links.values() if s.groupware_id == made)
    assert link.crm_id is not None
    found = crm.find_by_correlation_id(link.correlation_id)
    assert found is not None and found.id == link.crm_id
    assert run(crm, gw, store).writes() == 0
    rows = user.call("GET", "/Appointment", params={
        "$select": "appointment/title", "$filter": f"associateId associateIsOneOf ({ADELE})"})  # fmt: skip
    assert [r["appointment/title"] for r in rows["value"]].count("From Outlook") == 1
