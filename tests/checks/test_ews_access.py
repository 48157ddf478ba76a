"""[ews_access] against the simulated Exchange organisations: signed in with the mailbox
password (sign in, GetFolder on the calendar, SyncFolderItems), and with a service account
through ExchangeImpersonation; every failure with its cause and fix. The simulator is as strict
as Exchange about impersonation (tests/simulators/test_exchange_impersonation.py), so a check
that forgot the header, or read a mailbox as a delegate, would fail here."""

from __future__ import annotations

import base64
import hashlib
import ssl
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from exchangelib.protocol import Protocol
from flask import Flask

from checksite.checks import ews_access, exchange_version
from checksite.checks.autodiscover_client import post_pox
from checksite.checks.channel_binding import binding_session
from checksite.checks.context import CheckContext, Target, TargetError
from checksite.checks.ews_access import service_account_credentials
from checksite.checks.model import CheckResult, Step
from checksite.cli import main
from common.config import Settings
from common.netguard import GuardPolicy, NetGuard
from simulators.runner import SimulatorStack
from tests.fixtures.checks import check_context, find_step, run_check

ALICE = "Alice-Passw0rd!"
SVC, NOROLE, SCOPED = "Svc-Passw0rd!", "Norole-Passw0rd!", "Scoped-Passw0rd!"
EWS = "https://mail.proseware.example/EWS/Exchange.asmx"


def run(
    guard: NetGuard,
    target: str,
    password: str | None = None,
    service: tuple[str, str] | None = None,
    **options: Any,
) -> CheckResult:
    context = check_context(guard, target, password=password, **options)
    if service:
        context.credentials.update(service_account_credentials(*service))
    return run_check(ews_access, context)


def operations(sims: SimulatorStack) -> dict[str, int]:
    return sims.apps["exchange"].extensions["exchange_simulator"].counter.snapshot()


def only_step(result: CheckResult) -> Step:
    [step] = result.steps
    return step


def test_the_mailbox_signs_in_opens_its_calendar_and_reads_its_changes(
    sims: SimulatorStack, sims_guard: NetGuard
) -> None:
    before = operations(sims)
    step = only_step(run(sims_guard, "alice@proseware.example", ALICE))
    assert step.status == "pass", step
    assert [c.id.rpartition(".")[2] for c in step.children] == ["sign_in", "calendar", "sync"]
    assert "NTLM" in step.children[0].message
    assert step.children[1].details["total_count"] == 10
    assert step.children[2].details["changes"] == 10
    after = operations(sims)
    for operation in ("GetFolder", "SyncFolderItems"):  # real EWS calls, not a stand-in
        key = f"proseware.example {operation}"
        assert after.get(key, 0) > before.get(key, 0), operation


def test_exchange_2013_with_basic_only(sims_guard: NetGuard) -> None:
    step = only_step(run(sims_guard, "alice@lucerne.example", ALICE))
    assert step.status == "pass"
    assert "BASIC" in step.children[0].message


def test_a_wrong_password_is_said_with_where_to_try_it(sims_guard: NetGuard) -> None:
    step = only_step(run(sims_guard, "alice@proseware.example", "not-her-password"))
    assert step.status == "fail"
    assert "did not accept the password of alice@proseware.example" in step.message
    assert "Outlook on the web" in step.remediation


def test_a_kerberos_only_server_is_not_blamed_on_the_password(sims_guard: NetGuard) -> None:
    # cohowinery accepts Kerberos only: Autodiscover says why; no "password not accepted".
    step = only_step(run(sims_guard, "alice@cohowinery.example", ALICE))
    assert step.status == "skip"
    assert "Kerberos" in step.message
    assert "did not accept the password" not in step.message


def test_a_mailbox_moved_to_exchange_online_is_not_signed_in_on_premises(
    sims_guard: NetGuard, sim_settings: Settings
) -> None:
    # wideworldimporters is a hybrid: bob's mailbox is in Exchange Online (Graph's part); the
    # settings reach Microsoft's tenant lookup, which tells the routing address apart.
    target = "bob@wideworldimporters.example"
    context = check_context(sims_guard, target, sim_settings, password="Bob-Passw0rd!")
    step = only_step(run_check(ews_access, context))
    assert step.status == "skip"
    assert "Exchange Online" in step.message
    assert "Microsoft Graph" in step.message


def test_a_wrong_password_at_a_typed_ews_url(sims_guard: NetGuard) -> None:
    step = only_step(run(sims_guard, "alice@proseware.example", "nope", ews_url=EWS))
    assert step.status == "fail"
    assert step.children[-1].details["error"] == "UnauthorizedError"
    assert "https://mail.proseware.example/owa" in step.remediation


def test_an_account_without_a_mailbox(sims_guard: NetGuard) -> None:
    # Signing in works; its calendar does not exist (GetFolder: ErrorNonExistentMailbox).
    step = only_step(run(sims_guard, "svc-norole@proseware.example", NOROLE, ews_url=EWS))
    assert step.status == "fail"
    assert [c.status for c in step.children] == ["pass", "fail"]
    assert "has no mailbox on this Exchange server" in step.message
    assert "Get-Mailbox" in step.remediation
    # Found by Autodiscover instead: Autodiscover itself does not know it as a mailbox.
    step = only_step(run(sims_guard, "svc-norole@proseware.example", NOROLE))
    assert step.status == "fail"
    assert "does not know svc-norole@proseware.example as a mailbox" in step.message


def test_a_service_account_with_the_role_impersonates_the_mailbox(
    sims_guard: NetGuard,
) -> None:
    # Only the service account's password is given: Autodiscover is asked as the service
    # account, then every EWS call carries ExchangeImpersonation (as a delegate, the strict
    # simulator would refuse the service account alice's calendar).
    result = run(sims_guard, "alice@proseware.example", service=("svc-sync@proseware.example", SVC))
    step = only_step(result)
    assert step.id == "ews_access.impersonation"
    assert step.status == "pass", step
    names = [c.id.rpartition(".")[2] for c in step.children]
    assert names == ["autodiscover", "sign_in", "calendar", "sync"]
    assert "ExchangeImpersonation" in step.children[2].title


def test_both_walks_when_both_are_given(sims_guard: NetGuard) -> None:
    result = run(
        sims_guard,
        "bob@proseware.example",
        "Bob-Passw0rd!",
        service=("PROSEWARE\\svc-scoped", SCOPED),  # the down-level name works too
    )
    assert [(s.id, s.status) for s in result.steps] == [
        ("ews_access.mailbox", "pass"),
        ("ews_access.impersonation", "pass"),  # bob is in its role's scope
    ]


@pytest.mark.parametrize(
    ("service", "password"),
    [
        ("svc-norole@proseware.example", NOROLE),  # no ApplicationImpersonation role
        ("svc-scoped@proseware.example", SCOPED),  # its scope holds bob, not alice
    ],
)
def test_impersonation_refused_names_the_role_and_the_fix(
    sims_guard: NetGuard, service: str, password: str
) -> None:
    step = only_step(run(sims_guard, "alice@proseware.example", service=(service, password)))
    assert step.status == "fail"
    assert step.children[-1].details["error"] == "ErrorImpersonateUserDenied"
    assert step.children[-2].status == "pass"  # it did sign in: not a password problem
    assert f"{service} may not impersonate alice@proseware.example" in step.message
    assert "New-ManagementRoleAssignment" in step.remediation
    assert "-Role ApplicationImpersonation" in step.remediation
    assert "how-to-configure-impersonation" in step.remediation


def test_impersonating_an_address_without_a_mailbox(sims_guard: NetGuard) -> None:
    service = ("svc-sync@proseware.example", SVC)
    step = only_step(run(sims_guard, "nobody@proseware.example", service=service, ews_url=EWS))
    assert step.status == "fail"
    assert step.children[-1].details["error"] == "ErrorNonExistentMailbox"
    assert "nobody@proseware.example is not a mailbox on this Exchange server" in step.message


def test_a_wrong_service_account_password(sims_guard: NetGuard) -> None:
    service = ("svc-sync@proseware.example", "wrong")
    step = only_step(run(sims_guard, "alice@proseware.example", service=service, ews_url=EWS))
    assert step.status == "fail"
    assert "did not accept the password of svc-sync@proseware.example" in step.message
    assert "DOMAIN\\user" in step.remediation  # a service account may sign in by that name


def test_impersonation_needs_a_mailbox_to_impersonate(sims_guard: NetGuard) -> None:
    step = only_step(
        run(sims_guard, "proseware.example", service=("svc-sync@proseware.example", SVC))
    )
    assert step.status == "skip"
    assert "type a user's address" in step.message
    step = only_step(
        run(
            sims_guard,
            "svc-sync@proseware.example",
            service=("svc-sync@proseware.example", SVC),
        )
    )
    assert step.status == "warn"
    assert "impersonate itself" in step.message


def test_without_credentials_it_says_what_they_would_add(sims_guard: NetGuard) -> None:
    result = run(sims_guard, "alice@proseware.example")
    assert result.status == "skip"
    assert "mailbox password" in result.steps[0].message
    assert run(sims_guard, "adele@contoso.example", "x").status == "skip"  # Microsoft 365


def test_no_password_goes_over_plain_http(
    sims_guard: NetGuard, public_site: tuple[str, list[str]]
) -> None:
    base, hits = public_site
    # Built directly: the form and the API refuse an http EWS URL before the check runs.
    target = Target("proseware.example", "alice@proseware.example", ALICE, ews_url=f"{base}/EWS")
    context = CheckContext(target, sims_guard)
    context.credentials.update(service_account_credentials("svc-sync@proseware.example", SVC))
    result = run_check(ews_access, context)
    assert find_step(result.steps, "ews_access.not_sent").status == "skip"
    assert hits == []


def test_a_server_that_never_answers_is_cut_at_the_deadline(
    sims_guard: NetGuard, black_hole: tuple[str, int]
) -> None:
    host, port = black_hole
    url = f"https://{host}:{port}/EWS/Exchange.asmx"
    context = check_context(sims_guard, "alice@proseware.example", password=ALICE, ews_url=url)
    started = time.monotonic()
    result = run_check(ews_access, context, deadline_s=2.0)
    assert time.monotonic() - started < 3.5
    assert result.timed_out
    assert all(s.id != "ews_access.error" for s in result.steps)  # no "stopped unexpectedly"


def test_no_password_is_left_in_exchangelib_s_cache(sims_guard: NetGuard) -> None:
    run(sims_guard, "alice@proseware.example", ALICE, service=("svc-sync@proseware.example", SVC))
    cached = [key for key in Protocol._protocol_cache if key[0] == EWS]
    assert cached == []  # a process-wide cache would keep the visitor's password


@pytest.mark.parametrize(
    ("name", "password", "message", "field"),
    [
        ("svc@contoso.example", "", "password too", "service_password"),
        ("", "secret", "needs the service account's name", "service_account"),
        ("not an account", "secret", "svc@contoso.com or CONTOSO\\svc", "service_account"),
        ("a@b", "secret", "svc@contoso.com or CONTOSO\\svc", "service_account"),
    ],
)
def test_service_account_input_is_checked(
    name: str, password: str, message: str, field: str
) -> None:
    with pytest.raises(TargetError, match=message.replace("\\", "\\\\")) as refused:
        service_account_credentials(name, password)
    assert refused.value.field == field  # the page and the API name the input it is about
    assert service_account_credentials("", "") == {}


def test_a_bad_service_account_names_its_option_on_the_command_line(tmp_path: Path) -> None:
    args = ["check", "alice@proseware.example", "--service-account", "not an account"]
    result = CliRunner().invoke(
        main, args, env={"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path)}, input="secret\n"
    )
    assert result.exit_code == 2
    assert "--service-account: enter the service account as" in result.output


def test_through_the_cli(sims: SimulatorStack, tmp_path: Path) -> None:
    env = {"SYNCHRONIZER_INSTANCE_PATH": str(tmp_path / "instance")}
    args = ["check", "alice@proseware.example", "--password-stdin"]
    args += ["--service-account", "svc-norole@proseware.example", "--only", "ews_access"]
    args += ["--dns-server", f"{sims.dns_host}:{sims.dns_port}", "--ca-bundle", sims.ca_file]
    args += ["--allow-private-networks", "--timeout", "10"]
    result = CliRunner().invoke(main, args, env=env, input=f"{ALICE}\n{NOROLE}\n")
    assert result.exit_code == 1, result.output
    assert "PASS  alice@proseware.example signs in and reads its calendar" in result.output
    assert "FAIL  Service account svc-norole@proseware.example impersonates" in result.output
    assert "New-ManagementRoleAssignment" in result.output
    assert NOROLE not in result.output and ALICE not in result.output


def test_through_the_api(check_app: Flask) -> None:
    client = check_app.test_client()
    body = {
        "target": "alice@proseware.example",
        "service_account": "svc-scoped@proseware.example",
        "service_password": SCOPED,
        "only": ["ews_access"],
    }
    report_id = client.post("/api/checks", json=body).get_json()["id"]
    deadline = time.monotonic() + 15
    while (state := client.get(f"/api/checks/{report_id}").get_json())["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [check] = state["report"]["checks"]
    assert check["status"] == "fail"
    assert check["steps"][0]["id"] == "ews_access.impersonation"
    assert SCOPED not in str(state)
    refused = client.post("/api/checks", json={**body, "service_password": ""})
    assert refused.status_code == 400
    assert "password too" in refused.get_json()["error"]
    assert refused.get_json()["field"] == "service_password"


def _av_pairs(type3: bytes) -> dict[int, bytes]:
    """The AV pairs of the NTLMv2 response in an NTLM AUTHENTICATE message (MS-NLMP 2.2.1.3,
    2.2.2.7: the client's blob follows the 16-byte proof; its pairs start 28 bytes in)."""
    length, _, offset = struct.unpack_from("<HHI", type3, 20)
    blob = type3[offset + 16 : offset + length]
    pairs, position = {}, 28
    while position + 4 <= len(blob):
        av_id, av_len = struct.unpack_from("<HH", blob, position)
        if av_id == 0:
            break
        pairs[av_id] = blob[position + 4 : position + 4 + av_len]
        position += 4 + av_len
    return pairs


def _sign_in_with_ews_access(guard: NetGuard, url: str) -> None:
    step = only_step(run(guard, "alice@proseware.example", ALICE, ews_url=url))
    assert step.status == "pass", step


def _ask_the_version(guard: NetGuard, url: str) -> None:
    # [exchange_version] signs in with the session of the context (`CheckContext.session`).
    context = check_context(guard, "alice@proseware.example", password=ALICE, ews_url=url)
    step = find_step(run_check(exchange_version, context).steps, "exchange_version.ews")
    assert "HTTP 200" in step.message, step


def _autodiscover_signed_in(guard: NetGuard, url: str) -> None:
    # The request of [autodiscover]'s methods and of the EWS walk's Autodiscover step.
    autodiscover_url = url.replace("/EWS/Exchange.asmx", "/autodiscover/autodiscover.xml")
    answer = post_pox(binding_session(guard), autodiscover_url, "alice@proseware.example", ALICE)
    assert answer.outcome == "settings", answer


@pytest.mark.parametrize(
    "sign_in", [_sign_in_with_ews_access, _ask_the_version, _autodiscover_signed_in]
)
def test_ntlm_carries_the_channel_binding_of_the_server_s_certificate(
    exchange_app: Flask, serve: Any, demo_ca: Any, sign_in: Callable[[NetGuard, str], None]
) -> None:
    """Exchange with Extended Protection (on by default since 2019 CU14) refuses NTLM without
    the TLS channel binding: every signed-in request of the checks must send it, bound to the
    certificate it was shown."""
    headers: list[str] = []

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        # Basic switched off, as Microsoft recommends: NTLM is what the checks sign in with.
        headers.append(environ.get("HTTP_AUTHORIZATION", ""))

        def without_basic(status: str, response_headers: list[tuple[str, str]]) -> Any:
            kept = [(k, v) for k, v in response_headers if not v.startswith("Basic")]
            return start_response(status, kept)

        return exchange_app(environ, without_basic)

    server = serve(recording, host="127.0.0.1")
    url = f"https://127.0.0.1:{server.port}/EWS/Exchange.asmx"
    guard = NetGuard(GuardPolicy(allow_private=True, ca_bundle=Path(demo_ca.ca_file)))
    sign_in(guard, url)
    type3 = next(
        message
        for value in headers
        if value.startswith("NTLM ")
        and (message := base64.b64decode(value[5:]))[8:12] == b"\x03\x00\x00\x00"
    )
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", server.port)))
    application = b"tls-server-end-point:" + hashlib.sha256(der).digest()
    bindings = b"\x00" * 16 + struct.pack("<I", len(application)) + application
    assert _av_pairs(type3).get(0x000A) == hashlib.md5(bindings).digest()  # noqa: S324 (MS-NLMP)
