"""The report as a readable tree for a terminal (the CLI's default output)."""

from __future__ import annotations

from checksite.checks.fix_first import fix_first
from checksite.checks.model import CheckResult, Report, Step

MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP", "info": "INFO"}


def check_lines(check: CheckResult) -> list[str]:
    suffix = " (out of time)" if check.timed_out else ""
    lines = [f"[{MARKS[check.status]}] {check.title}{suffix}  {check.elapsed_ms} ms"]
    for step in check.steps:
        lines += step_lines(step, depth=1)
    return lines


def step_lines(step: Step, depth: int) -> list[str]:
    indent = "    " * depth
    text = f"{step.title}: {step.message}" if step.message else step.title
    lines = [f"{indent}{MARKS[step.status]}  {text}"]
    if step.remediation:
        lines.append(f"{indent}      fix: {step.remediation}")
    for child in step.children:
        lines += step_lines(child, depth + 1)
    return lines


def summary_line(report: Report) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in report.summary().items() if n)
    return (
        f"Verdict for {report.target}: {report.verdict.upper()} ({counts}; "
        f"{report.elapsed_ms / 1000:.1f} s)"
    )


def fix_first_lines(report: Report) -> list[str]:
    """The report page's "what to fix first": the failures, then the warnings, in the order to
    work through them, one line each with its fix (the tree above holds the evidence)."""
    findings = fix_first(report)
    if not findings:
        return ["What to fix first: nothing (every check passed or did not apply)."]
    lines = ["What to fix first:"]
    for number, finding in enumerate(findings, 1):
        lines.append(f"{number:>3}. {MARKS[finding.status]}  {finding.line}")
        if finding.remediation:
            lines.append(f"           fix: {finding.remediation}")
    return lines
