"""EWS ResolveNames against the organisation's mailboxes (ambiguous name resolution, simplified:
a prefix of the address, its local part, or a word of the display name)."""

from __future__ import annotations

from lxml import etree

from .access import Caller, MailboxAccess
from .soap import error, response_root
from .store import MailboxUser
from .xmlns import m, sub, t


def _matches(user: MailboxUser, entry: str) -> bool:
    entry = entry.lower().removeprefix("smtp:")
    words = [user.address.lower(), *user.display_name.lower().split()]
    return any(word.startswith(entry) for word in words)


class ResolveOperations(MailboxAccess):
    def resolve_names(self, op: etree._Element, caller: Caller) -> etree._Element:
        root, messages = response_root("ResolveNames")
        for entry in op.findall(m("UnresolvedEntry")):
            found = [  # the address book lists mailboxes, not every account that signs in
                u
                for u in self.store.users.values()
                if u.has_mailbox and _matches(u, entry.text or "")
            ]
            if not found:
                error(
                    messages,
                    "ResolveNames",
                    "ErrorNameResolutionNoResults",
                    "No results were found.",
                )
                continue
            if len(found) == 1:
                msg = sub(messages, m("ResolveNamesResponseMessage"), ResponseClass="Success")
                sub(msg, m("ResponseCode"), "NoError")
            else:
                msg = sub(messages, m("ResolveNamesResponseMessage"), ResponseClass="Warning")
                sub(msg, m("MessageText"), "Multiple results were found.")
                sub(msg, m("ResponseCode"), "ErrorNameResolutionMultipleResults")
                sub(msg, m("DescriptiveLinkKey"), "0")
            results = sub(
                msg,
                m("ResolutionSet"),
                TotalItemsInView=str(len(found)),
                IncludesLastItemInRange="true",
            )
            for user in found:
                mailbox = sub(sub(results, t("Resolution")), t("Mailbox"))
                sub(mailbox, t("Name"), user.display_name)
                sub(mailbox, t("EmailAddress"), user.address)
                sub(mailbox, t("RoutingType"), "SMTP")
                sub(mailbox, t("MailboxType"), "Mailbox")
        return root
