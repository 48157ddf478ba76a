"""`/_sim/state` of the Microsoft simulator: export what the tenants and mailboxes hold, and
seed or replace it."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, current_app, request

from simulators.microsoft.graph_common import GraphState, json_response
from simulators.microsoft.identity import IdentityState
from simulators.microsoft.mailbox import Mailbox, seed
from simulators.microsoft.notifications import Notifier
from simulators.world.microsoft import MicrosoftWorld

bp = Blueprint("sim_state", __name__)
OnChange = Callable[[str, str, str, str, str], None]


def build_mailboxes(world: MicrosoftWorld, on_change: OnChange | None = None) -> dict[str, Mailbox]:
    mailboxes = {}
    for tenant in world.tenants:
        for user in tenant.users:
            mailbox = Mailbox(user.id, user.user_principal_name, user.display_name)
            if user.has_mailbox:
                seed(mailbox, user.events, user.contacts)
            mailbox.on_change = on_change  # seeds are there before anyone subscribes
            mailboxes[user.id] = mailbox
    return mailboxes


def _export(world: MicrosoftWorld, graph: GraphState) -> dict:
    tenants = []
    for tenant in world.tenants:
        users = []
        for user in tenant.users:
            mailbox = graph.mailboxes[user.id]
            with mailbox.lock:
                users.append(
                    {
                        "id": user.id,
                        "userPrincipalName": user.user_principal_name,
                        "hasMailbox": user.has_mailbox,
                        "licenses": user.licenses,
                        "events": [
                            {
                                "id": r.id,
                                "subject": r.props.get("subject", ""),
                                "type": "seriesMaster" if r.is_series else "singleInstance",
                                "transactionId": r.transaction_id,
                            }
                            for r in mailbox.records.values()
                        ],
                        "contacts": [
                            {
                                "id": c.id,
                                "displayName": c.props.get("displayName", ""),
                                "parentFolderId": c.folder_id,
                            }
                            for c in mailbox.contacts.values()
                        ],
                        "contactFolders": [
                            {"id": folder_id, "displayName": name}
                            for folder_id, name in mailbox.contact_folders.items()
                        ],
                        # Outlook's MailboxConcurrency limit as it was met: the most requests
                        # in flight at once, and how many it refused.
                        "throttling": {
                            "peakInFlight": mailbox.peak_in_flight,
                            "concurrencyRefusals": mailbox.concurrency_refusals,
                        },
                    }
                )
        tenants.append(
            {
                "id": tenant.id,
                "displayName": tenant.display_name,
                "domains": tenant.domains,
                "namespaceType": tenant.namespace_type,
                "consent": tenant.consent,
                "userConsents": tenant.user_consents,
                "users": users,
            }
        )
    with graph.lock:
        sent = [dict(m) for m in graph.sent_mail]
    return {
        "tenants": tenants,
        "apps": [{"appId": a.app_id, "displayName": a.display_name} for a in world.apps],
        "sentMail": sent,
        "subscriptions": [
            s.as_json() | {"needsReauthorization": s.needs_reauthorization}
            for s in current_app.extensions["microsoft_notifications"].subscriptions.values()
        ],
    }


@bp.route("/_sim/state", methods=["GET", "POST"])
def sim_state() -> Response:
    world: MicrosoftWorld = current_app.extensions["microsoft_world"]
    graph: GraphState = current_app.extensions["microsoft_graph"]
    if request.method == "POST":
        payload = request.get_json(force=True, silent=True) or {}
        _apply(world, graph, payload)
    return json_response(_export(world, graph))


def _apply(world: MicrosoftWorld, graph: GraphState, payload: dict) -> None:
    """Keys: `tenants` {tenant id or domain: {consent, granted_roles, granted_scopes}};
    `mailboxes` {upn: {events: [...], contacts: [...]}} replaces those mailboxes' content;
    `revoke_refresh_tokens` [upn, ...]; `reset_sync_states` true forgets every delta token;
    `clear_sent_mail` true empties the record of meeting mail sent; `lifecycle`
    [{subscription, event}] sends lifecycle notifications (reauthorizationRequired,
    subscriptionRemoved (which removes it) or missed)."""
    notifier: Notifier = current_app.extensions["microsoft_notifications"]
    for key, changes in (payload.get("tenants") or {}).items():
        tenant = world.tenant(key)
        if tenant is None:
            continue
        for field_name in ("consent", "granted_roles", "granted_scopes", "user_consents"):
            if field_name in changes:
                setattr(tenant, field_name, changes[field_name])
    for upn, content in (payload.get("mailboxes") or {}).items():
        tenant = world.tenant_of_user(upn)
        user = tenant.user(upn) if tenant else None
        if user is None:
            continue
        fresh = Mailbox(user.id, user.user_principal_name, user.display_name)
        seed(fresh, content.get("events", []), content.get("contacts", []))
        fresh.on_change = notifier.changed
        graph.mailboxes[user.id] = fresh
    identity: IdentityState = current_app.extensions["microsoft_identity"]
    for upn in payload.get("revoke_refresh_tokens") or []:
        tenant = world.tenant_of_user(upn)
        user = tenant.user(upn) if tenant else None
        if user is not None:
            identity.revoke_user(user.id)
            notifier.remove_for_user(user.id)  # subscriptionRemoved: the grant is gone
    for trigger in payload.get("lifecycle") or []:
        sub = notifier.get(str(trigger.get("subscription")))
        if sub is None:
            continue
        event = str(trigger.get("event"))
        if event == "subscriptionRemoved":
            notifier.remove(sub.id)
        notifier.lifecycle(sub, event)
    if payload.get("clear_sent_mail"):
        with graph.lock:
            graph.sent_mail.clear()
    if payload.get("reset_sync_states"):
        for mailbox in graph.mailboxes.values():
            mailbox.forget_sync_states()
