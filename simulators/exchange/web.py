"""The other things an Exchange CAS answers that a checker looks at: the OWA sign-in page,
Autodiscover v2 (`autodiscover.json`, Exchange 2016 and later) and the offline address book
(`/OAB/<id>/oab.xml`, the manifest of MS-OXWOAB, behind the same sign-in as EWS)."""

from __future__ import annotations

import uuid

from flask import Flask, Response, abort, g, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from .organisation import ROLE_AUTODISCOVER, ROLE_EWS

OWA_LOGON = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Outlook</title></head>
<body><form action="/owa/auth.owa" method="POST" name="logonForm" autocomplete="off">
<input type="hidden" name="destination" value="/owa/">
<label for="username">Domain\\user name:</label><input id="username" name="username" type="text">
<label for="password">Password:</label><input id="password" name="password" type="password">
<div class="signinbutton" role="button">sign in</div>
</form></body></html>
"""


OAB_MANIFEST = """<?xml version="1.0" encoding="UTF-8"?>
<OAB><OAL id="{id}" dn="/" name="\\Default Global Address List">
<Full seq="1" ver="32" size="2048" uncompressedsize="8192" SHA="{sha}">{id}-data-1.lzx</Full>
</OAL></OAB>
"""


def oab_id(ews_host: str) -> str:
    """The id of an organisation's offline address book (also in Autodiscover's OABUrl)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, ews_host))


def register(app: Flask) -> None:
    @app.route("/OAB/", methods=["GET", "HEAD"])
    @app.route("/OAB/<path:rest>", methods=["GET", "HEAD"])
    def oab(rest: str = "") -> Response:
        runtime = g.runtime
        if g.role != ROLE_EWS:
            abort(404)
        user = runtime.auth.authenticate(request, request.host.rsplit(":", 1)[0])
        if isinstance(user, Response):
            return user
        book = oab_id(runtime.org.ews_host)
        if rest.lower() == f"{book}/oab.xml":
            body = OAB_MANIFEST.format(id=book, sha="0" * 40)
            return Response(body, content_type="text/xml")
        if rest in ("", f"{book}/"):
            return Response(b"Directory listing denied", status=403, content_type="text/html")
        abort(404)

    @app.route("/owa/")
    @app.route("/owa")
    def owa() -> BaseResponse:
        return redirect("/owa/auth/logon.aspx?replaceCurrent=1&url=%2fowa%2f", code=302)

    @app.route("/owa/auth/logon.aspx")
    def owa_logon() -> Response:
        if g.role != ROLE_EWS:
            abort(404)
        return Response(OWA_LOGON, content_type="text/html; charset=utf-8")

    @app.route("/autodiscover/autodiscover.json/v1.0/<address>")
    @app.route("/Autodiscover/Autodiscover.json/v1.0/<address>")
    def autodiscover_v2(address: str) -> Response:
        runtime = g.runtime
        # Autodiscover v2 is unauthenticated and arrived with Exchange 2016.
        if g.role not in (ROLE_EWS, ROLE_AUTODISCOVER) or runtime.org.version == "2013":
            abort(404)
        protocol = request.args.get("Protocol", "")
        if protocol.lower() != "ews":
            message = f"The given protocol value '{protocol}' is invalid."
            response = jsonify({"ErrorCode": "InvalidProtocol", "ErrorMessage": message})
            response.status_code = 400
            return response
        if address.rpartition("@")[2].lower() != runtime.org.domain:
            abort(404)
        return jsonify({"Protocol": "EWS", "Url": runtime.org.ews_url})
