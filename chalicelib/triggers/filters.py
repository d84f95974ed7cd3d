"""The filter language of event triggers (SPEC §6.3), reusable by steps and webhooks:
`{"<key>": <value or {operator: value}>}` with `$and`, `$or`, `$not`, where a key is a
dotted path into the data or a template rendered against the trigger context. A type
mismatch never raises: it does not match."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from chalicelib.engine.templating import TemplateError, is_template, render_string
from chalicelib.schemas import pattern_problem

MISSING = object()
REGEX_MAX_PATTERN = 500
REGEX_MAX_SUBJECT = 100_000


@dataclass(frozen=True)
class Operator:
    name: str
    description: str
    test: Callable[[Any, Any], bool]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _comparable(left: Any, right: Any) -> bool:
    return (_number(left) and _number(right)) or (isinstance(left, str) and isinstance(right, str))


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda actual, expected: _comparable(actual, expected) and compare(actual, expected)


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    return actual is not MISSING and actual == expected


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(_equal(item, expected) for item in actual)
    return False


def _folded(test: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    return lambda actual, expected: (isinstance(actual, str) and isinstance(expected, str)
                                     and test(actual.casefold(), expected.casefold()))


def _regex(actual: Any, expected: Any) -> bool:
    if not isinstance(actual, str) or not isinstance(expected, str) or len(actual) > REGEX_MAX_SUBJECT:
        return False
    try:
        return re.search(expected, actual) is not None
    except re.error:
        return False


def _in(actual: Any, expected: Any) -> bool:
    return isinstance(expected, list) and actual is not MISSING and any(_equal(actual, e) for e in expected)


OPERATORS: dict[str, Operator] = {op.name: op for op in [
    Operator("eq", "equals (a bare value means eq)", _equal),
    Operator("ne", "does not equal", lambda a, e: not _equal(a, e)),
    Operator("gt", "greater than (numbers with numbers, strings with strings)", _ordered(lambda a, e: a > e)),
    Operator("gte", "greater than or equal", _ordered(lambda a, e: a >= e)),
    Operator("lt", "less than", _ordered(lambda a, e: a < e)),
    Operator("lte", "less than or equal", _ordered(lambda a, e: a <= e)),
    Operator("in", "is one of a list", _in),
    Operator("nin", "is none of a list", lambda a, e: isinstance(e, list) and not _in(a, e)),
    Operator("contains", "a string contains a substring, or a list contains an item", _contains),
    Operator("~starts", "a string starts with, ignoring case", _folded(str.startswith)),
    Operator("~ends", "a string ends with, ignoring case", _folded(str.endswith)),
    Operator("~contains", "a string contains, ignoring case", _folded(lambda a, e: e in a)),
    Operator("regex", "a string matches a regular expression (re.search)", _regex),
    Operator("exists", "the key is present (true) or absent (false)",
             lambda a, e: isinstance(e, bool) and (a is not MISSING) is e),
]}
LOGICAL = {"$and": "every filter in a list matches", "$or": "at least one filter in a list matches",
           "$not": "a filter does not match"}


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted path (`ticket.priority`, `items.0.name`), or MISSING."""
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def _value(key: str, data: Any, context: Mapping[str, Any] | None) -> Any:
    if is_template(key):
        try:
            return render_string(key, context or {})
        except TemplateError:
            return MISSING
    return lookup(data, key)


def _is_condition(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(k in OPERATORS for k in value)


def matches(filters: Any, data: Any, context: Mapping[str, Any] | None = None) -> bool:
    """True when `data` passes every filter. Checked filters never raise here."""
    if not filters:
        return True
    for key, expected in filters.items():
        if key == "$and":
            ok = all(matches(f, data, context) for f in expected)
        elif key == "$or":
            ok = any(matches(f, data, context) for f in expected)
        elif key == "$not":
            ok = not matches(expected, data, context)
        else:
            actual = _value(key, data, context)
            if _is_condition(expected):
                ok = all(OPERATORS[name].test(actual, operand) for name, operand in expected.items())
            else:
                ok = _equal(actual, expected)
        if not ok:
            return False
    return True


def filter_problems(filters: Any, path: str = "filters") -> list[tuple[str, str]]:
    """Write-time checks: shapes, operator names, operand types, regexes, template syntax."""
    from chalicelib.engine.templating import syntax_errors

    if filters is None:
        return []
    if not isinstance(filters, Mapping):
        return [(path, "must be an object")]
    problems: list[tuple[str, str]] = []
    for key, value in filters.items():
        where = f"{path}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                problems.append((where, "must be a non-empty list of filters"))
                continue
            for i, item in enumerate(value):
                problems += filter_problems(item, f"{where}[{i}]")
        elif key == "$not":
            problems += filter_problems(value, where)
        elif key.startswith("$"):
            problems.append((where, "unknown logical operator; use $and, $or or $not"))
        else:
            if is_template(key):
                problems += [(where, message) for _, message in syntax_errors(key, where)]
            if isinstance(value, Mapping) and value:
                unknown = [k for k in value if k not in OPERATORS]
                if unknown:
                    problems.append((where, f"unknown operator {unknown[0]!r}; see GET /api/v1/filter-operators"))
                    continue
                for name, operand in value.items():
                    if name in ("in", "nin") and not isinstance(operand, list):
                        problems.append((f"{where}.{name}", "must be a list"))
                    elif name == "exists" and not isinstance(operand, bool):
                        problems.append((f"{where}.{name}", "must be true or false"))
                    elif name == "regex" and pattern_problem(operand, REGEX_MAX_PATTERN):
                        problems.append((f"{where}.{name}", pattern_problem(operand, REGEX_MAX_PATTERN)))
    return problems


def operator_catalog() -> list[dict[str, Any]]:
    """What GET /api/v1/filter-operators lists: the comparison operators, then the
    logical ones."""
    return ([{"name": op.name, "kind": "comparison", "description": op.description} for op in OPERATORS.values()]
            + [{"name": name, "kind": "logical", "description": text} for name, text in LOGICAL.items()])
