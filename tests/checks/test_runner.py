"""The runner: concurrency under one deadline, streaming, timeouts, and the verdict."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from checksite.checks.context import CheckContext, parse_target
from checksite.checks.model import CheckResult, Report, Step, verdict_of
from checksite.checks.registry import CheckSpec, UnknownCheck, select
from checksite.checks.runner import run_checks, stream_checks
from common.netguard import GuardPolicy, NetGuard


def context() -> CheckContext:
    return CheckContext(parse_target("contoso.example"), NetGuard(GuardPolicy()))


def sleeper(check_id: str, seconds: float, status: str = "pass") -> CheckSpec:
    def run(ctx: CheckContext) -> Iterator[Step]:
        yield Step(f"{check_id}.start", "Started", "info")
        time.sleep(seconds)
        yield Step(f"{check_id}.end", "Finished", status)  # type: ignore[arg-type]

    return CheckSpec(check_id, check_id.title(), run)


def test_checks_run_concurrently() -> None:
    specs = [sleeper(f"c{i}", 0.3) for i in range(5)]
    started = time.monotonic()
    report = run_checks(context(), specs, deadline_s=5)
    assert time.monotonic() - started < 0.9  # one after another would take 1.5 s
    assert [c.id for c in report.checks] == [f"c{i}" for i in range(5)]
    assert report.verdict == "pass"


def test_a_check_out_of_time_keeps_what_it_found() -> None:
    specs = [sleeper("quick", 0.0), sleeper("stuck", 30.0)]
    started = time.monotonic()
    report = run_checks(context(), specs, deadline_s=0.5)
    assert time.monotonic() - started < 1.0
    stuck = report.checks[1]
    assert stuck.timed_out
    assert [s.id for s in stuck.steps] == ["stuck.start", "stuck.timeout"]
    assert "did not finish within 0.5 seconds" in stuck.steps[-1].message
    assert stuck.status == "fail"
    assert report.checks[0].status == "pass"
    assert report.verdict == "fail"


def test_steps_stream_as_they_finish_and_the_report_comes_last() -> None:
    specs = [sleeper("slow", 0.3), sleeper("fast", 0.0, "warn")]
    events = list(stream_checks(context(), specs, deadline_s=5))
    order = [(e.kind, e.step.id if e.step else e.check_id) for e in events]
    assert order.index(("check", "fast")) < order.index(("step", "slow.end"))  # not held back
    assert events[-1].kind == "report"
    assert events[-1].report is not None
    assert events[-1].report.verdict == "warn"
    assert all(e.to_dict()["kind"] == e.kind for e in events)


def test_a_crashing_check_is_a_failed_step_not_a_crash() -> None:
    def broken(ctx: CheckContext) -> Iterator[Step]:
        yield Step("broken.first", "First", "pass")
        raise KeyError("boom")

    report = run_checks(context(), [CheckSpec("broken", "Broken", broken)], deadline_s=2)
    (check,) = report.checks
    assert [s.status for s in check.steps] == ["pass", "fail"]
    assert "KeyError" in check.steps[1].message


def test_verdict_fail_beats_warn_beats_pass() -> None:
    assert verdict_of(["pass", "warn", "fail", "info"]) == "fail"
    assert verdict_of(["pass", "warn", "skip"]) == "warn"
    assert verdict_of(["pass", "info", "skip"]) == "pass"
    nested = Step("a", "A", "pass", children=[Step("b", "B", "info", children=[])])
    nested.children[0].children.append(Step("c", "C", "warn"))
    assert CheckResult("x", "X", [nested]).status == "warn"
    assert CheckResult("y", "Y", [Step("s", "S", "skip")]).status == "skip"


def test_report_round_trips_through_json_shape() -> None:
    report = run_checks(context(), [sleeper("a", 0), sleeper("b", 0, "fail")], deadline_s=2)
    again = Report.from_dict(report.to_dict())
    assert again.to_dict() == report.to_dict()
    data = report.to_dict()
    assert data["verdict"] == "fail"
    assert data["summary"]["fail"] == 1
    step = data["checks"][0]["steps"][0]
    assert set(step) == {
        "id",
        "title",
        "status",
        "message",
        "details",
        "remediation",
        "elapsed_ms",
        "children",
    }


def test_select_checks_by_id() -> None:
    assert [s.id for s in select(["dns"])] == ["dns"]
    with pytest.raises(UnknownCheck, match="unknown check id nope"):
        select(["nope"])


def test_a_shared_fact_that_failed_is_computed_once_and_named_where_it_is_needed() -> None:
    computed: list[int] = []

    def broken_fact(ctx: CheckContext) -> int:
        computed.append(1)
        time.sleep(0.2)  # the others ask meanwhile, and wait for this one
        raise ValueError("the server said nonsense")

    def needs_the_fact(check_id: str) -> CheckSpec:
        def run(ctx: CheckContext) -> Iterator[Step]:
            value = ctx.fact("discovery", lambda: broken_fact(ctx))
            yield Step(f"{check_id}.value", "Value", "pass", str(value))

        return CheckSpec(check_id, check_id.title(), run)

    specs = [needs_the_fact(f"c{i}") for i in range(3)]
    report = run_checks(context(), specs, deadline_s=5)
    assert computed == [1]
    ids = sorted(step.id.split(".", 1)[1] for check in report.checks for step in check.steps)
    assert ids == ["depends", "depends", "error"]  # one says why, the others point to it
    depends = [s for c in report.checks for s in c.steps if s.id.endswith(".depends")]
    assert all(s.status == "skip" and "discovery" in s.message for s in depends)
