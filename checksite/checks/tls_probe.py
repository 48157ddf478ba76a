"""TLS evidence for one host: which protocol versions it accepts, and its certificate.

Each version is probed with a handshake limited to exactly that version, on a connection to
the address the guard checked. TLS 1.0/1.1 need `@SECLEVEL=0` with OpenSSL 3; when the local
OpenSSL cannot offer a version at all, the probe says so instead of blaming the server.
"""

from __future__ import annotations

import datetime as dt
import ssl
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cryptography import x509

from checksite.checks.model import Step, Stopwatch
from checksite.checks.tls_words import certificate_problem, describe_ssl_error
from common.netguard import Blocked, DeadlineExceeded, NetGuard, ResolveError
from common.netguard_policy import IPAddress

VERSIONS = {
    "TLS 1.2": ssl.TLSVersion.TLSv1_2,
    "TLS 1.3": ssl.TLSVersion.TLSv1_3,
    "TLS 1.1": ssl.TLSVersion.TLSv1_1,
    "TLS 1.0": ssl.TLSVersion.TLSv1,
}
EXPIRY_WARNING_DAYS = 30
_LOCAL_FAILURES = ("NO_CIPHERS_AVAILABLE", "NO_PROTOCOLS_AVAILABLE", "UNSUPPORTED_PROTOCOL_LOCAL")


@dataclass(frozen=True)
class VersionResult:
    outcome: str  # accepted | refused | local (the probe cannot run here) | unreachable
    detail: str = ""


def probe_version(
    guard: NetGuard, host: str, address: IPAddress, port: int, version: ssl.TLSVersion
) -> VersionResult:
    try:
        context = _version_context(version)
    except (ssl.SSLError, ValueError):
        return VersionResult("local", "this machine's TLS library cannot offer it")
    try:
        sock = guard.connect_address(host, address, port)
    except DeadlineExceeded:
        raise
    except OSError:
        return VersionResult("unreachable", "the connection failed")
    try:
        with guard.wrap_tls(sock, host, context) as tls:
            if tls.version() != _NAMES[version]:
                return VersionResult("refused", f"the server answered with {tls.version()}")
            cipher = tls.cipher()
            return VersionResult("accepted", cipher[0] if cipher else "")
    except ssl.SSLError as exc:
        if (exc.reason or "") in _LOCAL_FAILURES:
            return VersionResult("local", "this machine's TLS library refused to offer it")
        return VersionResult("refused", "the server refused it")
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return VersionResult("refused", "the server closed the connection")
    except DeadlineExceeded:
        raise
    except TimeoutError:
        return VersionResult("refused", "no answer to the handshake (timed out)")
    except OSError:
        return VersionResult("refused", "the handshake failed")
    finally:
        sock.close()


_NAMES = {
    ssl.TLSVersion.TLSv1: "TLSv1",
    ssl.TLSVersion.TLSv1_1: "TLSv1.1",
    ssl.TLSVersion.TLSv1_2: "TLSv1.2",
    ssl.TLSVersion.TLSv1_3: "TLSv1.3",
}


def _version_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the certificate is checked separately
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS 1.0/1.1 otherwise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    return context


def probe_host(guard: NetGuard, host: str, port: int = 443) -> Step:
    """A step tree for one host: reachability, each protocol version, the certificate."""
    watch = Stopwatch()
    title = f"{host}:{port}" if port != 443 else host
    try:
        addresses = guard.resolve(host)
    except (Blocked, ResolveError) as exc:
        return Step(f"tls.{host}", title, "fail", str(exc), elapsed_ms=watch.ms())
    except DeadlineExceeded:
        raise
    address = addresses[0]
    reach = _reachability(guard, host, address, port)
    if reach.status == "fail":
        return Step(
            f"tls.{host}",
            title,
            "fail",
            reach.message,
            details={"address": str(address), "port": port},
            remediation=reach.remediation,
            children=[reach],
            elapsed_ms=watch.ms(),
        )
    with ThreadPoolExecutor(max_workers=len(VERSIONS) + 1) as pool:
        futures = {
            name: pool.submit(probe_version, guard, host, address, port, version)
            for name, version in VERSIONS.items()
        }
        certificate = pool.submit(certificate_step, guard, host, address, port)
        versions = {name: future.result() for name, future in futures.items()}
        cert_step = certificate.result()
    children = [reach, *(_version_step(host, name, r) for name, r in versions.items()), cert_step]
    step = Step(
        f"tls.{host}",
        title,
        "pass",
        details={
            "address": str(address),
            "port": port,
            "versions": {name: r.outcome for name, r in versions.items()},
        },
        children=children,
        elapsed_ms=watch.ms(),
    )
    worst = [c for c in children if c.status == "fail"] or [
        c for c in children if c.status == "warn"
    ]
    step.status = worst[0].status if worst else "pass"
    step.message = worst[0].message if worst else "TLS 1.2 offered and the certificate is valid."
    return step


def _reachability(guard: NetGuard, host: str, address: IPAddress, port: int) -> Step:
    watch = Stopwatch()
    try:
        guard.connect_address(host, address, port).close()
    except TimeoutError:
        return Step(
            f"tls.{host}.tcp",
            "TCP connection",
            "fail",
            f"No answer from {address} port {port} (timed out).",
            remediation=f"Allow inbound HTTPS (TCP {port}) to {host} from the internet.",
            elapsed_ms=watch.ms(),
        )
    except OSError as exc:
        return Step(
            f"tls.{host}.tcp",
            "TCP connection",
            "fail",
            f"Could not connect to {address} port {port}: {exc.strerror or exc}.",
            remediation=f"Make sure {host} listens for HTTPS on port {port}.",
            elapsed_ms=watch.ms(),
        )
    return Step(
        f"tls.{host}.tcp",
        "TCP connection",
        "pass",
        f"Connected to {address} port {port}.",
        elapsed_ms=watch.ms(),
    )


def _version_step(host: str, name: str, result: VersionResult) -> Step:
    step_id = f"tls.{host}.{name.replace(' ', '').lower()}"
    details = {"outcome": result.outcome, "detail": result.detail}
    if result.outcome == "local":
        return Step(
            step_id,
            name,
            "info",
            f"{name} could not be probed from here: {result.detail}. This says nothing about "
            "the server.",
            details=details,
        )
    if result.outcome == "unreachable":
        return Step(step_id, name, "warn", f"{name} probe could not connect.", details=details)
    accepted = result.outcome == "accepted"
    if name == "TLS 1.2":
        if accepted:
            return Step(step_id, name, "pass", "TLS 1.2 is offered.", details=details)
        return Step(
            step_id,
            name,
            "fail",
            f"TLS 1.2 is not offered ({result.detail}).",
            details=details,
            remediation="Enable TLS 1.2 on the server (for Exchange on Windows Server: the "
            "SCHANNEL TLS 1.2 registry keys and .NET SchUseStrongCrypto); Synchronizer "
            "does not connect with older protocols.",
        )
    if name == "TLS 1.3":
        message = "TLS 1.3 is offered." if accepted else "TLS 1.3 is not offered (not required)."
        return Step(step_id, name, "info", message, details=details)
    if accepted:
        return Step(
            step_id,
            name,
            "warn",
            f"{name} is still accepted. It is insecure, and clients are dropping it: "
            "connections that rely on it will stop working.",
            details=details,
            remediation=f"Disable {name} on {host} once every client uses TLS 1.2 or later.",
        )
    return Step(step_id, name, "pass", f"{name} is refused, as it should be.", details=details)


def certificate_step(guard: NetGuard, host: str, address: IPAddress, port: int) -> Step:
    """Is the certificate trusted, for this name, and not about to expire? Judged also on a
    server that speaks only old protocol versions (read over those): its certificate can be
    wrong as well, and a person fixing the protocol should hear about it at the same time."""
    watch = Stopwatch()
    step_id = f"tls.{host}.certificate"
    der: bytes | None = None
    failure: OSError = OSError()
    note = ""
    for purpose in ("raw", "legacy"):
        try:
            der = _verified_certificate(guard, host, address, port, purpose)
        except ssl.SSLCertVerificationError as exc:
            return _untrusted_step(guard, host, address, port, exc, watch)
        except DeadlineExceeded:
            raise
        except OSError as exc:  # ssl.SSLError included
            failure = exc
            note = " (read over an old protocol version, the only one the server speaks)"
            continue
        break
    if der is None:
        return Step(
            step_id,
            "Certificate",
            "warn",
            f"The certificate could not be read: {describe_ssl_error(failure, host)}",
            elapsed_ms=watch.ms(),
        )
    if purpose == "raw":
        note = ""
    cert = x509.load_der_x509_certificate(der)
    details = _describe(cert)
    not_after = cert.not_valid_after_utc.isoformat()
    days_left = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    if days_left < EXPIRY_WARNING_DAYS:
        return Step(
            step_id,
            "Certificate",
            "warn",
            f"The certificate is valid but expires in {days_left} days{note}.",
            details=details,
            remediation=f"Renew the certificate of {host} before {not_after}.",
            elapsed_ms=watch.ms(),
        )
    return Step(
        step_id,
        "Certificate",
        "pass",
        f"Trusted, issued for {host}, valid until {not_after[:10]}{note}.",
        details=details,
        elapsed_ms=watch.ms(),
    )


def _verified_certificate(
    guard: NetGuard, host: str, address: IPAddress, port: int, purpose: str
) -> bytes | None:
    """The server's certificate (DER) after a verifying handshake; raises what it met."""
    sock = guard.connect_address(host, address, port)
    try:
        with guard.wrap_tls(sock, host, guard.tls_context(purpose)) as tls:
            return tls.getpeercert(binary_form=True)
    finally:
        sock.close()


def _untrusted_step(
    guard: NetGuard,
    host: str,
    address: IPAddress,
    port: int,
    error: ssl.SSLCertVerificationError,
    watch: Stopwatch,
) -> Step:
    details: dict[str, object] = {"verify_code": error.verify_code}
    cert = _unverified_certificate(guard, host, address, port)
    if cert is not None:
        details.update(_describe(cert))
    text = certificate_problem(error.verify_code, host)
    return Step(
        f"tls.{host}.certificate",
        "Certificate",
        "fail",
        text,
        details=details,
        remediation=f"Install a certificate for {host} from a public CA, with the full chain, "
        "and renew it before it expires.",
        elapsed_ms=watch.ms(),
    )


def _unverified_certificate(
    guard: NetGuard, host: str, address: IPAddress, port: int
) -> x509.Certificate | None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # whatever protocol the server speaks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    try:
        sock = guard.connect_address(host, address, port)
    except OSError:
        return None
    try:
        with guard.wrap_tls(sock, host, context) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    finally:
        sock.close()
    return x509.load_der_x509_certificate(der) if der else None


def _describe(cert: x509.Certificate) -> dict[str, object]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alt_names = [str(n) for n in names.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        alt_names = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "names": alt_names,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }
