"""Runs one WSGI app on a loopback address in a background thread (threaded werkzeug server)."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

# Seconds an idle client may hold a connection (a TCP probe that never sends a ClientHello).
CONNECTION_TIMEOUT = 30.0


class _QuietHandler(WSGIRequestHandler):
    """No access log, no tracebacks for clients that hang up or fail the TLS handshake:
    the Check site's tests do both on purpose."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadedWSGIServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, sock: socket.socket, app: Any, ssl_context: ssl.SSLContext | None) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(host, port, app, _QuietHandler, fd=sock.fileno())
        sock.close()  # werkzeug works on a duplicate of the descriptor
        # Set after construction so werkzeug does not wrap the listening socket: the handshake
        # then runs in the request thread, and a client that stalls it blocks nobody else.
        self.ssl_context = ssl_context

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = self.socket.accept()
        conn.settimeout(CONNECTION_TIMEOUT)
        if self.ssl_context is not None:
            conn = self.ssl_context.wrap_socket(
                conn, server_side=True, do_handshake_on_connect=False
            )
        return conn, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a broken client connection is the client's business


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; raises OSError (EADDRINUSE, EACCES) instead of exiting."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class SimServer:
    """`SimServer(app, host, port, ssl_context).start()` returns once the socket listens."""

    def __init__(
        self,
        wsgi_app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = wsgi_app
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        return "http" if self.ssl_context is None else "https"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> SimServer:
        if self._server is not None:
            raise RuntimeError("server already started")
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server = _Server(sock, self.app, self.ssl_context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sim-server-{self.host}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
