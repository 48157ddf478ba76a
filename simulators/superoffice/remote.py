"""The SOAP endpoints' address only: `GET /{tenant}/Remote/Services88/{Service}.svc` answers like a
WCF service page, so reachability probes (Synchronizer's Onsite connection uses Services88) have
something real to find. SOAP calls themselves are not simulated."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from markupsafe import escape

bp = Blueprint("so_remote", __name__)

SERVICES = {"SoPrincipal", "Appointment", "Person", "Contact", "Associate", "User", "List"}

_PAGE = """<!doctype html><html><head><title>{name} Service</title></head><body>
<h1>{name} Service</h1><p>You have created a service.</p>
<p>To test this service, you will need to create a client and use it to call the service:
<code>svcutil.exe {url}?wsdl</code></p></body></html>"""


@bp.get("/<tenant_id>/Remote/Services88/<service>.svc")
def service_page(tenant_id: str, service: str) -> Response:
    data = current_app.extensions["superoffice"].tenant(tenant_id)
    if data is None or service not in SERVICES:
        return Response("<h1>404 - Not Found</h1>", status=404, mimetype="text/html")
    url = f"/{data.context_id}/Remote/Services88/{service}.svc"
    return Response(_PAGE.format(name=escape(service), url=escape(url)), mimetype="text/html")
