"""A finished report as the page shows it to a person: "what to fix first" at the top, the
sections of passing checks collapsed, the evidence under a toggle that is open only where a
finding sits below it (its steps would otherwise hide what needs fixing)."""

from __future__ import annotations

from dataclasses import dataclass, field

from checksite.checks.fix_first import SEVERITY, Finding, fix_first, step_anchor
from checksite.checks.model import CheckResult, Report, Step


@dataclass
class StepView:
    step: Step
    anchor: str
    children: list[StepView] = field(default_factory=list)

    @property
    def steps_open(self) -> bool:
        """Its steps are shown at once when the problem is among them, not in it."""
        return self.step.status not in SEVERITY and any(
            s in SEVERITY for child in self.step.children for s in child.statuses()
        )


@dataclass
class SectionView:
    check: CheckResult
    steps: list[StepView]

    @property
    def open(self) -> bool:
        return self.check.status in SEVERITY or self.check.timed_out


@dataclass
class ReportView:
    report: Report
    findings: list[Finding]
    sections: list[SectionView]


def report_view(report: Report) -> ReportView:
    sections = [
        SectionView(check, [_step_view(check.id, s, (i,)) for i, s in enumerate(check.steps)])
        for check in report.checks
    ]
    return ReportView(report, fix_first(report), sections)


def _step_view(check_id: str, step: Step, path: tuple[int, ...]) -> StepView:
    children = [_step_view(check_id, c, (*path, i)) for i, c in enumerate(step.children)]
    return StepView(step, step_anchor(check_id, path), children)
