"""The simulators `synchronizer simulators` and the test fixtures start: one line each.

Listing an entry whose module does not exist is an error (the runner says so), so add your line
when your `create_app` is importable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimulatorSpec:
    """name: the key in simulators.json; module: dotted module with `create_app(world_part)`;
    world: the world part passed to create_app (`simulators/world/<world>.py`), or None;
    tls: https on 127.0.0.1 (False: plain http); hosts: also serve the world part's
    `hosts(part)` on their own loopback addresses; same_app_as: serve the app instance of
    another entry on a second port instead of creating a new one (one app, two URLs)."""

    name: str
    module: str
    world: str | None = None
    tls: bool = True
    hosts: bool = False
    same_app_as: str | None = None


SIMULATORS: list[SimulatorSpec] = [
    SimulatorSpec("superoffice", "simulators.superoffice", world="superoffice"),
    SimulatorSpec("login", "simulators.microsoft", world="microsoft"),
    SimulatorSpec("graph", "simulators.microsoft", world="microsoft", same_app_as="login"),
    # Exchange Online's public endpoints (outlook.office365.com: Autodiscover v2).
    SimulatorSpec("outlook", "simulators.microsoft", world="microsoft", same_app_as="login"),
    SimulatorSpec("exchange", "simulators.exchange", world="exchange", hosts=True),
    SimulatorSpec("google", "simulators.google", world="google"),
]
