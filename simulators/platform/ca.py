"""A throw-away certificate authority for the simulators, and server TLS contexts in every
shape the Check site has to recognise (old protocols, expired or wrong-name certificates)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# TLS set-ups a simulated host can have: (lowest, highest) protocol version accepted.
TLS_PROFILES: dict[str, tuple[ssl.TLSVersion, ssl.TLSVersion]] = {
    "modern": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3),
    "legacy": (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_3),  # TLS 1.0/1.1 still enabled
    "no_tls12": (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1),  # an old server without TLS 1.2
    "tls10_only": (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1),  # Windows Server 2008 as shipped
    "tls12_only": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
    "tls13_only": (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3),
}
CERT_KINDS = ("valid", "expired", "not_yet_valid", "wrong_name", "self_signed", "unknown_ca")
WRONG_NAME = "wrong-name.invalid"


class DemoCA:
    """The demo CA: its certificate is written to `ca_file`, which clients trust."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._directory = Path(directory or tempfile.mkdtemp(prefix="sim-ca-"))
        self._directory.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name="Synchronizer demo CA")
        self._stranger = trustme.CA(organization_name="Somebody else's CA")  # for unknown_ca
        self.ca_file = str(self._directory / "demo-ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)
        self._lock = threading.Lock()
        self._chains: dict[tuple[tuple[str, ...], str], Path] = {}

    def configure_trust(self, context: ssl.SSLContext) -> None:
        """Make a client `context` trust the demo CA."""
        self._ca.configure_trust(context)

    def client_context(self) -> ssl.SSLContext:
        """A default client context that trusts only the demo CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def server_context(
        self, hostnames: Iterable[str], *, tls: str = "modern", cert: str = "valid"
    ) -> ssl.SSLContext:
        """A server context for `hostnames` (DNS names or IP addresses).

        tls: one of TLS_PROFILES; cert: one of CERT_KINDS.
        """
        if tls not in TLS_PROFILES:
            raise ValueError(f"unknown TLS profile {tls!r}; known: {sorted(TLS_PROFILES)}")
        names = tuple(hostnames)
        if not names:
            raise ValueError("a server certificate needs at least one hostname")
        chain = self._chain_file(names, cert)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        lowest, highest = TLS_PROFILES[tls]
        if lowest < ssl.TLSVersion.TLSv1_2:
            # OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 signatures) above security level 0.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = lowest
            context.maximum_version = highest
        context.load_cert_chain(chain)
        return context

    def _chain_file(self, names: tuple[str, ...], cert: str) -> Path:
        with self._lock:
            key = (names, cert)
            if key not in self._chains:
                path = self._directory / f"host-{len(self._chains)}-{cert}.pem"
                path.write_bytes(self._issue(names, cert))
                self._chains[key] = path
            return self._chains[key]

    def _issue(self, names: tuple[str, ...], cert: str) -> bytes:
        now = dt.datetime.now(dt.UTC)
        if cert == "valid":
            leaf = self._ca.issue_cert(*names)
        elif cert == "expired":
            leaf = self._ca.issue_cert(
                *names,
                not_before=now - dt.timedelta(days=400),
                not_after=now - dt.timedelta(days=3),
            )
        elif cert == "not_yet_valid":
            leaf = self._ca.issue_cert(
                *names,
                not_before=now + dt.timedelta(days=3),
                not_after=now + dt.timedelta(days=400),
            )
        elif cert == "wrong_name":
            leaf = self._ca.issue_cert(WRONG_NAME)
        elif cert == "unknown_ca":
            leaf = self._stranger.issue_cert(*names)
        elif cert == "self_signed":
            return _self_signed(names, now)
        else:
            raise ValueError(f"unknown certificate kind {cert!r}; known: {CERT_KINDS}")
        return leaf.private_key_and_cert_chain_pem.bytes()


def _self_signed(names: tuple[str, ...], now: dt.datetime) -> bytes:
    """A leaf certificate signed by its own key, as an appliance's factory certificate is."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + certificate.public_bytes(serialization.Encoding.PEM)
