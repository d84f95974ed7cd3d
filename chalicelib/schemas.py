"""User-given JSON Schemas (draft 2020-12): checking a schema when it is written, and a
value against it later. Problems come back as details naming the field, never as an
exception: a schema the user wrote must not turn into a 500 or a stuck execution."""

from __future__ import annotations

from typing import Any, Iterator

from chalicelib.errors import detail

BASE_URI = "urn:sluice:schema"


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


def _path(parts: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def schema_problems(schema: Any, field: str) -> list[tuple[str, str]]:
    """Why `schema` cannot be used, if it cannot: invalid, or a `$ref` that does not resolve
    within it (remote references are not fetched)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        return [(f"{field}{_path(error.absolute_path)}", f"is not a valid JSON Schema (draft 2020-12): {error.message}")]
    if isinstance(schema, bool):
        return []
    resolver = Registry().with_resource(BASE_URI, DRAFT202012.create_resource(schema)).resolver(base_uri=BASE_URI)
    problems = []
    for ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            problems.append((field, f"$ref {ref!r} does not resolve within the schema"))
    return problems


def value_problems(schema: Any, value: Any, field: str) -> list[dict[str, str]]:
    """Details for every way `value` breaks `schema`, field paths under `field`."""
    from jsonschema import Draft202012Validator

    try:
        errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
        return [detail(field + _path(e.absolute_path), e.message) for e in errors]
    except Exception as error:  # an unusable schema (checked at write time, but be safe)
        return [detail(field, f"the schema cannot be used: {type(error).__name__}: {error}")]


def pattern_problem(pattern: Any, limit: int) -> str | None:
    """Why a user's regular expression is unusable, or None."""
    import re

    if not isinstance(pattern, str) or len(pattern) > limit:
        return f"must be a regular expression of at most {limit} characters"
    try:
        re.compile(pattern)
    except re.error as error:
        return f"is not a valid regular expression: {error}"
    return None
