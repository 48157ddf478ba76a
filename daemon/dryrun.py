"""A plan as a readable list, without applying it (the portal and `--dry-run` show this)."""

from __future__ import annotations

from datetime import datetime

from common.connectors.base import Stored
from common.items import Appointment, Contact
from daemon.engine import Action, Op, Plan

_VERBS = {
    Op.CREATE: "create on",
    Op.UPDATE: "update on",
    Op.DELETE: "delete on",
    Op.LINK: "link (no write) on",
    Op.FORGET: "forget link on",
    Op.RESUME: "finish interrupted create on",
}


def describe(item: Appointment | Contact) -> str:
    if isinstance(item, Contact):
        name = " ".join(p for p in (item.given_name, item.family_name) if p) or "(no name)"
        return f"{name}{' <' + item.emails[0] + '>' if item.emails else ''}"
    if item.all_day:
        when = f"{item.start.isoformat()} (all day)"
    else:
        assert isinstance(item.start, datetime)
        when = f"{item.start.astimezone(item.zone):%Y-%m-%d %H:%M} {item.timezone}"
    series = f", repeats {item.recurrence.rule}" if item.recurrence else ""
    private = ", private" if item.private else ""
    return f"{item.subject!r} {when}{series}{private}"


def describe_action(action: Action[Appointment] | Action[Contact]) -> str:
    shown: Stored[Appointment] | Stored[Contact] | None = action.source or action.seen
    what = describe(shown.item) if shown else (action.target_id or action.source_id or "?")
    if action.op is Op.LINK and action.link is None:
        # Twins (same stamp, meeting or content): the pair is recorded, nothing is copied.
        line = f"pair, no copy made: {what} ({action.reason})"
    else:
        line = f"{_VERBS[action.op]} {action.target.value}: {what} ({action.reason})"
    if action.conflict is not None:
        line += f" [conflict, {action.conflict.winner.value} wins; losing version recorded]"
    return line


def render_plan(plan: Plan[Appointment] | Plan[Contact]) -> list[str]:
    lines = [f"{plan.kind.value}s: " + _summary(plan)]
    if plan.hold is not None:
        lines.append(f"HELD for approval: {plan.hold.reason}; deletions are not applied")
    lines += [f"  {describe_action(a)}" for a in plan.actions]
    lines += [f"  skip {line}" for line in plan.skipped]
    return lines


def _summary(plan: Plan[Appointment] | Plan[Contact]) -> str:
    counts = plan.counts()
    if not any(counts.values()):
        return "nothing to do"
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(counts.items()) if v)
