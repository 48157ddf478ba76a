"""A simulated host with a name, its own loopback address and a TLS set-up."""

from __future__ import annotations

from dataclasses import dataclass

from simulators.platform.ca import CERT_KINDS, TLS_PROFILES


@dataclass(frozen=True)
class SimHost:
    """A host a simulator serves on its own address, e.g. `autodiscover.contoso.example`.

    https_port/http_port: None means not listening there (http_port=80 for the Autodiscover
    HTTP redirect method). tls: a TLS profile of `simulators.platform.ca.TLS_PROFILES`;
    cert: a certificate kind of `CERT_KINDS`. aliases share the address and the certificate.
    dns: False leaves the A record out (the world part adds its own records).
    """

    name: str
    https_port: int | None = 443
    http_port: int | None = None
    tls: str = "modern"
    cert: str = "valid"
    aliases: tuple[str, ...] = ()
    dns: bool = True

    def __post_init__(self) -> None:
        if self.tls not in TLS_PROFILES:
            raise ValueError(f"{self.name}: unknown TLS profile {self.tls!r}")
        if self.cert not in CERT_KINDS:
            raise ValueError(f"{self.name}: unknown certificate kind {self.cert!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)
