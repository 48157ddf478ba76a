"""Outlook item ids in the two forms Graph hands out: the default REST id and, for a client
that sends `Prefer: IdType="ImmutableId"`, the immutable id. Both forms address the same item
in every request, whatever the header says; the header only decides which form answers carry."""

from __future__ import annotations

import base64

# Immutable ids share a long common prefix (the mailbox's entry-id header) in Outlook too.
IMMUTABLE_PREFIX = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A"


def immutable(rest_id: str) -> str:
    return IMMUTABLE_PREFIX + base64.urlsafe_b64encode(rest_id.encode()).decode().rstrip("=")


def rest_id(any_id: str) -> str:
    """The default id of an item given in either form (unknown text is returned unchanged)."""
    if not any_id.startswith(IMMUTABLE_PREFIX):
        return any_id
    tail = any_id[len(IMMUTABLE_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return any_id
