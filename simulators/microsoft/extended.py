"""Single-value extended properties of Outlook items, as Graph documents them.

An id has one of three formats: `{type} {guid} Name {name}`, `{type} {guid} Id {id}` or
`{type} {proptag}`; anything else is refused. The `Name` is matched case-sensitively, the type,
GUID and numbers are not; values are compared case-insensitively when filtering. A property is
only ever returned through `$expand=singleValueExtendedProperties($filter=id eq '…')`: there is
no way to list all of an item's properties, and create/update responses leave them out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from simulators.microsoft.errors import GraphError

# The MAPI property types Exchange knows (EWS MapiPropertyTypeType), single-valued.
TYPES = {
    t.lower(): t
    for t in (
        "ApplicationTime", "Binary", "Boolean", "CLSID", "Currency", "Double", "Float",
        "Integer", "Long", "Object", "Short", "String", "SystemTime",
    )
}  # fmt: skip
_GUID = r"\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}"
_NUMBER = r"(?:0[xX][0-9a-fA-F]+|\d+)"
_NAMED = re.compile(rf"(?P<type>\w+) (?P<guid>{_GUID}) Name (?P<name>\S(?:.*\S)?)")
_BY_ID = re.compile(rf"(?P<type>\w+) (?P<guid>{_GUID}) Id (?P<number>{_NUMBER})")
_PROPTAG = re.compile(rf"(?P<type>\w+) (?P<number>{_NUMBER})")

Key = tuple[str, ...]


def invalid_id(text: str) -> GraphError:
    return GraphError(
        400,
        "ErrorInvalidExtendedProperty",
        f"The extended property id '{text}' is not valid: use '{{type}} {{guid}} Name {{name}}', "
        "'{type} {guid} Id {id}' or '{type} {proptag}'.",
    )


def key_of(text: str) -> Key:
    """The identity of a property id: Name exact, everything else case-insensitive."""
    for pattern, kind in ((_NAMED, "name"), (_BY_ID, "id"), (_PROPTAG, "tag")):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        type_name = match.group("type").lower()
        if type_name not in TYPES:
            raise invalid_id(text)
        if kind == "name":
            return (kind, type_name, match.group("guid").lower(), match.group("name"))
        number = str(int(match.group("number"), 0))
        if kind == "id":
            return (kind, type_name, match.group("guid").lower(), number)
        return (kind, type_name, number)
    raise invalid_id(text)


@dataclass
class ExtendedProperties:
    """One item's single-value extended properties."""

    values: dict[Key, dict] = field(default_factory=dict)  # key -> {"id", "value"} as written

    def __bool__(self) -> bool:
        return bool(self.values)

    def write(self, payload: object) -> None:
        """Apply `singleValueExtendedProperties` of a POST or PATCH body (all-or-nothing)."""
        if payload is None:
            return
        if not isinstance(payload, list) or not all(
            isinstance(v, dict) and isinstance(v.get("id"), str) for v in payload
        ):
            raise GraphError(
                400,
                "RequestBodyRead",
                "singleValueExtendedProperties must be a list of {id, value}.",
            )
        written = {key_of(v["id"]): {"id": v["id"], "value": v.get("value")} for v in payload}
        self.values.update(written)

    def matches(self, prop_id: str, value: str) -> bool:
        found = self.values.get(key_of(prop_id))
        return found is not None and str(found["value"]).lower() == value.lower()

    def expanded(self, ids: list[str]) -> list[dict]:
        wanted = [key_of(i) for i in ids]
        return [dict(self.values[k]) for k in wanted if k in self.values]

    def export(self) -> list[dict]:
        return [dict(v) for v in self.values.values()]
