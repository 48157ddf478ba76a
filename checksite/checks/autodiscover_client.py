"""Talking to an Autodiscover endpoint (POX, MS-OXDISCO) through the guarded session, keeping
the evidence a person needs: addresses, HTTP status, authentication methods offered."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

import requests
from defusedxml import ElementTree
from requests.auth import HTTPBasicAuth

from checksite.checks.channel_binding import ChannelBoundNtlmAuth
from checksite.checks.exchange_auth import KERBEROS_FIX, KERBEROS_ONLY, kerberos_only, usable
from checksite.checks.tls_words import (
    HANDSHAKE_FAILED,
    HANDSHAKE_TIMEOUT,
    describe_ssl_error,
    find_ssl_error,
    handshake_timed_out,
)
from common.http import BodyTooLarge
from common.netguard import Blocked, DeadlineExceeded, ResolveError

POX_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{email}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""
EXCHANGE_AUTH = ("negotiate", "ntlm", "basic", "bearer", "kerberos")
MALFORMED_ANSWER = (
    "The answer could not be read: a header is malformed (a redirect to an address that is not "
    "valid, say)."
)
_LOGIN_PAGE = re.compile(rb"<form|logon|login", re.IGNORECASE)


@dataclass
class PoxAnswer:
    action: str = ""  # settings | redirectAddr | redirectUrl | error
    ews_url: str | None = None
    oab_url: str | None = None
    server_version: str | None = None  # the EXCH protocol's ServerVersion (hex)
    redirect: str | None = None
    error: str | None = None


@dataclass
class Exchange:
    """One HTTP exchange with an Autodiscover URL, and what it means."""

    url: str
    outcome: str  # settings | found | redirect | login_page | failed
    message: str
    status: int | None = None
    auth_methods: list[str] = field(default_factory=list)
    location: str | None = None
    answer: PoxAnswer | None = None
    owa_version: str | None = None
    elapsed_ms: int = 0
    addresses: list[str] = field(default_factory=list)
    stage: str = ""  # where it failed without an answer: dns | tcp | tls | http
    auth_problem: str = ""  # why Synchronizer cannot sign in here, whatever the password
    auth_fix: str = ""
    password_refused: bool = False  # Exchange answered, but not to this password

    def details(self) -> dict[str, object]:
        data: dict[str, object] = {"url": self.url, "http_status": self.status}
        if self.addresses:
            data["dns"] = self.addresses
        if self.auth_methods:
            data["authentication_methods"] = self.auth_methods
        if self.location:
            data["location"] = self.location
        if self.owa_version:
            data["x_owa_version"] = self.owa_version
        if self.answer is not None:
            data["action"] = self.answer.action
        return data


def post_pox(
    session: requests.Session,
    url: str,
    email: str,
    password: str | None,
    username: str | None = None,
) -> Exchange:
    """POST the Outlook request for `email`; sign in (Basic, else NTLM) as `username` (the
    mailbox whose password it is, which stays the same across redirectAddr) when given one."""
    body = POX_REQUEST.format(email=_xml_text(email)).encode()
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    signed_in = False
    try:
        response = session.post(url, data=body, headers=headers, allow_redirects=False)
        methods = auth_methods(response)
        if response.status_code == 401 and kerberos_only(
            session, url, methods, data=body, headers=headers
        ):
            return _kerberos_only(url, response, methods)
        if response.status_code == 401 and password:
            auth = auth_for(methods, username or email, password)
            if auth is not None:
                signed_in = True
                response = session.post(
                    url, data=body, headers=headers, allow_redirects=False, auth=auth
                )
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        return Exchange(url, "failed", str(exc), stage=failure_stage(exc))
    except DeadlineExceeded:
        raise
    except requests.RequestException as exc:
        return Exchange(url, "failed", describe_error(exc), stage=failure_stage(exc))
    except ValueError:  # requests parses a Location even when it does not follow it
        return Exchange(url, "failed", MALFORMED_ANSWER, stage="http")
    except PermissionError:  # requests_ntlm: the server never sent its NTLM challenge
        exchange = Exchange(url, "found", "", 401, methods)
        exchange.message = "It offers NTLM but never answered the NTLM handshake."
        exchange.auth_problem = exchange.message
        return exchange
    return interpret(url, response, methods, signed_in=signed_in, password=bool(password))


def _kerberos_only(url: str, response: requests.Response, methods: list[str]) -> Exchange:
    owa = response.headers.get("X-OWA-Version")
    exchange = Exchange(url, "found", "", 401, methods, owa_version=owa)
    exchange.message = f"Answers 401 and offers {', '.join(methods)}: an Exchange endpoint. "
    exchange.message += KERBEROS_ONLY
    exchange.auth_problem = KERBEROS_ONLY
    exchange.auth_fix = KERBEROS_FIX
    return exchange


def get_url(session: requests.Session, url: str) -> Exchange:
    """A GET without following redirects (the HTTP-redirect method)."""
    try:
        response = session.get(url, allow_redirects=False)
    except (Blocked, ResolveError, BodyTooLarge) as exc:
        return Exchange(url, "failed", str(exc), stage=failure_stage(exc))
    except requests.RequestException as exc:
        return Exchange(url, "failed", describe_error(exc), stage=failure_stage(exc))
    except ValueError:
        return Exchange(url, "failed", MALFORMED_ANSWER, stage="http")
    return interpret(url, response, auth_methods(response), signed_in=False)


def interpret(
    url: str,
    response: requests.Response,
    methods: list[str],
    *,
    signed_in: bool,
    password: bool = False,
) -> Exchange:
    """What one answer means. `signed_in`: the password was sent with this request;
    `password`: a password was given (but may not have been usable here)."""
    status = response.status_code
    owa = response.headers.get("X-OWA-Version")
    base = Exchange(url, "failed", "", status, methods, owa_version=owa)
    if status in (301, 302, 303, 307, 308):
        location = response.headers.get("Location", "")
        try:
            base.location = requests.compat.urljoin(url, location)
            urlsplit(base.location).port  # noqa: B018 (raises for a port out of range)
        except ValueError:
            base.location = None
            base.message = f"HTTP {status}, redirected to {location!r}: not a valid address."
            return base
        if _looks_like_gateway(base.location):
            base.outcome = "login_page"
            base.message = f"Redirected to a sign-in page ({base.location})."
            return base
        base.outcome = "redirect"
        base.message = f"HTTP {status}, redirected to {base.location}."
        return base
    if status == 401:
        exchange_like = [m for m in methods if m.lower() in EXCHANGE_AUTH]
        if signed_in and exchange_like:  # found: the password is what is wrong, not the set-up
            base.outcome, base.password_refused = "found", True
            base.message = (
                f"Answers 401 and offers {', '.join(exchange_like)}: an Exchange Autodiscover "
                "endpoint, but the mailbox address or password was not accepted."
            )
        elif signed_in:
            base.message = "The mailbox address or password was not accepted (HTTP 401)."
        elif not exchange_like:
            offered = f"it offers {', '.join(methods)}" if methods else "it names no method"
            base.message = (
                f"HTTP 401, but not the way Exchange asks for sign-in ({offered}; Exchange "
                "offers NTLM, Negotiate or Basic): not an Exchange Autodiscover endpoint."
            )
        else:
            base.outcome = "found"
            base.message = (
                f"Answers 401 and offers {', '.join(exchange_like)}: an Exchange Autodiscover "
                "endpoint"
            )
            if not usable(methods):
                base.auth_problem = (
                    f"It offers only {', '.join(exchange_like)}: Synchronizer signs in to "
                    "Exchange Server with NTLM or Basic, which this server does not accept."
                )
                base.message += f". {base.auth_problem}"
            elif password:
                base.message += "."
            else:
                base.message += " (sign in with a password to read the settings)."
        return base
    if status == 200:
        answer = parse_pox(response.content)
        if answer.action:
            base.answer = answer
        if answer.action == "settings":
            base.outcome = "settings"
            base.message = f"Settings received: EWS at {answer.ews_url}."
        elif answer.action in ("redirectAddr", "redirectUrl"):
            base.outcome = "redirect"
            base.message = f"Autodiscover says {answer.action} to {answer.redirect}."
        elif answer.action == "error":
            base.message = f"Autodiscover answered with an error: {answer.error}."
        elif _LOGIN_PAGE.search(response.content[:8192]):
            # Whose sign-in page it is (a gateway before the mail host, or the company's own
            # website) depends on the host; the caller decides.
            base.outcome = "login_page"
            base.message = "Answered with an HTML sign-in page instead of Autodiscover XML."
        else:
            kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no type"
            base.message = f"HTTP 200, but not an Autodiscover answer ({kind})."
        return base
    base.message = f"HTTP {status}."
    return base


def auth_methods(response: requests.Response) -> list[str]:
    raw = response.raw.headers.getlist("WWW-Authenticate") if response.raw else []
    return [value.split(" ", 1)[0] for value in raw if value]


def auth_for(methods: list[str], email: str, password: str) -> requests.auth.AuthBase | None:
    lowered = [m.lower() for m in methods]
    if "basic" in lowered:
        return HTTPBasicAuth(email, password)
    if "ntlm" in lowered or "negotiate" in lowered:
        # Bound to the server's certificate when the session keeps it (`binding_session`).
        return ChannelBoundNtlmAuth(email, password)
    return None


def parse_pox(body: bytes) -> PoxAnswer:
    try:
        root = ElementTree.fromstring(body)
    except Exception:  # defusedxml raises several kinds; all mean "not an answer"
        return PoxAnswer()
    error = _find(root, "Error")
    if error is not None:
        return PoxAnswer("error", error=(_text(error, "Message") or "unknown error"))
    account = _find(root, "Account")
    if account is None:
        return PoxAnswer()
    action = _text(account, "Action") or ""
    if action == "redirectAddr":
        return PoxAnswer(action, redirect=_text(account, "RedirectAddr"))
    if action == "redirectUrl":
        return PoxAnswer(action, redirect=_text(account, "RedirectUrl"))
    protocols = {(_text(p, "Type") or ""): p for p in _children(account, "Protocol")}
    chosen = protocols.get("EXPR") or protocols.get("EXCH")
    exch = protocols.get("EXCH")
    return PoxAnswer(
        "settings",
        ews_url=_text(chosen, "EwsUrl") if chosen is not None else None,
        oab_url=_text(chosen, "OABUrl") if chosen is not None else None,
        server_version=_text(exch, "ServerVersion") if exch is not None else None,
    )


def describe_error(exc: requests.RequestException) -> str:
    """What went wrong on the wire, in words (DNS, TCP, TLS or HTTP)."""
    text = str(exc)
    url = exc.request.url if exc.request is not None else None
    host = urlsplit(url or "").hostname or ""
    tls_error = find_ssl_error(exc)
    if isinstance(exc, requests.exceptions.SSLError) or tls_error is not None:
        words = describe_ssl_error(tls_error, host) if tls_error is not None else HANDSHAKE_FAILED
        return f"TLS failed: {words}"
    if handshake_timed_out(exc):
        return f"TLS failed: {HANDSHAKE_TIMEOUT}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "TCP connection timed out (a firewall may drop it)."
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "Connected, but the server did not answer in time."
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return "Too many redirects."
    if isinstance(exc, requests.exceptions.ConnectionError):
        if "refused" in text.lower():
            return "TCP connection refused (nothing listens on that port)."
        return "The connection failed or was closed without an answer."
    return text


def failure_stage(exc: Exception) -> str:
    """Where a request that got no answer failed: dns, tcp, tls or http."""
    if isinstance(exc, (Blocked, ResolveError)):
        return "dns"
    if find_ssl_error(exc) is not None or handshake_timed_out(exc):
        return "tls"
    if isinstance(exc, (BodyTooLarge, requests.exceptions.ReadTimeout)):
        return "http"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "tcp" if "refused" in str(exc).lower() or "timed out" in str(exc) else "http"
    return "http"


def _looks_like_gateway(location: str) -> bool:
    lowered = location.lower()
    return any(p in lowered for p in ("logonpoint", "/vpn/", "/cgi/login", "/my.policy", "/adfs/"))


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(root: Element, name: str) -> Element | None:
    for element in root.iter():
        if _local(element.tag) == name:
            return element
    return None


def _children(parent: Element, name: str) -> list[Element]:
    return [child for child in parent if _local(child.tag) == name]


def _text(parent: Element | None, name: str) -> str | None:
    if parent is None:
        return None
    for child in parent:
        if _local(child.tag) == name:
            return (child.text or "").strip() or None
    return None
