"""One simulated Exchange organisation at run time: its store, operations, authentication, build."""

from __future__ import annotations

from dataclasses import dataclass

from simulators.world.exchange import (
    AD_HOST,
    AD_HTTP_REDIRECT,
    AD_LOOP,
    AD_ROOT,
    Organisation,
)

from .auth import Authenticator
from .autodiscover import Answer
from .operations import Operations
from .seed import seed
from .soap import BUILDS, ServerBuild
from .store import Store
from .throttling import ConcurrencyBudget

# The Windows Server each Exchange version typically runs on (2012 R2, 2016, 2019, 2022), as an
# NTLM challenge reveals it.
WINDOWS_BUILDS = {
    "2013": (6, 3, 9600),
    "2016": (10, 0, 14393),
    "2019": (10, 0, 17763),
    "SE": (10, 0, 20348),
}

# What a host does for its organisation.
ROLE_EWS = "ews"  # the CAS: EWS, Autodiscover, OWA
ROLE_AUTODISCOVER = "autodiscover"  # autodiscover.<domain> or the domain itself
ROLE_HTTP_REDIRECT = "http_redirect"  # plain HTTP, answers 302 to the CAS
ROLE_WEBSITE = "website"  # the bare domain's ordinary website (not Exchange at all)


@dataclass
class Runtime:
    org: Organisation
    store: Store
    operations: Operations
    auth: Authenticator
    build: ServerBuild
    budget: ConcurrencyBudget

    @classmethod
    def build_for(cls, org: Organisation) -> Runtime:
        store = Store()
        operations = Operations(store)
        seed(store, operations, org)
        windows = WINDOWS_BUILDS[org.version]
        auth = Authenticator(store.users, org.auth, org.netbios, org.domain, windows)
        budget = ConcurrencyBudget(org.ews_max_concurrency)
        return cls(org, store, operations, auth, BUILDS[org.version], budget)

    def host_roles(self) -> dict[str, str]:
        roles = {self.org.ews_host: ROLE_EWS}
        if self.org.autodiscover in (AD_HOST, AD_LOOP):
            roles[self.org.autodiscover_host] = ROLE_AUTODISCOVER
        elif self.org.autodiscover == AD_ROOT:
            roles[self.org.domain] = ROLE_AUTODISCOVER
        elif self.org.autodiscover == AD_HTTP_REDIRECT:
            roles[self.org.autodiscover_host] = ROLE_HTTP_REDIRECT
        if self.org.website:
            roles[self.org.domain] = ROLE_WEBSITE
        return roles

    def answer(self, email: str, host: str) -> Answer:
        """Autodiscover's answer for `email` when asked on `host`."""
        user = self.store.users.get(email.lower())
        if user is None or not user.has_mailbox:
            return Answer(email=email, error="InvalidUser")
        mailbox = next(mb for mb in self.org.mailboxes if mb.address.lower() == email.lower())
        if mailbox.redirect_to:
            return Answer(email=email, redirect_addr=mailbox.redirect_to)
        if self.org.autodiscover == AD_LOOP:
            # The two Autodiscover hosts send the client to each other.
            other = (
                self.org.ews_host
                if host == self.org.autodiscover_host
                else self.org.autodiscover_host
            )
            return Answer(
                email=email, redirect_url=f"https://{other}/autodiscover/autodiscover.svc"
            )
        package = "Ntlm" if "NTLM" in self.org.auth else "Basic"
        if self.org.auth == ("Negotiate",):
            package = "Negotiate"
        return Answer(
            email=user.address,
            display_name=user.display_name,
            ews_url=self.org.ews_url,
            ews_host=self.org.ews_host,
            auth_package=package,
        )
