"""Starts the DNS server and every registered simulator in this process (threads).

Used by the pytest fixtures and, through `serve_until_stopped`, by `synchronizer simulators`:

    with start_all() as stack:
        stack.urls["superoffice"], stack.ca_file, stack.dns_host, stack.dns_port
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.resolver
import flask
import requests

from simulators.dns import DnsServer
from simulators.platform.addresses import AddressPool
from simulators.platform.ca import DemoCA
from simulators.platform.control import control_of, install_control
from simulators.platform.hosts import SimHost
from simulators.platform.server import SimServer
from simulators.registry import SIMULATORS, SimulatorSpec
from simulators.world import DnsRecord, World, load_world

RESERVED_NAMES = frozenset({"ca_file", "dns", "hosts"})  # other keys of simulators.json
BIND_ATTEMPTS = 5
JSON_NAME = "simulators.json"


class RegistryError(RuntimeError):
    """A registry entry cannot be started (missing module, world part, duplicate name)."""


@dataclass
class SimulatorStack:
    ca: DemoCA
    dns_server: DnsServer
    world: World
    addresses: AddressPool
    urls: dict[str, str] = field(default_factory=dict)
    apps: dict[str, flask.Flask] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)  # hostname -> loopback address
    servers: list[SimServer] = field(default_factory=list)

    @property
    def ca_file(self) -> str:
        return self.ca.ca_file

    @property
    def dns_host(self) -> str:
        return self.dns_server.host

    @property
    def dns_port(self) -> int:
        return self.dns_server.port

    def resolver(self, lifetime: float = 2.0) -> dns.resolver.Resolver:
        """A dnspython resolver that asks only the simulated DNS."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.dns_host]
        resolver.port = self.dns_port
        resolver.lifetime = lifetime
        return resolver

    def session(self) -> requests.Session:
        """A requests session trusting the demo CA, deaf to REQUESTS_CA_BUNDLE and proxies."""
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_file
        return session

    def reset_controls(self) -> None:
        """Clear every app's faults and request counters."""
        for app in self.apps.values():
            control = control_of(app)
            control.faults.clear()
            control.stats.reset()

    def summary(self) -> dict[str, Any]:
        """What `synchronizer simulators` prints and writes to instance/simulators.json."""
        return {
            **self.urls,
            "ca_file": self.ca_file,
            "dns": self.dns_server.address,
            "hosts": dict(sorted(self.hosts.items())),
        }

    def stop(self) -> None:
        # In parallel: each server waits up to one poll interval to notice the shutdown.
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda server: server.stop(), [*self.servers, self.dns_server]))
        self.servers.clear()

    def __enter__(self) -> SimulatorStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_all(
    *,
    names: Sequence[str] | None = None,
    port_base: int | None = None,
    ca_dir: str | None = None,
    registry: Sequence[SimulatorSpec] | None = None,
    world: World | None = None,
    addresses: AddressPool | None = None,
    ca: DemoCA | None = None,
) -> SimulatorStack:
    """Start the DNS server and the simulators in `registry` (default: all registered; `names`
    picks some). Returns once everything listens; on any failure stops what it started."""
    specs = _select(list(SIMULATORS if registry is None else registry), names)
    stack = SimulatorStack(
        ca=ca or DemoCA(ca_dir),
        dns_server=DnsServer(port=port_base or 0),
        world=world if world is not None else load_world(),
        addresses=addresses or AddressPool(),
    )
    try:
        for index, spec in enumerate(specs):
            port = port_base + 1 + index if port_base else 0
            _start_service(stack, spec, port)
        served_hosts: list[SimHost] = []
        for spec in specs:
            if spec.hosts and spec.same_app_as is None:
                served_hosts += _start_hosts(stack, spec)
        stack.dns_server.add_records(_host_records(stack, served_hosts))
        stack.dns_server.add_records(stack.world.dns_records(stack.addresses))
        stack.hosts = stack.addresses.assigned()
        stack.dns_server.start()
    except BaseException:
        stack.stop()
        raise
    return stack


def _select(specs: list[SimulatorSpec], names: Sequence[str] | None) -> list[SimulatorSpec]:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen or spec.name in RESERVED_NAMES:
            raise RegistryError(f"simulator name {spec.name!r} is used twice or reserved")
        seen.add(spec.name)
    if names is None:
        return specs
    unknown = set(names) - seen
    if unknown:
        raise RegistryError(f"no simulator named {sorted(unknown)}; registered: {sorted(seen)}")
    wanted = set(names)
    # An entry sharing another's app needs that one too.
    wanted |= {s.same_app_as for s in specs if s.name in wanted and s.same_app_as}
    return [s for s in specs if s.name in wanted]


def _create_app(stack: SimulatorStack, spec: SimulatorSpec) -> flask.Flask:
    if spec.same_app_as is not None:
        if spec.same_app_as not in stack.apps:
            raise RegistryError(f"{spec.name}: same_app_as={spec.same_app_as!r} must come first")
        return stack.apps[spec.same_app_as]
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        raise RegistryError(f"{spec.name}: module {spec.module} cannot be imported: {exc}") from exc
    create_app = getattr(module, "create_app", None)
    if create_app is None:
        raise RegistryError(f"{spec.name}: {spec.module} has no create_app(world)")
    try:
        part = stack.world.part(spec.world) if spec.world else None
    except LookupError as exc:
        raise RegistryError(f"{spec.name}: {exc}") from exc
    app = create_app(part)
    install_control(app, spec.name)
    return app


def _start_service(stack: SimulatorStack, spec: SimulatorSpec, port: int) -> None:
    app = _create_app(stack, spec)
    context = stack.ca.server_context(["127.0.0.1", "localhost"]) if spec.tls else None
    server = SimServer(app, "127.0.0.1", port, ssl_context=context).start()
    stack.servers.append(server)
    stack.apps[spec.name] = app
    stack.urls[spec.name] = server.url


def _start_hosts(stack: SimulatorStack, spec: SimulatorSpec) -> list[SimHost]:
    app = stack.apps[spec.name]
    hosts = stack.world.hosts(spec.world) if spec.world else []
    for host in hosts:
        if stack.addresses.address_of(host.name) is not None:
            raise RegistryError(f"{spec.name}: host {host.name} is served twice")
        _start_host(stack, app, host)
    return hosts


def _start_host(stack: SimulatorStack, app: flask.Flask, host: SimHost) -> None:
    """Listen on the host's own address; another run may hold it, then take the next one."""
    address = stack.addresses.allocate(host.name)
    for attempt in range(BIND_ATTEMPTS):
        started: list[SimServer] = []
        try:
            if host.https_port is not None:
                context = stack.ca.server_context(
                    [*host.names, address], tls=host.tls, cert=host.cert
                )
                started.append(SimServer(app, address, host.https_port, context).start())
            if host.http_port is not None:
                started.append(SimServer(app, address, host.http_port).start())
        except OSError as exc:
            for server in started:
                server.stop()
            if isinstance(exc, PermissionError):
                raise RegistryError(
                    f"cannot listen on {address} for {host.name}: ports below 1024 need root"
                    " (or CAP_NET_BIND_SERVICE)"
                ) from exc
            if exc.errno != errno.EADDRINUSE or attempt == BIND_ATTEMPTS - 1:
                raise
            address = stack.addresses.reassign(host.name)
            continue
        stack.servers += started
        for alias in host.aliases:
            stack.addresses.assign(alias, address)
        return


def _host_records(stack: SimulatorStack, hosts: list[SimHost]) -> list[DnsRecord]:
    records: list[DnsRecord] = []
    for host in hosts:
        address = stack.addresses.address_of(host.name)
        if host.dns and address is not None:
            records += [(name, "A", address) for name in host.names]
    return records


def serve_until_stopped(
    instance_dir: Path,
    *,
    port_base: int | None = None,
    names: Sequence[str] | None = None,
    echo: Callable[[str], Any] = print,
) -> None:
    """Start everything, print `name url` lines, write instance/simulators.json, then wait.
    The JSON file is written only once all services listen, and removed on the way out.
    SIGTERM and Ctrl-C (SIGINT) end it normally (the command exits 0), also while starting:
    then nothing is printed or written. Call it from the main thread."""
    stopping = threading.Event()
    previous = _catch_stop_signals(stopping)
    try:
        instance_dir.mkdir(parents=True, exist_ok=True)
        json_path = instance_dir / JSON_NAME
        json_path.unlink(missing_ok=True)  # a crashed run's file must not pass for this run's
        stack = start_all(
            names=names, port_base=port_base, ca_dir=str(instance_dir / "simulators-ca")
        )
        try:
            if not stopping.is_set():
                for name, url in stack.urls.items():
                    echo(f"{name} {url}")
                echo(f"ca_file {stack.ca_file}")
                echo(f"dns {stack.dns_server.address}")
                _write_atomically(json_path, stack.summary())
            while not stopping.wait(0.2):
                pass
        finally:
            json_path.unlink(missing_ok=True)
            stack.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _catch_stop_signals(stopping: threading.Event) -> dict[int, Any]:
    """Turn SIGTERM and SIGINT into `stopping.set()`; returns the handlers to restore. A signal
    the parent told us to ignore (SIGINT of a background job) stays ignored."""
    previous: dict[int, Any] = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue
        previous[signum] = signal.signal(signum, lambda *_: stopping.set())
    return previous


def _write_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Readers polling for the file never see half of it."""
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
