"""Mail domains with no groupware our product can sync with: only MX (and SPF) records.

The Check site must say so plainly instead of probing Autodiscover for ever: IMAP-only hosting
(with IMAP/submission SRV records, or only an MX at a web hoster), iCloud Mail, and a personal
mail service whose MX is Google's (so the MX alone would say "Google Workspace").
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.platform.addresses import AddressPool


@dataclass(frozen=True)
class MailDomain:
    domain: str
    kind: str  # "imap_only" | "icloud" | "personal"
    mx: tuple[str, ...]
    txt: tuple[str, ...] = ()


DOMAINS = (
    MailDomain(
        domain="imaponly.example",
        kind="imap_only",
        mx=("10 mail.imaponly.example.",),
        txt=('"v=spf1 mx -all"',),
    ),
    MailDomain(
        domain="icloudmail.example",
        kind="icloud",
        mx=("10 mx01.mail.icloud.com.", "10 mx02.mail.icloud.com."),
        txt=('"v=spf1 include:icloud.com ~all"', '"apple-domain=Q2xvY2tXb3JrT3JhbmdlMDE"'),
    ),
    # Shared web hosting: mail at the hoster's IMAP/POP servers, no SRV records, and the bare
    # domain is a website on the hoster's server (nothing there answers Autodiscover).
    MailDomain(
        domain="munsonspickles.example",
        kind="imap_only",
        mx=("10 mx1.webhoster.example.", "20 mx2.webhoster.example."),
        txt=('"v=spf1 include:_spf.webhoster.example ~all"',),
    ),
    # A personal mail service: gmail.com's real MX and SPF, in the simulated DNS only.
    MailDomain(
        domain="gmail.com",
        kind="personal",
        mx=(
            "5 gmail-smtp-in.l.google.com.",
            "10 alt1.gmail-smtp-in.l.google.com.",
        ),
        txt=('"v=spf1 redirect=_spf.google.com"',),
    ),
)


def demo() -> tuple[MailDomain, ...]:
    return DOMAINS


def dns_records(addresses: AddressPool) -> list[tuple[str, str, str]]:
    records: list[tuple[str, str, str]] = []
    for domain in DOMAINS:
        records += [(domain.domain, "MX", mx) for mx in domain.mx]
        records += [(domain.domain, "TXT", txt) for txt in domain.txt]
    # The IMAP-only provider's own mail host exists (IMAP/SMTP only, nothing on 443).
    records.append(("mail.imaponly.example", "A", addresses.allocate("mail.imaponly.example")))
    records.append(("_imaps._tcp.imaponly.example", "SRV", "0 1 993 mail.imaponly.example."))
    records.append(("_submission._tcp.imaponly.example", "SRV", "0 1 587 mail.imaponly.example."))
    # The web hoster's mail servers and the customer's website on its shared address.
    for host in ("mx1.webhoster.example", "mx2.webhoster.example"):
        records.append((host, "A", addresses.allocate(host)))
    records.append(("munsonspickles.example", "A", addresses.allocate("www.webhoster.example")))
    return records
