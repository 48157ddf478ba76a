"""The shapes of a report: a tree of Steps per check, and an overall verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "skip", "info"]
STATUSES: tuple[Status, ...] = ("pass", "warn", "fail", "skip", "info")
Verdict = Literal["pass", "warn", "fail"]


def verdict_of(statuses: list[str]) -> Verdict:
    """fail beats warn beats pass; skip and info do not count."""
    if "fail" in statuses:
        return "fail"
    if "warn" in statuses:
        return "warn"
    return "pass"


@dataclass
class Step:
    """One piece of evidence: what was tried, what came of it, and what to do about it."""

    id: str
    title: str
    status: Status
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    remediation: str = ""
    elapsed_ms: int = 0
    children: list[Step] = field(default_factory=list)

    def statuses(self) -> list[str]:
        """This step's status and all its descendants'."""
        found: list[str] = [self.status]
        for child in self.children:
            found += child.statuses()
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "message": self.message,
            "details": self.details,
            "remediation": self.remediation,
            "elapsed_ms": self.elapsed_ms,
            "children": [child.to_dict() for child in self.children],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(
            id=data["id"],
            title=data["title"],
            status=data["status"],
            message=data.get("message", ""),
            details=dict(data.get("details") or {}),
            remediation=data.get("remediation", ""),
            elapsed_ms=int(data.get("elapsed_ms", 0)),
            children=[cls.from_dict(child) for child in data.get("children") or []],
        )


class Stopwatch:
    """Milliseconds since it was made: `elapsed_ms` of a step."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    def ms(self) -> int:
        return round((time.perf_counter() - self._started) * 1000)


@dataclass
class CheckResult:
    """Everything one check found; `timed_out` when the deadline cut it short."""

    id: str
    title: str
    steps: list[Step] = field(default_factory=list)
    elapsed_ms: int = 0
    timed_out: bool = False

    @property
    def status(self) -> Status:
        statuses = [s for step in self.steps for s in step.statuses()]
        if not statuses or all(s == "skip" for s in statuses):
            return "skip"
        if all(s in ("skip", "info") for s in statuses):
            return "info"
        return verdict_of(statuses)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "elapsed_ms": self.elapsed_ms,
            "timed_out": self.timed_out,
            "steps": [step.to_dict() for step in self.steps],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            id=data["id"],
            title=data["title"],
            steps=[Step.from_dict(step) for step in data.get("steps") or []],
            elapsed_ms=int(data.get("elapsed_ms", 0)),
            timed_out=bool(data.get("timed_out", False)),
        )


@dataclass
class Report:
    target: str
    checks: list[CheckResult] = field(default_factory=list)
    elapsed_ms: int = 0
    deadline_s: float = 0.0

    @property
    def verdict(self) -> Verdict:
        return verdict_of([check.status for check in self.checks])

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {status: 0 for status in STATUSES}
        for check in self.checks:
            counts[check.status] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "verdict": self.verdict,
            "summary": self.summary(),
            "elapsed_ms": self.elapsed_ms,
            "deadline_s": self.deadline_s,
            "checks": [check.to_dict() for check in self.checks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            target=data["target"],
            checks=[CheckResult.from_dict(check) for check in data.get("checks") or []],
            elapsed_ms=int(data.get("elapsed_ms", 0)),
            deadline_s=float(data.get("deadline_s", 0.0)),
        )
