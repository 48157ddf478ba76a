"""The runner: registry entries, world parts, hosts on their own addresses, DNS, one stack."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import types
from dataclasses import dataclass
from typing import Any

import dns.resolver
import flask
import pytest
import requests

from simulators.platform.addresses import AddressPool
from simulators.platform.ca import DemoCA
from simulators.platform.control import control_of
from simulators.platform.hosts import SimHost
from simulators.registry import SIMULATORS, SimulatorSpec
from simulators.runner import RESERVED_NAMES, RegistryError, SimulatorStack, start_all
from simulators.world import MissingWorldPart, World, load_world

THIS_MODULE = __name__


@dataclass
class ToyWorld:
    greeting: str


def create_app(part: ToyWorld | None) -> flask.Flask:
    """The toy simulator the registry entries below point at (this module is importable)."""
    app = flask.Flask("toy")
    calls: list[str] = []

    @app.get("/whoami")
    def whoami() -> Any:
        calls.append(flask.request.host)
        return {"host": flask.request.host, "greeting": part.greeting if part else None}

    @app.get("/_sim/state")
    def state() -> Any:
        return {"calls": calls}

    return app


def toy_world() -> World:
    module = types.ModuleType("simulators.world.toy")
    module.demo = lambda: ToyWorld("hello")  # type: ignore[attr-defined]
    module.hosts = lambda part: [  # type: ignore[attr-defined]
        SimHost("autodiscover.toy.example", http_port=80, aliases=("mail.toy.example",)),
        SimHost("old.toy.example", tls="legacy", dns=False),
    ]
    module.dns_records = lambda addresses: [  # type: ignore[attr-defined]
        ("toy.example", "MX", "10 mail.toy.example."),
        ("_autodiscover._tcp.toy.example", "SRV", "0 0 443 autodiscover.toy.example."),
        ("legacy.toy.example", "A", addresses.allocate("old.toy.example")),
    ]
    return World(parts={"toy": module.demo()}, modules={"toy": module})


TOY_REGISTRY = [
    SimulatorSpec("toy", THIS_MODULE, world="toy", hosts=True),
    SimulatorSpec("toy-second-url", THIS_MODULE, world="toy", same_app_as="toy"),
    SimulatorSpec("plain", THIS_MODULE, tls=False),
]


@pytest.fixture
def toy_stack(demo_ca: DemoCA) -> Any:
    started = time.monotonic()
    with start_all(registry=TOY_REGISTRY, world=toy_world(), ca=demo_ca) as stack:
        stack.startup_seconds = time.monotonic() - started
        yield stack


def test_the_stack_starts_in_well_under_a_second(toy_stack: Any) -> None:
    assert toy_stack.startup_seconds < 1.0
    assert set(toy_stack.urls) == {"toy", "toy-second-url", "plain"}
    assert toy_stack.urls["toy"].startswith("https://127.0.0.1:")
    assert toy_stack.urls["plain"].startswith("http://127.0.0.1:")


def test_the_whole_demo_stack_starts_in_under_a_second(
    sim_stack: SimulatorStack, demo_ca: DemoCA
) -> None:
    # Every registered simulator with the demo world (modules already imported, as in a test
    # session: sim_stack did that).
    started = time.monotonic()
    with start_all(ca=demo_ca) as stack:
        elapsed = time.monotonic() - started
        assert set(stack.urls) == {spec.name for spec in SIMULATORS}
    assert elapsed < 1.0


def test_services_answer_and_share_an_app_when_asked(toy_stack: SimulatorStack) -> None:
    session = toy_stack.session()
    first = session.get(toy_stack.urls["toy"] + "/whoami", timeout=5).json()
    second = session.get(toy_stack.urls["toy-second-url"] + "/whoami", timeout=5).json()
    assert first["greeting"] == second["greeting"] == "hello"
    assert toy_stack.apps["toy"] is toy_stack.apps["toy-second-url"]
    assert session.get(toy_stack.urls["plain"] + "/whoami", timeout=5).json()["greeting"] is None
    assert session.get(toy_stack.urls["toy"] + "/_sim/stats", timeout=5).json()["total"] == 2


def test_hosts_listen_on_their_own_address_with_dns_records(toy_stack: SimulatorStack) -> None:
    resolver = toy_stack.resolver()
    address = toy_stack.hosts["autodiscover.toy.example"]
    assert toy_stack.hosts["mail.toy.example"] == address  # an alias shares the address
    assert ipaddress.ip_address(address) in toy_stack.addresses.network
    assert [r.to_text() for r in resolver.resolve("autodiscover.toy.example", "A")] == [address]
    assert [r.to_text() for r in resolver.resolve("mail.toy.example", "A")] == [address]
    assert [r.to_text() for r in resolver.resolve("toy.example", "MX")] == ["10 mail.toy.example."]
    srv = resolver.resolve("_autodiscover._tcp.toy.example", "SRV")
    assert srv[0].target.to_text() == "autodiscover.toy.example."
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("old.toy.example", "A")  # dns=False: the world part names it
    old = toy_stack.hosts["old.toy.example"]
    assert [r.to_text() for r in resolver.resolve("legacy.toy.example", "A")] == [old]

    session = toy_stack.session()
    over_https = session.get(f"https://{address}/whoami", timeout=5)
    assert over_https.json()["host"] == address
    over_http = session.get(f"http://{address}/whoami", headers={"Host": "mail.toy.example"})
    assert over_http.json()["host"] == "mail.toy.example"


def test_the_hosts_certificate_names_the_host(toy_stack: SimulatorStack) -> None:
    import ssl

    address = toy_stack.hosts["autodiscover.toy.example"]
    context = ssl.create_default_context(cafile=toy_stack.ca_file)
    for name in ("autodiscover.toy.example", "mail.toy.example"):
        with (
            socket.create_connection((address, 443), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() in {"TLSv1.2", "TLSv1.3"}


def test_summary_reset_and_session(
    toy_stack: SimulatorStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = toy_stack.summary()
    assert summary["toy"] == toy_stack.urls["toy"]
    assert summary["ca_file"] == toy_stack.ca_file
    assert summary["dns"] == f"{toy_stack.dns_host}:{toy_stack.dns_port}"
    assert summary["hosts"]["old.toy.example"] == toy_stack.hosts["old.toy.example"]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")
    session = toy_stack.session()
    session.post(toy_stack.urls["toy"] + "/_sim/faults", json={"kind": "drop", "count": 5})
    session.get(toy_stack.urls["plain"] + "/whoami")
    toy_stack.reset_controls()
    assert control_of(toy_stack.apps["toy"]).faults.active() == []
    assert session.get(toy_stack.urls["plain"] + "/_sim/stats").json()["total"] == 0


def test_stop_releases_every_port(demo_ca: DemoCA) -> None:
    stack = start_all(registry=TOY_REGISTRY, world=toy_world(), ca=demo_ca)
    urls = dict(stack.urls)
    stack.stop()
    for url in urls.values():
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/whoami", timeout=2, verify=demo_ca.ca_file)


def test_a_taken_host_address_is_replaced_by_a_free_one(demo_ca: DemoCA) -> None:
    network = AddressPool().network
    first, second = str(network[1]), str(network[2])
    with socket.socket() as squatter:  # another run already holds the first address's 443
        squatter.bind((first, 443))
        squatter.listen()
        with start_all(
            registry=TOY_REGISTRY[:1],
            world=toy_world(),
            ca=demo_ca,
            addresses=AddressPool(str(network)),
        ) as stack:
            assert stack.hosts["autodiscover.toy.example"] == second
            answer = stack.resolver().resolve("autodiscover.toy.example", "A")
            assert [r.to_text() for r in answer] == [second]


def test_names_pick_simulators_and_their_app_owner(demo_ca: DemoCA) -> None:
    with start_all(
        registry=TOY_REGISTRY, world=toy_world(), ca=demo_ca, names=["toy-second-url"]
    ) as stack:
        assert set(stack.urls) == {"toy", "toy-second-url"}
    with pytest.raises(RegistryError, match="no simulator named"):
        start_all(registry=TOY_REGISTRY, world=toy_world(), ca=demo_ca, names=["nope"])


@pytest.mark.parametrize(
    ("registry", "message"),
    [
        ([SimulatorSpec("ghost", "simulators.no_such_simulator")], "cannot be imported"),
        ([SimulatorSpec("toy", THIS_MODULE, world="nowhere")], "nowhere.py does not exist"),
        ([SimulatorSpec("toy", "simulators.registry")], "has no create_app"),
        ([SimulatorSpec("toy", THIS_MODULE), SimulatorSpec("toy", THIS_MODULE)], "twice"),
        ([SimulatorSpec(sorted(RESERVED_NAMES)[0], THIS_MODULE)], "reserved"),
        ([SimulatorSpec("b", THIS_MODULE, same_app_as="a")], "must come first"),
    ],
)
def test_broken_registry_entries_are_errors(
    demo_ca: DemoCA, registry: list[SimulatorSpec], message: str
) -> None:
    with pytest.raises(RegistryError, match=message):
        start_all(registry=registry, world=toy_world(), ca=demo_ca)


def test_a_failed_start_stops_what_it_started(demo_ca: DemoCA) -> None:
    registry = [TOY_REGISTRY[2], SimulatorSpec("ghost", "simulators.no_such_simulator")]
    before = set(threading.enumerate())
    with pytest.raises(RegistryError):
        start_all(registry=registry, world=toy_world(), ca=demo_ca)
    time.sleep(0.2)
    leftover = [t for t in threading.enumerate() if t not in before]
    assert [t.name for t in leftover if t.name.startswith("sim-")] == []


def test_world_loading_skips_parts_not_written_yet() -> None:
    world = load_world(("mail_domains", "no_such_part"))
    assert world.missing == ("no_such_part",)
    assert {d.kind for d in world.part("mail_domains")} == {"imap_only", "icloud", "personal"}
    with pytest.raises(MissingWorldPart):
        world.part("no_such_part")


def test_mail_only_domains_have_mx_records_and_no_autodiscover(demo_ca: DemoCA) -> None:
    world = load_world(("mail_domains",))
    with start_all(registry=[], world=world, ca=demo_ca) as stack:
        resolver = stack.resolver()
        imap_mx = resolver.resolve("imaponly.example", "MX")
        assert [r.exchange.to_text() for r in imap_mx] == ["mail.imaponly.example."]
        icloud_mx = sorted(
            r.exchange.to_text() for r in resolver.resolve("icloudmail.example", "MX")
        )
        assert icloud_mx == ["mx01.mail.icloud.com.", "mx02.mail.icloud.com."]
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver.resolve("autodiscover.imaponly.example", "A")
        with pytest.raises(dns.resolver.NXDOMAIN):
            resolver.resolve("_autodiscover._tcp.icloudmail.example", "SRV")


def test_every_registered_simulator_starts_with_the_control_api(sims: SimulatorStack) -> None:
    """The real registry and demo world: each entry answers /_sim/stats under its name."""
    assert set(sims.urls) == {spec.name for spec in SIMULATORS}
    session = sims.session()
    for url in sims.urls.values():
        before = session.get(url + "/_sim/stats", timeout=5).json()["total"]
        session.get(url + "/no/such/endpoint", timeout=5)
        stats = session.get(url + "/_sim/stats", timeout=5).json()
        assert stats["total"] == before + 1
        assert stats["endpoints"]["GET /no/such/endpoint"] >= 1


def test_no_permission_for_port_443_is_explained(
    demo_ca: DemoCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without root the hosts cannot listen on 443; say so instead of a bare EACCES."""
    import simulators.platform.server as server_module

    real_bind = server_module.bind_socket

    def bind(host: str, port: int) -> socket.socket:
        if 0 < port < 1024:
            raise PermissionError(13, "Permission denied")
        return real_bind(host, port)

    monkeypatch.setattr(server_module, "bind_socket", bind)
    with pytest.raises(RegistryError, match="ports below 1024 need root"):
        start_all(registry=TOY_REGISTRY[:1], world=toy_world(), ca=demo_ca)
