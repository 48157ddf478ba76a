"""What to fix first: a report's failures (then its warnings) in the order a person should
work through them, one finding per problem.

The order is not the report's. Some problems hide others: a domain that does not resolve, or
an unsupported mail system, makes every later check moot; a firewall that drops our address
hides TLS, and TLS failures break Autodiscover and EWS; the Exchange version and the mailbox's
access come once the server is reachable; the cloud tenants and SuperOffice are independent
of all that and come last. Checks this list does not know keep their report order, after it.

A finding is the highest failing (or warning) step of its branch: its own message and fix say
what is wrong; the steps under it are its evidence, and are not listed again. Within a check,
a failing step without a fix is evidence of one that has it (Autodiscover's round of methods
beside its verdict): when a check has findings with a fix, only those are listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from checksite.checks.model import CheckResult, Report, Step

FIX_ORDER = (
    "dns",
    "unsupported",
    "firewall",
    "tls",
    "autodiscover",
    "exchange_version",
    "ews_access",
    "m365_tenant",
    "m365_plan",
    "app_consent",
    "google_workspace",
    "superoffice",
)
SEVERITY = ("fail", "warn")


@dataclass(frozen=True)
class Finding:
    check: CheckResult
    step: Step
    anchor: str  # the step's id on the report page (see `step_anchor`)

    @property
    def status(self) -> str:
        return self.step.status

    def to_dict(self) -> dict[str, str]:
        """For the JSON of the CLI and the API: the check and step ids name the section."""
        return {
            "status": self.status,
            "check_id": self.check.id,
            "step_id": self.step.id,
            "line": self.line,
            "remediation": self.remediation,
        }

    @property
    def remediation(self) -> str:
        """The step's fix, else the first fix of a step under it with the same status (a host's
        TLS finding carries its fix on the protocol step that failed)."""
        return _first_fix(self.step, self.status)

    @property
    def line(self) -> str:
        """One line: where (the check, and the step when it says more), and what is wrong in
        the step's own words (its first sentence is often only what was found)."""
        where = self.check.title
        if self.step.title and self.step.title != self.check.title:
            where = f"{where}, {self.step.title}"
        return f"{where}: {self.step.message or self.step.title}"


def step_anchor(check_id: str, path: tuple[int, ...]) -> str:
    """A page id for a step: its check and its position (step ids repeat within a check)."""
    return "step-" + check_id.replace(".", "-") + "-" + "-".join(str(i) for i in path)


def fix_first(report: Report) -> list[Finding]:
    rank = {check_id: i for i, check_id in enumerate(FIX_ORDER)}
    checks = sorted(
        enumerate(report.checks), key=lambda item: (rank.get(item[1].id, len(FIX_ORDER)), item[0])
    )
    found = [finding for _, check in checks for finding in _findings(check)]
    return sorted(found, key=lambda f: SEVERITY.index(f.status))  # stable: fails, then warns


def _findings(check: CheckResult) -> list[Finding]:
    found = [
        finding
        for index, step in enumerate(check.steps)
        for finding in _highest(check, step, (index,))
    ]
    with_fix = [finding for finding in found if finding.step.remediation]
    return with_fix or found


def _highest(check: CheckResult, step: Step, path: tuple[int, ...]) -> Iterator[Finding]:
    if step.status in SEVERITY:
        yield Finding(check, step, step_anchor(check.id, path))
        return
    for index, child in enumerate(step.children):
        yield from _highest(check, child, (*path, index))


def _first_fix(step: Step, status: str) -> str:
    if step.remediation:
        return step.remediation
    for child in step.children:
        if child.status == status and (fix := _first_fix(child, status)):
            return fix
    return ""
