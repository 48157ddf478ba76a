"""How an Exchange server asks clients to sign in, and whether Synchronizer can.

Synchronizer signs in to Exchange Server with NTLM (also inside Negotiate) or Basic. IIS lists
"Negotiate" both when it accepts NTLM inside it and when its only provider is Kerberos, which
a client outside the Windows domain cannot use whatever the password. The two are told apart
without a password: an NTLM negotiate message carries no credentials, and a server that
accepts NTLM answers it with a challenge, while a Kerberos-only one answers with a bare
"Negotiate" again.
"""

from __future__ import annotations

import base64
import struct

import requests

# MS-NLMP 2.2.1.1 NEGOTIATE_MESSAGE: unicode, OEM, request target, NTLM, always sign, extended
# session security, 128-bit, key exchange, 56-bit; no domain or workstation.
_NTLM_FLAGS = 0xE0088207
NTLM_NEGOTIATE = base64.b64encode(
    b"NTLMSSP\x00" + struct.pack("<II", 1, _NTLM_FLAGS) + b"\x00" * 16
).decode()

KERBEROS_ONLY = (
    "It accepts Kerberos only (Windows authentication without NTLM): Synchronizer runs outside "
    "your Windows domain, cannot get Kerberos tickets, and so cannot sign in, whatever the "
    "password."
)
KERBEROS_FIX = (
    "Allow NTLM on the Autodiscover and EWS virtual directories (IIS Manager, Windows "
    "Authentication, Providers: add NTLM next to Negotiate:Kerberos), or Basic "
    "authentication over https."
)


def schemes(methods: list[str]) -> set[str]:
    return {m.lower() for m in methods}


def usable(methods: list[str]) -> bool:
    """Does the server offer a sign-in Synchronizer can use (before knowing about Kerberos)?"""
    return bool(schemes(methods) & {"ntlm", "basic", "negotiate"})


def kerberos_only(
    session: requests.Session,
    url: str,
    methods: list[str],
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> bool:
    """True when the server's challenge (`methods`) can only be met with Kerberos. Sends one
    request carrying an NTLM negotiate message (no credentials) when that is in doubt."""
    offered = schemes(methods)
    if offered & {"ntlm", "basic"}:
        return False
    if "negotiate" not in offered:
        return "kerberos" in offered
    probe = {**(headers or {}), "Authorization": f"Negotiate {NTLM_NEGOTIATE}"}
    response = session.post(url, data=data, headers=probe, allow_redirects=False)
    if response.status_code != 401:
        return False  # it took the message somehow: not a Kerberos-only refusal
    raw = response.raw.headers.getlist("WWW-Authenticate") if response.raw else []
    challenges = [value.split(" ", 1) for value in raw if value]
    return not any(
        len(parts) == 2 and parts[0].lower() in ("negotiate", "ntlm") and parts[1].strip()
        for parts in challenges
    )
