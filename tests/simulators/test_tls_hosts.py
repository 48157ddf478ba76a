"""The TLS set-ups a simulated host can have, probed the way the Check site will probe them:
with Python's ssl on this machine's OpenSSL 3 (TLS 1.0/1.1 need `DEFAULT:@SECLEVEL=0`)."""

from __future__ import annotations

import socket
import ssl
import warnings

import flask
import pytest
import requests

from simulators.platform.addresses import AddressPool
from simulators.platform.ca import TLS_PROFILES, WRONG_NAME, DemoCA
from simulators.platform.hosts import SimHost
from simulators.platform.server import SimServer

V = ssl.TLSVersion
ALL_VERSIONS = (V.TLSv1, V.TLSv1_1, V.TLSv1_2, V.TLSv1_3)
ACCEPTED = {
    "modern": {V.TLSv1_2, V.TLSv1_3},
    "legacy": {V.TLSv1, V.TLSv1_1, V.TLSv1_2, V.TLSv1_3},
    "no_tls12": {V.TLSv1, V.TLSv1_1},
    "tls10_only": {V.TLSv1},
    "tls12_only": {V.TLSv1_2},
    "tls13_only": {V.TLSv1_3},
}
NAMES = {V.TLSv1: "TLSv1", V.TLSv1_1: "TLSv1.1", V.TLSv1_2: "TLSv1.2", V.TLSv1_3: "TLSv1.3"}
HOST = "mail.tls-test.example"


def hello_app() -> flask.Flask:
    app = flask.Flask(__name__)
    app.add_url_rule("/", "hello", lambda: "hello")
    return app


def probe(address: str, port: int, version: ssl.TLSVersion) -> str:
    """'accepted <version>' or 'refused <reason>'; the certificate is checked separately."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if version < V.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    try:
        with (
            socket.create_connection((address, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            return f"accepted {tls.version()}"
    except ssl.SSLError as exc:
        return f"refused {exc.reason}"
    except (ConnectionResetError, ssl.SSLEOFError):
        return "refused reset"


def verify(ca: DemoCA, address: str, port: int, hostname: str = HOST) -> str:
    """'ok' or the verification error, as a client trusting only the demo CA sees it."""
    context = ssl.create_default_context(cafile=ca.ca_file)
    try:
        with (
            socket.create_connection((address, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=hostname),
        ):
            return "ok"
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> DemoCA:
    return DemoCA(tmp_path_factory.mktemp("tls-ca"))


@pytest.fixture(scope="module")
def pool() -> AddressPool:
    return AddressPool()


@pytest.mark.parametrize("profile", sorted(TLS_PROFILES))
def test_each_tls_profile_accepts_exactly_its_protocol_versions(
    ca: DemoCA, pool: AddressPool, profile: str
) -> None:
    address = pool.allocate(f"{profile}.tls-test.example")
    context = ca.server_context([HOST, address], tls=profile)
    with SimServer(hello_app(), address, 443, context):
        results = {version: probe(address, 443, version) for version in ALL_VERSIONS}
    for version, result in results.items():
        if version in ACCEPTED[profile]:
            assert result == f"accepted {NAMES[version]}"
        else:
            assert result.startswith("refused"), (version, result)


def test_a_default_client_cannot_even_offer_tls10_here(ca: DemoCA) -> None:
    """The trap the Check site must report as 'probe could not run', not 'server refuses'."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = V.TLSv1
    server_context = ca.server_context(["127.0.0.1"], tls="legacy")
    with (
        SimServer(hello_app(), ssl_context=server_context) as server,
        socket.create_connection((server.host, server.port), timeout=5) as raw,
        pytest.raises(ssl.SSLError) as failure,
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert failure.value.reason in {"NO_CIPHERS_AVAILABLE", "NO_PROTOCOLS_AVAILABLE"}


@pytest.mark.parametrize(
    ("cert", "expected"),
    [
        ("valid", "ok"),
        ("expired", "certificate has expired"),
        ("not_yet_valid", "certificate is not yet valid"),
        ("wrong_name", f"Hostname mismatch, certificate is not valid for '{HOST}'."),
        ("self_signed", "self-signed certificate"),
        ("unknown_ca", "unable to get local issuer certificate"),
    ],
)
def test_each_certificate_kind_fails_verification_the_way_a_real_one_would(
    ca: DemoCA, pool: AddressPool, cert: str, expected: str
) -> None:
    address = pool.allocate(f"{cert}.tls-test.example")
    with SimServer(hello_app(), address, 443, ca.server_context([HOST, address], cert=cert)):
        assert verify(ca, address, 443) == expected


def test_wrong_name_certificate_is_for_another_name(ca: DemoCA) -> None:
    with SimServer(hello_app(), ssl_context=ca.server_context([HOST], cert="wrong_name")) as server:
        assert verify(ca, server.host, server.port, hostname=WRONG_NAME) == "ok"


def test_sim_host_rejects_unknown_set_ups() -> None:
    with pytest.raises(ValueError, match="TLS profile"):
        SimHost("x.example", tls="tls09")
    with pytest.raises(ValueError, match="certificate kind"):
        SimHost("x.example", cert="forged")


def test_https_and_plain_http_on_a_hosts_real_ports(ca: DemoCA, pool: AddressPool) -> None:
    """Per-host loopback addresses let a simulated host use 443 and 80 (we run as root)."""
    address = pool.allocate("www.tls-test.example")
    app = hello_app()
    session = requests.Session()
    session.trust_env = False
    with (
        SimServer(app, address, 443, ca.server_context([address])),
        SimServer(app, address, 80),
    ):
        assert session.get(f"https://{address}/", verify=ca.ca_file).text == "hello"
        assert session.get(f"http://{address}/").text == "hello"
