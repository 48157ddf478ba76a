"""Which addresses the Check site may connect to, and how a host name is read as an address.

Pure functions, no I/O: `common/netguard.py` applies them to every resolved or literal address.
"""

from __future__ import annotations

import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services, refused even when private networks are allowed: AWS,
# Google Cloud, Azure IMDS, Oracle, OpenStack (169.254.169.254), AWS ECS task metadata
# (169.254.170.2), Azure's WireServer (168.63.129.16), Alibaba Cloud (100.100.100.200), and
# the IPv6 endpoints of AWS (fd00:ec2::254) and Google Cloud (fd20:ce::254).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "168.63.129.16",
        "100.100.100.200",
        "fd00:ec2::254",
        "fd20:ce::254",
    )
)
# The rest of IPv4 link-local: other clouds' metadata helpers (DNS, NTP, ECS agents) live there,
# and nothing the Check site may visit does.
_IPV4_LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_DOCUMENTATION = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
)
_BENCHMARKING = ipaddress.ip_network("198.18.0.0/15")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")
# Legacy IPv4 spellings inet_aton accepts: decimal, octal, hex parts, 1 to 4 of them.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)


class InvalidHost(ValueError):
    """A host that is neither a valid name nor a valid address."""


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes literally, in any notation a C library would accept
    (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`, `[::1]`), or None for a host name."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text.endswith("."):  # a fully qualified spelling of the same address
        text = text[:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if ":" in text:
        raise InvalidHost(f"{host!r} is not a valid IPv6 address")
    if _NUMERIC_HOST.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            raise InvalidHost(f"{host!r} looks like an IP address but is not a valid one") from None
    return None


def is_localhost_name(name: str) -> bool:
    """Names that always mean this machine (RFC 6761), whatever DNS says."""
    lowered = name.lower().rstrip(".")
    return lowered == "localhost" or lowered.endswith(".localhost")


def refusal_reason(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why the Check site must not connect to `address`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(int(address))  # a zone index hides no other address
    if address in METADATA_ADDRESSES:
        return "a cloud instance metadata address"
    if address in _IPV4_LINK_LOCAL:
        return "a link-local address (where cloud metadata services live)"
    if address.is_unspecified:
        return "the unspecified address (it means this machine)"
    if address.is_multicast:
        return "a multicast address"
    if address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            if not allow_private:
                return "an IPv6 address that embeds an internal IPv4 address"
            return refusal_reason(embedded, allow_private=True)
    if allow_private:
        return None
    return _internal_reason(address)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def _internal_reason(address: IPAddress) -> str | None:
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address in _CGNAT, "a carrier-grade NAT (shared) address"),
        (any(address in net for net in _DOCUMENTATION), "a documentation address"),
        (address in _BENCHMARKING, "a benchmarking address"),
        (address in _SITE_LOCAL, "a site-local address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private network address"),
        (not address.is_global, "not a public internet address"),
    )
    for matched, reason in checks:
        if matched:
            return reason
    return None
