"""Autodiscover answers: POX (MS-OXDISCO, autodiscover.xml) and SOAP (GetUserSettings, .svc)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from .soap import ServerBuild
from .xmlns import AUTOD, POX_OUTLOOK, POX_REQUEST, POX_RESPONSE, SOAP, WSA, XSI, sub, to_bytes


@dataclass(frozen=True)
class Answer:
    """What Autodiscover says for one address: settings, or a redirect, or an error."""

    email: str
    display_name: str = ""
    ews_url: str = ""
    ews_host: str = ""
    auth_package: str = "Ntlm"
    redirect_addr: str | None = None
    redirect_url: str | None = None
    error: str | None = None  # "InvalidUser" for an unknown address


def server_version_hex(build: ServerBuild) -> str:
    """MS-OXDISCO ServerVersion: 0111, 6 bits major, 6 bits minor, a set bit, 15 bits build."""
    value = (0b0111 << 28) | (build.major << 22) | (build.minor << 16) | (1 << 15) | build.build
    return f"{value:08X}"


# --- POX --------------------------------------------------------------------------------------
def pox_email(body: bytes) -> str | None:
    from .xmlns import BadXml, parse

    try:
        root = parse(body)
    except BadXml:
        return None
    return root.findtext(f"{{{POX_REQUEST}}}Request/{{{POX_REQUEST}}}EMailAddress")


POX_ERRORS = {
    "InvalidUser": ("500", "The email address can't be found."),
    "InvalidRequest": ("600", "Invalid Request"),
}


def pox_error(kind: str) -> bytes:
    """MS-OXDISCO error answer: 500 for an unknown address, 600 for a request that is not one."""
    code, message = POX_ERRORS[kind]
    root = etree.Element(f"{{{POX_RESPONSE}}}Autodiscover", nsmap={None: POX_RESPONSE})
    response = sub(root, f"{{{POX_RESPONSE}}}Response")
    err = sub(
        response,
        f"{{{POX_RESPONSE}}}Error",
        Time=datetime.now(UTC).strftime("%H:%M:%S.%f")[:12],
        Id=str(uuid.uuid4().int % 10**10),
    )
    sub(err, f"{{{POX_RESPONSE}}}ErrorCode", code)
    sub(err, f"{{{POX_RESPONSE}}}Message", message)
    sub(err, f"{{{POX_RESPONSE}}}DebugData")
    return to_bytes(root)


def pox_response(answer: Answer, build: ServerBuild) -> bytes:
    if answer.error:
        return pox_error(answer.error)
    root = etree.Element(f"{{{POX_RESPONSE}}}Autodiscover", nsmap={None: POX_RESPONSE})
    ns = f"{{{POX_OUTLOOK}}}"
    response = etree.SubElement(root, f"{ns}Response", nsmap={None: POX_OUTLOOK})
    user = sub(response, f"{ns}User")
    sub(user, f"{ns}DisplayName", answer.display_name)
    sub(user, f"{ns}AutoDiscoverSMTPAddress", answer.email)
    account = sub(response, f"{ns}Account")
    sub(account, f"{ns}AccountType", "email")
    if answer.redirect_addr:
        sub(account, f"{ns}Action", "redirectAddr")
        sub(account, f"{ns}RedirectAddr", answer.redirect_addr)
        return to_bytes(root)
    if answer.redirect_url:
        sub(account, f"{ns}Action", "redirectUrl")
        sub(account, f"{ns}RedirectUrl", answer.redirect_url.replace(".svc", ".xml"))
        return to_bytes(root)
    sub(account, f"{ns}Action", "settings")
    sub(account, f"{ns}MicrosoftOnline", "False")
    base = f"https://{answer.ews_host}"
    for kind in ("EXCH", "EXPR"):
        protocol = sub(account, f"{ns}Protocol")
        sub(protocol, f"{ns}Type", kind)
        sub(protocol, f"{ns}Server", answer.ews_host)
        if kind == "EXCH":
            sub(protocol, f"{ns}ServerVersion", server_version_hex(build))
        sub(protocol, f"{ns}SSL", "On")
        sub(protocol, f"{ns}AuthPackage", answer.auth_package)
        sub(protocol, f"{ns}ASUrl", f"{base}/EWS/Exchange.asmx")
        sub(protocol, f"{ns}EwsUrl", answer.ews_url)
        sub(protocol, f"{ns}OOFUrl", f"{base}/EWS/Exchange.asmx")
        sub(
            protocol,
            f"{ns}OABUrl",
            f"{base}/OAB/{uuid.uuid5(uuid.NAMESPACE_DNS, answer.ews_host)}/",
        )
        sub(protocol, f"{ns}EcpUrl", f"{base}/ecp/")
    web = sub(account, f"{ns}Protocol")
    sub(web, f"{ns}Type", "WEB")
    external = sub(sub(web, f"{ns}External"), f"{ns}OWAUrl", f"{base}/owa/")
    external.set("AuthenticationMethod", "Fba")
    return to_bytes(root)


# --- SOAP (GetUserSettings) ---------------------------------------------------------------------
def soap_request(body: bytes) -> tuple[list[str], list[str]] | None:
    """The mailboxes and setting names of a GetUserSettingsRequestMessage, or None."""
    from .xmlns import BadXml, parse

    try:
        root = parse(body)
    except BadXml:
        return None
    request = root.find(
        f"{{{SOAP}}}Body/{{{AUTOD}}}GetUserSettingsRequestMessage/{{{AUTOD}}}Request"
    )
    if request is None:
        return None
    users = [
        e.text or ""
        for e in request.iterfind(f"{{{AUTOD}}}Users/{{{AUTOD}}}User/{{{AUTOD}}}Mailbox")
    ]
    settings = [
        e.text or "" for e in request.iterfind(f"{{{AUTOD}}}RequestedSettings/{{{AUTOD}}}Setting")
    ]
    return users, settings


def _settings(answer: Answer, build: ServerBuild) -> dict[str, str]:
    base = f"https://{answer.ews_host}"
    return {
        "UserDisplayName": answer.display_name,
        "UserDN": f"/o=First Organization/ou=Exchange Administrative Group/cn=Recipients/cn={answer.email.split('@')[0]}",
        "UserDeploymentId": str(uuid.uuid5(uuid.NAMESPACE_DNS, answer.ews_host)),
        "AutoDiscoverSMTPAddress": answer.email,
        "InternalMailboxServer": answer.ews_host,
        "ExternalMailboxServer": answer.ews_host,
        "ExternalMailboxServerRequiresSSL": "True",
        "ExternalMailboxServerAuthenticationMethods": answer.auth_package,
        "InternalEwsUrl": answer.ews_url,
        "ExternalEwsUrl": answer.ews_url,
        "InternalOABUrl": f"{base}/OAB/",
        "ExternalOABUrl": f"{base}/OAB/",
        "InternalEcpUrl": f"{base}/ecp/",
        "ExternalEcpUrl": f"{base}/ecp/",
        "CasVersion": build.dotted,
        "ExternalEwsVersion": build.dotted,
        "EwsSupportedSchemas": ", ".join(build.api_versions),
        "MapiHttpEnabled": "True",
        "MobileMailboxPolicyInterop": "False",
    }


def soap_response(
    answers: list[Answer], requested: list[str], build: ServerBuild, known: set[str]
) -> bytes:
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP, "a": WSA})
    header = sub(root, f"{{{SOAP}}}Header")
    action = sub(
        header,
        f"{{{WSA}}}Action",
        "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse",
    )
    action.set(f"{{{SOAP}}}mustUnderstand", "1")
    info = etree.SubElement(header, f"{{{AUTOD}}}ServerVersionInfo", nsmap={"h": AUTOD, "i": XSI})
    for name, value in (
        ("MajorVersion", build.major),
        ("MinorVersion", build.minor),
        ("MajorBuildNumber", build.build),
        ("MinorBuildNumber", build.revision),
        ("Version", build.api_versions[-1]),
    ):
        sub(info, f"{{{AUTOD}}}{name}", str(value))
    body = sub(root, f"{{{SOAP}}}Body")
    a = f"{{{AUTOD}}}"
    message = etree.SubElement(body, f"{a}GetUserSettingsResponseMessage", nsmap={None: AUTOD})
    response = etree.SubElement(message, f"{a}Response", nsmap={"i": XSI})
    sub(response, f"{a}ErrorCode", "NoError")
    sub(response, f"{a}ErrorMessage")
    users = sub(response, f"{a}UserResponses")
    for answer in answers:
        user = sub(users, f"{a}UserResponse")
        settings_elem, errors_elem = _user_response_head(user, answer)
        if settings_elem is None:
            continue
        values = _settings(answer, build)
        for name in requested:
            if name in values:
                setting = sub(settings_elem, f"{a}UserSetting")
                setting.set(f"{{{XSI}}}type", "StringSetting")
                sub(setting, f"{a}Name", name)
                sub(setting, f"{a}Value", values[name])
            elif name not in known:
                error = sub(errors_elem, f"{a}UserSettingError")
                sub(error, f"{a}ErrorCode", "InvalidSetting")
                sub(error, f"{a}ErrorMessage", f"The requested setting '{name}' is invalid.")
                sub(error, f"{a}SettingName", name)
    return to_bytes(root)


def _user_response_head(
    user: etree._Element, answer: Answer
) -> tuple[etree._Element | None, etree._Element | None]:
    a = f"{{{AUTOD}}}"
    if answer.error:
        sub(user, f"{a}ErrorCode", answer.error)
        sub(user, f"{a}ErrorMessage", "The SMTP address has no mailbox associated with it.")
        return None, None
    if answer.redirect_addr or answer.redirect_url:
        code = "RedirectAddress" if answer.redirect_addr else "RedirectUrl"
        sub(user, f"{a}ErrorCode", code)
        sub(user, f"{a}ErrorMessage", f"Redirection {code}.")
        sub(user, f"{a}RedirectTarget", answer.redirect_addr or answer.redirect_url)
        return None, None
    sub(user, f"{a}ErrorCode", "NoError")
    sub(user, f"{a}ErrorMessage", "No error.")
    target = sub(user, f"{a}RedirectTarget")
    target.set(f"{{{XSI}}}nil", "true")
    errors = sub(user, f"{a}UserSettingErrors")
    return sub(user, f"{a}UserSettings"), errors
