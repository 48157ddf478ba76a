"""What each side can hold of a canonical item (its lossy mappings), declared per connector.

A side that cannot express a value (show-as "elsewhere" in a CRM that knows only busy and
free, a reminder of 7 minutes where only fixed steps exist, an HTML body on a plain-text
side) holds the nearest value it has. The engine compares items only in the *common view*
(what both sides can hold), so such a value is never seen as an edit, and writes with
`merge`, which keeps on the target what the source could not express.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

from common.items import (
    APPOINTMENT_FIELDS,
    CONTACT_FIELDS,
    Appointment,
    Contact,
    ShowAs,
    content_hash,
)

ItemT = TypeVar("ItemT", Appointment, Contact)

# The nearest value a side holds for a show-as it cannot express.
_SHOW_AS_FALLBACK = {
    ShowAs.ELSEWHERE: ShowAs.BUSY,
    ShowAs.OUT_OF_OFFICE: ShowAs.BUSY,
    ShowAs.TENTATIVE: ShowAs.BUSY,
    ShowAs.BUSY: ShowAs.BUSY,
    ShowAs.FREE: ShowAs.FREE,
}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a side keeps: its canonical fields and the values it can express."""

    fields: frozenset[str]
    show_as: frozenset[ShowAs] = frozenset(ShowAs)

    @classmethod
    def full(cls, kind: type[Appointment] | type[Contact] = Appointment) -> Capabilities:
        return cls(APPOINTMENT_FIELDS if kind is Appointment else CONTACT_FIELDS)


def project(item: ItemT, caps: Capabilities) -> ItemT:
    """What a side with `caps` would hold of `item` (fields it lacks are left as they are;
    the comparison ignores them)."""
    if isinstance(item, Appointment) and "show_as" in caps.fields:
        shown = item.show_as
        if shown not in caps.show_as:
            shown = _SHOW_AS_FALLBACK[shown]
            if shown not in caps.show_as:
                shown = ShowAs.BUSY
            return dataclasses.replace(item, show_as=shown)  # type: ignore[return-value]
    return item


def common_view(item: ItemT, a: Capabilities, b: Capabilities) -> ItemT:
    """The item as both sides can hold it."""
    return project(project(item, a), b)


def agreed_hash(item: ItemT, a: Capabilities, b: Capabilities) -> str:
    """The content hash over what both sides keep and can express."""
    return content_hash(common_view(item, a, b), a.fields & b.fields)
