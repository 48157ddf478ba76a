"""`/_sim/state`: export every tenant's data as JSON (GET; `?tenant=CustNNNNN` for one) and
replace it (POST, same shape).

A POSTed tenant may hold any subset of the record tables; the tables given replace the current
ones, the others are kept. `"purge_deleted": {"now": "<ISO time>"}` (or true) runs the hard
delete of soft-deleted persons and companies older than the retention time, as of that time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import typing
from typing import Any

from flask import Blueprint, Response, current_app, request

from simulators.superoffice import deletions, model

bp = Blueprint("so_state", __name__)

TABLES: dict[str, tuple[type, str]] = {
    "associates": (model.AssociateRecord, "associate_id"),
    "contacts": (model.ContactRecord, "contact_id"),
    "persons": (model.PersonRecord, "person_id"),
    "appointments": (model.AppointmentRecord, "appointment_id"),
    "rules": (model.RecurrenceRule, "rule_id"),
    "selections": (model.SelectionRecord, "selection_id"),
    "webhooks": (model.WebhookRecord, "webhook_id"),
}


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _record(cls: type, raw: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls, vars(model))
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        value = raw[f.name]
        if hints[f.name] in (dt.datetime, dt.datetime | None) and isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if f.name == "participants":
            value = [model.Participant(**p) for p in value]
        values[f.name] = value
    return cls(**values)


def export(sim: Any, only: str | None = None) -> dict[str, Any]:
    tenants = {}
    for data in sim.tenants.values():
        if only is not None and data.context_id.lower() != only.lower():
            continue
        with data.lock:
            tenant: dict[str, Any] = {
                table: [_plain(r) for r in getattr(data, table).values()] for table in TABLES
            }
            tenant["foreign_keys"] = [_plain(k) for k in data.foreign_keys]
            tenant["kind"] = data.config.kind
            tenant["state"] = data.config.state
        tenants[data.context_id] = tenant
    return {"tenants": tenants}


def replace(sim: Any, payload: dict[str, Any]) -> None:
    for context_id, raw in (payload.get("tenants") or {}).items():
        data = sim.tenant(context_id)
        if data is None:
            raise KeyError(context_id)
        with data.lock:
            for table, (cls, key) in TABLES.items():
                if table in raw:
                    records = [_record(cls, r) for r in raw[table]]
                    setattr(data, table, {getattr(r, key): r for r in records})
            if "foreign_keys" in raw:
                data.foreign_keys = [
                    _record(model.ForeignKeyRecord, k) for k in raw["foreign_keys"]
                ]
            if "state" in raw:
                data.config.state = str(raw["state"])
            if "api_host" in raw:  # the tenant moved to another host
                data.config.api_host = str(raw["api_host"]) if raw["api_host"] else None
            ids = [k for table in TABLES for k in getattr(data, table)]
            data.next_id = max([data.next_id, *ids])
            fired = _purge(data, raw.get("purge_deleted"))
        for e in fired:  # the background job's events, by the system user
            sim.webhooks.emit(
                data, e.name, e.primary_key, associate_id=data.system_associate().associate_id,
                values=e.values, changes=e.changes,
            )  # fmt: skip


def _purge(data: model.TenantData, order: Any) -> list[deletions.Event]:
    """`purge_deleted`: run the hard delete, as of `{"now": iso}` if given (e.g. 15 days on)."""
    if not order:
        return []
    now = model.utcnow()
    if isinstance(order, dict) and order.get("now"):
        now = dt.datetime.fromisoformat(str(order["now"])).astimezone(dt.UTC)
    return deletions.purge(data, now)


@bp.get("/_sim/state")
def get_state() -> Response:
    # `?tenant=CustNNNNN`: that tenant only (the whole world is megabytes)
    only = request.args.get("tenant")
    return Response(
        json.dumps(export(current_app.extensions["superoffice"], only)),
        mimetype="application/json",
    )


@bp.post("/_sim/state")
def post_state() -> Response:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return Response(
            json.dumps({"error": "a JSON object is required"}), 400, mimetype="application/json"
        )
    try:
        replace(current_app.extensions["superoffice"], payload)
    except (KeyError, TypeError, ValueError) as exc:
        return Response(
            json.dumps({"error": f"bad state: {exc}"}), 400, mimetype="application/json"
        )
    return Response(status=204)
