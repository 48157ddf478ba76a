"""The server side of NTLM over HTTP (MS-NLMP), enough to check an NTLMv2 response.

IIS binds NTLM to the TCP connection; a WSGI app does not see connections (the platform's
server keeps them alive, but a client may also open a new one between the messages), so a
challenge is remembered for a short while instead and a type 3 message is checked against the
recent challenges.
"""

from __future__ import annotations

import collections
import hmac
import secrets
import struct
import threading
import time
from dataclasses import dataclass

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE_UNICODE = 0x00000001
REQUEST_TARGET = 0x00000004
NEGOTIATE_NTLM = 0x00000200
NEGOTIATE_ALWAYS_SIGN = 0x00008000
TARGET_TYPE_DOMAIN = 0x00010000
NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NEGOTIATE_TARGET_INFO = 0x00800000
NEGOTIATE_VERSION = 0x02000000
NEGOTIATE_128 = 0x20000000
NEGOTIATE_KEY_EXCH = 0x40000000
NEGOTIATE_56 = 0x80000000
OFFERED = (
    NEGOTIATE_UNICODE
    | REQUEST_TARGET
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_TARGET_INFO
    | NEGOTIATE_VERSION
    | NEGOTIATE_128
    | NEGOTIATE_KEY_EXCH
    | NEGOTIATE_56
)
_MASK = 0xFFFFFFFF


def md4(data: bytes) -> bytes:
    """RFC 1320 (OpenSSL 3 no longer offers MD4, and NTLM is built on it)."""

    def rol(value: int, shift: int) -> int:
        return ((value << shift) | (value >> (32 - shift))) & _MASK

    message = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    rounds = (
        (lambda x, y, z: (x & y) | (~x & z), 0, list(range(16)), (3, 7, 11, 19)),
        (
            lambda x, y, z: (x & y) | (x & z) | (y & z),
            0x5A827999,
            [(i % 4) * 4 + i // 4 for i in range(16)],
            (3, 5, 9, 13),
        ),
        (
            lambda x, y, z: x ^ y ^ z,
            0x6ED9EBA1,
            [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15],
            (3, 9, 11, 15),
        ),
    )
    for offset in range(0, len(message), 64):
        words = struct.unpack("<16I", message[offset : offset + 64])
        a, b, c, d = state
        for func, constant, order, shifts in rounds:
            for i, k in enumerate(order):
                a = rol((a + func(b, c, d) + words[k] + constant) & _MASK, shifts[i % 4])
                a, b, c, d = d, a, b, c
        state = [(s + v) & _MASK for s, v in zip(state, (a, b, c, d), strict=True)]
    return struct.pack("<4I", *state)


def _field(message: bytes, offset: int) -> bytes:
    length, _, start = struct.unpack_from("<HHI", message, offset)
    return message[start : start + length]


def _av_pairs(domain: str, computer: str, dns_domain: str) -> bytes:
    pairs = b""
    for av_id, value in (
        (2, domain),
        (1, computer),
        (4, dns_domain),
        (3, f"{computer}.{dns_domain}"),
    ):
        encoded = value.encode("utf-16-le")
        pairs += struct.pack("<HH", av_id, len(encoded)) + encoded
    timestamp = (int(time.time()) + 11644473600) * 10_000_000
    pairs += struct.pack("<HHQ", 7, 8, timestamp)
    return pairs + struct.pack("<HH", 0, 0)


@dataclass(frozen=True)
class Authenticate:
    """What a type 3 message says: who, and whether the proof matched a password."""

    user: str
    domain: str


class NtlmServer:
    def __init__(
        self,
        netbios_domain: str,
        dns_domain: str,
        computer: str = "EX01",
        os_version: tuple[int, int, int] = (10, 0, 17763),
    ) -> None:
        self.netbios_domain = netbios_domain.upper()
        self.dns_domain = dns_domain
        self.computer = computer
        self.os_version = os_version  # the Windows build a challenge reveals
        self._challenges: collections.deque[bytes] = collections.deque(maxlen=256)
        self._lock = threading.Lock()

    def challenge(self, negotiate: bytes) -> bytes:
        """Answer a type 1 message with a type 2 message."""
        if not negotiate.startswith(SIGNATURE) or negotiate[8:12] != b"\x01\x00\x00\x00":
            raise ValueError("not an NTLM negotiate message")
        client_flags = struct.unpack_from("<I", negotiate, 12)[0]
        flags = (client_flags & OFFERED) | NEGOTIATE_UNICODE | NEGOTIATE_NTLM
        flags |= NEGOTIATE_TARGET_INFO | TARGET_TYPE_DOMAIN
        server_challenge = secrets.token_bytes(8)
        with self._lock:
            self._challenges.append(server_challenge)
        target = self.netbios_domain.encode("utf-16-le")
        info = _av_pairs(self.netbios_domain, self.computer, self.dns_domain)
        header_len = 56
        header = SIGNATURE + struct.pack("<I", 2)
        header += struct.pack("<HHI", len(target), len(target), header_len)
        header += struct.pack("<I", flags) + server_challenge + b"\x00" * 8
        header += struct.pack("<HHI", len(info), len(info), header_len + len(target))
        major, minor, build = self.os_version
        header += bytes([major, minor]) + struct.pack("<H", build) + b"\x00\x00\x00\x0f"
        return header + target + info

    def read_authenticate(self, message: bytes) -> Authenticate:
        if not message.startswith(SIGNATURE) or message[8:12] != b"\x03\x00\x00\x00":
            raise ValueError("not an NTLM authenticate message")
        flags = struct.unpack_from("<I", message, 60)[0]
        encoding = "utf-16-le" if flags & NEGOTIATE_UNICODE else "cp437"
        return Authenticate(
            user=_field(message, 36).decode(encoding), domain=_field(message, 28).decode(encoding)
        )

    def verify(self, message: bytes, password: str) -> bool:
        """True when the NTLMv2 proof in a type 3 message was made with `password`."""
        who = self.read_authenticate(message)
        response = _field(message, 20)
        if len(response) <= 24:
            return False  # NTLMv1: Exchange 2013+ refuses it by default, and so do we
        proof, blob = response[:16], response[16:]
        password_hash = md4(password.encode("utf-16-le"))
        identity = (who.user.upper() + who.domain).encode("utf-16-le")
        key = hmac.new(password_hash, identity, "md5").digest()
        with self._lock:
            challenges = list(self._challenges)
        for server_challenge in reversed(challenges):
            expected = hmac.new(key, server_challenge + blob, "md5").digest()
            if hmac.compare_digest(expected, proof):
                with self._lock:
                    self._challenges.remove(server_challenge)
                return True
        return False
