"""Exchange Online's Autodiscover v2 (outlook.office365.com), which answers without sign-in:
`GET /autodiscover/autodiscover.json/v1.0/{address}?Protocol=EWS` gives the EWS URL of a
mailbox in Exchange Online; a hybrid's mailbox still on-premises gets a 302 to the on-premises
Autodiscover (see the README for Microsoft's text)."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from simulators.world.microsoft import MicrosoftWorld

bp = Blueprint("autodiscover_v2", __name__)
PATHS = {  # what each protocol's URL ends with
    "ews": "/EWS/Exchange.asmx",
    "autodiscoverv1": "/autodiscover/autodiscover.xml",
    "rest": "/api",
    "activesync": "/Microsoft-Server-ActiveSync",
}
PROTOCOL_NAMES = {"ews": "EWS", "autodiscoverv1": "AutodiscoverV1", "rest": "Rest"}
PROTOCOL_NAMES["activesync"] = "ActiveSync"


@bp.get("/autodiscover/autodiscover.json/v1.0/<address>")
@bp.get("/Autodiscover/Autodiscover.json/v1.0/<address>")
def autodiscover_json(address: str) -> Response:
    protocol = request.args.get("Protocol", "")
    if protocol.lower() not in PATHS:
        response = jsonify(
            {
                "ErrorCode": "InvalidProtocol",
                "ErrorMessage": f"The given protocol value '{protocol}' is invalid. Supported "
                "values are 'Rest,ActiveSync,Ews,AutodiscoverV1'",
            }
        )
        response.status_code = 400
        return response
    world: MicrosoftWorld = current_app.extensions["microsoft_world"]
    tenant = world.tenant_of_user(address)
    user = tenant.user(address) if tenant is not None else None
    if tenant is None or user is None:
        # Exchange Online sends an address it does not know elsewhere instead of saying so.
        return redirect(  # type: ignore[return-value]
            f"https://autodiscover-s.outlook.com/autodiscover/autodiscover.json/v1.0/{address}"
            f"?Protocol={protocol}",
            code=302,
        )
    if user.onpremises_mailbox and tenant.onpremises_autodiscover_url:
        # Not a URL of the on-premises Exchange: Exchange Online hands the client on to the
        # on-premises Autodiscover, which then answers for its own mailbox.
        query = urlencode({"Email": address, "Protocol": protocol, "RedirectCount": 1})
        return redirect(  # type: ignore[return-value]
            f"{tenant.onpremises_autodiscover_url}?{query}", code=302
        )
    url = request.host_url.rstrip("/") + PATHS[protocol.lower()]
    return jsonify({"Protocol": PROTOCOL_NAMES[protocol.lower()], "Url": url})
