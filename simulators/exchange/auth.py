"""HTTP authentication as IIS in front of on-premises Exchange offers it: NTLM and Basic."""

from __future__ import annotations

import base64
import binascii

from flask import Request, Response

from .ntlm import NtlmServer
from .store import MailboxUser

UNAUTHORIZED_PAGE = (
    b"<!DOCTYPE html><html><head><title>401 - Unauthorized: Access is denied due to invalid "
    b"credentials.</title></head><body><h2>401 - Unauthorized: Access is denied due to invalid "
    b"credentials.</h2><h3>You do not have permission to view this directory or page using the "
    b"credentials that you supplied.</h3></body></html>"
)


class Authenticator:
    """Checks the Authorization header against the mailboxes of one organisation."""

    def __init__(
        self,
        users: dict[str, MailboxUser],
        methods: tuple[str, ...],
        netbios_domain: str,
        dns_domain: str,
        os_version: tuple[int, int, int] = (10, 0, 17763),
    ) -> None:
        self.users = users
        self.methods = methods  # in the order IIS lists them, e.g. ("Negotiate", "NTLM", "Basic")
        self.ntlm = NtlmServer(netbios_domain, dns_domain, os_version=os_version)
        self.netbios_domain = netbios_domain.upper()

    def find_user(self, name: str) -> MailboxUser | None:
        """Accepts what Windows accepts: SMTP address / UPN, DOMAIN\\user, or the bare account name."""
        name = name.lower()
        if "\\" in name:
            name = name.split("\\", 1)[1]
        for user in self.users.values():
            if name in (user.address.lower(), user.address.split("@")[0].lower()):
                return user
        return None

    def challenge(self, host: str, token: str | None = None) -> Response:
        response = Response(UNAUTHORIZED_PAGE, status=401, content_type="text/html")
        if token is not None:
            response.headers.add("WWW-Authenticate", f"NTLM {token}")
        else:
            for method in self.methods:
                value = f'Basic realm="{host}"' if method == "Basic" else method
                response.headers.add("WWW-Authenticate", value)
        return response

    def authenticate(self, request: Request, host: str) -> MailboxUser | Response:
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and "Basic" in self.methods:
            return self._basic(credentials, host)
        if scheme in ("ntlm", "negotiate") and "NTLM" in self.methods:
            return self._ntlm(credentials, host)
        return self.challenge(host)

    def _basic(self, credentials: str, host: str) -> MailboxUser | Response:
        try:
            name, _, password = base64.b64decode(credentials).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return self.challenge(host)
        user = self.find_user(name)
        if user is None or user.password != password:
            return self.challenge(host)
        return user

    def _ntlm(self, credentials: str, host: str) -> MailboxUser | Response:
        try:
            message = base64.b64decode(credentials)
            if message[8:12] == b"\x01\x00\x00\x00":
                token = base64.b64encode(self.ntlm.challenge(message)).decode()
                return self.challenge(host, token)
            who = self.ntlm.read_authenticate(message)
        except (binascii.Error, ValueError, IndexError):
            return self.challenge(host)
        user = self.find_user(who.user)
        if user is None or not self.ntlm.verify(message, user.password):
            return self.challenge(host)
        return user
