"""A Microsoft 365 mailbox's contacts as the engine's contact connector.

The contacts live in a contact folder of our own (by default "Synchronizer", made under the
user's Contacts folder when missing), so the user's own contacts are never touched and a
deleted folder is a visible choice. Reading: the folder's `contacts/delta`; writing: up to
20 writes in one `$batch`, updates and deletes with the change key in `If-Match`, our stamp
in the same extended property as events.

Declared honestly: delta cannot expand extended properties (`stamps_in_listing` False), and
contacts have no idempotency key (`idempotent_create` False: the engine finds an earlier
create by its stamp).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.capabilities import GRAPH_CONTACT, Capabilities
from common.connectors.base import (
    BatchingConnector,
    NotFound,
    Permanent,
    Write,
    WriteResult,
)
from common.connectors.graph import mapping
from common.connectors.graph.client import (
    WRITES_AT_ONCE,
    Answer,
    Call,
    GraphClient,
    check,
    error_of,
)
from common.connectors.graph.delta import Pass, item_path, query
from common.connectors.graph.stamps import oldest_holder
from common.items import Contact
from common.kinds import ChangeSet, Removal, RemovalKind, Stored, Unreadable, Window

FOLDERS = "/me/contactFolders"
DEFAULT_FOLDER = "Synchronizer"
_EXPAND = query(dollar_expand=mapping.EXPAND_STAMP)


class GraphContacts(BatchingConnector[Contact]):
    exact_versions = True
    can_stamp = True
    stamps_in_listing = False
    idempotent_create = False
    batch_size = WRITES_AT_ONCE

    def __init__(
        self,
        client: GraphClient,
        *,
        folder_name: str = DEFAULT_FOLDER,
        folder_id: str | None = None,
        page_size: int = 100,
        capabilities: Capabilities = GRAPH_CONTACT,
    ) -> None:
        self.client = client
        self.folder_name = folder_name
        self._folder_id = folder_id
        self.page_size = page_size
        self._capabilities = capabilities

    # --- the folder ------------------------------------------------------------------------

    @property
    def folder_id(self) -> str:
        """Our folder's id: found by its name, made when there is none."""
        if self._folder_id is None:
            self._folder_id = self._find_folder() or self._make_folder()
        return self._folder_id

    def _find_folder(self) -> str | None:
        wanted = self.folder_name.strip().lower()
        for folder in self.client.pages(FOLDERS):
            if str(folder.get("displayName", "")).strip().lower() == wanted:
                return str(folder["id"])
        return None

    def _make_folder(self) -> str:
        call = Call("POST", FOLDERS, {"displayName": self.folder_name})
        result = self.client.send([call])[0]
        if isinstance(result, Answer) and result.status == 409:
            found = self._find_folder()  # made meanwhile (another worker): use that one
            if found is not None:
                return found
        return str(check(call, result).json()["id"])

    def _contacts(self) -> str:
        return f"{FOLDERS}/{item_path(self.folder_id)}/contacts"

    # --- reading ---------------------------------------------------------------------------

    def changes(self, cursor: str | None, window: Window | None = None) -> ChangeSet[Contact]:
        state = Pass(f"{self._contacts()}/delta", full=True) if cursor is None else None
        state = state or Pass.decode(cursor or "")
        page = self.client.get(state.link, {"Prefer": f"odata.maxpagesize={self.page_size}"})
        upserts: list[Stored[Contact]] = []
        removals: list[Removal] = []
        unreadable: list[Unreadable] = []
        for raw in page.get("value") or ():
            item_id = str(raw.get("id"))
            removed = raw.get("@removed")
            if removed is not None:
                # "deleted": gone for good; "changed": soft-deleted or moved out of the folder.
                reason = str((removed or {}).get("reason") or "")
                kind = RemovalKind.DELETED if reason == "deleted" else RemovalKind.UNKNOWN
                removals.append(Removal(item_id, kind))
                continue
            try:
                upserts.append(_stored(raw))
            except ValueError as exc:
                unreadable.append(Unreadable(item_id, str(exc)))
        after, more = state.after(page)
        return ChangeSet(
            upserts, removals, after.encode(), full=state.full, more=more, unreadable=unreadable
        )

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Stored[Contact] | None]:
        ids = list(dict.fromkeys(item_ids))
        calls = [Call("GET", f"{self._contacts()}/{item_path(i)}{_EXPAND}") for i in ids]
        found: dict[str, Stored[Contact] | None] = {}
        for item_id, call, result in zip(ids, calls, self.client.send(calls), strict=True):
            error = error_of(call, result)
            if isinstance(error, NotFound):
                found[item_id] = None
            elif isinstance(error, Permanent):
                continue
            elif error is not None:
                raise error
            else:
                assert isinstance(result, Answer)
                body = result.json()
                found[item_id] = _stored(body, mapping.stamp_of(body))
        return found

    def find_by_correlation_id(self, correlation_id: str) -> Stored[Contact] | None:
        """The oldest contact of our folder carrying the stamp (chosen here by
        `createdDateTime`; Outlook sorts only on what its filter names)."""
        oldest = oldest_holder(self.client, self._contacts(), correlation_id)
        if oldest is None:
            return None
        return _stored(oldest, correlation_id)

    # --- writing ---------------------------------------------------------------------------

    def apply_many(self, writes: Sequence[Write[Contact]]) -> list[WriteResult[Contact]]:
        if len(writes) > self.batch_size:
            raise ValueError(f"{len(writes)} writes in one batch of at most {self.batch_size}")
        calls = [self._call(w) for w in writes]
        results: list[WriteResult[Contact]] = []
        for write, call, answer in zip(writes, calls, self.client.send(calls), strict=True):
            error = error_of(call, answer)
            if error is not None:
                results.append(error)
            elif write.op == "delete":
                results.append(None)
            else:
                assert isinstance(answer, Answer)
                stamp = write.correlation_id if write.op in ("create", "stamp") else None
                results.append(_stored(answer.json(), stamp))
        return results

    def _call(self, write: Write[Contact]) -> Call:
        if write.op == "create":
            assert write.item is not None and write.correlation_id is not None
            body = {
                **mapping.contact_json(write.item),
                "singleValueExtendedProperties": mapping.stamp_property(write.correlation_id),
            }
            return Call("POST", self._contacts(), body)
        assert write.item_id is not None
        url = f"{self._contacts()}/{item_path(write.item_id)}"
        tag = mapping.etag(write.if_match)
        headers = {"If-Match": tag} if tag else {}
        if write.op == "update":
            assert write.item is not None
            return Call("PATCH", url, mapping.contact_json(write.item), headers)
        if write.op == "stamp":
            assert write.correlation_id is not None
            body = {"singleValueExtendedProperties": mapping.stamp_property(write.correlation_id)}
            return Call("PATCH", url, body, headers)
        if write.op == "delete":
            return Call("DELETE", url, None, headers)
        raise ValueError(f"unknown write {write.op!r}")


def _stored(raw: dict[str, Any], stamp: str | None = None) -> Stored[Contact]:
    return Stored(
        str(raw["id"]),
        str(raw.get("changeKey") or ""),
        mapping.contact_of(raw),
        stamp,
        mapping.created_of(raw),
    )
