"""The report as a readable tree for a terminal (the CLI's default output)."""

from __future__ import annotations

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
