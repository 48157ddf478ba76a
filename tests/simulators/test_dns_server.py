"""The simulated DNS server, queried over real sockets with dnspython."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from simulators.dns import DnsServer, ZoneData

RECORDS = [
    ("contoso.example", "MX", "0 contoso-example.mail.protection.outlook.com."),
    ("contoso.example", "TXT", '"v=spf1 include:spf.protection.outlook.com -all"'),
    ("contoso.example", "TXT", '"MS=ms12345678"'),
    ("autodiscover.contoso.example", "CNAME", "autodiscover.outlook.com."),
    ("autodiscover.outlook.com", "CNAME", "autod.ha-autod.office.com."),
    ("autod.ha-autod.office.com", "A", "127.20.0.5"),
    ("autod.ha-autod.office.com", "AAAA", "::1"),
    ("_autodiscover._tcp.srvonly.example", "SRV", "10 50 443 mail.srvonly.example."),
    ("mail.srvonly.example", "A", "127.20.0.6"),
    ("gone.contoso.example", "CNAME", "nowhere.elsewhere.example."),
    *[("big.example", "TXT", f'"{"x" * 200}{i}"') for i in range(10)],
]


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer(RECORDS) as running:
        yield running


@pytest.fixture
def resolver(server: DnsServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    resolver.lifetime = 2.0
    return resolver


def texts(answer: dns.resolver.Answer) -> list[str]:
    return sorted(rdata.to_text() for rdata in answer)


def test_answers_every_record_type(resolver: dns.resolver.Resolver) -> None:
    assert texts(resolver.resolve("contoso.example", "MX")) == [
        "0 contoso-example.mail.protection.outlook.com."
    ]
    assert texts(resolver.resolve("contoso.example", "TXT")) == [
        '"MS=ms12345678"',
        '"v=spf1 include:spf.protection.outlook.com -all"',
    ]
    assert texts(resolver.resolve("_autodiscover._tcp.srvonly.example", "SRV")) == [
        "10 50 443 mail.srvonly.example."
    ]
    assert texts(resolver.resolve("mail.srvonly.example", "A")) == ["127.20.0.6"]
    assert texts(resolver.resolve("autod.ha-autod.office.com", "AAAA")) == ["::1"]
    assert texts(resolver.resolve("autodiscover.contoso.example", "CNAME")) == [
        "autodiscover.outlook.com."
    ]


def test_cname_chains_are_followed(resolver: dns.resolver.Resolver) -> None:
    answer = resolver.resolve("autodiscover.contoso.example", "A")
    assert texts(answer) == ["127.20.0.5"]
    assert answer.canonical_name.to_text() == "autod.ha-autod.office.com."
    assert [rrset.rdtype for rrset in answer.response.answer][:2] == [
        dns.rdatatype.CNAME,
        dns.rdatatype.CNAME,
    ]


def test_unknown_names_are_nxdomain_with_the_zones_soa(server: DnsServer) -> None:
    query = dns.message.make_query("nobody.contoso.example", "A")
    response = dns.query.udp(query, server.host, port=server.port, timeout=2)
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]
    assert response.authority[0].name.to_text() == "contoso.example."


def test_resolver_errors_match_a_real_server(resolver: dns.resolver.Resolver) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("autodiscover.fabrikam.example", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("contoso.example", "A")  # the name exists, without A records
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("_tcp.srvonly.example", "SRV")  # an empty non-terminal exists
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("gone.contoso.example", "A")  # dangling CNAME


def test_soa_and_ns_exist_for_each_zone(resolver: dns.resolver.Resolver) -> None:
    assert texts(resolver.resolve("srvonly.example", "NS")) == ["ns1.srvonly.example."]
    soa = resolver.resolve("srvonly.example", "SOA")[0]
    assert soa.mname.to_text() == "ns1.srvonly.example."


def test_tcp_serves_several_queries_on_one_connection(server: DnsServer) -> None:
    with socket.create_connection((server.host, server.port), timeout=2) as conn:
        for name in ("contoso.example", "srvonly.example"):
            wire = dns.message.make_query(name, "SOA").to_wire()
            conn.sendall(struct.pack("!H", len(wire)) + wire)
            size = struct.unpack("!H", conn.recv(2))[0]
            data = b""
            while len(data) < size:
                data += conn.recv(size - len(data))
            assert dns.message.from_wire(data).answer[0].name.to_text() == f"{name}."


def test_big_answers_are_truncated_over_udp_and_complete_over_tcp(
    server: DnsServer, resolver: dns.resolver.Resolver
) -> None:
    query = dns.message.make_query("big.example", "TXT", use_edns=False)
    over_udp = dns.query.udp(query, server.host, port=server.port, timeout=2)
    assert over_udp.flags & dns.flags.TC
    assert over_udp.answer == []
    over_tcp = dns.query.tcp(query, server.host, port=server.port, timeout=2)
    assert len(over_tcp.answer[0]) == 10
    assert len(resolver.resolve("big.example", "TXT")) == 10  # dnspython retries on TCP


def test_failures_can_be_set_per_name(server: DnsServer, resolver: dns.resolver.Resolver) -> None:
    server.set_failure("contoso.example", "servfail")
    query = dns.message.make_query("contoso.example", "MX")
    assert dns.query.udp(query, server.host, port=server.port, timeout=2).rcode() == (
        dns.rcode.SERVFAIL
    )
    server.set_failure("contoso.example", "refused")
    assert dns.query.udp(query, server.host, port=server.port, timeout=2).rcode() == (
        dns.rcode.REFUSED
    )
    server.set_failure("contoso.example", "timeout")
    resolver.lifetime = 0.3
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver.resolve("contoso.example", "MX")
    server.set_failure("contoso.example", None)
    assert len(resolver.resolve("contoso.example", "MX")) == 1
    with pytest.raises(ValueError, match="unknown failure mode"):
        server.set_failure("contoso.example", "flaky")


def test_records_can_be_added_while_running(
    server: DnsServer, resolver: dns.resolver.Resolver
) -> None:
    server.add_records([("late.example", "A", "127.20.0.9")])
    assert texts(resolver.resolve("late.example", "A")) == ["127.20.0.9"]
    assert ("late.example.", "A", "127.20.0.9") in server.zone.records()


def test_garbage_gets_formerr_and_other_opcodes_notimp(server: DnsServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(2)
        udp.sendto(b"\x12\x34" + b"\xff" * 14, (server.host, server.port))
        reply, _ = udp.recvfrom(512)
    assert reply[:2] == b"\x12\x34"
    assert reply[3] & 0x0F == dns.rcode.FORMERR
    notify = dns.message.make_query("contoso.example", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    response = dns.query.udp(notify, server.host, port=server.port, timeout=2)
    assert response.rcode() == dns.rcode.NOTIMP


def test_concurrent_queries(resolver: dns.resolver.Resolver) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda _: texts(resolver.resolve("mail.srvonly.example", "A")), range(50))
        )
    assert answers == [["127.20.0.6"]] * 50


def test_zone_data_rejects_bad_records() -> None:
    with pytest.raises(dns.exception.SyntaxError):
        ZoneData([("x.example", "MX", "not-a-preference host.")])
    with pytest.raises(dns.rdatatype.UnknownRdatatype):
        ZoneData([("x.example", "NOPE", "1")])
