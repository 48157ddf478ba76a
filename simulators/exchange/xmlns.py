"""XML namespaces and small element helpers shared by the EWS and Autodiscover handlers."""

from __future__ import annotations

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
MSGS = "http://schemas.microsoft.com/exchange/services/2006/messages"
TYPES = "http://schemas.microsoft.com/exchange/services/2006/types"
ERRS = "http://schemas.microsoft.com/exchange/services/2006/errors"
AUTOD = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA = "http://www.w3.org/2005/08/addressing"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
POX_REQUEST = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
POX_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
POX_OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

EWS_NSMAP = {"s": SOAP, "m": MSGS, "t": TYPES}

# Requests come from strangers: no entities, no network, no huge trees.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True
)


class BadXml(ValueError):
    """The request body is not well-formed XML."""


def parse(body: bytes) -> etree._Element:
    try:
        return etree.fromstring(body, parser=_PARSER)  # noqa: S320 - hardened parser above
    except etree.XMLSyntaxError as exc:
        raise BadXml(str(exc)) from exc


def m(name: str) -> str:
    return f"{{{MSGS}}}{name}"


def t(name: str) -> str:
    return f"{{{TYPES}}}{name}"


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def sub(
    parent: etree._Element, tag: str, text: str | None = None, **attrs: str | None
) -> etree._Element:
    elem = etree.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        elem.text = text
    return elem


def child_text(elem: etree._Element | None, tag: str) -> str | None:
    if elem is None:
        return None
    found = elem.find(tag)
    return found.text if found is not None else None


def to_bytes(elem: etree._Element) -> bytes:
    return etree.tostring(elem, xml_declaration=True, encoding="utf-8")
