"""NTLM with its TLS channel binding (Extended Protection, on by default since Exchange 2019
CU14): a server that requires it refuses NTLM without one, and a check without it would call
a good password wrong.

requests_ntlm reads the server's certificate from the socket of the 401 answer, which the
guarded adapter has already released by then, so the adapter here keeps the certificate on
each response for it."""

from __future__ import annotations

import ssl
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from requests_ntlm import HttpNtlmAuth

from common.http import GuardedAdapter, guarded_session
from common.netguard import NetGuard


class CertificateKeepingAdapter(GuardedAdapter):
    """The guarded adapter, noting on each response the certificate the server showed."""

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        if isinstance(sock, ssl.SSLSocket):
            response.peer_certificate = sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        return response


class ChannelBoundNtlmAuth(HttpNtlmAuth):
    """requests_ntlm's NTLM, its channel binding from the certificate the adapter kept."""

    def _get_server_cert(self, response: requests.Response) -> bytes | None:
        der = getattr(response, "peer_certificate", None)
        return end_point_hash(der) if der and self.send_cbt else None


def end_point_hash(der: bytes) -> bytes:
    """RFC 5929 tls-server-end-point: the certificate hashed with its signature's hash
    algorithm, SHA-256 in place of MD5 and SHA-1."""
    algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der)
    return digest.finalize()


def binding_session(guard: NetGuard) -> requests.Session:
    """A guarded session whose responses keep the server's certificate for NTLM's binding."""
    session = guarded_session(guard)
    adapter = CertificateKeepingAdapter(guard)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
