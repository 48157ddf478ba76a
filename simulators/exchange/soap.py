"""SOAP envelopes and faults as Exchange writes them."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from .xmlns import ERRS, MSGS, SOAP, TYPES, XSI, m, sub, t, to_bytes


@dataclass(frozen=True)
class ServerBuild:
    """What `ServerVersionInfo` and `X-OWA-Version` say about a server."""

    major: int
    minor: int
    build: int
    revision: int
    schema: str  # the Version attribute, e.g. "V2017_07_11"
    # RequestServerVersion values this server's schema accepts.
    api_versions: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return f"{self.major}.{self.minor}.{self.build}.{self.revision}"


API_2013 = (
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
)
BUILDS = {
    "2013": ServerBuild(15, 0, 1497, 2, "V2_23", API_2013),
    "2016": ServerBuild(15, 1, 2507, 6, "V2017_07_11", (*API_2013, "Exchange2016")),
    "2019": ServerBuild(15, 2, 1544, 4, "V2017_07_11", (*API_2013, "Exchange2016")),
    # Subscription Edition RTM (July 2025): still 15.2, told apart from 2019 by its build.
    "SE": ServerBuild(15, 2, 2562, 17, "V2017_07_11", (*API_2013, "Exchange2016")),
}


def envelope(build: ServerBuild, response: etree._Element | None = None) -> etree._Element:
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    header = sub(root, f"{{{SOAP}}}Header")
    info = etree.SubElement(
        header,
        f"{{{TYPES}}}ServerVersionInfo",
        {
            "MajorVersion": str(build.major),
            "MinorVersion": str(build.minor),
            "MajorBuildNumber": str(build.build),
            "MinorBuildNumber": str(build.revision),
            "Version": build.schema,
        },
        nsmap={"h": TYPES},
    )
    del info  # the header element is complete as created
    body = etree.SubElement(root, f"{{{SOAP}}}Body", nsmap={"xsi": XSI})
    if response is not None:
        body.append(response)
    return root


def response_root(operation: str) -> tuple[etree._Element, etree._Element]:
    """`m:{Op}Response` and its `m:ResponseMessages` container."""
    root = etree.Element(m(f"{operation}Response"), nsmap={"m": MSGS, "t": TYPES})
    return root, sub(root, m("ResponseMessages"))


def success(messages: etree._Element, operation: str) -> etree._Element:
    msg = sub(messages, m(f"{operation}ResponseMessage"), ResponseClass="Success")
    sub(msg, m("ResponseCode"), "NoError")
    return msg


def error(messages: etree._Element, operation: str, code: str, text: str) -> etree._Element:
    msg = sub(messages, m(f"{operation}ResponseMessage"), ResponseClass="Error")
    sub(msg, m("MessageText"), text)
    sub(msg, m("ResponseCode"), code)
    sub(msg, m("DescriptiveLinkKey"), "0")
    if operation == "SyncFolderItems":
        # Exchange keeps these in a failed sync message too, and clients read them regardless.
        sub(msg, m("SyncState"))
        sub(msg, m("IncludesLastItemInRange"), "true")
    return msg


def fault(
    code: str,
    text: str,
    values: dict[str, str] | None = None,
    details: dict[str, str] | None = None,
) -> bytes:
    """A SOAP fault: how Exchange reports throttling, schema errors and bad versions (HTTP 500).

    `values` become `t:Value Name=…` entries of `MessageXml` (BackOffMilliseconds), `details`
    child elements of their own (a schema violation's LineNumber and Violation)."""
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    body = sub(root, f"{{{SOAP}}}Body")
    soap_fault = sub(body, f"{{{SOAP}}}Fault")
    faultcode = etree.SubElement(soap_fault, "faultcode", nsmap={"a": TYPES})
    faultcode.text = f"a:{code}"
    faultstring = sub(soap_fault, "faultstring", text)
    faultstring.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    detail = sub(soap_fault, "detail")
    etree.SubElement(detail, f"{{{ERRS}}}ResponseCode", nsmap={"e": ERRS}).text = code
    etree.SubElement(detail, f"{{{ERRS}}}Message", nsmap={"e": ERRS}).text = text
    if values or details:
        xml = etree.SubElement(detail, t("MessageXml"), nsmap={"t": TYPES})
        for name, value in (values or {}).items():
            sub(xml, t("Value"), value, Name=name)
        for name, value in (details or {}).items():
            sub(xml, t(name), value)
    return to_bytes(root)


class SchemaViolation(Exception):
    """A request messages.xsd/types.xsd refuses: Exchange validates before it runs anything."""

    def __init__(self, element: etree._Element, violation: str) -> None:
        super().__init__(violation)
        self.line = element.sourceline
        self.violation = violation


def schema_fault(exc: SchemaViolation) -> bytes:
    details = {"Violation": exc.violation}
    if exc.line is not None:
        details = {"LineNumber": str(exc.line), **details}
    return fault(
        "ErrorSchemaValidation",
        f"The request failed schema validation: {exc.violation}",
        details=details,
    )


SERVER_BUSY_TEXT = "The server cannot service this request right now. Try again later."


def server_busy(back_off_ms: int) -> bytes:
    return fault(
        "ErrorServerBusy",
        SERVER_BUSY_TEXT,
        {"BackOffMilliseconds": str(back_off_ms)},
    )
