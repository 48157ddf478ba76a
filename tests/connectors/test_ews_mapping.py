"""Outlook's recurrence patterns as EWS holds them, both ways, and what EWS cannot hold
(no I/O: exchangelib's pattern objects, dateutil for the rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.connectors.ews.mapping import (
    Unmappable,
    can_express,
    instance_index,
    recurrence_out,
    rule_of,
)
from common.items import Appointment, Recurrence, normalise_rule

START = datetime(2026, 1, 5, 9, tzinfo=UTC)  # a Monday


def series(rule: str) -> Appointment:
    return Appointment("S", START, START + timedelta(hours=1), recurrence=Recurrence(rule))


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;INTERVAL=2;COUNT=5",
        "FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL=20260301",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;WKST=SU",
        "FREQ=MONTHLY;BYMONTHDAY=5",
        "FREQ=MONTHLY;INTERVAL=3;BYDAY=1MO;COUNT=4",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=5",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU",
    ],
)
def test_a_rule_exchange_can_hold_comes_back_the_same(rule: str) -> None:
    """Mistakes caught: a relative pattern's position or day lost, an interval dropped, an
    end by date or count changed (the series would grow or shrink on the other side)."""
    assert can_express(Recurrence(rule))
    assert normalise_rule(rule_of(recurrence_out(series(rule)))) == normalise_rule(rule)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY;INTERVAL=2;BYMONTH=1;BYMONTHDAY=5",  # EWS yearly patterns have no interval
        "FREQ=MONTHLY;BYDAY=MO,WE;BYSETPOS=1",  # one day, or Day/Weekday/WeekendDay
        "FREQ=HOURLY;COUNT=3",
    ],
)
def test_a_rule_exchange_cannot_hold_is_said_so(rule: str) -> None:
    """Mistake caught: a rule silently written as another (every second year as every
    year); the engine expands what a side cannot express instead."""
    assert not can_express(Recurrence(rule))
    with pytest.raises(Unmappable):
        recurrence_out(series(rule))


def test_an_occurrence_is_found_by_its_position_in_the_pattern() -> None:
    """EWS's InstanceIndex counts by the pattern, deleted occurrences included (mistake: an
    off-by-one, or counting only the occurrences left)."""
    weekly = series("FREQ=WEEKLY;BYDAY=MO,TH;COUNT=6")
    assert instance_index(weekly, START) == 1
    assert instance_index(weekly, START + timedelta(days=3)) == 2
    assert instance_index(weekly, START + timedelta(days=14)) == 5
    with pytest.raises(Unmappable):
        instance_index(weekly, START + timedelta(days=1))
