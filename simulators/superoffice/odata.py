"""The OData query options of SuperOffice's archive lists: `$select`, `$filter`, `$orderBy`,
`$top`, `$skip`, over rows of typed columns.

Operators follow the archive documentation: ints `eq ne lt le gt ge between oneOf notOneOf set`,
strings `eq ne begins contains is notBegins notContains isNot oneOf in`, dates `before after date
between dateBetween beforeOrEqual afterOrEqual` (day precision), `dateTime beforeTime afterTime`
(second precision) and the unary `today yesterday tomorrow thisWeek lastWeek nextWeek thisMonth`,
associates `associateIsOneOf currentAssociate`, and the functions `startswith substringof endswith`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulators.superoffice.errors import ApiError

INT, STRING, DATETIME, BOOL, ASSOCIATE = "int", "string", "datetime", "bool", "associate"
Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)(?![\w/.])|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z_][\w/.]*))"
)
UNARY = {"today", "yesterday", "tomorrow", "thisWeek", "lastWeek", "nextWeek", "thisMonth",
         "currentAssociate", "isEmpty", "isNotEmpty"}  # fmt: skip
LISTED = {"between", "dateBetween", "oneOf", "notOneOf", "set", "in", "associateIsOneOf"}


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


@dataclass
class Query:
    columns: Mapping[str, str]  # name → type
    current_associate: int
    today: dt.date


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

    def column(self, name: str) -> tuple[str, str]:
        for known, kind in self.query.columns.items():
            if known.lower() == name.lower():
                return known, kind
        raise _bad(f"Unknown column {name!r} in $filter")

    def comparison(self) -> Predicate:
        kind, word = self.take()
        if kind != "word":
            raise _bad(f"Expected a column name in $filter, got {word!r}")
        if word.lower() in ("startswith", "endswith", "substringof"):
            return self.function(word.lower())
        name, ctype = self.column(word)
        _, op = self.take()
        if op in UNARY:
            operands: list[Any] = []
        elif op in LISTED:
            operands = self.values()
        else:
            operands = [self.literal()]
        return compile_op(name, ctype, op, operands, self.query)

    def function(self, func: str) -> Predicate:
        self.expect("(")
        if func == "substringof":
            needle = str(self.literal())
            self.expect(",")
            name, _ = self.column(self.take()[1])
        else:
            name, _ = self.column(self.take()[1])
            self.expect(",")
            needle = str(self.literal())
        self.expect(")")
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


def _as_datetime(value: Any) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(f"Not a date: {value!r}") from exc
    return parsed.replace(tzinfo=None)


def _period(op: str, today: dt.date) -> tuple[dt.date, dt.date]:
    monday = today - dt.timedelta(days=today.weekday())
    week = dt.timedelta(days=7)
    return {
        "today": (today, today),
        "yesterday": (today - dt.timedelta(days=1),) * 2,
        "tomorrow": (today + dt.timedelta(days=1),) * 2,
        "thisWeek": (monday, monday + dt.timedelta(days=6)),
        "lastWeek": (monday - week, monday - dt.timedelta(days=1)),
        "nextWeek": (monday + week, monday + week + dt.timedelta(days=6)),
        "thisMonth": (today.replace(day=1), (today.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)),
    }[op]  # fmt: skip


def _date_op(name: str, op: str, operands: Sequence[Any], today: dt.date) -> Predicate:
    values = [_as_datetime(v) for v in operands]

    def day(row: Row) -> dt.date | None:
        value = row.get(name)
        return value.date() if isinstance(value, dt.datetime) else None

    def moment(row: Row) -> dt.datetime | None:
        value = row.get(name)
        return value if isinstance(value, dt.datetime) else None

    day_tests: dict[str, Callable[[dt.date], bool]] = {}
    if values:
        first = values[0]
        day_tests = {
            "before": lambda d: d < first.date(),
            "after": lambda d: d > first.date(),
            "date": lambda d: d == first.date(),
            "beforeOrEqual": lambda d: d <= first.date(),
            "afterOrEqual": lambda d: d >= first.date(),
        }
    if op in ("between", "dateBetween"):
        if len(values) != 2:
            raise _bad(f"{op} needs two values")
        low, high = values[0].date(), values[1].date()
        return lambda row: (d := day(row)) is not None and low <= d <= high
    if op in day_tests:
        test = day_tests[op]
        return lambda row: (d := day(row)) is not None and test(d)
    time_tests: dict[str, Callable[[dt.datetime, dt.datetime], bool]] = {
        "dateTime": lambda a, b: a == b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
        "beforeTime": lambda a, b: a < b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
        "afterTime": lambda a, b: a > b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
    }  # fmt: skip
    if op in time_tests:
        ttest, bound = time_tests[op], values[0]
        return lambda row: (m := moment(row)) is not None and ttest(m, bound)
    if op in UNARY - {"currentAssociate", "isEmpty", "isNotEmpty"}:
        low, high = _period(op, today)
        return lambda row: (d := day(row)) is not None and low <= d <= high
    raise _bad(f"Operator {op!r} is not valid for date column {name!r}")


def compile_op(name: str, ctype: str, op: str, operands: Sequence[Any], query: Query) -> Predicate:
    if op == "isEmpty":
        return lambda row: row.get(name) in (None, "", 0)
    if op == "isNotEmpty":
        return lambda row: row.get(name) not in (None, "", 0)
    if ctype == DATETIME:
        return _date_op(name, op, operands, query.today)
    if ctype in (INT, ASSOCIATE):
        if op == "currentAssociate" and ctype == ASSOCIATE:
            return lambda row: row.get(name) == query.current_associate
        try:
            nums = [int(v) for v in operands]
        except (TypeError, ValueError) as exc:
            raise _bad(f"{name} takes whole numbers") from exc
        tests: dict[str, Callable[[int], bool]] = {}
        if op in ("oneOf", "set", "in", "associateIsOneOf"):
            return lambda row: row.get(name) in nums
        if op == "notOneOf":
            return lambda row: row.get(name) not in nums
        if op == "between":
            return lambda row: nums[0] <= (row.get(name) or 0) <= nums[1]
        if nums:
            n = nums[0]
            tests = {"eq": lambda v: v == n, "ne": lambda v: v != n, "lt": lambda v: v < n,
                     "le": lambda v: v <= n, "gt": lambda v: v > n, "ge": lambda v: v >= n}  # fmt: skip
        if op not in tests:
            raise _bad(f"Operator {op!r} is not valid for number column {name!r}")
        ntest = tests[op]
        return lambda row: ntest(int(row.get(name) or 0))
    if ctype == BOOL:
        if op not in ("eq", "is", "ne", "isNot"):
            raise _bad(f"Operator {op!r} is not valid for yes/no column {name!r}")
        wanted = operands[0] in (True, 1, "1", "true", "True")
        negate = op in ("ne", "isNot")
        return lambda row: (bool(row.get(name)) == wanted) != negate
    texts = [str(v).lower() for v in operands]
    stests: dict[str, Callable[[str], bool]] = {}
    if op in ("oneOf", "in"):
        return lambda row: str(row.get(name) or "").lower() in texts
    if op == "notOneOf":
        return lambda row: str(row.get(name) or "").lower() not in texts
    if texts:
        t = texts[0]
        stests = {
            "eq": lambda v: v == t, "is": lambda v: v == t, "ne": lambda v: v != t,
            "isNot": lambda v: v != t, "begins": lambda v: v.startswith(t),
            "notBegins": lambda v: not v.startswith(t), "contains": lambda v: t in v,
            "notContains": lambda v: t not in v,
        }  # fmt: skip
    if op not in stests:
        raise _bad(f"Operator {op!r} is not valid for text column {name!r}")
    stest = stests[op]
    return lambda row: stest(str(row.get(name) or "").lower())


def parse_filter(text: str, query: Query) -> Predicate:
    return _Parser(text, query).parse()


def _column_list(text: str, columns: Mapping[str, str]) -> list[str]:
    out = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        match = next((c for c in columns if c.lower() == name.lower()), None)
        if match is None:
            raise _bad(f"Unknown column {name!r} in $select")
        out.append(match)
    return out


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
    """Apply the query options to `rows`; returns the selected column names and the page."""
    if args.get("$filter"):
        predicate = parse_filter(args["$filter"], query)
        rows = [row for row in rows if predicate(row)]
    order = args.get("$orderBy") or args.get("$orderby") or ""
    for part in reversed([p.strip() for p in order.split(",") if p.strip()]):
        name, _, direction = part.partition(" ")
        (column,) = _column_list(name, query.columns)
        descending = direction.strip().lower() == "desc"
        rows = sorted(rows, key=_key_of(column), reverse=descending)
    skip = _int_option(args, "$skip") or 0
    top = _int_option(args, "$top")
    rows = rows[skip:] if top is None else rows[skip : skip + top]
    select = _column_list(args.get("$select", ""), query.columns) or list(default_select)
    return select, rows
