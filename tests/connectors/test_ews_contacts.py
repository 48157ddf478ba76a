"""The Exchange contacts connector against the EWS simulator, on its own and through the
engine: a folder of our own, Outlook's slots for addresses, numbers and e-mail, batches.
Each test names the mistake it catches; users act in Outlook (their own EWS client)."""

from __future__ import annotations

from typing import Any

from exchangelib import Q
from exchangelib.folders import FolderCollection
from exchangelib.indexed_properties import PhysicalAddress
from exchangelib.items import Contact as EwsContact

from common.capabilities import EWS_CONTACT, project
from common.connectors.base import Write
from common.connectors.ews.contacts import EwsContacts
from common.connectors.memory import MemoryConnector
from common.items import CONTACT_FIELDS, Address, Contact, Phone, content_hash
from common.kinds import ItemKind, RunStatus, Side, new_correlation_id
from daemon.policies import Direction, Policy
from daemon.sync import SyncOutcome, sync
from tests.fixtures.ews_connector import ALICE, BOB, NOW, EwsContactsService, Exchange, Outlook

TWO_WAY = Policy(contacts=Direction.TWO_WAY)


def run(crm: MemoryConnector[Contact], people: EwsContacts, store: Any) -> SyncOutcome[Any]:
    return sync(
        ItemKind.CONTACT,
        {Side.CRM: crm, Side.GROUPWARE: people},
        store,
        TWO_WAY,
        NOW,
        me=ALICE,
        colleagues=frozenset({ALICE, BOB}),
        sleep=lambda seconds: None,
    )


def our_folders(outlook: Outlook) -> list[Any]:
    parent = outlook.account.contacts
    found = FolderCollection(account=outlook.account, folders=[parent]).find_folders(
        q=Q(name="Synchronizer"), depth="Shallow"
    )
    return list(found)


def names_in(folder: Any) -> list[str]:
    return sorted(str(c.display_name) for c in folder.all().only("display_name"))


def test_contacts_live_in_a_folder_of_our_own_made_once(
    exchange: Exchange, ews_contacts: EwsContactsService
) -> None:
    """Mistakes caught: writing into (or listing) the user's own Contacts folder, so their
    private contacts reach the CRM; or making a second folder on every run."""
    from tests.fixtures.engine import MemoryStore

    outlook = ews_contacts.outlook
    own = EwsContact(
        account=outlook.account,
        folder=outlook.account.contacts,
        given_name="Own",
        surname="Friend",
        display_name="Own Friend",
    )
    own.save()
    crm: MemoryConnector[Contact] = MemoryConnector("crm", fields=CONTACT_FIELDS)
    crm.user_create(Contact("Pat", "Buyer", company="Fabrikam", emails=("pat@fabrikam.example",)))
    store = MemoryStore()
    outcome = run(crm, ews_contacts.connector, store)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    (folder,) = our_folders(outlook)
    assert names_in(folder) == ["Pat Buyer"]
    assert names_in(outlook.account.contacts) == ["Own Friend"]
    assert len(crm.items) == 1  # the user's own contact did not come into the CRM
    # A later run (a new connector) writes to the same folder, found by its name.
    (pat,) = crm.items
    crm.user_edit(pat, job_title="Buyer")
    again = EwsContacts(ews_contacts.connector.client)
    later = run(crm, again, store)
    assert later.status is RunStatus.SUCCEEDED and later.writes() == 1, later.error
    assert [f.id for f in our_folders(outlook)] == [folder.id]


def test_numbers_addresses_and_three_addresses_fill_outlooks_slots_and_come_back(
    ews_contacts: EwsContactsService,
) -> None:
    """Mistakes caught: a phone kind or an address put in the wrong slot (work as home),
    e-mail addresses beyond Outlook's three written (refused) or their order lost, an
    address the user cleared in Outlook read back as an empty one."""
    people = ews_contacts.connector
    person = Contact(
        "Kari",
        "Nordmann",
        middle_name="M",
        company="Proseware",
        job_title="Buyer",
        emails=("k1@example.com", "k2@example.com", "k3@example.com", "k4@example.com"),
        phones=(Phone("+47 1", "mobile"), Phone("+47 2", "work"), Phone("+47 3", "home")),
        addresses=(
            Address("work", "Street 1", "Oslo", "0150", "", "Norway"),
            Address("home", "Home 2", "Bergen", "5003", "", "Norway"),
        ),
    )
    made = people.create(person, new_correlation_id())
    assert content_hash(made.item) == content_hash(project(person, EWS_CONTACT)), made.item
    raw = ews_contacts.outlook.fetch(made.id)
    assert {p.label: p.phone_number for p in raw.phone_numbers} == {
        "MobilePhone": "+47 1",
        "BusinessPhone": "+47 2",
        "HomePhone": "+47 3",
    }
    assert {a.label: a.city for a in raw.physical_addresses} == {
        "Business": "Oslo",
        "Home": "Bergen",
    }
    assert [e.email for e in sorted(raw.email_addresses, key=lambda e: e.label)] == [
        "k1@example.com", "k2@example.com", "k3@example.com"
    ]  # fmt: skip
    raw.physical_addresses = [PhysicalAddress(label="Business", street="Street 1", city="Oslo",
                                              zipcode="0150", country="Norway")]  # fmt: skip
    raw.save(update_fields=["physical_addresses"])
    read = people.get(made.id).item
    assert [a.kind for a in read.addresses] == ["work"]


def test_twenty_contacts_are_one_create_item_and_one_get_item(
    exchange: Exchange, ews_contacts: EwsContactsService
) -> None:
    """Mistake caught: one CreateItem (or GetItem) per contact."""
    people = ews_contacts.connector
    people.changes(None)  # our folder is found (or made) and the version known from here
    before = exchange.operations()
    writes: list[Write[Contact]] = [
        Write("create", item=Contact(f"G{i}", f"F{i}"), correlation_id=new_correlation_id())
        for i in range(20)
    ]
    results = people.apply_many(writes)
    assert all(not isinstance(r, Exception) for r in results), results
    after = exchange.operations()
    spent = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert spent == {"CreateItem": 1, "GetItem": 1}
