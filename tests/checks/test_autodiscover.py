"""[autodiscover] against the Exchange simulator's real HTTP(S) hosts and a real DNS server:
every method, redirects, loops, a pre-authentication gateway, and the manual URLs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from flask import Flask, Response

from checksite.checks import autodiscover, unsupported
from checksite.checks.fix_first import fix_first
from checksite.checks.registry import select
from checksite.checks.runner import run_checks
from common.netguard import GuardPolicy, NetGuard
from simulators.dns import DnsServer
from simulators.exchange.autodiscover import Answer, pox_response
from simulators.exchange.soap import BUILDS
from simulators.platform.addresses import AddressPool
from simulators.runner import SimulatorStack
from tests.fixtures.checks import Hostile, check_context, find_step, run_check, sim_guard
from tests.fixtures.hostile_servers import HostileListener, silent
from tests.fixtures.simulators import Serve

PASSWORDS = {"alice": "Alice-Passw0rd!", "bob": "Bob-Passw0rd!"}
ROOT_EWS = "https://proseware.example/EWS/Exchange.asmx"


@pytest.mark.parametrize(
    ("domain", "method"),
    [
        ("proseware.example", "https://autodiscover.domain"),
        ("fabrikam.example", "https://domain"),
        ("lucerne.example", "https://autodiscover.domain"),  # Basic only
        ("adatum.example", "HTTP redirect (port 80)"),
        ("relecloud.example", "DNS SRV record"),
        ("oldcorp.example", "https://autodiscover.domain"),
    ],
)
def test_each_method_finds_ews_with_a_password(
    sims_guard: NetGuard, domain: str, method: str
) -> None:
    context = check_context(sims_guard, f"alice@{domain}", password=PASSWORDS["alice"])
    result = run_check(autodiscover, context)
    step = find_step(result.steps, "autodiscover.result")
    assert step.status == "pass", step.message
    assert step.details["method"] == method
    assert step.details["ews_url"].endswith("/EWS/Exchange.asmx")
    assert "/OAB/" in step.details["oab_url"]
    assert result.status == "pass"


def test_without_a_password_a_401_with_exchange_methods_counts_as_found(
    sims_guard: NetGuard,
) -> None:
    result = run_check(autodiscover, check_context(sims_guard, "proseware.example"))
    step = find_step(result.steps, "autodiscover.result")
    assert step.status == "pass"
    assert step.title == "Autodiscover endpoint found"
    assert {"NTLM", "Basic"} <= set(step.details["authentication_methods"])
    assert "password" in step.message
    methods = find_step(result.steps, "autodiscover.method.2")
    assert methods.details["attempts"][0]["http_status"] == 401


def test_a_wrong_password_is_reported(sims_guard: NetGuard) -> None:
    context = check_context(sims_guard, "alice@proseware.example", password="wrong")
    result = run_check(autodiscover, context)
    assert result.status == "fail"
    assert "password was not accepted" in find_step(result.steps, "autodiscover.method.2").message
    # The endpoint answered as Exchange: the password is the problem, not missing records.
    final = find_step(result.steps, "autodiscover.result")
    assert final.title == "Password not accepted"
    assert "https://autodiscover.proseware.example" in final.message
    assert "Outlook on the web" in final.remediation
    assert "Publish" not in final.remediation


def test_a_wrong_password_leads_what_to_fix_first_with_the_password(
    sims_guard: NetGuard,
) -> None:
    context = check_context(sims_guard, "alice@proseware.example", password="wrong")
    report = run_checks(context, select(), deadline_s=20)
    findings = fix_first(report)
    assert findings[0].status == "fail"
    assert "password" in findings[0].step.message
    assert {f.check.id for f in findings if f.status == "fail"} == {"autodiscover", "ews_access"}
    assert not any("Publish autodiscover" in f.step.remediation for f in findings)


def test_redirect_loops_stop_with_a_readable_step(sims_guard: NetGuard) -> None:
    context = check_context(sims_guard, "carol@treyresearch.example", password="x")
    result = run_check(autodiscover, context)
    assert result.status == "fail"
    # alice -> bob -> alice (redirectAddr), and the two hosts' redirectUrl to each other
    context = check_context(sims_guard, "alice@treyresearch.example", password=PASSWORDS["alice"])
    result = run_check(autodiscover, context)
    final = find_step(result.steps, "autodiscover.result")
    assert final.status == "fail"
    assert "loop" in final.message


def test_a_pre_authentication_gateway_is_recognised(sims_guard: NetGuard) -> None:
    context = check_context(sims_guard, "bob@woodgrove.example", password=PASSWORDS["bob"])
    result = run_check(autodiscover, context)
    final = find_step(result.steps, "autodiscover.result")
    assert final.status == "fail"
    assert final.title == "Pre-authentication gateway"
    assert "sign-in page" in final.message


@pytest.mark.parametrize("password", [None, PASSWORDS["alice"]])
def test_a_website_with_a_sign_in_form_on_the_domain_is_not_autodiscover(
    sims_guard: NetGuard, password: str | None
) -> None:
    """alpineskihouse.example is the company's website (200, a members' sign-in form, on every
    path); Exchange answers at autodiscover.alpineskihouse.example, as Outlook finds it."""
    context = check_context(sims_guard, "alice@alpineskihouse.example", password=password)
    result = run_check(autodiscover, context)
    website = find_step(result.steps, "autodiscover.method.1")
    assert website.status == "info"
    assert website.details["attempts"][0]["http_status"] == 200
    assert "the website on alpineskihouse.example, not Autodiscover" in website.message
    assert "gateway" not in website.message
    final = find_step(result.steps, "autodiscover.result")
    assert final.status == "pass"
    assert final.details["method"] == "https://autodiscover.domain"
    assert result.status == "pass"
    unsupported_result = run_check(unsupported, context)
    assert [s.id for s in unsupported_result.steps if s.status == "fail"] == []


def test_nothing_found_explains_the_manual_urls_and_accepts_them(
    sims_guard: NetGuard,
) -> None:
    result = run_check(autodiscover, check_context(sims_guard, "alice@wingtip.example"))
    final = find_step(result.steps, "autodiscover.result")
    assert final.status == "fail"
    # The page shows this too: the manual URLs are explained without a command-line option.
    assert "EWS and OAB URLs by hand" in final.remediation
    assert "--" not in final.remediation
    assert [s.status for s in find_step(result.steps, "autodiscover.methods.0").children] == [
        "fail"
    ] * 4
    manual = check_context(
        sims_guard,
        "alice@wingtip.example",
        ews_url="https://mail.wingtip.example/EWS/Exchange.asmx",
        oab_url="https://mail.wingtip.example/OAB/",
    )
    result = run_check(autodiscover, manual)
    assert result.status == "pass"
    ews = find_step(result.steps, "autodiscover.manual.ews")
    assert "asks for sign-in" in ews.message  # without a password: EWS's own challenge
    assert ews.details["url"] == "https://mail.wingtip.example/EWS/Exchange.asmx"
    assert find_step(result.steps, "autodiscover.manual.oab").status == "pass"


WINGTIP_EWS = "https://mail.wingtip.example/EWS/Exchange.asmx"
WINGTIP_OAB = (
    f"https://mail.wingtip.example/OAB/{uuid.uuid5(uuid.NAMESPACE_DNS, 'mail.wingtip.example')}/"
)


@pytest.mark.parametrize(
    ("password", "ews_url", "oab_url", "ews", "oab", "said"),
    [
        # With the password, a real EWS call on the calendar, and the OAB's oab.xml is read.
        (PASSWORDS["alice"], WINGTIP_EWS, WINGTIP_OAB, "pass", "pass", "GetFolder on the calendar"),
        ("wrong", WINGTIP_EWS, WINGTIP_OAB, "fail", "fail", "password was not accepted"),
        # The OAB virtual directory, not the address book's own URL: Exchange, but warned.
        (PASSWORDS["alice"], WINGTIP_EWS, "https://mail.wingtip.example/OAB/", "pass", "warn", ""),
        # A company website is neither EWS nor an address book, whatever the path says.
        (
            None,
            "https://alpineskihouse.example/EWS/Exchange.asmx",
            "https://alpineskihouse.example/OAB/",
            "fail",
            "fail",
            "Not EWS: HTTP 200 (text/html)",
        ),
    ],
)
def test_urls_given_by_hand_must_answer_as_exchange(
    sims_guard: NetGuard,
    password: str | None,
    ews_url: str,
    oab_url: str,
    ews: str,
    oab: str,
    said: str,
) -> None:
    context = check_context(
        sims_guard, "alice@wingtip.example", password=password, ews_url=ews_url, oab_url=oab_url
    )
    result = run_check(autodiscover, context)
    ews_step = find_step(result.steps, "autodiscover.manual.ews")
    assert (ews_step.status, find_step(result.steps, "autodiscover.manual.oab").status) == (
        ews,
        oab,
    )
    assert said in ews_step.message
    assert ews_step.details["signed_in"] is (password is not None)


@pytest.mark.parametrize("password", [None, PASSWORDS["alice"]])
def test_a_kerberos_only_ews_given_by_hand_says_why_nobody_can_sign_in(
    sims_guard: NetGuard, password: str | None
) -> None:
    # It is Exchange (it asks for Negotiate), but only Kerberos would sign in there.
    url = "https://mail.cohowinery.example/EWS/Exchange.asmx"
    context = check_context(sims_guard, "alice@cohowinery.example", password=password, ews_url=url)
    result = run_check(autodiscover, context)
    ews = find_step(result.steps, "autodiscover.manual.ews")
    assert ews.status == "fail"
    assert "accepts Kerberos only" in ews.message
    assert "NTLM" in ews.remediation
    assert ews.details["signed_in"] is False  # no password is tried where it cannot work


def test_an_srv_record_pointing_inside_is_a_readable_refused_step(hostile: Hostile) -> None:
    result = run_check(autodiscover, check_context(hostile.guard(), "someone@evil.example"))
    srv = find_step(result.steps, "autodiscover.method.4")
    assert srv.status == "fail"
    assert (
        "refused to connect to internal.evil.example: it resolves to an internal address "
        "(a loopback address)" in srv.message
    )
    assert "127.0.0.1" not in srv.message
    assert result.status == "fail"


def test_each_attempt_carries_its_dns_evidence(sims_guard: NetGuard) -> None:
    result = run_check(autodiscover, check_context(sims_guard, "proseware.example"))
    attempt = find_step(result.steps, "autodiscover.method.2").details["attempts"][0]
    assert attempt["dns"][0].startswith("127.")
    assert attempt["http_status"] == 401


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("https://autodiscover.proseware.example/autodiscover/autodiscover.xml", True),
        ("https://proseware.example/autodiscover/autodiscover.xml", True),
        ("http://autodiscover.proseware.example/autodiscover/autodiscover.xml", False),
        ("https://autodiscover.attacker.example/autodiscover/autodiscover.xml", False),
        ("https://proseware.example.attacker.example/autodiscover/autodiscover.xml", False),
    ],
)
def test_the_password_only_goes_to_the_mailbox_domain_over_https(
    sims_guard: NetGuard, url: str, sent: bool
) -> None:
    from checksite.checks.autodiscover import credentials_for

    context = check_context(sims_guard, "alice@proseware.example", password="secret")
    assert (credentials_for(context, url, "secret") == "secret") is sent


def test_a_root_website_that_never_answers_gets_a_grace_then_a_warning(
    fresh_sims: SimulatorStack,
) -> None:
    # proseware.example's own website accepts connections and never answers; Outlook tries it
    # first, autodiscover.proseware.example (the second method) answers at once.
    website = fresh_sims.addresses.address_of("www.proseware.example")
    assert website is not None
    listener = HostileListener(website, 443, silent)
    try:
        context = check_context(
            sim_guard(fresh_sims, timeout=10.0),
            "alice@proseware.example",
            password=PASSWORDS["alice"],
        )
        started = time.monotonic()
        result = run_check(autodiscover, context, deadline_s=20.0)
        elapsed = time.monotonic() - started
        assert elapsed <= 4.0  # the grace (1.5 s), not the 10 s timeout nor the deadline
        final = find_step(result.steps, "autodiscover.result")
        assert final.status == "pass"
        assert final.details["method"] == "https://autodiscover.domain"
        hung = find_step(result.steps, "autodiscover.method.1")
        assert hung.status == "warn"
        assert "Did not answer in" in hung.message
        assert "Outlook waits for it before trying the next method" in hung.message
        assert "https://proseware.example/autodiscover/autodiscover.xml" in hung.remediation
        later = [find_step(result.steps, f"autodiscover.method.{i}") for i in (3, 4)]
        assert all(s.status in ("info", "fail") for s in later)
        assert result.status == "warn"
        assert listener.connections  # it was tried …
        assert listener.all_closed_by_client(timeout=0.5)  # … and let go
    finally:
        listener.stop()


def test_an_earlier_method_that_answers_within_the_grace_still_wins(
    fresh_sims: SimulatorStack, serve: Serve
) -> None:
    # proseware.example's own website answers Autodiscover too, after 0.8 s (inside the
    # grace); autodiscover.proseware.example answers at once. Outlook would take the first.
    website = fresh_sims.addresses.address_of("www.proseware.example")
    assert website is not None
    app = Flask("slow-root")

    @app.post("/autodiscover/autodiscover.xml")
    def slow() -> Response:
        time.sleep(0.8)
        answer = Answer("alice@proseware.example", ews_url=ROOT_EWS, ews_host="proseware.example")
        return Response(pox_response(answer, BUILDS["2019"]), content_type="text/xml")

    serve(app, host=website, port=443, hostnames=["proseware.example"])
    context = check_context(
        sim_guard(fresh_sims), "alice@proseware.example", password=PASSWORDS["alice"]
    )
    result = run_check(autodiscover, context)
    final = find_step(result.steps, "autodiscover.result")
    assert final.details["method"] == "https://domain"
    assert final.details["ews_url"] == ROOT_EWS
    assert find_step(result.steps, "autodiscover.method.1").status == "pass"


def test_an_srv_record_on_another_port_is_tried_on_443_only(
    dns_server: Callable[..., DnsServer], sim_addresses: AddressPool
) -> None:
    address = sim_addresses.allocate()
    other_port = HostileListener(address, 8443, silent)
    https = HostileListener(address, 443, silent)
    records = [
        ("srvport.example", "MX", "10 mail.srvport.example."),
        ("mail.srvport.example", "A", address),
        ("_autodiscover._tcp.srvport.example", "SRV", "0 0 8443 mail.srvport.example."),
    ]
    server = dns_server(records)
    guard = NetGuard(GuardPolicy(allow_private=True, dns_servers=(server.address,), timeout=1.0))
    try:
        report = run_checks(check_context(guard, "someone@srvport.example"), select(), 3.0)
        srv = find_step(report.checks[1].steps, "autodiscover.method.4")
        assert "port 8443" in srv.message
        assert "443 only" in srv.message
        assert https.connections  # what Synchronizer would use was tried …
        assert other_port.connections == []  # … and no check touched the record's port
    finally:
        other_port.stop()
        https.stop()


@pytest.mark.parametrize("password", [None, PASSWORDS["alice"]])
def test_a_kerberos_only_exchange_is_named_with_or_without_a_password(
    sims_guard: NetGuard, password: str | None
) -> None:
    context = check_context(sims_guard, "alice@cohowinery.example", password=password)
    result = run_check(autodiscover, context)
    final = find_step(result.steps, "autodiscover.result")
    assert final.status == "fail"
    assert final.title == "Sign-in not possible"
    assert "accepts Kerberos only" in final.message
    assert "NTLM" in final.remediation
    messages = " ".join(s.message for s in result.steps[0].children)
    assert "password was not accepted" not in messages  # the cause, not a wrong guess


def test_a_tls_10_only_exchange_is_blamed_on_tls_not_on_missing_records(
    sims_guard: NetGuard,
) -> None:
    context = check_context(sims_guard, "alice@margiestravel.example", password="x")
    result = run_check(autodiscover, context)
    final = find_step(result.steps, "autodiscover.result")
    assert final.status == "fail"
    assert "autodiscover.margiestravel.example" in final.message
    assert "TLS check" in final.message
    assert final.remediation.startswith("Fix TLS on autodiscover.margiestravel.example")
    method = find_step(result.steps, "autodiscover.method.2")
    assert "speaks only an old TLS version" in method.message


def test_a_website_asking_for_its_own_sign_in_does_not_hold_the_verdict(
    fresh_sims: SimulatorStack, serve: Serve
) -> None:
    """proseware.example's website is protected by HTTP Basic authentication (a staging site):
    it refuses the mailbox password, as any password it does not know. Outlook moves on to the
    next method, where Exchange accepts it; so does the check, without calling the password
    wrong."""
    website = fresh_sims.addresses.address_of("www.proseware.example")
    assert website is not None
    app = Flask("protected-website")

    @app.route("/<path:anything>", methods=["GET", "POST"])
    def protected(anything: str) -> Response:
        return Response(status=401, headers={"WWW-Authenticate": 'Basic realm="Staging"'})

    serve(app, host=website, port=443, hostnames=["proseware.example"])
    guard = sim_guard(fresh_sims)
    context = check_context(guard, "alice@proseware.example", password=PASSWORDS["alice"])
    result = run_check(autodiscover, context)
    final = find_step(result.steps, "autodiscover.result")
    assert final.status == "pass", final.message
    assert final.details["method"] == "https://autodiscover.domain"
    assert final.details["ews_url"].endswith("/EWS/Exchange.asmx")
    website_step = find_step(result.steps, "autodiscover.method.1")
    assert website_step.status == "info"
    assert "not accepted" in website_step.message

    # With a wrong password nobody accepts it: that is still said, as before.
    wrong = run_check(autodiscover, check_context(guard, "alice@proseware.example", password="x"))
    assert find_step(wrong.steps, "autodiscover.result").title == "Password not accepted"
