"""The page in headless Chromium: form, live progress, final report, escaping; a screenshot is
kept in test-artifacts/ for people to look at."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect, sync_playwright

from common.config import Settings
from simulators.platform.control import control_of
from simulators.runner import SimulatorStack
from tests.fixtures.simulators import Serve

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, check_app: Flask, serve: Serve) -> Iterator[Page]:
    server = serve(check_app, tls=False)
    context = browser.new_context(base_url=f"http://127.0.0.1:{server.port}")
    page = context.new_page()
    yield page
    context.close()


def test_form_live_progress_and_final_report(page: Page, sims: SimulatorStack) -> None:
    # Slow EWS down so the page shows checks arriving one by one before the report.
    control_of(sims.apps["exchange"]).faults.add(
        {"kind": "latency", "path": "EWS", "latency_ms": 800, "count": 4}
    )
    page.goto("/check")
    # The form is styled: labels above full-width fields (the stylesheet is loaded).
    target_field = page.get_by_label("Domain or mailbox address")
    assert target_field.evaluate("e => getComputedStyle(e.labels[0]).display") == "block"
    page.get_by_label("Domain or mailbox address").fill("alice@alpineskihouse.example")
    page.get_by_label("Mailbox password (optional)").fill("Alice-Passw0rd!")
    page.get_by_role("button", name="Run the checks").click()

    progress = page.locator("#progress section")
    expect(progress.first).to_be_visible(timeout=10_000)  # a check arrived while others run
    expect(page.locator("#progress")).to_have_attribute("aria-live", "polite")

    expect(page.get_by_role("heading", name="Verdict: PASS")).to_be_visible(timeout=20_000)
    expect(page.locator("#check-autodiscover")).to_contain_text("Exchange Web Services found")
    expect(page.locator("#check-exchange_version")).to_contain_text(
        "Exchange Server Subscription Edition"
    )
    assert page.get_by_role("link", name="Download JSON").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "check-report.png"), full_page=True)


def test_a_step_shows_while_its_check_still_runs(
    page: Page, check_app: Flask, black_hole: tuple[str, int]
) -> None:
    settings = check_app.config["SYNCHRONIZER"]
    check_app.config["SYNCHRONIZER"] = dataclasses.replace(settings, check_timeout_seconds=3.0)
    host, port = black_hole  # [firewall] reports the outbound IP, then waits on this host
    page.goto("/check")
    page.get_by_label("Domain or mailbox address").fill("alice@proseware.example")
    page.get_by_text("Exchange URLs by hand").click()
    page.get_by_label("EWS URL (optional)").fill(f"https://{host}:{port}/EWS/Exchange.asmx")
    page.get_by_role("button", name="Run the checks").click()
    running = page.locator("#live-firewall.status-running li.step")
    expect(running.first).to_contain_text("outbound IP", timeout=5_000)
    expect(page.get_by_role("heading", name="Verdict: FAIL")).to_be_visible(timeout=10_000)


def test_html_in_the_domain_is_shown_escaped(page: Page) -> None:
    page.goto("/check")
    typed = '<img src=x onerror="document.title=1">.example'
    page.get_by_label("Domain or mailbox address").fill(typed)
    page.get_by_role("button", name="Run the checks").click()
    expect(page.get_by_role("alert")).to_contain_text("not a valid domain name")
    assert page.locator("img[src=x]").count() == 0
    assert page.title() != "1"
    assert page.get_by_label("Domain or mailbox address").input_value() == typed


def test_every_demo_domain_through_the_page(
    page: Page, check_app: Flask, google_settings: Settings
) -> None:
    from tests.checks.test_demo_world import WORLD

    check_app.config["SYNCHRONIZER"] = dataclasses.replace(
        check_app.config["SYNCHRONIZER"],
        google_service_account_file=google_settings.google_service_account_file,
    )
    # One tab per domain, all submitted first: the runs go on side by side, as for many visitors.
    tabs = []
    for target, password, _, _ in WORLD:
        tab = page.context.new_page()
        tab.goto("/check")
        tab.get_by_label("Domain or mailbox address").fill(target)
        if password:
            tab.get_by_label("Mailbox password (optional)").fill(password)
        tab.get_by_role("button", name="Run the checks").click()
        tabs.append(tab)
    for tab, (target, _, expected, verdict) in zip(tabs, WORLD, strict=True):
        heading = tab.get_by_role("heading", name=f"Verdict: {verdict.upper()}")
        expect(heading).to_be_visible(timeout=20_000)
        for check_id, status in expected.items():
            expect(tab.locator(f"#check-{check_id} h2 .badge")).to_have_text(status.upper())
        if target == "adele@contoso.example":  # the sign-in reads what is ticked, no more
            expect(tab.get_by_label("The plans and licences")).to_be_checked()
            expect(tab.get_by_label("Synchronizer's consent in the tenant")).to_be_checked()
            expect(tab.get_by_role("button", name="Delete this report")).to_be_visible()
            ARTIFACTS.mkdir(exist_ok=True)
            tab.screenshot(path=str(ARTIFACTS / "check-report-m365-anonymous.png"), full_page=True)
        if target == "appsonly.example":  # anonymous: the plans wait for a sign-in
            plan = tab.locator("#check-m365_plan")
            expect(plan).to_contain_text("read only with the access of an administrator")
            expect(
                tab.get_by_role("button", name="Sign in as a Microsoft 365 administrator")
            ).to_be_visible()
        if target == "alice@lucerne.example":  # a failure comes with its fix
            version = tab.locator("#check-exchange_version")
            expect(version.locator(".remediation").first).to_contain_text("How to fix")
            ARTIFACTS.mkdir(exist_ok=True)
            tab.screenshot(path=str(ARTIFACTS / "check-report-failing.png"), full_page=True)


def _report_of(page: Page, target: str, password: str | None = None) -> None:
    page.goto("/check")
    page.get_by_label("Domain or mailbox address").fill(target)
    if password:
        page.get_by_label("Mailbox password (optional)").fill(password)
    page.get_by_role("button", name="Run the checks").click()
    expect(page.get_by_role("heading", name=re.compile("^Verdict: "))).to_be_visible(timeout=20_000)


def test_what_to_fix_first_leads_to_the_step_in_its_section(page: Page) -> None:
    _report_of(page, "bob@woodgrove.example", "Bob-Passw0rd!")
    fix_first = page.get_by_role("region", name="What to fix first")
    heading = page.get_by_role("heading", name="What to fix first")
    # At the top: above the verdict and every section.
    assert heading.bounding_box()["y"] < page.locator("#verdict-heading").bounding_box()["y"]
    lines = fix_first.get_by_role("listitem")
    expect(lines).to_have_count(3)
    expect(lines.first).to_contain_text("Pre-authentication gateway")
    # Following a line lands on its step, shown (the section is open) and in view.
    link = lines.nth(1).get_by_role("link")
    anchor = link.get_attribute("href")
    link.click()
    assert page.url.endswith(anchor)
    step = page.locator(anchor)
    expect(step).to_be_visible()
    expect(step).to_be_in_viewport()
    expect(step.locator(".remediation").first).to_contain_text("How to fix")


def test_passing_sections_and_evidence_open_on_demand(page: Page) -> None:
    _report_of(page, "alice@lucerne.example", "Alice-Passw0rd!")
    dns = page.locator("#check-dns")
    expect(dns.locator("> summary h2")).to_be_visible()  # the heading stays, with its status
    expect(dns.locator("li.step").first).to_be_hidden()  # its steps are collapsed
    dns.locator("> summary").focus()
    page.keyboard.press("Enter")  # a keyboard opens it as a mouse does
    expect(dns.locator("li.step").first).to_be_visible()
    version = page.locator("#check-exchange_version")
    expect(version.locator(".remediation").first).to_be_visible()  # failing: open
    evidence = version.locator("details.evidence").first
    expect(evidence.locator("pre")).to_be_hidden()
    evidence.locator("summary").click()
    expect(evidence.locator("pre")).to_be_visible()
    assert "--" not in page.locator("main").inner_text()


def test_a_link_to_a_collapsed_step_opens_its_section(page: Page) -> None:
    _report_of(page, "alice@lucerne.example", "Alice-Passw0rd!")
    step = page.locator("#check-dns li.step").first
    anchor = step.get_attribute("id")
    expect(step).to_be_hidden()
    page.goto(page.url.split("#")[0] + "#" + anchor)  # a link shared with a colleague
    expect(step).to_be_visible()


def test_the_report_prints_whole_and_the_printable_view_makes_a_pdf(page: Page) -> None:
    _report_of(page, "bob@woodgrove.example", "Bob-Passw0rd!")
    report_url = page.url
    page.emulate_media(media="print")
    # On paper: no forms or buttons, and collapsed sections print with their evidence even
    # without the page's script (the print stylesheet opens them).
    expect(page.locator("form.retention")).to_be_hidden()
    expect(page.get_by_role("link", name="Download JSON")).to_be_hidden()
    expect(page.locator("#check-dns li.step").first).to_be_visible()
    expect(page.locator("#check-dns pre").first).to_be_visible()
    page.emulate_media(media="screen")

    page.get_by_role("link", name="Printable version (PDF)").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("bob@woodgrove.example")
    button = page.get_by_role("button", name="Print or save as PDF")
    expect(button).to_be_visible()  # the script shows it; without a script it stays hidden
    expect(page.locator("form")).to_have_count(0)
    expect(page.locator("pre").first).to_be_visible()  # every piece of evidence, open
    expect(page.get_by_role("link", name=report_url)).to_be_visible()
    page.emulate_media(media="print")
    expect(button).to_be_hidden()
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "check-report.pdf").write_bytes(pdf)
    page.emulate_media(media="screen")
    page.screenshot(path=str(ARTIFACTS / "check-report-printable.png"), full_page=True)


def test_the_service_account_fields_and_their_errors_sit_together(page: Page) -> None:
    page.goto("/check")
    page.get_by_label("Domain or mailbox address").fill("alice@proseware.example")
    page.get_by_text("Exchange service account (impersonation)").click()
    page.get_by_label("Service account (optional)").fill("svc-norole@proseware.example")
    page.get_by_role("button", name="Run the checks").click()
    error = page.get_by_role("alert")
    expect(error).to_contain_text("Give the service account's password too.")
    field = page.get_by_label("Service account (optional)")
    expect(field).to_be_visible()  # its group is open again, the error beside the field
    assert field.input_value() == "svc-norole@proseware.example"
    page.get_by_label("Service account password").fill("Norole-Passw0rd!")
    page.get_by_role("button", name="Run the checks").click()
    expect(page.get_by_role("heading", name="Verdict: FAIL")).to_be_visible(timeout=20_000)
    finding = page.get_by_role("region", name="What to fix first").get_by_role("listitem")
    expect(finding.first).to_contain_text("may not impersonate alice@proseware.example")
    assert "Norole-Passw0rd!" not in page.content()
