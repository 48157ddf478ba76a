"""HTTP through the network guard: a `requests` session whose every connection (redirect hops
included) is resolved, checked and pinned by `common.netguard.NetGuard`.

The connection keeps the host *name* (so SNI, the `Host` header and the certificate check are
for the name) but its socket is opened to the checked address, not to a second DNS answer.
Bodies are read under a size cap and the guard's deadline; proxies and the environment
(`REQUESTS_CA_BUNDLE`, `HTTPS_PROXY`) are ignored.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from common.netguard import Blocked, DeadlineExceeded, NetGuard

__all__ = [
    "Blocked",
    "BodyTooLarge",
    "DeadlineExceeded",
    "GuardedAdapter",
    "guarded_session",
]

USER_AGENT = "Synchronizer-Check/0.1"


class BodyTooLarge(requests.RequestException):
    """The answer was bigger than the guard's cap; it was not read further."""


def guarded_session(guard: NetGuard) -> requests.Session:
    """A requests session that connects only where `guard` allows."""
    session = requests.Session()
    session.trust_env = False  # no proxies, and REQUESTS_CA_BUNDLE cannot replace our CAs
    session.max_redirects = guard.policy.max_redirects
    session.headers["User-Agent"] = USER_AGENT
    adapter = GuardedAdapter(guard)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = True  # verified with the guard's context (see GuardedAdapter)
    return session


class GuardedAdapter(HTTPAdapter):
    def __init__(self, guard: NetGuard) -> None:
        self.guard = guard  # before super().__init__, which builds the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.guard)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[Any, Any]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if verify is not False and host_params["scheme"] == "https":
            # The guard's preloaded context (system CAs + the configured CA), not a CA file
            # parsed again for every connection.
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ssl_context"] = self.guard.tls_context("http")
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)
        if verify is not False and url.lower().startswith("https"):
            conn.ca_certs = None  # trust comes from the pool's ssl_context
            conn.ca_cert_dir = None

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        if proxies and any(proxies.values()):
            raise Blocked(str(request.url), "proxies are not used by the Check site")
        response = super().send(
            request, stream=True, timeout=self._timeout(timeout), verify=verify, cert=cert
        )
        if not stream:
            _read_capped(response, self.guard)
        return response

    def _timeout(self, timeout: Any) -> tuple[float, float]:
        if isinstance(timeout, tuple):
            connect, read = timeout
            return self.guard.remaining(connect), self.guard.remaining(read)
        return self.guard.remaining(timeout), self.guard.remaining(timeout)


def _pool_classes(guard: NetGuard) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pool classes whose connections open their sockets through `guard`."""

    class PinnedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _guarded_socket(self, guard)

    class PinnedHTTPSConnection(HTTPSConnection):
        _handshake_handle: socket.socket | None = None

        def _new_conn(self) -> socket.socket:
            sock = _guarded_socket(self, guard)
            try:
                # The TLS handshake detaches `sock`: this duplicate lets the run's end reach it.
                self._handshake_handle = guard.sockets.hold(sock)
            except DeadlineExceeded:
                sock.close()
                raise
            return sock

        def connect(self) -> None:
            try:
                super().connect()
            finally:
                if self._handshake_handle is not None:
                    guard.sockets.release(self._handshake_handle)
                    self._handshake_handle = None
            if self.sock is not None:
                guard.sockets.watch(self.sock)  # the TLS socket that headers and body come on

    class PinnedHTTPPool(HTTPConnectionPool):
        ConnectionCls = PinnedHTTPConnection

    class PinnedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = PinnedHTTPSConnection

    return {"http": PinnedHTTPPool, "https": PinnedHTTPSPool}


def _guarded_socket(connection: HTTPConnection, guard: NetGuard) -> socket.socket:
    # Blocked and ResolveError are not OSErrors: they pass through urllib3 and requests
    # unchanged, so the caller can show the guard's own words.
    timeout = connection.timeout if isinstance(connection.timeout, int | float) else None
    try:
        return guard.connect(connection.host, connection.port, timeout)
    except (TimeoutError, DeadlineExceeded) as exc:
        raise ConnectTimeoutError(
            connection, f"connection to {connection.host} timed out ({exc})"
        ) from exc
    except OSError as exc:
        raise NewConnectionError(
            connection, f"could not connect to {connection.host}: {exc}"
        ) from exc


def _read_capped(response: requests.Response, guard: NetGuard) -> None:
    cap = guard.policy.max_body_bytes
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        response.close()
        raise BodyTooLarge(f"the answer announces {declared} bytes, more than the {cap} allowed")
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.raw.stream(64 * 1024, decode_content=True):
            total += len(chunk)
            if total > cap:
                response.close()
                raise BodyTooLarge(f"the answer is larger than the {cap} bytes allowed")
            chunks.append(chunk)
            guard.remaining()  # a slow drip of bytes must not outlive the deadline
    except ReadTimeoutError as exc:
        response.close()
        raise requests.ReadTimeout(str(exc), response=response) from exc
    except ProtocolError as exc:
        response.close()
        raise requests.ConnectionError(str(exc), response=response) from exc
    except DeadlineExceeded:
        response.close()
        raise
    response._content = b"".join(chunks)
    response._content_consumed = True  # type: ignore[attr-defined]
