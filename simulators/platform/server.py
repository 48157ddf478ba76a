"""Runs one WSGI app on a loopback address in a background thread (threaded werkzeug server,
HTTP/1.1 with keep-alive as IIS and the other real services answer)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

# Seconds a client may keep a connection silent (idle keep-alive, or a TCP probe that never
# sends a ClientHello) before the server closes it.
CONNECTION_TIMEOUT = 30.0


class _RequestBody(LimitedStream):
    """Exactly the request's Content-Length bytes: werkzeug drains its input after every
    response, which must not swallow the next request on a kept-alive connection."""

    def on_disconnect(self, error: Exception | None = None) -> None:
        pass  # a client hanging up mid-body reads as the end of the body


class _Handler(WSGIRequestHandler):
    """werkzeug's handler with keep-alive. werkzeug sends `Connection: close` on every
    response; real servers keep the connection, and exchangelib reads `Connection: close` on
    a non-200 answer as "server busy". No access log, no tracebacks for clients that hang up
    or fail the TLS handshake: the Check site's tests do both on purpose."""

    protocol_version = "HTTP/1.1"

    def handle_expect_100(self) -> bool:
        return True  # werkzeug's run_wsgi sends the `100 Continue` itself

    def run_wsgi(self) -> None:
        if self.request_version != "HTTP/1.1":
            # An HTTP/1.0 client gets a 1.0 answer (no chunking) and the connection closes.
            self.protocol_version = "HTTP/1.0"
            self.close_connection = True
        raw_input = self.rfile
        body = self._body_stream(raw_input)
        self.rfile = body
        try:
            super().run_wsgi()
            if isinstance(body, _RequestBody) and not self.close_connection:
                # Read what the app left of the body (a 401 before reading it, say): werkzeug's
                # drain stops at an empty socket even when the rest sits in our read buffer.
                body.exhaust()
                self.close_connection = not body.is_exhausted
        except OSError:
            self.close_connection = True
            raise
        finally:
            self.rfile = raw_input

    def _body_stream(self, raw_input: Any) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # werkzeug de-chunks the raw stream; no reuse after
            return raw_input
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            length = 0
        return _RequestBody(raw_input, length)

    def send_header(self, keyword: str, value: str) -> None:
        # werkzeug adds `Connection: close` to every response: pass it on only when this
        # connection really ends (the client asked for it, HTTP/1.0, an unframed body).
        closing = keyword.lower() == "connection" and value.lower() == "close"
        if closing and not self.close_connection:
            return
        super().send_header(keyword, value)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        self.close_connection = True  # a `drop` fault or a client that hung up

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadedWSGIServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, sock: socket.socket, app: Any, ssl_context: ssl.SSLContext | None) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(host, port, app, _Handler, fd=sock.fileno())
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        sock.close()  # werkzeug works on a duplicate of the descriptor
        # Set after construction so werkzeug does not wrap the listening socket: the handshake
        # then runs in the request thread, and a client that stalls it blocks nobody else.
        self.ssl_context = ssl_context

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = self.socket.accept()
        conn.settimeout(CONNECTION_TIMEOUT)
        # werkzeug writes a response's headers and body apart: with Nagle's algorithm the
        # body would wait for the client's delayed ACK (40 ms on Linux) on every kept-alive
        # answer, which no real service's answers do.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            conn = self.ssl_context.wrap_socket(
                conn, server_side=True, do_handshake_on_connect=False
            )
        with self._open_lock:
            self._open.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """End kept-alive connections, so a stopped server answers nobody and no handler
        thread waits out CONNECTION_TIMEOUT on an idle client."""
        with self._open_lock:
            connections = list(self._open)
        for conn in connections:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown: SSLSocket.shutdown would drop its SSL object
                # under the handler thread's feet.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)

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
        self._server.close_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
