"""The checks, in the order a report shows them. Each module exposes ID, TITLE and run()."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType

from checksite.checks import (
    app_consent,
    autodiscover,
    domain_dns,
    ews_access,
    exchange_version,
    firewall,
    google_workspace,
    m365_plan,
    m365_tenant,
    superoffice,
    tls_check,
    unsupported,
)
from checksite.checks.context import CheckContext
from checksite.checks.model import Step


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    run: Callable[[CheckContext], Iterator[Step]]


def _spec(module: ModuleType) -> CheckSpec:
    return CheckSpec(module.ID, module.TITLE, module.run)


CHECKS: tuple[CheckSpec, ...] = tuple(
    _spec(m)
    for m in (
        domain_dns,
        autodiscover,
        tls_check,
        exchange_version,
        ews_access,
        m365_tenant,
        m365_plan,
        app_consent,
        google_workspace,
        firewall,
        superoffice,
        unsupported,
    )
)
CHECK_IDS: tuple[str, ...] = tuple(spec.id for spec in CHECKS)


class UnknownCheck(ValueError):
    pass


def select(ids: list[str] | None = None) -> list[CheckSpec]:
    """The checks with these ids (all when None), in report order."""
    if not ids:
        return list(CHECKS)
    unknown = sorted(set(ids) - set(CHECK_IDS))
    if unknown:
        raise UnknownCheck(f"unknown check id {', '.join(unknown)}; known: {', '.join(CHECK_IDS)}")
    return [spec for spec in CHECKS if spec.id in ids]
