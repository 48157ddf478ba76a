"""An Exchange mailbox's contacts as the engine's contact connector (the folder's reading
and writing in `folder`): a contacts folder of the mailbox, by default its Contacts folder,
or the one whose id the profile names."""

from __future__ import annotations

from typing import Any

from exchangelib.folders import Contacts
from exchangelib.items import Contact as EwsContact

from common.capabilities import EWS_CONTACT, Capabilities
from common.connectors.ews import mapping
from common.connectors.ews.client import EwsClient
from common.connectors.ews.folder import FolderConnector
from common.items import Contact


class EwsContacts(FolderConnector[Contact]):
    model = EwsContact
    read_fields = mapping.CONTACT_FIELDS
    written_fields = mapping.WRITTEN_CONTACT_FIELDS

    def __init__(
        self,
        client: EwsClient,
        *,
        folder_id: str | None = None,
        page_size: int = 100,
        capabilities: Capabilities = EWS_CONTACT,
    ) -> None:
        super().__init__(client, page_size=page_size)
        self.folder_id = folder_id
        self._capabilities = capabilities

    def _find_folder(self) -> Any:
        if self.folder_id is None:
            return self.account.contacts
        return Contacts(root=self.account.root, id=self.folder_id)

    def _item_of(self, raw: Any) -> Contact:
        return mapping.contact_of(raw)

    def _fill(self, target: Any, item: Contact) -> None:
        mapping.fill_contact(target, item)
