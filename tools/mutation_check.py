"""Mutation check of the sync engine: plausible mistakes in the planner and the applier, each of
which the engine's tests must catch. Run on demand, not in CI (it runs the suite once per mutant).

Usage: .venv/bin/python tools/mutation_check.py [--profile ci|dev|nightly] [--jobs 2]
           [--only NAME ...] [--head] [--list] [--markdown] [--keep] [--pytest-args "..."]

Every mutant names a file, one exact snippet of it and its replacement. The check copies the
project (the working tree's tracked and untracked, not ignored files; `--head` takes the last
commit instead) into a temporary directory, runs the suite there once unmutated (it must pass),
then, for each mutant, in a fresh copy with that one edit, runs the suite again:

- caught: the tests failed (what failed first is shown);
- survived: the tests passed, so no test notices the mistake;
- broken: the snippet is not in the file exactly once, or the edit does not compile, so the
  list must follow the code;
- error: the run did not end with passed or failed tests (collection, timeout, imports).

The working tree is never written to. Each run imports the copy's code (its directory is the
working directory and first on PYTHONPATH; the project is installed editable from the
original checkout) and a small pytest plugin stops a run whose `daemon` or `common` modules
come from anywhere else. The last line is the verdict, "N/M mutants caught"; the exit status
is non-zero unless every mutant was caught.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PYTEST_ARGS = "tests/engine -x -q -p no:cacheprovider"
GUARD_PLUGIN = "_mutation_check_imports"
GUARD_EXIT = 99  # the plugin's exit status when the copy's code was not the code imported


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    file: str  # relative to the project root
    original: str  # must occur exactly once in the file
    replacement: str
    why: str  # the mistake it stands for, and why someone might make it


MUTANTS: tuple[Mutant, ...] = (
    # --- the mistakes named in the issue -------------------------------------------------
    Mutant(
        "conflict-not-recorded",
        "daemon/apply.py",
        "        if action.conflict is None:\n            return []\n",
        "        return []\n",
        "the losing version of a conflict is overwritten without its audit row (the conflict "
        "audit looks like bookkeeping one can drop)",
    ),
    Mutant(
        "conflict-not-marked-in-plan",
        "daemon/engine.py",
        "            conflict=Conflict(winner, pair.seen[loser], why),\n",
        "            conflict=None,\n",
        "both sides changed: the winner is written as a plain update, the plan and the audit "
        "never say that an edit lost",
    ),
    Mutant(
        "recovery-skips-correlation-lookup",
        "daemon/resolve.py",
        "        found = connector.find_by_correlation_id(link.correlation_id)\n",
        "        found = None\n",
        "an interrupted create trusts the listing to show its copy (Graph delta hides stamps, "
        "so a second copy is made)",
    ),
    Mutant(
        "resume-skips-correlation-lookup",
        "daemon/apply.py",
        "        found = self.connectors[target].find_by_correlation_id(link.correlation_id)\n",
        "        found = None\n",
        "resuming an interrupted create creates again instead of looking for the copy the "
        "first attempt made",
    ),
    Mutant(
        "crm-wins-inverted",
        "daemon/engine.py",
        '            return CRM, "profile policy: CRM wins"\n',
        '            return GROUPWARE, "profile policy: CRM wins"\n',
        "the conflict policy read the wrong way round (a copy-and-paste of the branch below)",
    ),
    Mutant(
        "newest-wins-inverted",
        "daemon/engine.py",
        "gw_time > crm_time:",
        "gw_time < crm_time:",
        "newest wins with the comparison the wrong way round: the older edit wins",
    ),
    Mutant(
        "deletion-beats-modification",
        "daemon/engine.py",
        "            survivor_state is _State.CHANGED\n            and not follows_series\n",
        "            False\n            and not follows_series\n",
        "deleted on one side and edited on the other: the deletion is carried and the edit "
        "lost (the simplest reading of 'gone means delete')",
    ),
    Mutant(
        "window-ignored",
        "daemon/policies.py",
        "    if not overlaps_window(item, start, end):\n",
        "    if False:\n",
        "the sync window is not applied: every item of a calendar's history and future is copied",
    ),
    Mutant(
        "target-only-fields-overwritten",
        "daemon/apply.py",
        "            merge(current.item, source.item, caps[other(target)], caps[target]),\n",
        "            project(source.item, caps[target]),\n",
        "an update writes the source item as the target can hold it (as a create does), so "
        "fields only the target keeps (categories in the groupware) are wiped",
    ),
    Mutant(
        "guard-disabled",
        "daemon/policies.py",
        "    def exceeded(self, deletes: int, side_size: int) -> bool:\n",
        "    def exceeded(self, deletes: int, side_size: int) -> bool:\n        return False\n",
        "the deletion guard never holds a plan (a threshold set so high it never fires)",
    ),
    # --- more of our own ---------------------------------------------------------------------
    Mutant(
        "empty-listing-not-held",
        "daemon/engine.py",
        "        if side in inp.listed_nothing and linked > 0:\n",
        "        if False:\n",
        "a side whose listing came back empty (a broken listing, an emptied calendar) empties "
        "the other side, unless the guard's numbers happen to catch it",
    ),
    Mutant(
        "merge-overwrites-agreeing-fields",
        "common/capabilities.py",
        "        if target_view[name] != source_view[name]:\n            changes[name] = ",
        "        if True:\n            changes[name] = ",
        "an update writes every shared field, not only those that differ: what the source "
        "cannot express (show-as elsewhere, an HTML body) is lost on the target",
    ),
    Mutant(
        "coarse-versions-trusted",
        "daemon/engine.py",
        "            self.inp.exact_versions.get(side, True)\n",
        "            True\n",
        "an unchanged version is taken as unchanged content on every side, also SuperOffice's "
        "day-grained updatedDate (a second edit on the same day is never seen)",
    ),
    Mutant(
        "twins-by-stamp-disabled",
        "daemon/engine.py",
        '        ("stamp", free_stamp),\n',
        "",
        "after a lost link table only content pairs items: an item edited since is copied "
        "again (a duplicate on each side)",
    ),
    Mutant(
        "move-detection-disabled",
        "daemon/engine.py",
        "        if known is None or known in gone:\n",
        "        if known is None:\n",
        "a stamped item under a new id (moved between folders) is taken for a user's copy: "
        "its copy is deleted and created again, or doubled",
    ),
    Mutant(
        "filters-only-on-changed-items",
        "daemon/engine.py",
        "        elif self.left_the_filters(pair):\n",
        "        elif _State.CHANGED in (crm, gw) and self.left_the_filters(pair):\n",
        "filters are checked only when an item changed; leaving a selection does not change a "
        "person's version, so the copy stays",
    ),
    Mutant(
        "private-filter-ignored",
        "daemon/policies.py",
        "    if item.private and rules.private is PrivatePolicy.SKIP:\n",
        "    if False:\n",
        "private items are synced although the profile says skip (the default)",
    ),
    Mutant(
        "colleague-meeting-copied",
        "daemon/engine.py",
        "        waits = self.arrives_elsewhere(stored, side)\n",
        "        waits = None\n",
        "a meeting organised by another synced user is copied by each participant's sync: "
        "everyone holds it twice",
    ),
    Mutant(
        "invitations-ignore-policy",
        "daemon/apply.py",
        "        allowed = tuple(a for a in others if invitations.invites(a.email, self.context.colleagues))\n",
        "        allowed = others\n",
        "every participant becomes an attendee: customers get invitations from a sync",
    ),
    Mutant(
        "span-end-ignored",
        "daemon/resolve.py",
        "        if window is not None and link.span_end is not None and link.span_end <= window.start:\n",
        "        if False:\n",
        "a linked item that left the window by time is read on every full listing (one "
        "lookup each, every day, for the whole history)",
    ),
    Mutant(
        "absence-taken-as-deletion",
        "daemon/resolve.py",
        "            ask.append(removal.id)\n",
        "            removals.append(Removal(removal.id, RemovalKind.DELETED))\n",
        "a removal that does not say why (Graph's calendarView delta, 'left the range') is "
        "taken as a deletion without reading the item",
    ),
    Mutant(
        "retry-list-not-saved",
        "daemon/sync.py",
        "                        retry[side],\n                        relist=",
        "                        [],\n                        relist=",
        "the cursor advances past a failed item and nothing remembers it: the item is synced "
        "only when it changes again",
    ),
    Mutant(
        "held-plan-lets-creates-through",
        "daemon/engine.py",
        "action.op in (Op.DELETE, Op.CREATE, Op.RESUME)",
        "action.op is Op.DELETE",
        "a held plan holds only its deletions; the creates that replace the deleted items go "
        "through, so approving it doubles them",
    ),
    Mutant(
        "intent-after-call",
        "daemon/apply.py",
        "        intent = self.store.put_link(self.kind, intent, audits, replaces=replaces)\n"
        "        self._write_side = target\n"
        "        result = yield write\n",
        "        self._write_side = target\n"
        "        result = yield write\n"
        "        intent = self.store.put_link(self.kind, intent, audits, replaces=replaces)\n",
        "the journal's intent is written together with the result, after the call: a crash in "
        "between leaves a copy nobody knows of",
    ),
    Mutant(
        "source-stamp-skipped",
        "daemon/apply.py",
        "        source = self._stamp(other(target), source, base.correlation_id, strict=True)\n",
        "",
        "only the copy carries the stamp: after a lost link table the source cannot be "
        "paired by it",
    ),
    Mutant(
        "deletes-enabled-ignored",
        "daemon/engine.py",
        "        if not self.inp.policy.guard.deletes_enabled:\n            self.skipped.append(\n",
        "        if False:\n            self.skipped.append(\n",
        "onboarding's 'deletions off' is not honoured when an item is deleted",
    ),
    Mutant(
        "follower-edit-carried",
        "daemon/engine.py",
        "        if not self.direction.leads(changed):\n",
        "        if False:\n",
        "one-way sync carries the follower's edits to the leader instead of reverting them",
    ),
    Mutant(
        "source-deleted-copy-kept",
        "daemon/engine.py",
        "        if source_side in pair.gone:\n",
        "        if False:\n",
        "an interrupted create whose source was deleted meanwhile is finished anyway",
    ),
    Mutant(
        "delete-outside-window",
        "daemon/apply.py",
        "        if self._outside_window(current):\n",
        "        if False:\n",
        "a copy outside the window is deleted with its source (the other side may simply not "
        "list that far)",
    ),
    Mutant(
        "long-throttle-slept",
        "daemon/apply.py",
        "            if exc.retry_after > self.max_sleep:\n",
        "            if False:\n",
        "a worker sleeps out a long Retry-After while other users wait",
    ),
    Mutant(
        "no-op-update-sent",
        "daemon/apply.py",
        "        if self._hash(current) == agreed:  # nothing to write: never send a no-op update\n",
        "        if False:\n",
        "an update is sent although the target already agrees (a write, an audit row and a "
        "new version for nothing; ping-pong with a rewriting server)",
    ),
    Mutant(
        "coarse-update-not-reread",
        "daemon/apply.py",
        "        if action.seen is not None and not connector.exact_versions:\n",
        "        if False:\n",
        "an update on a side with day-grained versions is written without reading the item "
        "again, so an edit made since the listing is overwritten",
    ),
    Mutant(
        "stamp-holder-not-oldest",
        "daemon/engine.py",
        "        for stored in sorted(changes.upserts, key=_age):\n",
        "        for stored in changes.upserts:\n",
        "of an item and a user's copy carrying one stamp, whichever is listed first claims the "
        "link, so the copy may take the original's place",
    ),
    Mutant(
        "no-checkpoint-between-pages",
        "daemon/sync.py",
        "                        run.checkpoint(report.failures, outcome.plans)\n",
        "                        pass\n",
        "the cursor is kept only when a run ends well, so a 50,000-item initial sync stopped "
        "by a throttle lists everything again from the first page",
    ),
    Mutant(
        "checkpoint-forgets-deferred",
        "daemon/sync.py",
        "            owed[side] += list(self.deferred[side])\n",
        "            pass\n",
        "the checkpoint keeps the next page's token but not the items the pages kept for the "
        "run's end, so a resumed run never copies the items of the pages before it",
    ),
    Mutant(
        "resumed-listing-taken-as-complete",
        "daemon/sync.py",
        "            if page.restarted:  # the cursor had expired: a full listing began\n",
        "            if self.cursor[side] is not None and page.full and not self.full[side]:\n",
        "a resumed full listing is taken for a whole one, so every linked item of the pages "
        "it did not show is read again to see whether it was deleted",
    ),
    Mutant(
        "checkpoint-forgets-empty-listing",
        "daemon/sync.py",
        "                emptied=side in self.emptied,\n",
        "                emptied=False,\n",
        "a run stopped after a side's listing came back empty resumes without that fact, so "
        "the deletions it implies pass the guard without approval",
    ),
    Mutant(
        "source-stamps-one-by-one",
        "daemon/apply.py",
        "        if len(stamps) < 2 or size < 2:\n",
        "        if True:\n",
        "the sources of new pairs are stamped one request each, so an initial sync sends as "
        "many requests to the groupware as it has items",
    ),
    Mutant(
        "replanned-deletions-unguarded",
        "daemon/apply.py",
        "                elif fresh.op is Op.DELETE and not self._guard_admits(fresh, action):\n",
        "                elif False:\n",
        "deletions a re-plan finds while a run applies are made without the guard, so items "
        "deleted during a long run lose their copies past the profile's limit",
    ),
    Mutant(
        "replanned-deletion-counted-twice",
        "daemon/apply.py",
        "            actions.extend(a for a in self._plan.actions if a is not replaced)\n",
        "            actions.extend(self._plan.actions)\n",
        "a refused deletion planned again is counted with the planned one it stands in for, "
        "so one deletion is held as two and a private item's copy stays",
    ),
    Mutant(
        "paged-end-skips-stamp-lookup",
        "daemon/sync.py",
        "        upserts[side] += moved_elsewhere(\n",
        "        upserts[side] += [] if True else moved_elsewhere(\n",
        "the end of a multi-page run takes a linked item not found under its id as deleted "
        "without asking by the stamp, so a moved copy is made again beside itself",
    ),
    Mutant(
        "interrupted-write-left-to-the-listing",
        "daemon/sync.py",
        "        for record in store.unconfirmed_audits(kind):\n",
        "        for record in store.unconfirmed_audits(kind)[:0]:\n",
        "an interrupted write is trusted to come back through the listing, which never shows "
        "an item found by its stamp again: the pair is left believed agreed",
    ),
    Mutant(
        "held-run-keeps-its-checkpoints",
        "daemon/sync.py",
        "                    store.save_cursor(kind, side, run.found[side])\n",
        "                    pass\n",
        "a held run of several pages leaves its checkpoints, so the approved run resumes "
        "past what made the plan and carries nothing (the next run is held again)",
    ),
    Mutant(
        "kept-item-not-read-again",
        "daemon/sync.py",
        "        if again:\n",
        "        if False:\n",
        "an item kept for a multi-page run's end is decided on as first read, although a page "
        "wrote to it since: the old reading looks like an edit and undoes the user's",
    ),
    Mutant(
        "resumed-run-stops-at-the-listing-end",
        "daemon/sync.py",
        "            if self.done[side] and self.catch_up[side]:\n",
        "            if False:\n",
        "a run resumed from a checkpoint ends with the stopped listing, so changes made before "
        "it began wait for another run",
    ),
    Mutant(
        "finished-resumed-listing-not-relisted",
        "daemon/sync.py",
        "self.window) or self.saved[side].relist\n",
        "self.window)\n",
        "a full listing finished by a resumed run is taken as complete, so a deletion made "
        "before it began (and reported by no delta) keeps its copy forever",
    ),
    # --- meetings organised on the groupware: mail only whom the profile allows ----------
    Mutant(
        "writes-may-mail-everyone",
        "daemon/apply.py",
        "        return self.context.policy.invitations.invites(address, self.context.colleagues)\n",
        "        return True\n",
        "every write may mail anyone (the invitation policy taken to concern creates only): a "
        "CRM change to a meeting organised in Outlook mails its customers an update",
    ),
    Mutant(
        "held-write-planned-again",
        "daemon/engine.py",
        "        if needed is None or self.inp.policy.invitations.mode.allows(needed):\n"
        "            return False\n",
        "        return False\n",
        "a held write is planned, refused and recorded again on every run (the link's memory "
        "of the hold ignored)",
    ),
    Mutant(
        "hold-lifted-by-a-lesser-setting",
        "daemon/policies.py",
        "        return order.index(self) >= order.index(needed)\n",
        "        return order.index(self) <= order.index(needed)\n",
        "the invite modes compared the wrong way round: a hold that needs mail to customers is "
        "lifted while the profile mails nobody, one that needs colleagues never is",
    ),
)


@dataclass(slots=True)
class Result:
    mutant: Mutant | None  # None: the unmutated baseline
    outcome: str  # caught, survived, broken, error, passed (baseline)
    seconds: float = 0.0
    detail: str = ""  # what failed first, or why it is broken
    output: str = ""

    @property
    def name(self) -> str:
        return self.mutant.name if self.mutant else "(unmutated)"


# --- the copies ------------------------------------------------------------------------------------


def snapshot(target: Path, head: bool) -> None:
    """The project as it is (tracked and untracked, not ignored files) or as last committed."""
    target.mkdir(parents=True)
    if head:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        return
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    for name in sorted({n for n in listed.decode().split("\0") if n}):
        source = ROOT / name
        if not source.is_file():  # deleted in the working tree, or a submodule
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)


def mutate(base: Path, mutant: Mutant) -> tuple[str | None, str]:
    """The mutated file's text, or None and why the mutant does not fit the code."""
    path = base / mutant.file
    if not path.is_file():
        return None, f"{mutant.file} does not exist"
    text = path.read_text()
    count = text.count(mutant.original)
    if count != 1:
        return None, f"snippet found {count} times in {mutant.file} (must be once)"
    mutated = text.replace(mutant.original, mutant.replacement)
    try:
        compile(mutated, str(path), "exec")
    except SyntaxError as exc:
        return None, f"the mutated file does not compile: {exc}"
    return mutated, ""


def write_guard(folder: Path) -> None:
    """A pytest plugin that stops the run when `daemon` or `common` is not the copy's, and
    records where every module of theirs came from."""
    (folder / f"{GUARD_PLUGIN}.py").write_text(
        textwrap.dedent(
            f"""\
            import json
            import os
            import sys

            import pytest

            COPY = os.path.realpath(os.environ["MUTATION_CHECK_COPY"]) + os.sep


            def _ours():
                return {{
                    name: os.path.realpath(module.__file__)
                    for name, module in list(sys.modules.items())
                    if name.split(".")[0] in ("daemon", "common")
                    and getattr(module, "__file__", None)
                }}


            def pytest_collection_finish(session):
                import common  # noqa: F401
                import daemon  # noqa: F401

                elsewhere = {{n: f for n, f in _ours().items() if not f.startswith(COPY)}}
                if elsewhere:
                    some = dict(list(elsewhere.items())[:3])
                    pytest.exit(f"not imported from the copy: {{some}}", returncode={GUARD_EXIT})


            def pytest_sessionfinish(session):
                with open(os.environ["MUTATION_CHECK_IMPORTS"], "w") as out:
                    json.dump(_ours(), out)
            """
        )
    )


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def run_suite(
    copy: Path, guard: Path, profile: str, pytest_args: Sequence[str], timeout: float
) -> tuple[int | None, str, dict[str, str], float]:
    """Run pytest in `copy`: exit status (None: timed out), output, imported files, seconds."""
    imports = copy.parent / f"{copy.name}.imports.json"
    env = dict(os.environ)
    env.update(
        {
            "HYPOTHESIS_PROFILE": profile,
            "PYTHONPATH": os.pathsep.join([str(copy), str(guard)]),
            "MUTATION_CHECK_COPY": str(copy),
            "MUTATION_CHECK_IMPORTS": str(imports),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    command = [python(), "-m", "pytest", *pytest_args, "-p", GUARD_PLUGIN]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    status: int | None
    try:
        output, _ = process.communicate(timeout=timeout)
        status = process.returncode
    except subprocess.TimeoutExpired:
        # An interrupt first, so pytest's fixtures stop the servers they started; then a kill.
        status = None
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    seconds = time.perf_counter() - started
    found: dict[str, str] = json.loads(imports.read_text()) if imports.exists() else {}
    return status, output, found, seconds


def first_failure(output: str) -> str:
    """The short summary's first FAILED or ERROR line, without the path to the tests."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            line = line.split(" ", 1)[1].removeprefix("tests/engine/")
            return line if len(line) <= 110 else line[:107] + "..."
    return ""


def module_of(file: str) -> str:
    return file.removesuffix(".py").replace("/", ".")


# --- one mutant ------------------------------------------------------------------------------------


class Check:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.base = work / "base"
        self.guard = work / "plugin"
        self.profile: str = args.profile
        self.pytest_args = shlex.split(args.pytest_args)
        self.timeout: float = args.timeout
        self.keep: bool = args.keep

    def baseline(self) -> Result:
        copy = self.work / "unmutated"
        shutil.copytree(self.base, copy)
        status, output, imports, seconds = self.run(copy)
        daemon_file = imports.get("daemon", "")
        if status == 0 and not daemon_file.startswith(str(copy.resolve()) + os.sep):
            return Result(None, "error", seconds, "daemon was not imported from the copy", output)
        if status != 0:
            return Result(None, "error", seconds, first_failure(output) or f"exit {status}", output)
        return Result(None, "passed", seconds, f"daemon imported from {daemon_file}", output)

    def mutant(self, mutant: Mutant) -> Result:
        mutated, why = mutate(self.base, mutant)
        if mutated is None:
            return Result(mutant, "broken", 0.0, why)
        copy = self.work / mutant.name
        shutil.copytree(self.base, copy)
        (copy / mutant.file).write_text(mutated)
        try:
            status, output, imports, seconds = self.run(copy)
        finally:
            if not self.keep:
                shutil.rmtree(copy, ignore_errors=True)
        loaded = imports.get(module_of(mutant.file))
        if status == 1:
            return Result(mutant, "caught", seconds, first_failure(output), output)
        if status == 0:
            if loaded is None:
                return Result(mutant, "survived", seconds, "the mutated module was not imported")
            return Result(mutant, "survived", seconds, "", output)
        if status is None:
            return Result(mutant, "error", seconds, f"timed out after {self.timeout:g} s", output)
        if status == GUARD_EXIT:
            return Result(mutant, "error", seconds, "code imported from outside the copy", output)
        return Result(mutant, "error", seconds, first_failure(output) or f"exit {status}", output)

    def run(self, copy: Path) -> tuple[int | None, str, dict[str, str], float]:
        return run_suite(copy, self.guard, self.profile, self.pytest_args, self.timeout)


# --- the report ------------------------------------------------------------------------------------


def table(results: Sequence[Result], markdown: bool) -> list[str]:
    rows = [
        (r.name, r.mutant.file if r.mutant else "", r.outcome, f"{r.seconds:.0f}", r.detail)
        for r in results
    ]
    head = ("mutant", "file", "result", "seconds", "caught by / why")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, file, outcome, seconds, detail in rows:
            shown = f"`{detail}`" if detail and outcome == "caught" else detail
            lines.append(f"| {name} | {file} | {outcome} | {seconds} | {shown} |")
        return lines
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(4)]
    lines = []
    for row in [head, *rows]:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        cells[3] = row[3].rjust(widths[3])
        lines.append("  ".join([*cells, row[4]]).rstrip())
    return lines


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the engine's tests against plausible mistakes (mutants) in a copy.",
    )
    parser.add_argument(
        "--profile",
        default="ci",
        choices=["ci", "dev", "nightly"],
        help="HYPOTHESIS_PROFILE for every run (default: ci, as in CI; dev is quicker)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default: 2)")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this mutant (repeatable)"
    )
    parser.add_argument(
        "--pytest-args",
        default=DEFAULT_PYTEST_ARGS,
        help=f"what pytest runs in each copy (default: {DEFAULT_PYTEST_ARGS!r})",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds per run before it counts as error"
    )
    parser.add_argument(
        "--head", action="store_true", help="check the last commit, not the working tree"
    )
    parser.add_argument(
        "--list", action="store_true", help="list the mutants, whether each fits the code, and exit"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the copies (their paths shown)")
    parser.add_argument(
        "--show-output", action="store_true", help="print the pytest output of errors"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    names = [m.name for m in MUTANTS]
    assert len(set(names)) == len(names), "mutant names must be unique"
    if args.list:
        for m in MUTANTS:  # checked against the working tree (read only)
            fits = mutate(ROOT, m)[1] or "fits"
            print(f"{m.name:34} {m.file:24} {fits}\n    {m.why}")
        return 0
    chosen = list(MUTANTS)
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            print(f"unknown mutants: {', '.join(unknown)}", file=sys.stderr)
            return 2
        chosen = [m for m in MUTANTS if m.name in args.only]

    work = Path(tempfile.mkdtemp(prefix="mutation-check-"))
    try:
        return check(work, args, chosen)
    finally:
        if args.keep:
            print(f"copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def check(work: Path, args: argparse.Namespace, chosen: list[Mutant]) -> int:
    runner = Check(work, args)
    snapshot(runner.base, args.head)
    runner.guard.mkdir()
    write_guard(runner.guard)
    source = "last commit" if args.head else "working tree"
    command = " ".join(["pytest", *runner.pytest_args])
    print(f"{len(chosen)} mutants; copy of the {source}; HYPOTHESIS_PROFILE={args.profile}")
    print(f"each run: {command} (in the copy, with the copy first on PYTHONPATH)")

    broken = [m.name for m in chosen if mutate(runner.base, m)[0] is None]
    if broken:
        print(f"broken (do not fit the code; not run): {', '.join(broken)}", flush=True)

    print("unmutated run ...", flush=True)
    baseline = runner.baseline()
    print(f"unmutated: {baseline.outcome} in {baseline.seconds:.0f} s; {baseline.detail}")
    if baseline.outcome != "passed":
        print(baseline.output[-4000:], file=sys.stderr)
        print("the suite fails without any mutant: nothing to compare with", file=sys.stderr)
        return 2

    started = time.perf_counter()
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        try:
            for result in pool.map(runner.mutant, chosen):
                print(f"  {result.name}: {result.outcome} ({result.seconds:.0f} s)", flush=True)
                if result.outcome == "error" and args.show_output:
                    print(result.output[-4000:])
                results.append(result)
        except KeyboardInterrupt:  # the runs under way got the interrupt too: start no more
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    elapsed = time.perf_counter() - started

    print()
    for line in table(results, args.markdown):
        print(line)
    caught = sum(1 for r in results if r.outcome == "caught")
    counts = {o: sum(1 for r in results if r.outcome == o) for o in ("survived", "broken", "error")}
    print()
    print(
        f"unmutated suite {baseline.seconds:.0f} s; mutants {elapsed:.0f} s with {args.jobs} "
        f"jobs; " + ", ".join(f"{n} {o}" for o, n in counts.items())
    )
    print(f"{caught}/{len(results)} mutants caught")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
