"""The OData query options of SuperOffice's archive lists: `$select`, `$filter`, `$orderBy`,
`$top`, `$skip`, over rows of the provider's documented columns.

A column is known by its archive name (`appointment/title`, `personUpdatedDate`, …) and typed by
its documented restriction, which decides the operators it takes (the OData search pages):
numbers `eq = ne lt le gt ge set equals greater less unequals between`; strings `eq begins between
contains is isNot notBegins notContains in` and `startswith/endswith/substringof(…)`; lists
`equals oneOf notOneOf`; associates `associateIsOneOf associateIsNotOneOf currentAssociate`;
yes/no `set`; dates `before date after between dateBetween beforeOrEqual` (whole days) and
`dateTime beforeTime afterTime` (to the second), and the unary periods `beforeToday today
afterToday lastWeek thisWeek nextWeek lastMonth thisMonth nextMonth lastQuarter thisQuarter
nextQuarter thisHalf thisYear`. Anything else is refused with 400, as an unknown column is.

Date values are compared in the column's own zone: a literal with an offset is converted to it,
one without is read in it (local columns are in the request's SO-TimeZone, `…UpdatedDate` and
`…RegisteredDate` in UTC).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulators.superoffice.errors import ApiError

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]
Column = tuple[str | None, bool]  # (restriction, orderable)

NUMBER_OPS = {"eq", "=", "ne", "lt", "le", "gt", "ge", "set", "equals", "greater", "less",
              "unequals", "between"}  # fmt: skip
STRING_OPS = {"eq", "begins", "between", "contains", "is", "isNot", "notBegins", "notContains",
              "in"}  # fmt: skip
LIST_OPS = {"equals", "oneOf", "notOneOf"}
ASSOCIATE_OPS = {"associateIsOneOf", "associateIsNotOneOf", "currentAssociate"}
BOOL_OPS = {"set"}
DAY_OPS = {"before", "date", "after", "between", "dateBetween", "beforeOrEqual"}
TIME_OPS = {"dateTime", "beforeTime", "afterTime"}
PERIOD_OPS = {"beforeToday", "today", "afterToday", "lastWeek", "thisWeek", "nextWeek",
              "lastMonth", "thisMonth", "nextMonth", "lastQuarter", "thisQuarter", "nextQuarter",
              "thisHalf", "thisYear"}  # fmt: skip
DATE_OPS = DAY_OPS | TIME_OPS | PERIOD_OPS
OPERATORS = {
    "int": NUMBER_OPS, "decimal": NUMBER_OPS, "string": STRING_OPS,
    "positiveString": STRING_OPS, "stringorPK": STRING_OPS, "listAny": LIST_OPS,
    "userGroup": LIST_OPS, "associate": ASSOCIATE_OPS, "bool": BOOL_OPS, "date": DATE_OPS,
    "datetime": DATE_OPS, "unlimitedDate": DATE_OPS,
}  # fmt: skip
STRINGS = {"string", "positiveString", "stringorPK"}
DATES = {"date", "datetime", "unlimitedDate"}
UNARY = PERIOD_OPS | {"currentAssociate"}
LISTED = {"between", "dateBetween", "oneOf", "notOneOf", "in", "associateIsOneOf",
          "associateIsNotOneOf"}  # fmt: skip
FUNCTIONS = ("startswith", "endswith", "substringof")

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)(?![\w/.:])|(?P<punct>[(),=])"
    r"|(?P<word>[A-Za-z_][\w/.:]*))"
)


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


@dataclass
class Query:
    """What a query may name: the provider's documented columns and those it fills."""

    documented: Mapping[str, Column]
    served: set[str] = field(default_factory=set)
    current_associate: int = 0
    today: dt.date = field(default_factory=dt.date.today)

    def column(self, name: str, where: str) -> tuple[str, Column]:
        wanted = name.strip().lower()
        for known, spec in self.documented.items():
            if known.lower() == wanted:
                if known not in self.served:
                    raise _bad(
                        f"Column {known!r} in {where} is documented but this simulator holds no "
                        "data for it"
                    )
                return known, spec
        raise _bad(f"Unknown column {name.strip()!r} in {where}")


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _bad(f"Cannot parse $filter near {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, query: Query) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.query = query

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _bad("Unexpected end of $filter")
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        if self.take()[1] != value:
            raise _bad(f"Expected {value!r} in $filter")

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() in words

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek() is not None:
            raise _bad(f"Unexpected {self.peek()[1]!r} in $filter")  # type: ignore[index]
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.at_word("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.at_word("and"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def unary(self) -> Predicate:
        if self.at_word("not"):
            self.take()
            inner = self.unary()
            return lambda row: not inner(row)
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.or_expr()
            self.expect(")")
            return inner
        return self.comparison()

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _bad(f"Expected a value in $filter, got {value!r}")

    def values(self) -> list[Any]:
        self.expect("(")
        out = [self.literal()]
        while self.peek() == ("punct", ","):
            self.take()
            out.append(self.literal())
        self.expect(")")
        return out

    def comparison(self) -> Predicate:
        kind, word = self.take()
        if kind != "word":
            raise _bad(f"Expected a column name in $filter, got {word!r}")
        if word.lower() in FUNCTIONS:
            return self.function(word.lower())
        name, (restriction, _) = self.query.column(word, "$filter")
        _, op = self.take()
        allowed = OPERATORS.get(restriction or "", set())
        if op not in allowed:
            kind_text = restriction or "not filterable"
            raise _bad(f"Operator {op!r} is not valid for column {name!r} ({kind_text})")
        if op in UNARY:
            operands: list[Any] = []
        elif op in LISTED:
            operands = self.values()
        else:
            operands = [self.literal()]
        return compile_op(name, restriction or "", op, operands, self.query)

    def function(self, func: str) -> Predicate:
        self.expect("(")
        if func == "substringof":
            needle = str(self.literal())
            self.expect(",")
            name, (restriction, _) = self.query.column(self.take()[1], "$filter")
        else:
            name, (restriction, _) = self.query.column(self.take()[1], "$filter")
            self.expect(",")
            needle = str(self.literal())
        self.expect(")")
        if restriction not in STRINGS:
            raise _bad(f"{func}() takes a text column, not {name!r}")
        if self.at_word("eq"):  # `startswith(name,'a') eq true`
            self.take()
            self.literal()
        low = needle.lower()
        tests = {
            "startswith": lambda v: v.startswith(low),
            "endswith": lambda v: v.endswith(low),
            "substringof": lambda v: low in v,
        }
        test = tests[func]
        return lambda row: test(str(row.get(name) or "").lower())


# --- dates ---------------------------------------------------------------------------------------


def _moment(value: Any, zone: dt.tzinfo) -> dt.datetime:
    """A date literal as an aware moment in `zone`: converted if it has an offset, read in
    `zone` if not."""
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(f"Not a date: {value!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=zone)
    return parsed.astimezone(zone)


def _quarter_start(day: dt.date, offset: int) -> dt.date:
    index = (day.month - 1) // 3 + offset
    year, quarter = day.year + index // 4, index % 4
    return dt.date(year, quarter * 3 + 1, 1)


def _month_start(day: dt.date, offset: int) -> dt.date:
    index = day.month - 1 + offset
    return dt.date(day.year + index // 12, index % 12 + 1, 1)


def _period(op: str, today: dt.date) -> tuple[dt.date, dt.date]:
    day = dt.timedelta(days=1)
    monday = today - dt.timedelta(days=today.weekday())
    week = dt.timedelta(days=7)
    if op in ("lastWeek", "thisWeek", "nextWeek"):
        start = monday + week * {"lastWeek": -1, "thisWeek": 0, "nextWeek": 1}[op]
        return start, start + dt.timedelta(days=6)
    if op in ("lastMonth", "thisMonth", "nextMonth"):
        shift = {"lastMonth": -1, "thisMonth": 0, "nextMonth": 1}[op]
        return _month_start(today, shift), _month_start(today, shift + 1) - day
    if op in ("lastQuarter", "thisQuarter", "nextQuarter"):
        shift = {"lastQuarter": -1, "thisQuarter": 0, "nextQuarter": 1}[op]
        return _quarter_start(today, shift), _quarter_start(today, shift + 1) - day
    if op == "thisHalf":
        first = dt.date(today.year, 1 if today.month <= 6 else 7, 1)
        return first, _month_start(first, 6) - day
    if op == "thisYear":
        return dt.date(today.year, 1, 1), dt.date(today.year, 12, 31)
    return {
        "beforeToday": (dt.date.min, today - day),
        "today": (today, today),
        "afterToday": (today + day, dt.date.max),
    }[op]


def _date_op(name: str, op: str, operands: Sequence[Any], today: dt.date) -> Predicate:
    def value(row: Row) -> dt.datetime | None:
        found = row.get(name)
        return found if isinstance(found, dt.datetime) and found.tzinfo else None

    if op in PERIOD_OPS:
        low, high = _period(op, today)
        return lambda row: (v := value(row)) is not None and low <= v.date() <= high
    if op in ("between", "dateBetween"):
        if len(operands) != 2:
            raise _bad(f"{op} needs two values")
        first, last = operands

        def between(row: Row) -> bool:
            v = value(row)
            if v is None:
                return False
            zone = v.tzinfo or dt.UTC
            return _moment(first, zone).date() <= v.date() <= _moment(last, zone).date()

        _moment(first, dt.UTC), _moment(last, dt.UTC)  # malformed dates fail at once
        return between
    (given,) = operands
    _moment(given, dt.UTC)
    day_tests: dict[str, Callable[[dt.date, dt.date], bool]] = {
        "before": lambda a, b: a < b, "after": lambda a, b: a > b, "date": lambda a, b: a == b,
        "beforeOrEqual": lambda a, b: a <= b,
    }  # fmt: skip
    time_tests: dict[str, Callable[[dt.datetime, dt.datetime], bool]] = {
        "dateTime": lambda a, b: a == b, "beforeTime": lambda a, b: a < b,
        "afterTime": lambda a, b: a > b,
    }  # fmt: skip

    def test(row: Row) -> bool:
        v = value(row)
        if v is None:
            return False
        bound = _moment(given, v.tzinfo or dt.UTC)
        if op in day_tests:
            return day_tests[op](v.date(), bound.date())
        return time_tests[op](v.replace(microsecond=0), bound)

    return test


# --- the other kinds -----------------------------------------------------------------------------


def _numbers(name: str, operands: Sequence[Any]) -> list[float]:
    try:
        return [float(v) for v in operands]
    except (TypeError, ValueError) as exc:
        raise _bad(f"{name} takes numbers") from exc


def _number_op(name: str, op: str, operands: Sequence[Any]) -> Predicate:
    nums = _numbers(name, operands)
    if op == "between":
        if len(nums) != 2:
            raise _bad("between needs two values")
        return lambda row: nums[0] <= float(row.get(name) or 0) <= nums[1]
    n = nums[0]
    tests: dict[str, Callable[[float], bool]] = {
        "eq": lambda v: v == n, "=": lambda v: v == n, "equals": lambda v: v == n,
        "set": lambda v: v == n, "ne": lambda v: v != n, "unequals": lambda v: v != n,
        "lt": lambda v: v < n, "less": lambda v: v < n, "le": lambda v: v <= n,
        "gt": lambda v: v > n, "greater": lambda v: v > n, "ge": lambda v: v >= n,
    }  # fmt: skip
    test = tests[op]
    return lambda row: test(float(row.get(name) or 0))


def _same(a: Any, b: Any) -> bool:
    """List and associate values: ids compare as numbers, names without case."""
    if isinstance(a, int | float) and not isinstance(a, bool):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return str(a).lower() == str(b).lower()


def _list_op(name: str, op: str, operands: Sequence[Any], query: Query) -> Predicate:
    if op == "currentAssociate":
        return lambda row: row.get(name) == query.current_associate
    if op in ("equals", "oneOf", "associateIsOneOf"):
        return lambda row: any(_same(row.get(name), v) for v in operands)
    return lambda row: not any(_same(row.get(name), v) for v in operands)


def _string_op(name: str, op: str, operands: Sequence[Any]) -> Predicate:
    texts = [str(v).lower() for v in operands]

    def text(row: Row) -> str:
        return str(row.get(name) or "").lower()

    if op == "in":
        return lambda row: text(row) in texts
    if op == "between":
        if len(texts) != 2:
            raise _bad("between needs two values")
        return lambda row: texts[0] <= text(row) <= texts[1]
    t = texts[0]
    tests: dict[str, Callable[[str], bool]] = {
        "eq": lambda v: v == t, "is": lambda v: v == t, "isNot": lambda v: v != t,
        "begins": lambda v: v.startswith(t), "notBegins": lambda v: not v.startswith(t),
        "contains": lambda v: t in v, "notContains": lambda v: t not in v,
    }  # fmt: skip
    test = tests[op]
    return lambda row: test(text(row))


def compile_op(
    name: str, restriction: str, op: str, operands: Sequence[Any], query: Query
) -> Predicate:
    if restriction in DATES:
        return _date_op(name, op, operands, query.today)
    if restriction in ("int", "decimal"):
        return _number_op(name, op, operands)
    if restriction == "bool":
        wanted = operands[0] in (True, 1, "1", "true", "True")
        return lambda row: bool(row.get(name)) == wanted
    if restriction in STRINGS:
        return _string_op(name, op, operands)
    return _list_op(name, op, operands, query)


def parse_filter(text: str, query: Query) -> Predicate:
    return _Parser(text, query).parse()


# --- select, order, page -------------------------------------------------------------------------


def _column_list(text: str, query: Query, where: str) -> list[str]:
    return [query.column(raw, where)[0] for raw in text.split(",") if raw.strip()]


def _int_option(args: Mapping[str, str], name: str) -> int | None:
    raw = args.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _bad(f"{name} must be a whole number") from exc
    if value < 0:
        raise _bad(f"{name} must not be negative")
    return value


def _key_of(column: str) -> Callable[[Row], tuple[int, Any]]:
    """Sort key of one column; empty values last."""

    def key(row: Row) -> tuple[int, Any]:
        value = row.get(column)
        return (0, value) if value is not None else (1, 0)

    return key


def run(
    rows: list[dict[str, Any]],
    args: Mapping[str, str],
    query: Query,
    default_select: Sequence[str],
) -> tuple[list[str], list[dict[str, Any]]]:
    """Apply the query options to `rows`; returns the selected column names and the page.

    Paging is the client's: `$skip` rows of the filtered, ordered list, then `$top` of them
    (all without `$top`); every page is computed afresh, so rows added or removed between two
    requests shift the pages."""
    if args.get("$filter"):
        predicate = parse_filter(args["$filter"], query)
        rows = [row for row in rows if predicate(row)]
    order = args.get("$orderBy") or args.get("$orderby") or ""
    for part in reversed([p.strip() for p in order.split(",") if p.strip()]):
        name, _, direction = part.partition(" ")
        column, (_, orderable) = query.column(name, "$orderBy")
        if not orderable:
            raise _bad(f"Column {column!r} cannot be used in $orderBy")
        if direction.strip().lower() not in ("", "asc", "desc"):
            raise _bad(f"Unknown sort direction {direction.strip()!r} in $orderBy")
        descending = direction.strip().lower() == "desc"
        rows = sorted(rows, key=_key_of(column), reverse=descending)
    skip = _int_option(args, "$skip") or 0
    top = _int_option(args, "$top")
    rows = rows[skip:] if top is None else rows[skip : skip + top]
    select = _column_list(args.get("$select", ""), query, "$select") or list(default_select)
    return select, rows
