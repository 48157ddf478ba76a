"""The demo world: composed of one part per service, each in `simulators/world/<part>.py`.

A part module exposes `demo()` (the seeded data its simulator's `create_app` receives), and
optionally `dns_records(addresses)` (name, rtype, value) and `hosts(part)` (SimHost list).
Parts not written yet are skipped here; the runner fails if a registered simulator needs one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from simulators.platform.addresses import AddressPool
from simulators.platform.hosts import SimHost

PART_NAMES = ("superoffice", "microsoft", "exchange", "google", "mail_domains")
DnsRecord = tuple[str, str, str]


class MissingWorldPart(LookupError):
    pass


@dataclass
class World:
    parts: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, ModuleType] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def part(self, name: str) -> Any:
        if name not in self.modules:
            raise MissingWorldPart(f"world part simulators/world/{name}.py does not exist")
        if name not in self.parts:
            raise MissingWorldPart(f"simulators/world/{name}.py defines no demo()")
        return self.parts[name]

    def hosts(self, name: str) -> list[SimHost]:
        module = self.modules.get(name)
        make_hosts = getattr(module, "hosts", None)
        return list(make_hosts(self.part(name))) if make_hosts else []

    def dns_records(self, addresses: AddressPool) -> list[DnsRecord]:
        records: list[DnsRecord] = []
        for module in self.modules.values():
            make_records = getattr(module, "dns_records", None)
            if make_records is not None:
                records.extend((str(n), str(t), str(v)) for n, t, v in make_records(addresses))
        return records


def load_world(names: tuple[str, ...] = PART_NAMES) -> World:
    """Import every world part that exists and build its demo data."""
    world = World()
    missing = []
    for name in names:
        module_name = f"{__name__}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # the part exists but something it imports does not
            missing.append(name)
            continue
        world.modules[name] = module
        make_demo = getattr(module, "demo", None)
        if make_demo is not None:
            world.parts[name] = make_demo()
    world.missing = tuple(missing)
    return world
