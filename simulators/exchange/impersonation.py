"""The ExchangeImpersonation SOAP header as Exchange judges it: the caller needs the
ApplicationImpersonation role, and its scope must cover the mailbox named in ConnectingSID;
the impersonated account's rights replace the caller's for the whole request. Every refusal is
a SOAP fault (HTTP 500) before the operation runs."""

from __future__ import annotations

from lxml import etree

from .store import NO_MAILBOX, MailboxUser, Store
from .xmlns import t

# ConnectingSID names the account in one of these ways (SID: not simulated, never resolves).
IDENTIFIERS = ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName", "SID")
DENIED = "The account does not have permission to impersonate the requested user."


class ImpersonationRefused(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def impersonated(store: Store, caller: MailboxUser, header: etree._Element | None) -> str | None:
    """The address the request acts as (None without the header), or ImpersonationRefused."""
    element = header.find(t("ExchangeImpersonation")) if header is not None else None
    if element is None:
        return None
    sid = element.find(t("ConnectingSID"))
    names = [(sid.findtext(t(n)) or "").strip() for n in IDENTIFIERS] if sid is not None else []
    named = next((name for name in names if name), None)
    if named is None:
        raise ImpersonationRefused(
            "ErrorInvalidExchangeImpersonationHeaderData",
            "The impersonation header names no account to impersonate.",
        )
    role = caller.impersonation
    if role is None:
        raise ImpersonationRefused("ErrorImpersonateUserDenied", DENIED)
    target = store.users.get(named.lower())
    if target is None or not target.has_mailbox:
        raise ImpersonationRefused("ErrorNonExistentMailbox", NO_MAILBOX)
    if not role.covers(target.address):
        raise ImpersonationRefused("ErrorImpersonateUserDenied", DENIED)
    return target.address.lower()
