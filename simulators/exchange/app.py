"""The Flask app serving every host of every simulated Exchange organisation, told apart by Host."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from flask import Flask, Response, abort, g, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from simulators.platform.control import install_control
from simulators.world.exchange import ExchangeWorld, demo

from . import autodiscover, ews, web
from .netscaler import LOGIN_PATHS, login_page, needs_login
from .organisation import ROLE_AUTODISCOVER, ROLE_EWS, ROLE_HTTP_REDIRECT, ROLE_WEBSITE, Runtime
from .seed import add_items
from .seed_json import appointment_from_json, contact_from_json
from .soap import SERVER_BUSY_TEXT, fault, server_busy
from .state import export_state
from .store import MailboxUser
from .website import home_page

EWS_PATHS = ("/EWS/Exchange.asmx", "/ews/exchange.asmx", "/EWS/exchange.asmx")
POX_PATHS = ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml")
SOAP_AD_PATHS = ("/autodiscover/autodiscover.svc", "/Autodiscover/Autodiscover.svc")
KNOWN_SETTINGS = {
    "UserDisplayName", "UserDN", "UserDeploymentId", "InternalMailboxServer",
    "InternalRpcClientServer", "InternalMailboxServerDN", "InternalEcpUrl", "InternalEwsUrl",
    "InternalOABUrl", "InternalUMUrl", "InternalWebClientUrls", "MailboxDN",
    "PublicFolderServer", "ActiveDirectoryServer", "ExternalMailboxServer",
    "ExternalMailboxServerRequiresSSL", "ExternalMailboxServerAuthenticationMethods",
    "ExternalEcpUrl", "ExternalEwsUrl", "ExternalOABUrl", "ExternalUMUrl",
    "ExternalWebClientUrls", "CrossOrganizationSharingEnabled", "AlternateMailboxes",
    "CasVersion", "EwsSupportedSchemas", "InternalPop3Connections", "ExternalPop3Connections",
    "InternalImap4Connections", "ExternalImap4Connections", "InternalSmtpConnections",
    "ExternalSmtpConnections", "InternalServerExclusiveConnect", "ExchangeRpcUrl",
    "ExternalServerExclusiveConnect", "ShowGalAsDefaultView", "AutoDiscoverSMTPAddress",
    "InteropExternalEwsUrl", "ExternalEwsVersion", "InteropExternalEwsVersion",
    "MobileMailboxPolicyInterop", "GroupingInformation", "UserMSOnline", "MapiHttpEnabled",
}  # fmt: skip


class ExchangeSimulator:
    """Organisations by domain and hosts by name; the first organisation answers unknown hosts
    (so a test can point a client at 127.0.0.1:port directly)."""

    def __init__(self, world: ExchangeWorld) -> None:
        self.world = world
        self.counter = ews.OperationCounter()
        self.reset()

    def reset(self) -> None:
        self.runtimes = [Runtime.build_for(org) for org in self.world.organisations]
        self.hosts: dict[str, tuple[Runtime, str]] = {}
        for runtime in self.runtimes:
            for name, role in runtime.host_roles().items():
                self.hosts[name] = (runtime, role)

    def route(self, host: str) -> tuple[Runtime, str]:
        name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
        return self.hosts.get(name, (self.runtimes[0], ROLE_EWS))

    def runtime(self, domain: str) -> Runtime:
        return next(r for r in self.runtimes if r.org.domain == domain.lower())


def _authenticate(runtime: Runtime) -> MailboxUser | Response:
    return runtime.auth.authenticate(request, request.host.rsplit(":", 1)[0])


def _error_body(status: int, retry_after: int | None) -> tuple[bytes, str]:
    """Vendor-shaped bodies for injected status faults: EWS answers throttling with a SOAP fault."""
    if request.path.lower().endswith("exchange.asmx") and status in (500, 503):
        back_off = (retry_after or 1) * 1000
        if status == 500:
            return server_busy(back_off), ews.XML
        return fault(
            "ErrorServerBusy", SERVER_BUSY_TEXT, {"BackOffMilliseconds": str(back_off)}
        ), ews.XML
    page = f"<html><head><title>{status}</title></head><body><h1>HTTP Error {status}</h1></body></html>"
    return page.encode(), "text/html"


def create_app(world: ExchangeWorld | None = None) -> Flask:
    app = Flask("simulators.exchange")
    sim = ExchangeSimulator(world or demo())
    app.extensions["exchange_simulator"] = sim
    app.config["SIM_ERROR_BODY"] = _error_body
    app.config["SIM_FAULT_KINDS"] = {"server_busy", "delta_expired"}

    @app.before_request
    def _pick_host() -> BaseResponse | None:
        if request.path.startswith("/_sim/"):
            return None
        g.runtime, g.role = sim.route(request.host)
        if g.role == ROLE_WEBSITE:
            return home_page(g.runtime.org.domain)
        if g.role == ROLE_HTTP_REDIRECT:
            return None
        if g.runtime.org.netscaler and request.path not in LOGIN_PATHS and needs_login(request):
            return redirect(LOGIN_PATHS[0], code=302)
        return None

    @app.after_request
    def _iis_headers(response: Response) -> Response:
        runtime = getattr(g, "runtime", None)
        if runtime is None or g.role in (ROLE_HTTP_REDIRECT, ROLE_WEBSITE):
            return response
        if runtime.org.netscaler and (request.path in LOGIN_PATHS or response.status_code == 302):
            response.headers["Set-Cookie"] = f"NSC_TEMP=xyz{secrets.token_hex(8)}; Path=/; secure"
            return response
        response.headers["Server"] = "Microsoft-IIS/10.0"
        response.headers["X-Powered-By"] = "ASP.NET"
        response.headers["X-OWA-Version"] = runtime.build.dotted
        response.headers["X-FEServer"] = "EX01"
        response.headers["request-id"] = str(uuid.uuid4())
        return response

    for path in LOGIN_PATHS:
        app.add_url_rule(path, f"login{path}", lambda: login_page(), methods=["GET", "POST"])

    @app.route("/autodiscover/autodiscover.<ext>", methods=["GET", "HEAD", "POST"])
    @app.route("/Autodiscover/Autodiscover.<ext>", methods=["GET", "HEAD", "POST"])
    def autodiscover_endpoint(ext: str) -> BaseResponse:
        runtime, role = g.runtime, g.role
        if role == ROLE_HTTP_REDIRECT:
            if request.method != "GET" or ext.lower() not in ("xml", "svc"):
                abort(404)
            return redirect(f"https://{runtime.org.ews_host}{request.path}", code=302)
        if role not in (ROLE_AUTODISCOVER, ROLE_EWS) or ext.lower() not in ("xml", "svc"):
            abort(404)
        user = _authenticate(runtime)
        if isinstance(user, Response):
            return user
        host = request.host.rsplit(":", 1)[0].lower()
        if ext.lower() == "xml":
            return _pox(runtime, host)
        return _soap(runtime, host)

    def _pox(runtime: Runtime, host: str) -> Response:
        email = autodiscover.pox_email(request.get_data()) if request.method == "POST" else None
        if email is None:
            # Exchange answers a GET or a malformed body with a 600 "Invalid Request" document.
            body = autodiscover.pox_error("InvalidRequest")
            return Response(body, content_type="text/xml; charset=utf-8")
        answer = runtime.answer(email, host)
        body = autodiscover.pox_response(answer, runtime.build)
        return Response(body, content_type="text/xml; charset=utf-8")

    def _soap(runtime: Runtime, host: str) -> Response:
        if request.method != "POST":
            return Response(status=405)
        parsed = autodiscover.soap_request(request.get_data())
        if parsed is None:
            return Response(b"Bad request", status=400, content_type="text/html")
        users, settings = parsed
        answers = [runtime.answer(email, host) for email in users]
        body = autodiscover.soap_response(answers, settings, runtime.build, KNOWN_SETTINGS)
        return Response(body, content_type="text/xml; charset=utf-8")

    def ews_endpoint() -> Response:
        runtime, role = g.runtime, g.role
        if role != ROLE_EWS:
            abort(404)
        user = _authenticate(runtime)
        if isinstance(user, Response):
            return user
        if request.method != "POST":
            page = b"<html><head><title>Service</title></head><body>You have created a service.</body></html>"
            return Response(page, content_type="text/html")
        return ews.handle(runtime, user, request.get_data(), sim.counter)

    for path in EWS_PATHS:
        app.add_url_rule(path, f"ews{path}", ews_endpoint, methods=["GET", "HEAD", "POST"])

    web.register(app)

    @app.route("/_sim/state", methods=["GET", "POST"])
    def state() -> Response:
        if request.method == "POST":
            payload = request.get_json(silent=True) or {}
            if payload.get("reset"):
                sim.reset()
            if payload.get("advance_clock"):
                _advance_clock(sim, float(payload["advance_clock"]))
            if payload.get("drop_subscriptions"):
                _drop_subscriptions(sim)
            if payload.get("clear_sent_mail"):
                for runtime in sim.runtimes:
                    with runtime.store.lock:
                        runtime.store.sent_mail.clear()
            for address in payload.get("clear", []):
                _clear_mailbox(sim, address)
            for address, items in payload.get("add", {}).items():
                try:
                    _add_items(sim, address, items)
                except (KeyError, ValueError, TypeError, IndexError, StopIteration) as exc:
                    failed = jsonify({"error": f"{address}: {exc!r}"})
                    failed.status_code = 400
                    return failed
        return jsonify(export_state(sim.runtimes, sim.counter.snapshot()))

    install_control(app, "exchange")
    return app


def _add_items(sim: ExchangeSimulator, address: str, items: dict[str, Any]) -> None:
    runtime = sim.runtime(address.split("@")[-1])
    runtime.store.user(address)
    appointments = [appointment_from_json(a) for a in items.get("appointments", [])]
    contacts = [contact_from_json(c) for c in items.get("contacts", [])]
    with runtime.store.lock:
        add_items(runtime.store, runtime.operations, address.lower(), appointments, contacts)


def _advance_clock(sim: ExchangeSimulator, seconds: float) -> None:
    """Moves every server's clock (subscription timeouts, streaming connection lifetimes)."""
    for runtime in sim.runtimes:
        with runtime.store.changed:
            runtime.store.clock_offset += seconds
            runtime.store.changed.notify_all()


def _drop_subscriptions(sim: ExchangeSimulator) -> None:
    """What a restart of the EWS process does: every subscription is gone (open streams close)."""
    for runtime in sim.runtimes:
        with runtime.store.changed:
            runtime.operations.subscriptions.clear()
            runtime.store.changed.notify_all()


def _clear_mailbox(sim: ExchangeSimulator, address: str) -> None:
    domain = address.split("@")[-1]
    runtime = sim.runtime(domain)
    with runtime.store.lock:
        for item in list(runtime.store.items.values()):
            if item.mailbox == address.lower() and item.master_id is None:
                runtime.store.delete(item)
