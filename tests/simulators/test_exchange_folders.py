"""FindFolder and CreateFolder on the EWS simulator, through unchanged exchangelib: a folder
made under Contacts is found by its name, holds contacts, syncs, and is not made twice."""

from __future__ import annotations

import pytest
from exchangelib import Q
from exchangelib.errors import ErrorFolderExists
from exchangelib.folders import Folder, FolderCollection
from exchangelib.items import Contact


def _children(account, name=None):
    q = Q(name=name) if name else None
    return list(
        FolderCollection(account=account, folders=[account.contacts]).find_folders(
            q=q, depth="Shallow"
        )
    )


def test_a_contacts_folder_is_made_once_found_by_name_and_holds_its_own_contacts(ews_account):
    account = ews_account("alice")
    assert _children(account) == []
    made = Folder(parent=account.contacts, name="Synchronizer", folder_class="IPF.Contact")
    made.save()
    with pytest.raises(ErrorFolderExists):
        Folder(parent=account.contacts, name="synchronizer", folder_class="IPF.Contact").save()
    (found,) = _children(account, "Synchronizer")
    assert found.id == made.id and found.folder_class == "IPF.Contact"
    assert _children(account, "Other") == []
    Contact(account=account, folder=found, given_name="Pat", display_name="Pat").save()
    assert [c.given_name for c in found.all()] == ["Pat"]
    assert "Pat" not in {c.given_name for c in account.contacts.all()}
    assert [kind for kind, _ in found.sync_items()] == ["create"]


def test_another_mailboxs_folder_is_out_of_reach(ews_account):
    alice = ews_account("alice")
    made = Folder(parent=alice.contacts, name="Synchronizer", folder_class="IPF.Contact")
    made.save()
    bob = ews_account("bob")
    theirs = Folder(root=bob.root, id=made.id)
    with pytest.raises(Exception, match="Access is denied"):
        list(theirs.all())
