"""An Exchange mailbox's contacts as the engine's contact connector (the folder's reading
and writing in `folder`).

The contacts live in a contacts folder of our own (by default "Synchronizer", made under the
user's Contacts folder when missing, as the Microsoft 365 connector does), so the user's own
contacts are never read or touched and a deleted folder is a visible choice. It is found by
its name with FindFolder (shallow, restricted on the display name); when two workers make
it at once, the one refused with ErrorFolderExists uses the other's.
"""

from __future__ import annotations

from typing import Any

from exchangelib import Q
from exchangelib.errors import ErrorFolderExists
from exchangelib.folders import Folder, FolderCollection
from exchangelib.items import Contact as EwsContact

from common.capabilities import EWS_CONTACT, Capabilities
from common.connectors.ews import mapping
from common.connectors.ews.client import EwsClient
from common.connectors.ews.folder import FolderConnector
from common.items import Contact

DEFAULT_FOLDER = "Synchronizer"


class EwsContacts(FolderConnector[Contact]):
    model = EwsContact
    read_fields = mapping.CONTACT_FIELDS
    written_fields = mapping.WRITTEN_CONTACT_FIELDS

    def __init__(
        self,
        client: EwsClient,
        *,
        folder_name: str = DEFAULT_FOLDER,
        page_size: int = 100,
        capabilities: Capabilities = EWS_CONTACT,
    ) -> None:
        super().__init__(client, page_size=page_size)
        self.folder_name = folder_name
        self._capabilities = capabilities

    def _find_folder(self) -> Any:
        parent = self.account.contacts
        found = self._named(parent)
        if found is not None:
            return found
        made = Folder(parent=parent, name=self.folder_name, folder_class="IPF.Contact")
        try:
            made.save()
        except ErrorFolderExists:
            found = self._named(parent)  # made meanwhile (another worker): use that one
            if found is None:
                raise
            return found
        return made

    def _named(self, parent: Any) -> Any:
        wanted = self.folder_name.strip().casefold()
        children = FolderCollection(account=self.account, folders=[parent]).find_folders(
            q=Q(name=self.folder_name), depth="Shallow"
        )
        return next((f for f in children if str(f.name).strip().casefold() == wanted), None)

    def _item_of(self, raw: Any) -> Contact:
        return mapping.contact_of(raw)

    def _fill(self, target: Any, item: Contact) -> None:
        mapping.fill_contact(target, item)
