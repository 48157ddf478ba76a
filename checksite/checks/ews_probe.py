"""Does a URL answer as Exchange? EWS: with the mailbox password, a real EWS call (GetFolder on
the calendar); without it, the sign-in challenge EWS answers with. OAB: its `oab.xml` is
fetched. One answer per URL and run (shared by [autodiscover] and [exchange_version]).

The mailbox password goes only where `password_policy` allows."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests
from defusedxml import ElementTree

from checksite.checks.autodiscover_client import (
    EXCHANGE_AUTH,
    MALFORMED_ANSWER,
    auth_for,
    auth_methods,
    describe_error,
)
from checksite.checks.context import CheckContext
from checksite.checks.exchange_auth import KERBEROS_FIX, KERBEROS_ONLY, kerberos_only
from checksite.checks.exchange_release import Version, from_dotted, from_soap
from checksite.checks.password_policy import password_for
from common.http import BodyTooLarge
from common.netguard import Blocked, ResolveError

GET_FOLDER = b"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
    xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Header><t:RequestServerVersion Version="Exchange2013"/></soap:Header>
  <soap:Body>
    <m:GetFolder>
      <m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
      <m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds>
    </m:GetFolder>
  </soap:Body>
</soap:Envelope>"""
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}


@dataclass
class UrlAnswer:
    """What one Exchange URL answered, judged: `works` when it is what it should be."""

    url: str
    works: bool
    message: str
    status: int | None = None
    signed_in: bool = False
    auth_methods: list[str] = field(default_factory=list)
    version: Version | None = None
    warning: bool = False  # it answers, but not quite as it should
    auth_problem: str = ""  # it is Exchange, but Synchronizer cannot sign in there
    auth_fix: str = ""

    def details(self) -> dict[str, object]:
        return {
            "url": self.url,
            "http_status": self.status,
            "signed_in": self.signed_in,
            "authentication_methods": self.auth_methods,
        }


def ews_answer(context: CheckContext, url: str) -> UrlAnswer:
    return context.fact(f"ews:{url}", lambda: _ask_ews(context, url))


def oab_answer(context: CheckContext, url: str) -> UrlAnswer:
    return context.fact(f"oab:{url}", lambda: _ask_oab(context, url))


class KerberosOnly(Exception):
    """The server accepts Kerberos only: no password is sent (it could not work)."""

    def __init__(self, response: requests.Response, methods: list[str]) -> None:
        super().__init__(KERBEROS_ONLY)
        self.response, self.methods = response, methods


def _signed_in_request(
    context: CheckContext, method: str, url: str, **kwargs: object
) -> tuple[requests.Response, list[str], bool]:
    session = context.session()
    response = session.request(method, url, allow_redirects=False, **kwargs)  # type: ignore[arg-type]
    methods = auth_methods(response)
    password = password_for(context, url)
    if response.status_code == 401 and kerberos_only(
        session,
        url,
        methods,
        data=kwargs.get("data"),  # type: ignore[arg-type]
        headers=kwargs.get("headers"),  # type: ignore[arg-type]
    ):
        raise KerberosOnly(response, methods)
    if response.status_code == 401 and password and context.target.mailbox:
        auth = auth_for(methods, context.target.mailbox, password)
        if auth is not None:
            response = session.request(
                method,
                url,
                allow_redirects=False,
                auth=auth,
                **kwargs,  # type: ignore[arg-type]
            )
            return response, methods, True
    return response, methods, False


def _ask_ews(context: CheckContext, url: str) -> UrlAnswer:
    try:
        response, methods, signed_in = _signed_in_request(
            context, "POST", url, data=GET_FOLDER, headers=SOAP_HEADERS
        )
    except KerberosOnly as refused:
        return _kerberos_only(url, "EWS", refused)
    except Exception as exc:
        return UrlAnswer(url, False, _failure(exc, "EWS"))
    status = response.status_code
    answer = UrlAnswer(url, False, "", status, signed_in, methods)
    answer.version = (from_soap(response.content) if status in (200, 500) else None) or (
        from_dotted(response.headers.get("X-OWA-Version"), "X-OWA-Version header")
    )
    exchange_like = [m for m in methods if m.lower() in EXCHANGE_AUTH]
    soap = _soap_result(response.content) if status in (200, 500) else None
    if status == 200 and soap == "Success":
        answer.works = True
        answer.message = (
            f"EWS answers: GetFolder on the calendar of {context.target.mailbox} succeeded."
        )
    elif soap is not None:
        answer.works, answer.warning = True, True
        answer.message = f"EWS answers (HTTP {status}), but the calendar call said {soap}."
    elif status == 401 and signed_in:
        answer.message = "EWS answers, but the mailbox address or password was not accepted."
    elif status == 401 and exchange_like:
        answer.works = True
        answer.message = (
            f"Answers like EWS: it asks for sign-in ({', '.join(exchange_like)}). Enter the "
            "mailbox password to make a real EWS call on the calendar."
        )
    elif status in (301, 302, 303, 307, 308):
        where = urljoin(url, response.headers.get("Location", ""))
        answer.message = f"Not EWS: HTTP {status}, redirected to {where}."
    else:
        kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no type"
        answer.message = f"Not EWS: HTTP {status} ({kind}) instead of a SOAP answer."
    return answer


def _failure(exc: Exception, what: str) -> str:
    """Why no answer could be read; anything else is raised (the runner reports it)."""
    if isinstance(exc, Blocked | ResolveError | BodyTooLarge):
        return str(exc)
    if isinstance(exc, requests.RequestException):
        return describe_error(exc)
    if isinstance(exc, ValueError):  # requests parses a Location even when not following it
        return MALFORMED_ANSWER
    if isinstance(exc, PermissionError):  # requests_ntlm: the NTLM challenge never came
        return f"{what} offers NTLM but never answered the NTLM handshake."
    raise exc


def _kerberos_only(url: str, what: str, refused: KerberosOnly) -> UrlAnswer:
    """Exchange answers, but only Kerberos would sign in: the password is not tried."""
    answer = UrlAnswer(url, True, f"{what} answers as Exchange. {KERBEROS_ONLY}")
    answer.status, answer.auth_methods = refused.response.status_code, refused.methods
    answer.version = from_dotted(
        refused.response.headers.get("X-OWA-Version"), "X-OWA-Version header"
    )
    answer.auth_problem, answer.auth_fix = KERBEROS_ONLY, KERBEROS_FIX
    return answer


def _soap_result(body: bytes) -> str | None:
    """`Success`, or the error code of the GetFolder answer / SOAP fault; None if not SOAP."""
    try:
        root = ElementTree.fromstring(body)
    except Exception:  # defusedxml raises several kinds; all mean "not SOAP"
        return None
    if not root.tag.endswith("}Envelope"):
        return None
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        name = element.tag.rsplit("}", 1)[-1]
        if name.endswith("ResponseMessage") and element.get("ResponseClass") == "Success":
            return "Success"
        if name == "ResponseCode" or name == "faultstring":
            return (element.text or "an error").strip()
    return "an answer without a result"


def _ask_oab(context: CheckContext, url: str) -> UrlAnswer:
    manifest = urljoin(url if url.endswith("/") else url + "/", "oab.xml")
    try:
        response, methods, signed_in = _signed_in_request(context, "GET", manifest)
    except KerberosOnly as refused:
        return _kerberos_only(url, "The offline address book", refused)
    except Exception as exc:
        return UrlAnswer(url, False, _failure(exc, "The offline address book"))
    status = response.status_code
    answer = UrlAnswer(url, False, "", status, signed_in, methods)
    exchange_like = [m for m in methods if m.lower() in EXCHANGE_AUTH]
    if status == 200 and _is_oab_manifest(response.content):
        answer.works = True
        answer.message = f"The offline address book answers: {manifest} lists its files."
    elif status == 401 and signed_in:
        answer.message = "The OAB answers, but the mailbox address or password was not accepted."
    elif status == 401 and exchange_like:
        answer.works = True
        answer.message = (
            f"The OAB answers and asks for sign-in ({', '.join(exchange_like)}), as Exchange "
            "does; with the mailbox password its oab.xml is read too."
        )
    elif status in (403, 404) and signed_in:
        answer.works, answer.warning = True, True
        answer.message = (
            f"Exchange answers at this address (HTTP {status} for oab.xml), but it is not an "
            "address book's own URL: that ends with its id, as Autodiscover reports it "
            "(https://mail.contoso.com/OAB/<id>/)."
        )
    else:
        kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no type"
        answer.message = f"Not an offline address book: {manifest} answered HTTP {status} ({kind})."
    return answer


def _is_oab_manifest(body: bytes) -> bool:
    try:
        root = ElementTree.fromstring(body)
    except Exception:  # defusedxml raises several kinds; all mean "not the manifest"
        return False
    return root.tag.rsplit("}", 1)[-1] == "OAB"
