"""Hypothesis profiles for the engine's stateful test, chosen with HYPOTHESIS_PROFILE.

`ci` (the default) runs 2,000 examples per machine (appointments, contacts; a tenth on the
SQL store); `nightly` ten times as many, with longer sequences. They are applied to the
stateful tests only, so other areas keep their own settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.fixtures.engine import MemoryStore, make_sql_store

# No "explain" phase: on Python 3.11 it traces every line and multiplies the run time.
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow], "phases": _PHASES}

settings.register_profile(
    "ci", max_examples=2000, stateful_step_count=30, derandomize=True, **_COMMON
)
settings.register_profile("dev", max_examples=200, stateful_step_count=12, **_COMMON)
settings.register_profile("nightly", max_examples=20000, stateful_step_count=40, **_COMMON)


def engine_profile(sql: bool = False, share: float = 1.0) -> settings:
    """The chosen profile, with `share` of its examples; on the SQL store a tenth (each
    example needs a database)."""
    chosen = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    examples = int(chosen.max_examples * share)
    if sql:
        examples //= 10
    return settings(chosen, max_examples=max(20, examples))


@pytest.fixture(params=["memory", "sql"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The engine's store twice over: in memory, and the SQL store on SQLite in memory."""
    if request.param == "memory":
        yield MemoryStore()
        return
    sql = make_sql_store()
    yield sql
    sql.db.dispose()
