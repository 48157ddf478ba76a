"""A DNS server on loopback, UDP and TCP on one port, answering from `ZoneData`."""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode

from simulators.dns.zone import Record, ZoneData

CLASSIC_UDP_SIZE = 512
TCP_IDLE_TIMEOUT = 10.0


def respond(zone: ZoneData, wire: bytes, *, udp: bool) -> bytes | None:
    """The reply to one query in wire format, or None when no reply should be sent.
    Over UDP a reply larger than the client accepts is truncated (TC) so it retries on TCP."""
    try:
        query = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return _formerr(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA  # we play the recursive resolver the client is pointed at
    if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
        response.set_rcode(dns.rcode.NOTIMP if len(query.question) == 1 else dns.rcode.FORMERR)
        return response.to_wire()
    try:
        return _answer(zone, query, response, udp=udp)
    except Exception:  # a bug here must look like a broken server, not a silent one
        failure = dns.message.make_response(query)
        failure.set_rcode(dns.rcode.SERVFAIL)
        return failure.to_wire()


def _answer(
    zone: ZoneData, query: dns.message.Message, response: dns.message.Message, *, udp: bool
) -> bytes | None:
    question = query.question[0]
    answer = zone.answer(question.name, question.rdtype)
    if answer.silent:
        return None
    response.set_rcode(answer.rcode)
    if answer.authoritative:
        response.flags |= dns.flags.AA
    response.answer = answer.answer
    response.authority = answer.authority
    if not udp:
        return response.to_wire()
    limit = max(query.payload, CLASSIC_UDP_SIZE) if query.edns >= 0 else CLASSIC_UDP_SIZE
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer = []
        response.authority = []
        response.flags |= dns.flags.TC  # the client retries over TCP
        return response.to_wire()


def _formerr(wire: bytes) -> bytes | None:
    if len(wire) < 12:
        return None
    (query_id,) = struct.unpack("!H", wire[:2])
    flags = 0x8000 | dns.rcode.FORMERR  # QR set, rcode FORMERR
    return struct.pack("!HHHHHH", query_id, flags, 0, 0, 0, 0)


class _UdpHandler(socketserver.BaseRequestHandler):
    server: _UdpServer

    def handle(self) -> None:
        data, sock = self.request
        reply = respond(self.server.zone, data, udp=True)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TcpHandler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(TCP_IDLE_TIMEOUT)
        try:
            while True:
                header = _read_exactly(conn, 2)
                if header is None:
                    return
                message = _read_exactly(conn, struct.unpack("!H", header)[0])
                if message is None:
                    return
                reply = respond(self.server.zone, message, udp=False)
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return  # the client went away or idled out


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        chunk = conn.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], zone: ZoneData) -> None:
        self.zone = zone
        self.address_family = _family(address[0])
        super().__init__(address, _UdpHandler)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], zone: ZoneData) -> None:
        self.zone = zone
        self.address_family = _family(address[0])
        super().__init__(address, _TcpHandler)


class DnsServer:
    """`DnsServer(records).start()`: UDP and TCP on `host:port` (a free port if 0); `host` may
    be an IPv6 address (`::1`), then `address` is `[::1]:port`."""

    def __init__(
        self, records: Iterable[Record] = (), host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.zone = ZoneData(records)
        self.host = host
        self.port = port
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def add_records(self, records: Iterable[Record]) -> None:
        self.zone.add(records)

    def set_failure(self, name: str, mode: str | None) -> None:
        self.zone.set_failure(name, mode)

    def start(self) -> DnsServer:
        udp, tcp = self._bind_pair()
        self.port = udp.server_address[1]
        for server in (udp, tcp):
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"sim-dns-{type(server).__name__}",
                daemon=True,
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def _bind_pair(self) -> tuple[_UdpServer, _TcpServer]:
        """UDP and TCP on the same port; with port 0, retry until both get one."""
        attempts = 1 if self.port else 20
        for _ in range(attempts):
            udp = _UdpServer((self.host, self.port), self.zone)
            try:
                tcp = _TcpServer((self.host, udp.server_address[1]), self.zone)
            except OSError:
                udp.server_close()
                if self.port:
                    raise
                continue
            return udp, tcp
        raise OSError(f"no port free for both UDP and TCP on {self.host}")

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
