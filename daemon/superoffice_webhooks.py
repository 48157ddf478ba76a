"""The SuperOffice side of the push upkeep: each enabled SuperOffice profile with active users
has our webhook registered, active, pointing at `public_url` (`/hooks/superoffice`), signed
with the profile's secret.

A profile without a secret gets one (kept encrypted in its CRM credentials, where the
receiver looks for it) and the webhook is given it. SuperOffice stops a webhook after nine
failed deliveries in a row (our receiver was down, say) until someone sets it Active again:
the upkeep does, so push comes back by itself; the poll covered the meantime.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import exists, select

from common.connectors.superoffice import webhooks
from common.db import Database
from common.models import CrmKind, InvitationState, Profile, SyncUser
from daemon.connections import Connections

log = logging.getLogger(__name__)

RECEIVER_PATH = "/hooks/superoffice"  # checksite/hooks.py


@dataclass
class WebhookReport:
    outcomes: dict[int, str] = field(default_factory=dict)  # profile: made, updated, ok
    failed: dict[int, str] = field(default_factory=dict)  # profile: why


def upkeep_webhooks(db: Database, connections: Connections, public_url: str) -> WebhookReport:
    report = WebhookReport()
    target = public_url.rstrip("/") + RECEIVER_PATH
    for profile_id in _profiles(db):
        try:
            with db.session() as session:
                profile = session.get(Profile, profile_id)
                assert profile is not None
                session.refresh(profile, ["crm_credentials"])
                secret = str((profile.crm_credentials or {}).get("webhook_secret") or "")
                fresh = not secret
                if fresh:  # kept before it is given to SuperOffice: never a secret we lost
                    secret = webhooks.new_secret()
                    profile.crm_credentials = {
                        **(profile.crm_credentials or {}),
                        "webhook_secret": secret,
                    }
                session.flush()
                session.expunge(profile)
            client = connections.crm_client(profile)
            report.outcomes[profile_id] = webhooks.ensure(
                client, target, secret, profile_id, new_secret=fresh
            )
        except Exception as exc:  # this profile's webhook only; the others go on
            log.warning("SuperOffice webhook of profile %s: %s", profile_id, exc)
            report.failed[profile_id] = str(exc)
    return report


def _profiles(db: Database) -> list[int]:
    active_user = exists().where(
        SyncUser.profile_id == Profile.id, SyncUser.invitation_state == InvitationState.ACTIVE
    )
    with db.session() as session:
        return list(
            session.scalars(
                select(Profile.id)
                .where(
                    Profile.enabled.is_(True),
                    Profile.crm_kind.in_((CrmKind.SUPEROFFICE_ONLINE, CrmKind.SUPEROFFICE_ONSITE)),
                    active_user,
                )
                .order_by(Profile.id)
            )
        )
