"""`IP[:PORT]` as operators write it: `192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53` and
`[2001:db8::53]:5353` (RFC 3986: an IPv6 address takes brackets when a port follows).

The one reader of the DNS-server setting, the `--dns-server` option and the guard's resolver,
so that all three read `[::1]:5353` as port 5353 on ::1.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BadIpPort(ValueError):
    """Not IP[:PORT]; the message says what is wrong."""


@dataclass(frozen=True)
class IpPort:
    address: IPAddress
    port: int | None = None

    def port_or(self, default: int) -> int:
        return default if self.port is None else self.port

    def __str__(self) -> str:
        """The canonical spelling, which parses back to the same value."""
        if self.port is None:
            return str(self.address)
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def parse_ip_port(text: str) -> IpPort:
    value = text.strip()
    if value.startswith("["):
        inside, closed, rest = value[1:].partition("]")
        if not closed:
            raise BadIpPort(f"{text!r}: the [ of an IPv6 address is not closed")
        if rest and not rest.startswith(":"):
            raise BadIpPort(f"{text!r}: only :PORT may follow the ]")
        address = _address(inside, text)
        if address.version != 6:
            raise BadIpPort(f"{text!r}: brackets are for IPv6 addresses only")
        return IpPort(address, _port(rest[1:], text) if rest else None)
    if value.count(":") == 1:  # IPv4:PORT (a bare IPv6 address has at least two colons)
        host, port = value.split(":")
        address = _address(host, text)
        return IpPort(address, _port(port, text))
    return IpPort(_address(value, text))


def _address(host: str, text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise BadIpPort(f"{text!r}: {host!r} is not an IP address") from None


def _port(port: str, text: str) -> int:
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadIpPort(f"{text!r}: the port must be a number from 1 to 65535")
    return int(port)
