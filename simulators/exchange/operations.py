"""The EWS operations exchangelib 5.x sends, answered from a `Store`.

Every handler takes the operation element of the request body and returns the `m:{Op}Response`
element, with one response message per requested id (clients count them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from .access import Caller, Target
from .notifications import NotificationOperations
from .ops_convert import ConvertOperations
from .ops_folders import FolderOperations
from .ops_read import ReadOperations
from .ops_resolve import ResolveOperations
from .ops_sync import SyncOperations
from .ops_write import WriteOperations
from .store import Store


class Operations(
    FolderOperations,
    ReadOperations,
    WriteOperations,
    SyncOperations,
    NotificationOperations,
    ConvertOperations,
    ResolveOperations,
):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.handlers: dict[str, Callable[[etree._Element, Caller], Any]] = {
            "GetFolder": self.get_folder,
            "FindFolder": self.find_folder,
            "CreateFolder": self.create_folder,
            "FindItem": self.find_item,
            "GetItem": self.get_item,
            "CreateItem": self.create_item,
            "UpdateItem": self.update_item,
            "DeleteItem": self.delete_item,
            "SyncFolderItems": self.sync_folder_items,
            "ConvertId": self.convert_id,
            "ResolveNames": self.resolve_names,
            "Subscribe": self.subscribe,
            "GetEvents": self.get_events,
            "Unsubscribe": self.unsubscribe,
            # The open connection's responses, one by one (see ews.py).
            "GetStreamingEvents": self.open_stream,
        }


__all__ = ["Caller", "Operations", "Target"]
