"""The simulator platform: demo CA, servers, loopback addresses, control API."""

from simulators.platform.addresses import AddressPool
from simulators.platform.ca import CERT_KINDS, TLS_PROFILES, DemoCA
from simulators.platform.control import claim_fault, control_of, install_control
from simulators.platform.hosts import SimHost
from simulators.platform.server import SimServer

__all__ = [
    "CERT_KINDS",
    "TLS_PROFILES",
    "AddressPool",
    "DemoCA",
    "SimHost",
    "SimServer",
    "claim_fault",
    "control_of",
    "install_control",
]
