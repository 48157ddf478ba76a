"""Checks Exchange makes against messages.xsd/types.xsd before it runs an operation: a request
that fails them gets an ErrorSchemaValidation SOAP fault, never a response message."""

from __future__ import annotations

from lxml import etree

from .soap import SchemaViolation
from .xmlns import MSGS, TYPES, local


def bounded_int(parent: etree._Element, tag: str, bounds: tuple[int, int], datatype: str) -> int:
    """The required integer child `tag` of `parent`, within `bounds` (inclusive)."""
    element = parent.find(tag)
    name = local(tag)
    if element is None:
        raise SchemaViolation(
            parent,
            f"The element '{local(parent.tag)}' in namespace '{MSGS}' has incomplete content. "
            f"List of possible elements expected: '{name}'.",
        )
    text = (element.text or "").strip()
    invalid = (
        f"The '{name}' element is invalid - The value '{text}' is invalid according to its "
        f"datatype '{TYPES}:{datatype}'"
    )
    try:
        value = int(text)
    except ValueError:
        raise SchemaViolation(
            element, f"{invalid} - The string '{text}' is not a valid Int32 value."
        ) from None
    low, high = bounds
    if not low <= value <= high:
        bound = "MinInclusive" if value < low else "MaxInclusive"
        raise SchemaViolation(element, f"{invalid} - The {bound} constraint failed.")
    return value


def enumerated(elem: etree._Element, name: str, allowed: set[str]) -> str | None:
    """An optional attribute of an enumerated type: absent is None, a value outside the
    schema's enumeration fails validation."""
    value = elem.get(name)
    if value is not None and value not in allowed:
        raise SchemaViolation(
            elem,
            f"The '{name}' attribute is invalid - The value '{value}' is invalid according to "
            "its datatype - The Enumeration constraint failed.",
        )
    return value


def enumerated_text(elem: etree._Element, allowed: set[str]) -> str:
    """An element whose text must be one of an enumeration."""
    value = (elem.text or "").strip()
    if value not in allowed:
        raise SchemaViolation(
            elem,
            f"The '{local(elem.tag)}' element is invalid - The value '{value}' is invalid "
            "according to its datatype - The Enumeration constraint failed.",
        )
    return value
