"""The network guard: every outbound connection of the Check site starts here.

A host is resolved with the configured resolver (dnspython), every address is checked against
the policy of `common/netguard_policy.py`, and the connection is made to the address that was
checked (so a second DNS answer cannot swap it: no DNS rebinding). Every step has a timeout,
and a guard may carry a deadline that shortens all of them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import socket
import ssl
import threading
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.nameserver
import dns.resolver

from common.ip_port import parse_ip_port
from common.netguard_policy import (
    InvalidHost,
    IPAddress,
    is_localhost_name,
    parse_ip_literal,
    refusal_reason,
)
from common.netguard_sockets import DeadlineExceeded, SocketTracker

if TYPE_CHECKING:
    from common.config import Settings

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
ALLOW_HINT = (
    "The Check site only connects to public internet addresses; an operator can allow "
    "private networks (--allow-private-networks or CHECK_ALLOW_PRIVATE_NETWORKS) for a demo."
)


_contexts: dict[tuple[Path | None, str], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


class Blocked(Exception):
    """The policy forbids this connection; the message is meant for the report, so it never
    names a refused address (the Check site must not tell a visitor what an internal name
    resolves to): "an internal address" stands in for it. `address` keeps it for logs."""

    def __init__(
        self, host: str, reason: str, address: IPAddress | None = None, hint: str = ""
    ) -> None:
        self.host = host
        self.reason = reason
        self.address = address
        if address is None:
            message = f"refused to connect to {host}: {reason}"
        elif _is_literal(host):
            message = f"refused to connect to an internal address ({reason})."
        else:
            message = (
                f"refused to connect to {host}: it resolves to an internal address ({reason})."
            )
        super().__init__(f"{message} {hint}" if hint else message)


def _is_literal(host: str) -> bool:
    try:
        return parse_ip_literal(host) is not None
    except InvalidHost:
        return True


class ResolveError(Exception):
    """A name did not resolve; the message says how."""


@dataclass(frozen=True)
class GuardPolicy:
    allow_private: bool = False
    timeout: float = 10.0  # seconds, for each single network operation
    dns_servers: tuple[str, ...] = ()  # IP[:PORT]; empty: the system's resolver
    ca_bundle: Path | None = None  # trusted in addition to the system's CAs
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_redirects: int = 5
    # Single addresses the operator trusts although they are internal (e.g. a known
    # on-premises server reached over a VPN); never metadata, multicast or 0.0.0.0.
    allowed_addresses: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> GuardPolicy:
        values: dict[str, Any] = {
            "allow_private": settings.check_allow_private_networks,
            "timeout": min(10.0, settings.check_timeout_seconds),
            "dns_servers": settings.check_dns_servers,
            "ca_bundle": settings.check_ca_bundle,
        }
        values.update(overrides)
        return cls(**values)


def make_resolver(dns_servers: tuple[str, ...]) -> dns.resolver.Resolver:
    """A dnspython resolver on the configured servers (IP or IP:PORT), else the system's."""
    if not dns_servers:
        try:
            return dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            return dns.resolver.Resolver(configure=False)  # fails with a readable error later
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [_nameserver(server) for server in dns_servers]
    return resolver


# One try at one DNS server (dnspython's default), and the pause dnspython takes after it.
DNS_TRY_S = 2.0
_DNS_BACKOFF_S = 0.1
_split_resolvers: weakref.WeakKeyDictionary[dns.resolver.Resolver, list[dns.resolver.Resolver]]
_split_resolvers = weakref.WeakKeyDictionary()
_split_lock = threading.Lock()


def _one_server_each(resolver: dns.resolver.Resolver) -> list[dns.resolver.Resolver]:
    """A resolver per server of `resolver` (made once), each trying its server once per call."""
    with _split_lock:
        split = _split_resolvers.get(resolver)
        if split is None:
            split = []
            for server in resolver.nameservers or ():
                single = dns.resolver.Resolver(configure=False)
                single.nameservers = [server]
                single.port = resolver.port
                single.timeout = DNS_TRY_S * 2  # never a second try inside one call
                split.append(single)
            split = split or [resolver]  # no server at all: dnspython's own error
            _split_resolvers[resolver] = split
        return split


def _nameserver(server: str) -> dns.nameserver.Nameserver:
    parsed = parse_ip_port(server)  # the same reader as the setting and --dns-server
    return dns.nameserver.Do53Nameserver(str(parsed.address), parsed.port_or(53))


class NetGuard:
    """Resolve, check and connect under one policy (and optionally one deadline)."""

    def __init__(
        self,
        policy: GuardPolicy,
        *,
        resolver: dns.resolver.Resolver | None = None,
        deadline: float | None = None,
        sockets: SocketTracker | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver or make_resolver(policy.dns_servers)
        self.deadline = deadline
        # Every socket opened through this guard, so that the end of a run can close them all.
        self.sockets = sockets or SocketTracker()
        self._allowed = frozenset(ipaddress.ip_address(a) for a in policy.allowed_addresses)

    def with_deadline(self, deadline: float | None) -> NetGuard:
        """The same guard for a new run: every timeout cut to end by `deadline`
        (time.monotonic()), and sockets of its own."""
        return NetGuard(self.policy, resolver=self.resolver, deadline=deadline)

    def with_policy(self, **changes: Any) -> NetGuard:
        policy = dataclasses.replace(self.policy, **changes)
        return NetGuard(
            policy, resolver=self.resolver, deadline=self.deadline, sockets=self.sockets
        )

    def cancellable(self) -> NetGuard:
        """The same guard for one part of a run whose sockets can be closed on their own
        (`guard.sockets.close_all()`, e.g. an Autodiscover method nobody waits for any more);
        they are closed with the run's too."""
        return NetGuard(
            self.policy,
            resolver=self.resolver,
            deadline=self.deadline,
            sockets=self.sockets.child(),
        )

    def remaining(self, timeout: float | None = None) -> float:
        """The timeout for the next operation: the policy's, cut by the deadline."""
        if self.sockets.closed:
            raise DeadlineExceeded("the check's time is up")
        limit = self.policy.timeout if timeout is None else min(timeout, self.policy.timeout)
        if self.deadline is None:
            return limit
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the check ran out of time")
        return min(limit, left)

    # Checking

    def check_address(self, host: str, address: IPAddress) -> None:
        if address in self._allowed and refusal_reason(address, allow_private=True) is None:
            return
        reason = refusal_reason(address, allow_private=self.policy.allow_private)
        if reason is not None:
            # Mention the operator's switch only where it would change the answer.
            allowable = refusal_reason(address, allow_private=True) is None
            raise Blocked(host, reason, address, hint=ALLOW_HINT if allowable else "")

    def check_host_name(self, host: str) -> IPAddress | None:
        """Refuse hosts that are internal by their spelling; return a literal's address."""
        try:
            literal = parse_ip_literal(host)
        except InvalidHost as exc:
            raise Blocked(host, str(exc)) from None
        if literal is not None:
            self.check_address(host, literal)
            return literal
        if is_localhost_name(host) and not self.policy.allow_private:
            raise Blocked(host, f"a name for this machine. {ALLOW_HINT}")
        return None

    # Resolving

    def query(self, name: str, rdtype: str) -> list[Any]:
        """DNS records of one type (MX, SRV, TXT, CNAME, …); dnspython's exceptions pass.

        The servers are asked in turn, DNS_TRY_S each, by our own loop: dnspython's sleeps
        between its rounds of retries can outlast the lifetime it was given, and a query must
        end by the deadline."""
        end = time.monotonic() + self.remaining()
        servers = _one_server_each(self.resolver)
        refused: dns.resolver.NoNameservers | None = None
        for attempt in itertools.count():
            budget = min(DNS_TRY_S, end - time.monotonic() - _DNS_BACKOFF_S)
            if budget <= 0 or (refused is not None and attempt >= len(servers)):
                if refused is not None:
                    raise refused  # every server failed (SERVFAIL, REFUSED, …)
                raise dns.resolver.LifetimeTimeout(timeout=end - time.monotonic(), errors=[])
            server = servers[attempt % len(servers)]
            try:
                return list(server.resolve(name, rdtype, lifetime=budget, search=False))
            except dns.resolver.LifetimeTimeout:
                self.remaining()  # past the run's deadline: DeadlineExceeded
            except dns.resolver.NoNameservers as exc:
                refused = exc
        raise AssertionError("unreachable")

    def resolve(self, host: str) -> list[IPAddress]:
        """The host's addresses, IPv4 first; Blocked if any of them is forbidden."""
        literal = self.check_host_name(host)
        if literal is not None:
            return [literal]
        if is_localhost_name(host):  # allowed by check_host_name: always this machine (RFC 6761)
            return [ipaddress.IPv4Address("127.0.0.1")]
        addresses: list[IPAddress] = []
        failures: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                addresses += [ipaddress.ip_address(r.address) for r in self.query(host, rdtype)]
            except dns.resolver.NXDOMAIN:
                raise ResolveError(f"{host} does not exist in DNS (NXDOMAIN)") from None
            except dns.resolver.NoAnswer:
                continue
            except dns.resolver.NoNameservers:
                failures.append(f"no DNS server answered for {rdtype}")
            except dns.exception.Timeout:
                failures.append(f"the {rdtype} query timed out")
        if not addresses:
            detail = "; ".join(failures) or "it has no A or AAAA record"
            raise ResolveError(f"{host} did not resolve: {detail}")
        for address in addresses:  # one internal address taints the name
            self.check_address(host, address)
        return addresses

    # Connecting

    def connect(self, host: str, port: int, timeout: float | None = None) -> socket.socket:
        """A TCP connection to one of the host's checked addresses."""
        last_error: OSError | None = None
        for address in self.resolve(host):
            try:
                return self.connect_address(host, address, port, timeout)
            except OSError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def connect_address(
        self, host: str, address: IPAddress, port: int, timeout: float | None = None
    ) -> socket.socket:
        """A TCP connection to this exact address, after checking it."""
        self.check_address(host, address)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        self.sockets.watch(sock)
        try:
            sock.settimeout(self.remaining(timeout))
            sock.connect((str(address), port))  # an address, so no lookup can intervene
        except BaseException:
            sock.close()
            raise
        return sock

    def tls_context(self, purpose: str = "raw") -> ssl.SSLContext:
        """A verifying client context: the system's CAs plus the configured extra CA.

        Loading a CA store takes tens of milliseconds, so contexts are made once per CA file
        and purpose ("raw" for our own sockets, "http" for urllib3, which adjusts its own,
        "legacy" to verify a certificate over TLS 1.0/1.1 when a server speaks nothing newer)."""
        key = (self.policy.ca_bundle, purpose)
        with _contexts_lock:
            context = _contexts.get(key)
            if context is None:
                context = ssl.create_default_context()
                if purpose == "legacy":
                    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS 1.0 else
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        context.minimum_version = ssl.TLSVersion.TLSv1
                if self.policy.ca_bundle is not None:
                    context.load_verify_locations(cafile=str(self.policy.ca_bundle))
                _contexts[key] = context
            return context

    def wrap_tls(
        self, sock: socket.socket, host: str, context: ssl.SSLContext | None = None
    ) -> ssl.SSLSocket:
        """The TLS handshake on a guarded socket, SNI and name check for `host`."""
        sock.settimeout(self.remaining())  # the whole handshake, however slowly it drips
        literal = parse_ip_literal(host)
        server_name = str(literal) if literal is not None else host.rstrip(".")
        handle = self.sockets.hold(sock)
        try:
            tls = (context or self.tls_context()).wrap_socket(sock, server_hostname=server_name)
        finally:
            self.sockets.release(handle)
        self.sockets.watch(tls)
        return tls


def guard_from_settings(settings: Settings, **overrides: Any) -> NetGuard:
    return NetGuard(GuardPolicy.from_settings(settings, **overrides))
