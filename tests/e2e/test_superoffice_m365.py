"""SuperOffice <-> Microsoft 365 end to end (issue 11, "Done when"): the engine with the SQL
store between the SuperOffice connector and the Graph connector, both against their
simulators through requests and msal unchanged (`tests/fixtures/superoffice_m365.py`).

Every scenario ends with what both services hold: the same occurrences in the user's diary
and mailbox, each once, nothing lost, and no mail to anyone outside the organisation (the
Microsoft simulator records every message it sends). Each test names the mistakes it catches.
"""

from __future__ import annotations

from collections import Counter

from common.kinds import ItemKind
from tests.fixtures.superoffice_m365 import ADELE, PAGE, Scene, Seen, at


def test_initial_sync_both_ways_pairs_hand_made_twins(scene: Scene) -> None:
    """Adele's diary and her mailbox meet for the first time. Two CRM appointments she had
    already typed into Outlook by hand are paired with them, not copied a second time; the
    rest goes across both ways; her persons reach her contact folder once.

    Mistakes caught: twins not paired by content (each would be held twice), the pairing
    matching on subject alone (the lunch on another day would be swallowed), a side's
    first listing losing its last page (small pages here), a second run writing again."""
    adele = scene.link(ADELE)
    review = ("Quarterly review", at(23, 10), at(23, 11))
    visit = ("Customer visit", at(24, 13), at(24, 14, 30))
    lunch = ("Lunch with Ingrid", at(25, 12), at(25, 13))
    planning = ("Planning", at(26, 9), at(26, 10))
    for subject, start, end in (review, visit, lunch, planning):
        adele.make_in_crm(subject, start, end)
    # Typed into Outlook by hand: the visit and the planning (same times), and a lunch of
    # the same name on another day, which is no twin.
    twins = {
        subject: adele.make_in_outlook(subject, start, end)
        for subject, start, end in (visit, planning)
    }
    adele.make_in_outlook("Lunch with Ingrid", at(27, 12), at(27, 13))
    adele.make_in_outlook("Dentist", at(30, 8), at(30, 9))

    first = scene.sync(adele)
    scene.settle(adele)

    expected = Counter(
        Seen(subject, start, end)
        for subject, start, end in (
            review, visit, lunch, planning,
            ("Lunch with Ingrid", at(27, 12), at(27, 13)),
            ("Dentist", at(30, 8), at(30, 9)),
        )
    )  # fmt: skip
    scene.assert_in_step(adele, expected)
    # The hand-made twins are the ones kept (paired, not replaced by copies), and ours are
    # only the copies: six events in all.
    events = scene.ms_user(adele)["events"]
    assert len(events) == 6, [e["subject"] for e in events]
    for subject, made in twins.items():
        assert adele.outlook_event(subject)["id"] == made
    ours = sorted(e["subject"] for e in events if e["transactionId"])
    assert ours == ["Lunch with Ingrid", "Quarterly review"]
    assert first.counts.get("paired") == 2, first.counts  # in the first run, not later


def test_initial_sync_of_persons_both_ways(scene: Scene) -> None:
    """Adele's persons (her companies' people) reach a contact folder of ours once, and a
    contact she adds to that folder reaches SuperOffice once. Mistakes caught: a listing
    page lost or read twice (pages of five here), the folder made twice, a contact created
    in both directions (each side's new item copied back)."""
    adele = scene.link(ADELE)
    persons = scene.persons(adele)
    assert sum(persons.values()) > 2 * PAGE  # several pages on each side
    scene.sync(adele, ItemKind.CONTACT)
    assert scene.contacts(adele) == persons
    folders = [f["displayName"] for f in scene.ms_user(adele)["contactFolders"]]
    assert folders.count("Synchronizer") == 1
    folder = next(f["id"] for f in scene.ms_user(adele)["contactFolders"])
    made = adele.outlook.post(
        f"/users/{ADELE}/contactFolders/{folder}/contacts",
        {"givenName": "Pat", "surname": "Buyer", "displayName": "Pat Buyer",
         "emailAddresses": [{"address": "pat@fabrikam.example", "name": "Pat Buyer"}]},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    scene.settle(adele, kind=ItemKind.CONTACT)
    assert scene.persons(adele) == persons + Counter({"Pat Buyer": 1})
    assert scene.contacts(adele) == scene.persons(adele)
