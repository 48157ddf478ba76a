"""One associate's persons (and their companies) as contacts: every person whose company has
the associate as "our contact", or who has the associate as their own our-contact
(PersonEntity.Associate, used for persons without a company); or, when a static selection is
named, the persons in that selection (`ContactPersonStaticSelectionV2`). Persons this side
makes are not added to the selection (that is the Selection agent's work): with a selection,
persons go one way, from SuperOffice to the groupware, as the product syncs them, and a
create is refused with a clear error rather than made outside the selection (where it would
look deleted at once).

A person's e-mail addresses and phone numbers live in other tables than the person row:
changing them leaves `UpdatedDate` as it was and fires no webhook. So the listing compares
every person's archive columns (names, company, first e-mail, phone, mobile) at each pass
(`listing`, "poll"), and the full listing (at least daily) reads every person again.
Deleting a person is SuperOffice's soft delete: it is gone from every read at once.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from common.capabilities import SUPEROFFICE_PERSON, Capabilities
from common.connectors.base import (
    NotFound,
    ParallelConnector,
    Permanent,
    Write,
    each_at_once,
)
from common.connectors.superoffice import mapping
from common.connectors.superoffice.client import (
    SO_CONCURRENCY,
    SuperOfficeClient,
    http_date,
    parse_updated,
)
from common.connectors.superoffice.listing import Lister, Row
from common.connectors.superoffice.mapping import Unmappable
from common.connectors.superoffice.people import odata_text
from common.connectors.superoffice.stamps import Stamps
from common.items import Contact
from common.kinds import ChangeSet, Stored, Unreadable, Window

TABLE = "person"
# What the mapping reads and writes. Not addresses: persons here hold them only through the
# company's address, which is not theirs to change.
PERSON_CAPABILITIES = Capabilities(
    fields=SUPEROFFICE_PERSON.fields - {"addresses", "crm_person_id"}
)


class _Scope:
    """The persons of the companies the associate is our contact for, and their own."""

    resource = "/Person"
    key = "personId"
    fingerprinted: tuple[str, ...] = (
        "firstName", "lastName", "title", "contactId", "personContact/name",
        "email/emailAddress", "phone/formattedNumber", "personMobilePhone/formattedNumber",
        "personContact/associateId", "personAssociateId", "personUpdatedDate",
    )  # fmt: skip
    identified: tuple[str, ...] = ()
    reads_changes = False  # e-mail and phone edits leave the row as it was: poll every row

    def __init__(self, connector: SuperOfficePersons) -> None:
        self.connector = connector

    def where(self, window: Window | None) -> str:
        mine = f"({self.connector.associate_id})"
        return (
            f"(personContact/associateId associateIsOneOf {mine} "
            f"or personAssociateId associateIsOneOf {mine})"
        )

    def changed_since(self, day: str) -> str:
        raise NotImplementedError("persons are polled")

    def item_id(self, row: Row) -> str | None:
        return str(row["personId"])

    def updated_day(self, row: Row) -> str:
        return str(row.get("personUpdatedDate") or "")[:10]

    def read(
        self, item_ids: Sequence[str], window: Window | None
    ) -> tuple[list[Stored[Contact]], list[str], list[Unreadable]]:
        found: list[Stored[Contact]] = []
        gone: list[str] = []
        bad: list[Unreadable] = []
        read = each_at_once(
            lambda item_id: self.connector.read(item_id, stamp=False),
            item_ids,
            self.connector.in_flight,
        )
        for item_id, stored in zip(item_ids, read, strict=True):
            if isinstance(stored, NotFound):
                gone.append(item_id)
            elif isinstance(stored, Unmappable):
                bad.append(Unreadable(item_id, str(stored)))
            elif isinstance(stored, Exception):
                raise stored
            else:
                found.append(stored)
        return found, gone, bad


class _SelectionScope(_Scope):
    """The person members of one static selection (the archive names the person's own
    e-mail and phone `personEmail/…` and `personDirectPhone/…`, the company's name `name`)."""

    resource = "/Archive/ContactPersonStaticSelectionV2"
    fingerprinted = (
        "firstName", "lastName", "title", "contactId", "name", "personEmail/emailAddress",
        "personDirectPhone/formattedNumber", "personMobilePhone/formattedNumber",
        "personUpdatedDate",
    )  # fmt: skip

    def __init__(self, connector: SuperOfficePersons, selection_id: int) -> None:
        super().__init__(connector)
        self.selection_id = selection_id

    def where(self, window: Window | None) -> str:
        return f"selectionId eq {self.selection_id}"


class SuperOfficePersons(ParallelConnector[Contact]):
    exact_versions = False  # UpdatedDate does not move when an e-mail or phone changes
    can_stamp = True
    stamps_in_listing = False
    idempotent_create = False
    batch_size = 80  # no batch in the REST API: the writes are made `in_flight` at a time
    in_flight = SO_CONCURRENCY

    def __init__(
        self,
        client: SuperOfficeClient,
        associate_id: int,
        *,
        context: str = "",
        selection_id: int | None = None,
        stamps: Stamps | None = None,
        page_size: int = 500,
        max_cursor_age: timedelta = timedelta(days=1),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.associate_id = associate_id
        self.selection_id = selection_id
        self.stamps = stamps or Stamps(client)
        self.page_size = page_size
        self._companies: dict[str, int] = {}
        # Persons are written several at once: two of one new company must not make it twice.
        self._companies_lock = threading.Lock()
        scope = _Scope(self) if selection_id is None else _SelectionScope(self, selection_id)
        whose = f"selection {selection_id}" if selection_id is not None else "theirs"
        self.lister = Lister(
            client,
            scope,
            scope_key=f"persons|{context}|{associate_id}|{whose}",
            page_size=page_size,
            id_page_size=page_size,
            max_age=max_cursor_age,
            clock=clock or (lambda: datetime.now(UTC)),
        )

    @property
    def capabilities(self) -> Capabilities:
        return PERSON_CAPABILITIES

    @property
    def fields(self) -> frozenset[str]:
        return PERSON_CAPABILITIES.fields

    # --- reading -----------------------------------------------------------------------

    def changes(self, cursor: str | None, window: Window | None = None) -> ChangeSet[Contact]:
        return self.lister.changes(cursor, None)

    def get(self, item_id: str) -> Stored[Contact]:
        return self.read(item_id, stamp=True)

    def read(self, item_id: str, stamp: bool) -> Stored[Contact]:
        return self._stored(self._entity(_id_of(item_id)), stamp)

    def find_by_correlation_id(self, correlation_id: str) -> Stored[Contact] | None:
        held = self.stamps.holder(TABLE, correlation_id)
        if held is None:
            return None
        try:
            stored = self.read(str(held[0]), stamp=False)
        except NotFound:
            return None
        return dataclasses.replace(stored, correlation_id=correlation_id)

    # --- writing -----------------------------------------------------------------------

    def create(self, item: Contact, correlation_id: str) -> Stored[Contact]:
        if self.selection_id is not None:
            raise Permanent(
                f"persons are synced from selection {self.selection_id}: a person made here "
                "would not be in it (add persons to the selection in SuperOffice)"
            )
        body = mapping.person_fields(item, self._company(item.company))
        body["Associate"] = {"AssociateId": self.associate_id}
        entity = self.client.request("POST", "/Person", json=body).json()
        self.stamps.write(TABLE, int(entity["PersonId"]), correlation_id)
        return dataclasses.replace(self._stored(entity, stamp=False), correlation_id=correlation_id)

    def update(self, item_id: str, item: Contact, if_match: str | None) -> Stored[Contact]:
        person_id = _id_of(item_id)
        current = self._entity(person_id)
        held = str((current.get("Contact") or {}).get("Name") or "")
        company = (
            int((current.get("Contact") or {}).get("ContactId") or 0)
            if held.strip().casefold() == item.company.strip().casefold()
            else self._company(item.company)
        )
        body = {**current, **mapping.person_fields(item, company)}
        answer = self.client.request(
            "PUT", f"/Person/{person_id}", json=body, headers=_unmodified_since(if_match)
        )
        return self._stored(answer.json(), stamp=True)

    def stamp(self, item_id: str, correlation_id: str, if_match: str | None) -> Stored[Contact]:
        stored = self.read(item_id, stamp=False)
        self.stamps.write(TABLE, _id_of(item_id), correlation_id)
        return dataclasses.replace(stored, correlation_id=correlation_id)

    def stamps_of(self, item_ids: Sequence[str]) -> dict[str, str | None]:
        """Only the foreign keys are read (the listing has read the persons)."""
        read = each_at_once(
            lambda item_id: self.stamps.read(TABLE, _id_of(item_id)), item_ids, self.in_flight
        )
        found: dict[str, str | None] = {}
        for item_id, stamp in zip(item_ids, read, strict=True):
            if isinstance(stamp, NotFound | Permanent):
                continue
            if isinstance(stamp, Exception):
                raise stamp
            found[item_id] = stamp
        return found

    def _apply_one(self, write: Write[Contact]) -> Stored[Contact] | None:
        if write.op == "stamp" and write.item is not None and write.item_id is not None:
            # The foreign key is a row of its own: the person stays as the engine read it,
            # so it is not read again to be given back.
            assert write.correlation_id is not None
            self.stamps.write(TABLE, _id_of(write.item_id), write.correlation_id)
            return Stored(write.item_id, write.if_match or "", write.item, write.correlation_id)
        return super()._apply_one(write)

    def delete(self, item_id: str, if_match: str | None) -> None:
        person_id = _id_of(item_id)
        self._entity(person_id)
        self.client.request("DELETE", f"/Person/{person_id}", headers=_unmodified_since(if_match))

    # --- internals ---------------------------------------------------------------------

    def _entity(self, person_id: int) -> dict[str, Any]:
        entity: dict[str, Any] = self.client.get(f"/Person/{person_id}")
        if self.selection_id is not None:
            if not self._member(person_id):
                raise NotFound(f"person {person_id} is not in selection {self.selection_id}")
            return entity
        company_owner = _associate(entity.get("Contact"), "AssociateId")
        own = _associate(entity.get("Associate"), "AssociateId")
        if self.associate_id not in (company_owner, own):
            raise NotFound(f"person {person_id} is not one of associate {self.associate_id}'s")
        return entity

    def _member(self, person_id: int) -> bool:
        return bool(
            self.client.rows(
                _SelectionScope.resource,
                key="personId",
                select=(),
                where=f"selectionId eq {self.selection_id} and personId eq {person_id}",
                top=1,
            )  # fmt: skip
        )

    def _stored(self, entity: dict[str, Any], stamp: bool) -> Stored[Contact]:
        person_id = int(entity["PersonId"])
        return Stored(
            str(person_id),
            str(entity.get("UpdatedDate") or ""),
            mapping.contact(entity),
            self.stamps.read(TABLE, person_id) if stamp else None,
            parse_updated(str(entity["CreatedDate"])) if entity.get("CreatedDate") else None,
        )

    def _company(self, name: str) -> int:
        """The company of that name (the oldest, if several), made if there is none."""
        wanted = name.strip()
        if not wanted:
            return 0
        with self._companies_lock:
            return self._company_of(wanted)

    def _company_of(self, wanted: str) -> int:
        if wanted.casefold() not in self._companies:
            rows = self.client.rows(
                "/Contact", key="contactId", select=("name",),
                where=f"name eq {odata_text(wanted)}", top=1,
            )  # fmt: skip
            if rows:
                found = int(rows[0]["contactId"])
            else:
                body = {"Name": wanted, "Associate": {"AssociateId": self.associate_id}}
                found = int(self.client.request("POST", "/Contact", json=body).json()["ContactId"])
            self._companies[wanted.casefold()] = found
        return self._companies[wanted.casefold()]


def _associate(value: Any, key: str) -> int:
    return int(value.get(key) or 0) if isinstance(value, dict) else 0


def _unmodified_since(if_match: str | None) -> dict[str, str]:
    return {"If-Unmodified-Since": http_date(parse_updated(if_match))} if if_match else {}


def _id_of(item_id: str) -> int:
    try:
        return int(item_id)
    except ValueError:
        raise NotFound(f"{item_id!r} is not a SuperOffice person id") from None
