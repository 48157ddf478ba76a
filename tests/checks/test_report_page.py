"""The report for a person, through the page's HTML (the browser tests are in
test_page_browser.py): "what to fix first" at the top in the order to fix things, each line
linked to its step; passing sections collapsed; evidence behind toggles; no command-line
option anywhere; a printable view with everything shown and nothing to click."""

from __future__ import annotations

import re
import time
from typing import Any

import lxml.html
from flask import Flask
from flask.testing import FlaskClient

from checksite.checks.fix_first import FIX_ORDER, fix_first
from checksite.checks.model import CheckResult, Report, Step
from checksite.checks.registry import CHECK_IDS
from tests.checks.test_demo_world import WORLD

STEPS = "//li[starts-with(@class, 'step ')]"
CLI_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def run(client: FlaskClient, target: str, password: str | None = None) -> str:
    body: dict[str, Any] = {"target": target}
    if password:
        body["password"] = password
    return str(client.post("/api/checks", json=body).get_json()["id"])


def wait(client: FlaskClient, report_id: str) -> None:
    deadline = time.monotonic() + 30
    while client.get(f"/api/checks/{report_id}").get_json()["status"] != "done":
        assert time.monotonic() < deadline, report_id
        time.sleep(0.05)


def page(client: FlaskClient, report_id: str, suffix: str = "") -> lxml.html.HtmlElement:
    wait(client, report_id)
    response = client.get(f"/check/r/{report_id}{suffix}")
    assert response.status_code == 200
    return lxml.html.fromstring(response.text)


def fix_lines(html: lxml.html.HtmlElement) -> list[tuple[str, str, str]]:
    """(status, link target, text) of each line of "what to fix first", in order."""
    return [
        (
            li.get("class", "").removeprefix("status-"),
            li.find("a").get("href"),
            li.find("a").text_content().strip(),
        )
        for li in html.xpath("//section[contains(@class, 'fix-first')]/ol[@class='fix-list']/li")
    ]


def test_fix_first_puts_what_hides_the_rest_first_and_links_each_line(
    check_app: Flask,
) -> None:
    client = check_app.test_client()
    html = page(client, run(client, "bob@woodgrove.example", "Bob-Passw0rd!"))
    # It is the first thing under the heading.
    first = html.xpath("//main/h1")[0].getnext()
    assert "fix-first" in first.get("class", "")
    lines = fix_lines(html)
    # The gateway is said first ([unsupported] comes last in the report, first to fix), then
    # Autodiscover's failure it causes, then the version the gateway kept hidden (a warning).
    assert [line[2].split(":")[0] for line in lines] == [
        "Unsupported set-ups, Pre-authentication gateway (Citrix NetScaler style)",
        "Autodiscover, Pre-authentication gateway",
        "Exchange version",
    ]
    assert [line[0] for line in lines] == ["fail", "fail", "warn"]
    for status, href, text in lines:
        target = html.get_element_by_id(href.removeprefix("#"))
        assert target.get("class") == f"step status-{status}"  # the finding's own step
        message = target.xpath("./span[@class='step-message']")[0].text_content()
        assert text.endswith(message)
        assert target.xpath("./p[@class='remediation']") or status == "warn"


def test_one_line_per_problem_not_per_piece_of_evidence(check_app: Flask) -> None:
    client = check_app.test_client()
    html = page(client, run(client, "alice@wingtip.example"))
    # Autodiscover's round of methods fails beside its verdict: one line, the one with a fix.
    lines = fix_lines(html)
    assert [text.split(":")[0] for _, _, text in lines] == ["Autodiscover"]
    assert "None of the four Autodiscover methods" in lines[0][2]


def test_passing_sections_collapsed_failing_ones_open(check_app: Flask) -> None:
    client = check_app.test_client()
    html = page(client, run(client, "alice@lucerne.example", "Alice-Passw0rd!"))
    sections = {d.get("id"): d for d in html.xpath("//details[starts-with(@class, 'check ')]")}
    assert set(sections) == {f"check-{i}" for i in CHECK_IDS}
    opened = {key for key, d in sections.items() if d.get("open") is not None}
    assert opened == {"check-exchange_version"}  # the one failing check (2013)
    # Each section's summary is its heading: the title and status stay readable collapsed.
    assert sections["check-dns"].xpath("./summary/h2/span[@class='badge']")[0].text == "PASS"


def test_evidence_is_behind_toggles_open_only_above_a_finding(check_app: Flask) -> None:
    client = check_app.test_client()
    html = page(client, run(client, "alice@oldcorp.example", "Alice-Passw0rd!"))
    # Every piece of raw evidence sits in a closed toggle.
    for pre in html.xpath("//pre"):
        toggle = pre.getparent()
        assert toggle.tag == "details" and "evidence" in toggle.get("class")
        assert toggle.get("open") is None
    # Sub-steps: open where the problem is below (a passing step over a warning), closed
    # under a finding (they are its evidence) and where everything passed.
    for item in html.xpath(STEPS):
        toggles = [c for c in item if c.tag == "details" and "substeps" in c.get("class")]
        if not toggles:
            continue
        status = item.get("class").removeprefix("step status-")
        below = {li.get("class") for li in toggles[0].xpath("." + STEPS)}
        problem_below = bool(below & {"step status-fail", "step status-warn"})
        expected_open = problem_below and status not in ("fail", "warn")
        assert (toggles[0].get("open") is not None) == expected_open, item.get("id")


def test_no_page_shows_a_command_line_option(check_app: Flask) -> None:
    client = check_app.test_client()
    started = [run(client, target, password) for target, password, _, _ in WORLD]
    for report_id in started:
        for suffix in ("", "/print"):
            text = page(client, report_id, suffix).text_content()
            assert not CLI_OPTION.search(text), (report_id, CLI_OPTION.search(text))
    form = lxml.html.fromstring(client.get("/check").text).text_content()
    assert not CLI_OPTION.search(form)


def test_the_printable_view_shows_everything_and_offers_nothing_to_fill_in(
    check_app: Flask,
) -> None:
    client = check_app.test_client()
    report_id = run(client, "bob@woodgrove.example", "Bob-Passw0rd!")
    screen = page(client, report_id)
    printable = page(client, report_id, "/print")
    assert printable.xpath("//details") == []  # nothing collapsed
    assert printable.xpath("//form | //input") == []  # no sign-in, no delete
    # The same steps and the same list, every anchor of the list present.
    assert [li.get("id") for li in printable.xpath(STEPS)] == [
        li.get("id") for li in screen.xpath(STEPS)
    ]
    assert fix_lines(printable) == fix_lines(screen)
    assert len(printable.xpath("//pre")) == len(screen.xpath("//pre"))
    meta = printable.xpath("//p[@class='print-meta']")[0].text_content()
    assert f"/check/r/{report_id}" in meta and "Verdict: FAIL" in meta
    # Only one h1, then one h2 per part: a document a screen reader can walk.
    assert len(printable.xpath("//h1")) == 1
    headings = [h.text_content().split()[-1] for h in printable.xpath("//h2")]
    assert headings[0] == "first" and len(headings) == 1 + len(CHECK_IDS)
    assert screen.xpath(f"//a[@href='/check/r/{report_id}/print']")


def test_a_running_report_has_no_printable_view_yet(check_app: Flask) -> None:
    client = check_app.test_client()
    report_id = run(client, "alice@proseware.example", "Alice-Passw0rd!")
    response = client.get(f"/check/r/{report_id}/print")
    if response.status_code == 303:  # still running: sent to the live page
        assert response.headers["Location"].endswith(f"/check/r/{report_id}")
    wait(client, report_id)
    assert client.get(f"/check/r/{report_id}/print").status_code == 200
    assert client.get("/check/r/" + "x" * 22 + "/print").status_code == 404


def test_fails_come_before_warnings_and_unknown_checks_keep_report_order() -> None:
    def check(check_id: str, status: str) -> CheckResult:
        return CheckResult(check_id, check_id.title(), [Step(f"{check_id}.x", "X", status, "M.")])  # type: ignore[arg-type]

    report = Report(
        "contoso.example",
        [
            check("new_b", "fail"),
            check("superoffice", "fail"),
            check("tls", "warn"),
            check("new_a", "fail"),
            check("dns", "fail"),
        ],
    )
    order = [f.check.id for f in fix_first(report)]
    assert order == ["dns", "superoffice", "new_b", "new_a", "tls"]
    assert set(FIX_ORDER) >= set(CHECK_IDS), "a check of the registry has no place to fix"
