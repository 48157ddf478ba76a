"""Every server answer leads to a verdict with its cause, never "the check stopped
unexpectedly": a 401 without NTLM/Negotiate, Kerberos only, malformed, huge or hostile XML,
non-numeric versions, wrong content types, broken redirects and ports. One Autodiscover host
answers each way, chosen by the mailbox asked for; the whole report runs through the CLI."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, Response, request

from checksite.cli import main
from simulators.dns import DnsServer
from simulators.platform.addresses import AddressPool

HOST = "autodiscover.weird.example"
POX = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


def settings(ews_url: str, server_version: str = "73C18880") -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{POX}"><Response xmlns="{OUTLOOK}"><Account><AccountType>email</AccountType>
<Action>settings</Action><Protocol><Type>EXCH</Type><Server>{HOST}</Server>
<ServerVersion>{server_version}</ServerVersion><EwsUrl>{ews_url}</EwsUrl>
<OABUrl>https://{HOST}/OAB/</OABUrl></Protocol></Account></Response></Autodiscover>""".encode()


BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Autodiscover>&lol3;</Autodiscover>"""

NON_NUMERIC_SOAP = b"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>
<h:ServerVersionInfo MajorVersion="fifteen" MinorVersion="two" MajorBuildNumber="x"
 xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"/></s:Header>
<s:Body/></s:Envelope>"""


def autodiscover_answer(mode: str) -> Response:
    """The answer of the mode named by the mailbox's local part."""
    xml = "text/xml; charset=utf-8"
    answers: dict[str, Callable[[], Response]] = {
        "noauth": lambda: Response(b"denied", 401),
        "bearer": lambda: Response(
            b"", 401, headers={"WWW-Authenticate": 'Bearer authorization_uri="https://x"'}
        ),
        "kerberos": lambda: Response(b"", 401, headers={"WWW-Authenticate": "Negotiate"}),
        "malformed": lambda: Response(b"<Autodiscover><Response><Account>", 200, mimetype=xml),
        "huge": lambda: Response(b"<a>" + b"x" * 3_000_000 + b"</a>", 200, mimetype=xml),
        "entities": lambda: Response(BILLION_LAUGHS, 200, mimetype=xml),
        "deep": lambda: Response(b"<a>" * 50_000 + b"</a>" * 50_000, 200, mimetype=xml),
        "json": lambda: Response(b'{"Autodiscover": true}', 200, mimetype="application/json"),
        "binary": lambda: Response(bytes(range(256)) * 40, 200, mimetype="image/png"),
        "nonnumeric": lambda: Response(
            settings(f"https://{HOST}/EWS/nonnumeric/Exchange.asmx", "zzzz"),
            200,
            mimetype=xml,
            headers={"X-OWA-Version": "fifteen.two"},
        ),
        "badport": lambda: Response(
            settings(f"https://{HOST}:99999/EWS/Exchange.asmx"), 200, mimetype=xml
        ),
        "oddstatus": lambda: Response(b"", 299),
        "ewsredirect": lambda: Response(
            settings(f"https://{HOST}/EWS/badlocation/Exchange.asmx"), 200, mimetype=xml
        ),
    }
    return answers[mode]()


def weird_exchange() -> Flask:
    app = Flask("weird-exchange")

    @app.post("/autodiscover/autodiscover.xml")
    def autodiscover() -> Response:
        found = re.search(rb"<EMailAddress>([a-z]+)@", request.get_data())
        if found is None:
            return Response(b"", 400)
        if found.group(1).decode() == "kerberos" and request.headers.get("Authorization"):
            return Response(b"", 401, headers={"WWW-Authenticate": "Negotiate"})  # no NTLM
        return autodiscover_answer(found.group(1).decode())

    # A SuperOffice site (the address a person types) answering with the wrong types.
    @app.get("/api/state/Cust11111")
    def tenant_state() -> Response:
        return Response(
            json.dumps({"State": "Running", "Endpoint": 42}), mimetype="application/json"
        )

    @app.get("/Weird/api")
    def superoffice_api() -> Response:
        body = {"v1": "x", "NetServerVersion": ["10"]}
        return Response(json.dumps(body), mimetype="application/json")

    @app.get("/Weird/api/v1/User/currentPrincipal")
    def principal() -> Response:
        body = {"RoleName": 5, "FunctionRights": 7}
        return Response(json.dumps(body), mimetype="application/json")

    plain_wsgi = app.wsgi_app

    def raw_redirect(environ: dict[str, Any], start_response: Any) -> Any:
        # A Location werkzeug would not send as it is: written by hand.
        ews = environ.get("PATH_INFO") == "/EWS/badlocation/Exchange.asmx"
        if ews or b"badlocation@" in _peek_body(environ):
            start_response("302 Found", [("Location", "https://[bad"), ("Content-Length", "0")])
            return [b""]
        return plain_wsgi(environ, start_response)

    app.wsgi_app = raw_redirect  # type: ignore[method-assign]

    @app.post("/EWS/nonnumeric/Exchange.asmx")
    def ews() -> Response:
        return Response(
            NON_NUMERIC_SOAP,
            200,
            mimetype="text/xml",
            headers={"X-OWA-Version": "fifteen.two"},
        )

    return app


def _peek_body(environ: dict[str, Any]) -> bytes:
    """The request body, left readable for the app."""
    import io

    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


@pytest.fixture(scope="module")
def weird_world(demo_ca: Any, sim_addresses: AddressPool) -> Iterator[tuple[DnsServer, str]]:
    from simulators.platform.server import SimServer

    address = sim_addresses.allocate()
    context = demo_ca.server_context([HOST])
    server = SimServer(weird_exchange(), address, 443, ssl_context=context).start()
    records = [("weird.example", "MX", f"10 {HOST}."), (HOST, "A", address)]
    dns = DnsServer(records).start()
    try:
        yield dns, demo_ca.ca_file
    finally:
        server.stop()
        dns.stop()


# mode: (check id, a piece of the plain-words cause the report must give)
EXPECTED = {
    "noauth": ("autodiscover", "not the way Exchange asks for sign-in"),
    "bearer": ("autodiscover", "Synchronizer signs in to Exchange Server with NTLM or Basic"),
    "kerberos": ("autodiscover", "accepts Kerberos only"),
    "malformed": ("autodiscover", "not an Autodiscover answer (text/xml"),
    "huge": ("autodiscover", "more than the 2097152 allowed"),
    "entities": ("autodiscover", "not an Autodiscover answer"),
    "deep": ("autodiscover", "not an Autodiscover answer"),
    "json": ("autodiscover", "not an Autodiscover answer (application/json)"),
    "binary": ("autodiscover", "not an Autodiscover answer (image/png)"),
    "nonnumeric": ("exchange_version", "could not be determined"),
    "badlocation": ("autodiscover", "a redirect to an address that is not valid"),
    "badport": ("autodiscover", "is not a valid address"),
    "oddstatus": ("autodiscover", "HTTP 299"),
    "ewsredirect": ("exchange_version", "a redirect to an address that is not valid"),
}


def all_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for step in steps:
        yield step
        yield from all_steps(step["children"])


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_each_answer_is_a_step_with_its_cause(
    weird_world: tuple[DnsServer, str], tmp_path: Path, mode: str
) -> None:
    dns, ca_file = weird_world
    args = ["check", f"{mode}@weird.example", "--json", "--password-stdin"]
    args += ["--allow-private-networks", "--dns-server", dns.address, "--ca-bundle", ca_file]
    env = {"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path), **{k: "" for k in ()}}
    result = CliRunner().invoke(main, args, input="Secret-1\n", env=env)
    report = json.loads(result.output)
    steps = {c["id"]: list(all_steps(c["steps"])) for c in report["checks"]}
    crashed = [s for found in steps.values() for s in found if s["id"].endswith(".error")]
    assert [s["message"] for s in crashed] == []  # never "the check stopped unexpectedly"
    check_id, cause = EXPECTED[mode]
    texts = " ".join(s["message"] for s in steps[check_id])
    assert cause in texts, texts
    assert not any(c["timed_out"] for c in report["checks"])
    assert "Traceback" not in result.output and os.sep + "site-packages" not in texts


@pytest.mark.parametrize(
    ("path", "user", "cause"),
    [
        ("Cust11111", None, "could not be reached"),  # its tenant's Endpoint is a number
        ("Weird", "admin", "has the role 5"),  # a role that is a number, rights that are not a list
    ],
)
def test_a_superoffice_site_answering_with_wrong_types_gets_a_verdict(
    weird_world: tuple[DnsServer, str], tmp_path: Path, path: str, user: str | None, cause: str
) -> None:
    dns, ca_file = weird_world
    args = ["check", "weird.example", "--json", "--only", "superoffice"]
    args += ["--superoffice-url", f"https://{HOST}/{path}"]
    args += ["--allow-private-networks", "--dns-server", dns.address, "--ca-bundle", ca_file]
    if user:
        args += ["--superoffice-user", user]
    result = CliRunner().invoke(
        main, args, input="Secret-1\n", env={"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path)}
    )
    (check,) = json.loads(result.output)["checks"]
    steps = list(all_steps(check["steps"]))
    assert [s["message"] for s in steps if s["id"].endswith(".error")] == []
    assert cause in " ".join(s["message"] for s in steps)
