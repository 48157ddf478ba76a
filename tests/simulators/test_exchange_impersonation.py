"""Unchanged exchangelib against the EWS simulator: ExchangeImpersonation is judged as Exchange
judges it (the ApplicationImpersonation role, its scope, the impersonated account's rights),
and an account that signs in without a mailbox of its own gets ErrorNonExistentMailbox."""

from __future__ import annotations

import pytest
from exchangelib import IMPERSONATION
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorImpersonateUserDenied,
    ErrorNameResolutionNoResults,
    ErrorNonExistentMailbox,
)
from exchangelib.folders import Calendar
from exchangelib.properties import DistinguishedFolderId, Mailbox
from exchangelib.services import GetFolder

NOROLE, SCOPED = "Norole-Passw0rd!", "Scoped-Passw0rd!"


def impersonating(ews_account, service: str, password: str | None, mailbox: str):
    return ews_account(service, password, primary_smtp_address=mailbox, access_type=IMPERSONATION)


def test_an_organisation_wide_role_reaches_every_mailbox(ews_account):
    for user, count in (("alice", 10), ("bob", 4)):
        account = impersonating(ews_account, "svc-sync", None, f"{user}@proseware.example")
        assert account.calendar.total_count == count


def test_without_the_role_impersonation_is_denied(ews_account):
    account = impersonating(ews_account, "svc-norole", NOROLE, "bob@proseware.example")
    with pytest.raises(ErrorImpersonateUserDenied, match="does not have permission"):
        _ = account.calendar


def test_a_scoped_role_reaches_only_the_mailboxes_of_its_scope(ews_account):
    bob = impersonating(ews_account, "svc-scoped", SCOPED, "bob@proseware.example")
    assert bob.calendar.total_count == 4
    alice = impersonating(ews_account, "svc-scoped", SCOPED, "alice@proseware.example")
    with pytest.raises(ErrorImpersonateUserDenied):
        _ = alice.calendar


@pytest.mark.parametrize(
    "mailbox",
    [
        "nobody@proseware.example",  # no such account
        "svc-norole@proseware.example",  # an account, but no mailbox
        "alice@fabrikam.example",  # another organisation's mailbox
    ],
)
def test_impersonating_an_address_without_a_mailbox_here(ews_account, mailbox):
    account = impersonating(ews_account, "svc-sync", None, mailbox)
    with pytest.raises(ErrorNonExistentMailbox, match="no mailbox associated"):
        _ = account.calendar


def test_the_role_gives_no_delegate_access(ews_account):
    """Signed in as itself (no impersonation header), the service account has no rights on
    bob's folders: the role is for impersonation only."""
    service = ews_account("svc-sync", primary_smtp_address="bob@proseware.example")
    with pytest.raises(ErrorAccessDenied):
        _ = service.calendar


def test_impersonating_bob_gives_bob_s_rights_not_more(ews_account):
    """The impersonated account's rights replace the caller's: as bob, alice's calendar is
    out of reach even for a service account whose role covers alice too."""
    bob = impersonating(ews_account, "svc-sync", None, "bob@proseware.example")
    alice_calendar = DistinguishedFolderId(
        id=Calendar.DISTINGUISHED_FOLDER_ID,
        mailbox=Mailbox(email_address="alice@proseware.example"),
    )
    [answer] = list(
        GetFolder(account=bob).call(folders=[alice_calendar], additional_fields=[], shape="IdOnly")
    )
    assert isinstance(answer, ErrorAccessDenied)


def test_an_account_without_a_mailbox_signs_in_but_has_no_calendar(ews_account):
    account = ews_account("svc-norole", NOROLE)
    # Signing in works: a request that needs no mailbox (ResolveNames) is answered ...
    [found] = account.protocol.resolve_names(["alice@proseware.example"])
    assert found.email_address == "alice@proseware.example"
    # ... but its own calendar does not exist.
    with pytest.raises(ErrorNonExistentMailbox):
        _ = account.calendar


def test_the_address_book_lists_mailboxes_not_service_accounts(ews_account):
    account = ews_account("alice")
    [svc] = account.protocol.resolve_names(["svc-"])  # svc-norole and svc-scoped: no mailbox
    assert svc.email_address == "svc-sync@proseware.example"
    [missing] = account.protocol.resolve_names(["svc-norole"])
    assert isinstance(missing, ErrorNameResolutionNoResults)
