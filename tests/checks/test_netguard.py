"""The SSRF matrix: every way of pointing the Check site inside is refused, readably.

Real servers on loopback, a real DNS server, the real requests/urllib3 stack.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import dns.rdatatype
import pytest
import requests

from common.http import BodyTooLarge, guarded_session
from common.netguard import Blocked, DeadlineExceeded, ResolveError
from tests.fixtures.checks import PUBLIC_IP, Hostile, redirect_app
from tests.fixtures.simulators import Serve

LITERAL_TARGETS = [
    ("http://2130706433/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://127.0.0.1./", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "embeds an internal IPv4 address"),
    ("http://[::ffff:a9fe:a9fe]/", "embeds an internal IPv4 address"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://10.0.0.1/", "private network"),
    ("http://172.16.5.4/", "private network"),
    ("http://192.168.1.1/", "private network"),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://192.0.2.10/", "documentation"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private network"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://localhost/", "this machine"),
    ("https://admin.localhost/", "this machine"),
]

NAME_TARGETS = [
    ("internal.evil.example", "127.0.0.1", "loopback"),
    ("metadata.evil.example", "169.254.169.254", "metadata"),
    ("private.evil.example", "10.20.30.40", "private network"),
    ("mixed.evil.example", "192.168.0.10", "private network"),
    ("alias.evil.example", "127.0.0.1", "loopback"),
    ("v6.evil.example", "::1", "loopback"),
    ("mapped.evil.example", "::ffff:a00:1", "embeds an internal IPv4 address"),
]


@pytest.mark.parametrize(("url", "reason"), LITERAL_TARGETS)
def test_literal_addresses_in_every_notation_are_refused(
    hostile: Hostile, url: str, reason: str
) -> None:
    with pytest.raises(Blocked) as refused:
        guarded_session(hostile.guard()).get(url)
    message = str(refused.value)
    assert reason in message
    host = url.split("/")[2]
    if "localhost" not in host:  # an address, in some notation: never said which
        assert message.startswith("refused to connect to an internal address (")
        assert host.strip("[]").rstrip(".") not in message


@pytest.mark.parametrize(("name", "address", "reason"), NAME_TARGETS)
def test_names_resolving_inside_are_refused(
    hostile: Hostile, name: str, address: str, reason: str
) -> None:
    with pytest.raises(Blocked) as refused:
        guarded_session(hostile.guard()).get(f"https://{name}/")
    message = str(refused.value)
    assert f"{name}: it resolves to an internal address" in message
    assert reason in message
    assert address not in message  # a report never says what an internal name resolves to
    assert "10.0.0.1" not in message and "127.0.0.1" not in message


def test_redirect_to_an_internal_address_is_refused_before_connecting(
    hostile: Hostile,
    public_site: tuple[str, list[str]],
    inside_site: tuple[int, list[str]],
) -> None:
    base, public_hits = public_site
    inside_port, inside_hits = inside_site
    with pytest.raises(Blocked, match="loopback"):
        guarded_session(hostile.guard()).get(
            f"{base}/go", params={"to": f"http://127.0.0.1:{inside_port}/hello"}
        )
    assert public_hits == ["/go"]
    assert inside_hits == []  # the internal server never saw a request


def test_redirect_to_a_name_resolving_inside_is_refused(
    hostile: Hostile, public_site: tuple[str, list[str]]
) -> None:
    base, _ = public_site
    with pytest.raises(Blocked, match=r"metadata.evil.example: it resolves to an internal"):
        guarded_session(hostile.guard()).get(
            f"{base}/go", params={"to": "http://metadata.evil.example/latest/"}
        )


def test_redirects_are_capped(hostile: Hostile, public_site: tuple[str, list[str]]) -> None:
    base, hits = public_site
    with pytest.raises(requests.TooManyRedirects):
        guarded_session(hostile.guard(max_redirects=3)).get(f"{base}/loop")
    assert len(hits) == 4  # the first request and three redirects


def test_srv_record_pointing_inside_is_refused(hostile: Hostile) -> None:
    guard = hostile.guard()
    (srv,) = guard.query("_autodiscover._tcp.evil.example", "SRV")
    assert srv.rdtype == dns.rdatatype.SRV
    target = srv.target.to_text(omit_final_dot=True)
    with pytest.raises(Blocked, match=r"internal.evil.example: .* \(a loopback address\)"):
        guard.connect(target, srv.port)


def test_metadata_stays_refused_when_private_networks_are_allowed(hostile: Hostile) -> None:
    guard = hostile.guard(allow_private=True)
    with pytest.raises(Blocked, match="metadata") as refused:
        guarded_session(guard).get("http://169.254.169.254/")
    assert "allow private networks" not in str(refused.value)  # no misleading hint
    assert guard.resolve("internal.evil.example") == [guard.check_host_name("127.0.0.1")]


# Every spelling of the metadata addresses a URL can carry: decimal, octal, hex, short forms, a
# trailing dot, IPv6 embeddings (mapped, compatible, NAT64, 6to4, Teredo) and zone indexes.
METADATA_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",
    "http://0251.0376.0251.0376/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://0xA9FEA9FE/",
    "http://169.254.43518/",
    "http://169.16689662/",
    "http://0251.254.169.254/",
    "http://169.254.169.254./",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
    "http://[::169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",
    "http://168.63.129.16/machine?comp=goalstate",
    "http://100.100.100.200/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fd00:ec2::254%25eth0]/",
    "http://[fd20:ce::254]/computeMetadata/v1/",
    "http://169.254.170.2/v2/credentials",
    "http://169.254.169.253/",
]


@pytest.mark.parametrize("url", METADATA_URLS)
def test_every_spelling_of_a_metadata_address_is_refused_with_private_networks_allowed(
    hostile: Hostile, url: str
) -> None:
    with pytest.raises(Blocked) as refused:
        guarded_session(hostile.guard(allow_private=True)).get(url)
    assert "metadata" in str(refused.value)
    assert "allow private networks" not in str(refused.value)  # the switch would not help


@pytest.mark.parametrize("host", ["::ffff:a9fe:a9fe%1", "[fd00:ec2::254%eth0]", "fd20:ce::254%2"])
def test_a_zone_index_does_not_hide_a_metadata_address(hostile: Hostile, host: str) -> None:
    with pytest.raises(Blocked, match="metadata"):
        hostile.guard(allow_private=True).connect(host, 80)


@pytest.mark.parametrize(
    "name",
    ["metadata.evil.example", "wireserver.evil.example", "alibaba.evil.example"]
    + ["metadata6.evil.example", "gcp6.evil.example"],
)
def test_names_resolving_to_metadata_are_refused_with_private_networks_allowed(
    hostile: Hostile, public_site: tuple[str, list[str]], name: str
) -> None:
    guard = hostile.guard(allow_private=True)
    with pytest.raises(Blocked, match="metadata"):
        guard.resolve(name)
    base, hits = public_site  # and a redirect there is refused before connecting
    with pytest.raises(Blocked, match="metadata"):
        guarded_session(guard).get(f"{base}/go", params={"to": f"http://{name}/"})
    assert hits == ["/go"]


def test_allowed_public_server_is_reached_without_a_second_lookup(
    hostile: Hostile, public_site: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, hits = public_site
    port = base.rsplit(":", 1)[1]

    def no_system_resolver(*args: object, **kwargs: object) -> None:
        raise AssertionError("the connection must use the address the guard checked")

    # Pinned: urllib3 must not resolve the name again (a rebinding answer would come from there).
    monkeypatch.setattr(socket, "getaddrinfo", no_system_resolver)
    response = guarded_session(hostile.guard()).get(f"http://good.test.example:{port}/hello")
    assert response.status_code == 200
    assert response.text == "hello"
    assert hits == ["/hello"]


def test_tls_is_verified_for_the_name_while_connecting_to_the_pinned_address(
    hostile: Hostile, serve: Serve
) -> None:
    server = serve(redirect_app([]), host=PUBLIC_IP, hostnames=["good.test.example"])
    guard = hostile.guard(ca_bundle=Path(hostile.ca_file))
    session = guarded_session(guard)
    assert session.get(f"https://good.test.example:{server.port}/hello").text == "hello"
    with pytest.raises(requests.exceptions.SSLError):  # the certificate is not for the address
        session.get(f"https://{PUBLIC_IP}:{server.port}/hello")


def test_bodies_are_capped(hostile: Hostile, public_site: tuple[str, list[str]]) -> None:
    base, _ = public_site
    with pytest.raises(BodyTooLarge, match="larger than the 100000 bytes"):
        guarded_session(hostile.guard(max_body_bytes=100_000)).get(f"{base}/big")


def test_a_black_holed_server_times_out(hostile: Hostile, black_hole: tuple[str, int]) -> None:
    host, port = black_hole
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        guarded_session(hostile.guard(timeout=0.5)).get(f"http://{host}:{port}/")
    assert time.monotonic() - started < 1.5


def test_the_deadline_shortens_every_timeout(hostile: Hostile, black_hole: tuple[str, int]) -> None:
    host, port = black_hole
    guard = hostile.guard(timeout=10.0).with_deadline(time.monotonic() + 0.4)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        guarded_session(guard).get(f"http://{host}:{port}/")
    assert time.monotonic() - started < 1.0
    with pytest.raises(DeadlineExceeded):
        guard.resolve("good.test.example")


def test_unknown_names_say_so(hostile: Hostile) -> None:
    with pytest.raises(ResolveError, match="does not exist in DNS"):
        guarded_session(hostile.guard()).get("https://nowhere.test.example/")


def test_localhost_means_this_machine_only_when_private_networks_are_allowed(
    hostile: Hostile,
) -> None:
    with pytest.raises(Blocked, match="a name for this machine"):
        hostile.guard().resolve("localhost")
    assert [str(a) for a in hostile.guard(allow_private=True).resolve("localhost")] == ["127.0.0.1"]
