"""`GET /_sim/state`: the simulated mailboxes as JSON, for tests and for looking around."""

from __future__ import annotations

from typing import Any

from .organisation import Runtime
from .store import Item


def _item(item: Item) -> dict[str, Any]:
    extended = {}
    for prop in item.extended.values():
        uri = prop[0]
        name = uri.get("PropertyName") or uri.get("PropertyTag") or uri.get("PropertyId")
        extended[str(name)] = prop.findtext("{*}Value")
    summary: dict[str, Any] = {
        "id": item.id,
        "change_key": item.change_key,
        "kind": item.kind,
        "extended": extended,
    }
    for name in ("Subject", "Start", "End", "GivenName", "Surname", "CompanyName"):
        if item.text(name) is not None:
            summary[name[0].lower() + name[1:]] = item.text(name)
    if "Recurrence" in item.props:
        summary["exceptions"] = sorted(item.exceptions)
        summary["deleted_occurrences"] = sorted(item.deleted_occurrences)
    return summary


def export_state(runtimes: list[Runtime], operations: dict[str, int]) -> dict[str, Any]:
    organisations = {}
    for runtime in runtimes:
        store = runtime.store
        with store.lock:
            mailboxes = {}
            for address, user in store.users.items():
                if not user.has_mailbox:
                    continue
                folders = {}
                for name in ("calendar", "contacts"):
                    folder = store.distinguished(address, name)
                    folders[name] = [_item(i) for i in store.folder_items(folder)]
                mailboxes[address] = folders
            sent_mail = [dict(message) for message in store.sent_mail]
        organisations[runtime.org.domain] = {
            "version": runtime.org.version,
            "build": runtime.build.dotted,
            "ews_url": runtime.org.ews_url,
            "autodiscover": runtime.org.autodiscover,
            "mailboxes": mailboxes,
            "sent_mail": sent_mail,
        }
    return {"organisations": organisations, "operations": operations}
