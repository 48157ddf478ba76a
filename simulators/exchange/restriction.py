"""Evaluating an EWS Restriction (the search filter of FindItem) against a stored item."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lxml import etree

from .render import element_name
from .store import Item, ext_key
from .xmlns import local, t

COMPARISONS: dict[str, Callable[[object, object], bool]] = {
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
    "IsGreaterThan": lambda a, b: a > b,  # type: ignore[operator]
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,  # type: ignore[operator]
    "IsLessThan": lambda a, b: a < b,  # type: ignore[operator]
    "IsLessThanOrEqualTo": lambda a, b: a <= b,  # type: ignore[operator]
}
URI_TAGS = {t("FieldURI"), t("IndexedFieldURI"), t("ExtendedFieldURI")}


def value_of(item: Item, uri: etree._Element) -> str | None:
    kind = local(uri.tag)
    if kind == "ExtendedFieldURI":
        prop = item.extended.get(ext_key(uri))
        return prop.findtext(t("Value")) if prop is not None else None
    name = element_name(uri)
    if name == "ItemClass":
        return {"CalendarItem": "IPM.Appointment", "Contact": "IPM.Contact"}[item.kind]
    elem = item.props.get(name)
    if elem is None:
        return None
    if kind == "IndexedFieldURI":
        for entry in elem:
            if entry.get("Key") == uri.get("FieldIndex"):
                return entry.text
        return None
    return elem.text


def _comparable(value: str) -> object:
    # EWS compares by the property's type; guess it from the text, strings compare caselessly.
    if "T" in value and value[:4].isdigit():
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    if value in ("true", "false"):
        return value == "true"
    try:
        return float(value)
    except ValueError:
        return value.casefold()


def matches(item: Item, node: etree._Element) -> bool:
    kind = local(node.tag)
    if kind == "Restriction":
        return matches(item, node[0])
    if kind == "And":
        return all(matches(item, child) for child in node)
    if kind == "Or":
        return any(matches(item, child) for child in node)
    if kind == "Not":
        return not matches(item, node[0])
    uri = next(child for child in node if child.tag in URI_TAGS)
    actual = value_of(item, uri)
    if kind == "Exists":
        return actual is not None
    constant = node.find(f".//{t('Constant')}")
    expected = constant.get("Value", "") if constant is not None else ""
    if actual is None:
        return kind == "IsNotEqualTo"
    if kind == "Contains":
        mode = node.get("ContainmentMode", "Substring")
        exact = node.get("ContainmentComparison", "Exact") == "Exact"
        haystack, needle = (actual, expected) if exact else (actual.casefold(), expected.casefold())
        if mode == "FullString":
            return haystack == needle
        if mode == "Prefixed":
            return haystack.startswith(needle)
        return needle in haystack
    left, right = _comparable(actual), _comparable(expected)
    if type(left) is not type(right):
        left, right = str(left), str(right)
    return COMPARISONS[kind](left, right)
