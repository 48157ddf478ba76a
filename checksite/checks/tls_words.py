"""TLS failures in plain words: what a person should read instead of OpenSSL's reason codes.

Every check that meets a TLS error (Autodiscover, the EWS request, the firewall walk, the TLS
probe) says it through here: protocol too old, certificate expired or not yet valid, issued
for another name, untrusted or incomplete chain, no common cipher, not TLS at all.
"""

from __future__ import annotations

import ssl

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) a server certificate meets in practice.
_CERTIFICATE = {
    2: "The certificate was issued by a CA that is not trusted (or the server does not send "
    "the intermediate certificates).",
    9: "The certificate is not valid yet (its start date is in the future: check the "
    "server's clock).",
    10: "The certificate has expired.",
    18: "The certificate is self-signed: no client trusts it.",
    19: "The certificate chain ends in a root CA that is not publicly trusted.",
    20: "The certificate was issued by a CA that is not trusted (or the server does not send "
    "the intermediate certificates).",
    21: "The certificate chain is incomplete: the server does not send the intermediate "
    "certificates.",
    23: "The certificate has been revoked by its CA.",
    26: "The certificate is not meant for a web server (its key usage does not allow it).",
    66: "The certificate's key is too small for current clients.",
    67: "A CA certificate in the chain has a key too small for current clients.",
    68: "The certificate chain is signed with a hash current clients refuse (SHA-1 or MD5).",
}
_NAME_MISMATCH = (62, 64)  # host name, IP address

_OLD_PROTOCOL = "The server speaks only an old TLS version (TLS 1.1 or older); Synchronizer, like "
_OLD_PROTOCOL += "current clients, needs TLS 1.2 or later."
_REASONS = {
    "TLSV1_ALERT_PROTOCOL_VERSION": _OLD_PROTOCOL,
    "UNSUPPORTED_PROTOCOL": _OLD_PROTOCOL,
    "WRONG_SSL_VERSION": _OLD_PROTOCOL,
    "WRONG_VERSION_NUMBER": "The server does not speak TLS on this port (plain HTTP on the "
    "HTTPS port, perhaps).",
    "HTTP_REQUEST": "The server does not speak TLS on this port.",
    "UNEXPECTED_EOF_WHILE_READING": "The server closed the connection in the middle of the TLS "
    "handshake (a firewall, a load balancer or a server without a certificate for this name).",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "The server and Synchronizer share no cipher suite: the "
    "server offers only ciphers current clients refuse.",
    "NO_SHARED_CIPHER": "The server and Synchronizer share no cipher suite.",
    "NO_CIPHERS_AVAILABLE": "The server and Synchronizer share no cipher suite.",
    "NO_SUITABLE_SIGNATURE_ALGORITHM": "The server signs the handshake with an algorithm "
    "current clients refuse.",
    "UNSAFE_LEGACY_RENEGOTIATION_DISABLED": "The server does not support secure "
    "renegotiation (RFC 5746): an old or unpatched TLS stack that current clients refuse.",
    "DH_KEY_TOO_SMALL": "The server uses a Diffie-Hellman key too small for current clients.",
    "EE_KEY_TOO_SMALL": "The certificate's key is too small for current clients.",
    "CA_MD_TOO_WEAK": "The certificate chain is signed with a hash current clients refuse.",
    "TLSV1_UNRECOGNIZED_NAME": "The server has no certificate for this host name.",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "The server asks for a client certificate.",
    "SSLV3_ALERT_BAD_CERTIFICATE": "The server asks for a client certificate.",
    "TLSV1_ALERT_INTERNAL_ERROR": "The server reported an internal error during the TLS handshake.",
}
HANDSHAKE_TIMEOUT = "No answer to the TLS handshake (timed out)."
HANDSHAKE_FAILED = "The TLS handshake failed."


def certificate_problem(code: int, host: str) -> str:
    """A verification failure (X509_V_ERR_* code) in plain words."""
    if code in _NAME_MISMATCH:
        return f"The certificate is not issued for {host}."
    return _CERTIFICATE.get(code, "The certificate is not trusted.")


def describe_ssl_error(error: BaseException, host: str) -> str:
    """An exception from a TLS handshake (ssl.SSLError, a timeout, a reset) in plain words."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return certificate_problem(error.verify_code, host)
    if isinstance(error, ssl.SSLEOFError):
        return _REASONS["UNEXPECTED_EOF_WHILE_READING"]
    if isinstance(error, ssl.SSLError):
        return _REASONS.get(error.reason or "", HANDSHAKE_FAILED)
    if isinstance(error, TimeoutError):
        return HANDSHAKE_TIMEOUT
    if isinstance(error, ConnectionError):
        return _REASONS["UNEXPECTED_EOF_WHILE_READING"]
    return HANDSHAKE_FAILED


def find_ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The ssl.SSLError inside a wrapped exception (requests wraps urllib3, which wraps ssl)."""
    for inner in _chain(exc):
        if isinstance(inner, ssl.SSLError):
            return inner
    return None


def handshake_timed_out(exc: BaseException) -> bool:
    """True when the server never completed the TLS handshake (urllib3 reports it as a read
    timeout; the ssl module's own timeout sits inside)."""
    return any(
        isinstance(inner, TimeoutError) and "handshake" in str(inner) for inner in _chain(exc)
    )


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or any(current is f for f in found):
            continue
        found.append(current)
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        pending += list(current.args)
    return found
