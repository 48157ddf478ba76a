"""[tls] against real TLS servers started here, one per protocol set-up and certificate kind."""

from __future__ import annotations

import datetime as dt
import ssl
import warnings
from pathlib import Path

import pytest
import trustme

from checksite.checks import tls_check, tls_probe
from checksite.checks.model import Step
from common.netguard import NetGuard
from simulators.platform.server import SimServer
from tests.fixtures.checks import (
    PUBLIC_IP,
    Hostile,
    check_context,
    find_step,
    redirect_app,
    run_check,
)
from tests.fixtures.simulators import Serve

HOST = "tls.test.example"


def probe(hostile: Hostile, serve: Serve, *, tls: str = "modern", cert: str = "valid") -> Step:
    server = serve(redirect_app([]), host=PUBLIC_IP, hostnames=[HOST], tls_profile=tls, cert=cert)
    return tls_probe.probe_host(trusting(hostile), HOST, server.port)


def trusting(hostile: Hostile) -> NetGuard:
    return hostile.guard(ca_bundle=Path(hostile.ca_file))


def outcome(step: Step, version: str) -> Step:
    return find_step([step], f"tls.{HOST}.{version}")


@pytest.mark.parametrize(
    ("profile", "status", "tls12", "tls13", "tls10", "tls11"),
    [
        ("modern", "pass", "pass", "info", "pass", "pass"),
        ("tls12_only", "pass", "pass", "info", "pass", "pass"),
        ("legacy", "warn", "pass", "info", "warn", "warn"),
        ("no_tls12", "fail", "fail", "info", "warn", "warn"),
        ("tls13_only", "fail", "fail", "info", "pass", "pass"),
    ],
)
def test_protocol_versions(
    hostile: Hostile,
    serve: Serve,
    profile: str,
    status: str,
    tls12: str,
    tls13: str,
    tls10: str,
    tls11: str,
) -> None:
    step = probe(hostile, serve, tls=profile)
    assert step.status == status, step.message
    assert outcome(step, "tls1.2").status == tls12
    assert outcome(step, "tls1.3").status == tls13
    assert outcome(step, "tls1.0").status == tls10
    assert outcome(step, "tls1.1").status == tls11
    if profile == "legacy":
        assert "insecure" in outcome(step, "tls1.0").message
        assert "will stop working" in outcome(step, "tls1.0").message
    if profile == "tls13_only":
        assert "TLS 1.2 is not offered" in step.message
    offered = step.details["versions"]
    assert offered["TLS 1.3"] == (
        "refused" if profile in ("tls12_only", "no_tls12") else "accepted"
    )


@pytest.mark.parametrize(
    ("cert", "message"),
    [
        ("expired", "has expired"),
        ("not_yet_valid", "not valid yet"),
        ("wrong_name", f"not issued for {HOST}"),
        ("self_signed", "self-signed"),
        ("unknown_ca", "not trusted"),
    ],
)
def test_certificate_problems_fail(hostile: Hostile, serve: Serve, cert: str, message: str) -> None:
    step = probe(hostile, serve, cert=cert)
    certificate = find_step([step], f"tls.{HOST}.certificate")
    assert certificate.status == "fail"
    assert message in certificate.message
    assert certificate.remediation
    assert step.status == "fail"


def test_valid_certificate_passes_with_its_details(hostile: Hostile, serve: Serve) -> None:
    certificate = find_step([probe(hostile, serve)], f"tls.{HOST}.certificate")
    assert certificate.status == "pass"
    assert HOST in certificate.details["names"]
    assert "Synchronizer demo CA" in certificate.details["issuer"]


def test_a_certificate_expiring_soon_warns(hostile: Hostile, tmp_path: Path) -> None:
    ca = trustme.CA()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    leaf = ca.issue_cert(HOST, not_after=soon)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    ca_file = f"{tmp_path}/ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    server = SimServer(redirect_app([]), PUBLIC_IP, 0, ssl_context=context).start()
    try:
        guard = hostile.guard(ca_bundle=Path(ca_file))
        step = tls_probe.probe_host(guard, HOST, server.port)
    finally:
        server.stop()
    certificate = find_step([step], f"tls.{HOST}.certificate")
    assert certificate.status == "warn"
    assert "expires in 9 days" in certificate.message or "expires in 10 days" in certificate.message


def test_a_probe_that_cannot_run_locally_says_so(
    hostile: Hostile, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client without the @SECLEVEL=0 override (OpenSSL 3's default policy) cannot even offer
    # TLS 1.0: the probe must say so, not claim the server refuses it.
    def default_policy(version: ssl.TLSVersion) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
        return context

    monkeypatch.setattr(tls_probe, "_version_context", default_policy)
    step = probe(hostile, serve, tls="legacy")
    tls10 = outcome(step, "tls1.0")
    assert tls10.status == "info"
    assert "could not be probed from here" in tls10.message
    assert "says nothing about the server" in tls10.message


def test_unreachable_port_fails_with_remediation(hostile: Hostile) -> None:
    step = tls_probe.probe_host(trusting(hostile), HOST, 1)
    assert step.status == "fail"
    assert "Could not connect" in step.message


def test_the_check_probes_the_manual_ews_host(hostile: Hostile, serve: Serve) -> None:
    server = serve(redirect_app([]), host=PUBLIC_IP, hostnames=[HOST], tls_profile="legacy")
    context = check_context(
        trusting(hostile),
        "someone@onprem.test.example",
        ews_url=f"https://{HOST}:{server.port}/EWS/Exchange.asmx",
    )
    result = run_check(tls_check, context)
    assert result.status == "warn"
    assert result.steps[0].title == f"{HOST}:{server.port}"


def test_demo_ca_trusted_only_through_the_guard(hostile: Hostile, serve: Serve) -> None:
    server = serve(redirect_app([]), host=PUBLIC_IP, hostnames=[HOST])
    step = tls_probe.probe_host(hostile.guard(), HOST, server.port)  # no extra CA configured
    assert find_step([step], f"tls.{HOST}.certificate").status == "fail"
