"""The simulated DNS: a real server on loopback (UDP and TCP) for the demo world's zones."""

from simulators.dns.server import DnsServer
from simulators.dns.zone import FAILURE_MODES, ZoneData

__all__ = ["FAILURE_MODES", "DnsServer", "ZoneData"]
