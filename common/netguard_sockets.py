"""The sockets one Check run (or one part of it) opened, so that its end can close them all.

A per-operation timeout cannot stop a server that drips one byte just before each timeout
would fire; closing the socket from outside can. `SocketTracker.close_all()` shuts down every
socket still registered, which wakes any thread blocked on it (connect, TLS handshake, reading
headers or body), and refuses sockets opened later.

Sockets are shut down with the plain `socket.socket.shutdown`: `SSLSocket.shutdown` would drop
its SSL object under the reading thread's feet. During a TLS handshake the plain socket object
is detached (the SSL socket being built owns the descriptor), so the handshake is covered by a
duplicate descriptor held only until the handshake ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref


class DeadlineExceeded(TimeoutError):
    """The check's time is up (or its part of the run was stopped) before this network
    operation could start."""


class SocketTracker:
    """A set of sockets to close together; a child's sockets are closed with its parent's."""

    def __init__(self, parent: SocketTracker | None = None) -> None:
        self._lock = threading.Lock()
        self._watched: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._held: set[socket.socket] = set()  # duplicates we own (handshakes in progress)
        self._children: weakref.WeakSet[SocketTracker] = weakref.WeakSet()
        self._closed = False
        if parent is not None:
            parent._adopt(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def child(self) -> SocketTracker:
        """A tracker that can be closed on its own, and is closed with this one."""
        return SocketTracker(self)

    def watch(self, sock: socket.socket) -> None:
        """Track a socket its owner will close; raises DeadlineExceeded (closing it) when too late."""
        with self._lock:
            if not self._closed:
                self._watched.add(sock)
                return
        sock.close()
        raise DeadlineExceeded("the check's time is up")

    def hold(self, sock: socket.socket) -> socket.socket:
        """A duplicate of `sock`'s descriptor, tracked until `release`d: it reaches the
        connection while a TLS handshake has detached `sock` itself."""
        duplicate = sock.dup()
        with self._lock:
            if not self._closed:
                self._held.add(duplicate)
                return duplicate
        duplicate.close()
        raise DeadlineExceeded("the check's time is up")

    def release(self, duplicate: socket.socket) -> None:
        with self._lock:
            self._held.discard(duplicate)
        duplicate.close()

    def open_count(self) -> int:
        """Sockets of this tracker (and its children) not closed yet."""
        with self._lock:
            own = sum(1 for s in self._watched if s.fileno() != -1) + len(self._held)
            children = list(self._children)
        return own + sum(child.open_count() for child in children)

    def close_all(self) -> None:
        """Shut down and close every socket, now and for whatever is opened later."""
        with self._lock:
            self._closed = True
            watched = list(self._watched)
            held = list(self._held)
            self._held.clear()
            children = list(self._children)
        for child in children:
            child.close_all()
        for sock in watched + held:
            with contextlib.suppress(OSError):  # already closed, or never connected
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        for duplicate in held:
            duplicate.close()

    def close_left_open(self) -> None:
        """Once no thread uses them any more: close what the owners left open (idle kept-alive
        connections in a session's pool, say). Closing a socket another thread still reads
        from could hand that thread a reused descriptor, hence only after the threads ended."""
        with self._lock:
            watched = list(self._watched)
            children = list(self._children)
        for child in children:
            child.close_left_open()
        for sock in watched:
            sock.close()

    def _adopt(self, child: SocketTracker) -> None:
        with self._lock:
            closed = self._closed
            if not closed:
                self._children.add(child)
        if closed:
            child.close_all()
