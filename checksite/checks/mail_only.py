"""Evidence of IMAP/POP-only mail (a hosting service without Exchange): SRV records for IMAP,
POP3 or submission, or an MX at a mail host that is neither Exchange, Microsoft 365 nor Google.
It means "mail only" only once Autodiscover has found no Exchange either; [autodiscover] and
[unsupported] then say it once, as the reason, instead of asking to publish Autodiscover."""

from __future__ import annotations

import dns.exception
import dns.resolver

from checksite.checks.context import CheckContext
from checksite.checks.mail_system import NO_MX, ON_PREMISES, OTHER, UNDETERMINED, mail_system

MAIL_ONLY_SRV = ("_imaps._tcp", "_imap._tcp", "_pop3s._tcp", "_pop3._tcp", "_submission._tcp")


def mail_only_evidence(context: CheckContext) -> tuple[str, ...]:
    return context.fact("mail_only", lambda: _evidence(context))


def _evidence(context: CheckContext) -> tuple[str, ...]:
    system = mail_system(context)
    if system.kind not in (OTHER, ON_PREMISES, UNDETERMINED, NO_MX):
        return ()
    found: list[str] = []
    services = _srv_services(context)
    if services:
        found.append("SRV records offer " + ", ".join(services))
    if system.kind == OTHER and system.mx:
        found.append(
            f"MX: mail is hosted at {system.mx[0].host}, which is neither Exchange, "
            "Microsoft 365 nor Google"
        )
    return tuple(found)


def _srv_services(context: CheckContext) -> list[str]:
    found = []
    for prefix in MAIL_ONLY_SRV:
        try:
            if context.guard.query(f"{prefix}.{context.target.domain}", "SRV"):
                found.append(prefix.split(".")[0].lstrip("_").upper())
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            continue
        except dns.exception.Timeout:
            break
    return found
