"""The requests of one signed-in EWS walk ([ews_access]), in the order Synchronizer makes
them: find EWS with Autodiscover when it is not known yet, sign in, open the calendar
(GetFolder), read its changes (SyncFolderItems). Each returns what it found; a failure raises,
and `ews_diagnosis.explain` turns it into a cause and a fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exchangelib import DELEGATE, IMPERSONATION, Account
from exchangelib.services import SyncFolderItems

from checksite.checks.autodiscover_client import post_pox
from checksite.checks.channel_binding import binding_session
from checksite.checks.ews_client import GuardedProtocol, account_on, protocol_for
from checksite.checks.ews_diagnosis import Failed, Finding, Who, password_help
from common.netguard import NetGuard

SYNC_PAGE = 10  # changes asked for: enough to show that reading changes works
Result = tuple[str, dict[str, Any]]  # what the step says, its evidence


@dataclass
class Attempt:
    """One account's walk: the mailbox itself, or a service account impersonating it."""

    guard: NetGuard
    who: Who
    password: str = field(repr=False)
    url: str | None = None  # the EWS URL, once known
    protocol: GuardedProtocol | None = None
    account: Account | None = None

    def autodiscover(self, endpoint: str, may_send: Callable[[str], bool]) -> Result:
        """Ask the Autodiscover endpoint that answered for the mailbox's settings, signed in
        as this account (Exchange answers any authenticated account about a mailbox of the
        organisation)."""
        session = binding_session(self.guard)
        answer = post_pox(
            session, endpoint, self.who.mailbox, self.password, username=self.who.account
        )
        details = answer.details()
        if answer.outcome == "settings" and answer.answer and answer.answer.ews_url:
            url = answer.answer.ews_url
            if not may_send(url):
                raise Failed(
                    Finding(
                        "skip",
                        f"Autodiscover names {url} for EWS; passwords are not sent there (only "
                        "over https, to a host of the mailbox's domain).",
                        "If this is your Exchange server, give its EWS URL by hand (https).",
                        "not_sent",
                    )
                )
            self.url = url
            return f"Autodiscover at {endpoint} names EWS: {url}.", details
        if answer.status == 401:
            raise Failed(
                Finding(
                    "fail",
                    f"The server did not accept the password of {self.who.account} "
                    "(Autodiscover answered HTTP 401).",
                    password_help(self.who),
                    "UnauthorizedError",
                )
            )
        if answer.answer is not None and answer.answer.action in ("error", "redirectAddr"):
            elsewhere = (
                f" and sends it to {answer.answer.redirect}"
                if answer.answer.action == "redirectAddr"
                else ""
            )
            raise Failed(
                Finding(
                    "fail",
                    f"Autodiscover does not know {self.who.mailbox} as a mailbox of this "
                    f"Exchange server{elsewhere}.",
                    "Check the address: it must be the primary address of a mailbox on this "
                    "server. A mailbox moved to Exchange Online is reached through Microsoft "
                    "365, not through this server.",
                    "ErrorNonExistentMailbox",
                )
            )
        raise Failed(
            Finding(
                "fail",
                f"Autodiscover at {endpoint} gave no EWS URL: {answer.message}",
                "Give the EWS URL by hand, or see the Autodiscover check.",
                "no_ews_url",
            )
        )

    def sign_in(self) -> Result:
        assert self.url is not None
        self.protocol = protocol_for(self.guard, self.url, self.who.account, self.password)
        auth = self.protocol.auth_type  # exchangelib asks EWS, without credentials, how
        version = self.protocol.version  # then signs in: the answer names the version
        build = str(version.build) if version.build else "unknown"
        return (
            f"Signed in with {auth.upper()} at {self.url}; EWS speaks {version.api_version} "
            f"(build {build}).",
            {"authentication": auth, "api_version": version.api_version, "build": build},
        )

    def calendar(self) -> Result:
        assert self.protocol is not None
        access = IMPERSONATION if self.who.impersonating else DELEGATE
        self.account = account_on(self.protocol, self.who.mailbox, access)
        folder = self.account.calendar
        return (
            f"GetFolder answered: the calendar of {self.who.mailbox} holds "
            f"{folder.total_count} items.",
            {"operation": "GetFolder", "total_count": folder.total_count},
        )

    def changes(self) -> Result:
        assert self.account is not None
        service = SyncFolderItems(account=self.account)
        found = list(
            service.call(
                folder=self.account.calendar,
                shape="IdOnly",
                additional_fields=set(),
                sync_state=None,
                ignore=None,
                max_changes_returned=SYNC_PAGE,
                sync_scope=None,
            )
        )
        more = "" if service.includes_last_item_in_range else "; more follow"
        return (
            f"SyncFolderItems answered with {len(found)} changes{more}.",
            {
                "operation": "SyncFolderItems",
                "changes": len(found),
                "includes_last_item_in_range": service.includes_last_item_in_range,
            },
        )

    def close(self) -> None:
        if self.protocol is not None:
            self.protocol.close()
