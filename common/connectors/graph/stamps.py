"""Finding an item by our stamp, for events and contacts alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from common.connectors.graph import mapping
from common.connectors.graph.client import GraphClient
from common.connectors.graph.delta import query


def oldest_holder(
    client: GraphClient, collection: str, correlation_id: str
) -> dict[str, Any] | None:
    """The oldest item of `collection` carrying the stamp: filtered on the property by Graph,
    the oldest chosen here by `createdDateTime` (Outlook refuses an `$orderby` on a property
    its `$filter` does not name, and holders are few: the item we stamped and users' copies)."""
    url = collection + query(
        dollar_filter=mapping.stamp_filter(correlation_id),
        dollar_expand=mapping.EXPAND_STAMP,
        dollar_top="50",
    )
    holders = [h for h in client.pages(url) if mapping.stamp_of(h) == correlation_id]
    if not holders:
        return None
    never = datetime.max.replace(tzinfo=UTC)
    return min(holders, key=lambda h: (mapping.created_of(h) or never, h["id"]))
