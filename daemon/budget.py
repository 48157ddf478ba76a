"""Per-service throttle budgets: a service that asks us to wait is asked nothing by anyone
until then.

Services limit what an application does across all its users (SuperOffice per tenant or
installation, Microsoft Graph per application and tenant), so when one user's run is told to
wait longer than a worker sleeps out, every user of that service waits too; users of other
services go on. The pause lives in the database (`service_budget`), shared by every worker
on every host. A run that finds its service paused does not start: it is rescheduled for
the end of the pause, with a little spread so that the service's users do not all come back
in the same second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from common.db import Database
from common.kinds import Side
from common.models import CrmKind, GroupwareKind, Profile, ServiceBudget
from daemon.apply import RunThrottled

SPREAD = 0.25  # a waiting user comes back up to a quarter of the pause later


def services_of(profile: Profile) -> dict[Side, str]:
    """The service each side of a profile talks to, as the key its budget is kept under."""
    if profile.crm_kind is CrmKind.SUPEROFFICE_ONLINE:
        crm = f"superoffice-online:{(profile.crm_tenant or '').lower()}"
    else:
        crm = f"superoffice-onsite:{profile.crm_url.rstrip('/').lower()}"
    found = profile.groupware_settings or {}
    if profile.groupware_kind is GroupwareKind.MICROSOFT_365:
        where = str(found.get("tenant_id") or "")
    else:
        where = str(found.get("domain") or found.get("ews_url") or "")
    groupware = f"{profile.groupware_kind.value}:{(where or f'profile {profile.id}').lower()}"
    return {Side.CRM: crm, Side.GROUPWARE: groupware}


def throttled_sides(cause: BaseException | None) -> list[Side]:
    """Which side asked us to wait; both when the run could not tell."""
    if isinstance(cause, RunThrottled) and cause.side is not None:
        return [cause.side]
    return [Side.CRM, Side.GROUPWARE]


def pause(db: Database, services: Iterable[str], until: datetime, reason: str) -> None:
    """Nobody asks these services anything before `until` (a longer pause in force stays)."""
    for service in services:
        try:
            _extend(db, service, until, reason)
        except IntegrityError:  # another worker made the row at the same moment
            _extend(db, service, until, reason)


def _extend(db: Database, service: str, until: datetime, reason: str) -> None:
    with db.session() as session:
        moved = session.execute(
            update(ServiceBudget)
            .where(ServiceBudget.service == service, ServiceBudget.paused_until < until)
            .values(paused_until=until, reason=reason)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount == 0 and session.get(ServiceBudget, service) is None:  # type: ignore[attr-defined]
            session.add(ServiceBudget(service=service, paused_until=until, reason=reason))


def paused(db: Database, profile: Profile, now: datetime) -> ServiceBudget | None:
    """The longest pause in force on one of the profile's services, if any."""
    with db.session() as session:
        return session.scalars(
            select(ServiceBudget)
            .where(
                ServiceBudget.service.in_(list(services_of(profile).values())),
                ServiceBudget.paused_until > now,
            )
            .order_by(ServiceBudget.paused_until.desc())
            .limit(1)
        ).first()


def wait_seconds(budget: ServiceBudget, now: datetime, rnd: Callable[[], float]) -> float:
    remaining = max((budget.paused_until - now).total_seconds(), 0.0)
    return remaining + rnd() * remaining * SPREAD
