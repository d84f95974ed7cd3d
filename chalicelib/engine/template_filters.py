"""The filters and globals replaced with bounded versions, and the guard every filter runs behind."""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import itertools
import json
import types
from collections.abc import ItemsView, KeysView, ValuesView
from typing import Any, Callable

import jinja2
from jinja2 import filters as jinja_filters
from jinja2.runtime import Undefined
from jinja2.utils import generate_lorem_ipsum

from chalicelib.engine.template_errors import TemplateError
from chalicelib.engine.template_limits import (
    MAX_JSON_INDENT,
    MAX_SEQUENCE_LENGTH,
    _admit,
    _check_add,
    _check_printf,
    _measure,
    _refuse_oversized,
    _replaced_size,
    _session,
)


def _tojson(value: Any, indent: int | None = None) -> str:
    if indent is not None and (not isinstance(indent, int) or not 0 <= indent <= MAX_JSON_INDENT):
        raise TemplateError(f"tojson indent must be an integer from 0 to {MAX_JSON_INDENT}")
    _measure(value, what="JSON text")
    return json.dumps(value, ensure_ascii=False, indent=indent, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple, KeysView, ValuesView, ItemsView, range, types.GeneratorType)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _fromjson(value: Any) -> Any:
    if not isinstance(value, (str, bytes)):
        raise TemplateError(f"fromjson expects a string, not {type(value).__name__}")
    try:
        return json.loads(value)
    except ValueError as exc:
        raise TemplateError(f"fromjson: invalid JSON: {exc}") from None


def _b64encode(value: Any) -> str:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: Any) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, TypeError) as exc:
        raise TemplateError(f"b64decode: {exc}") from None


def _center(value: Any, width: int = 80) -> str:
    if isinstance(width, int):
        _refuse_oversized("center() result", width)
    return jinja_filters.do_center(value, width)


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    size = len(text) + (text.count("\n") + 2) * max(step, 0)
    _refuse_oversized("indent() result", size)
    return jinja_filters.do_indent(s, width, first, blank)


@jinja2.pass_environment
def _wordwrap(environment: Any, s: Any, width: int = 79, break_long_words: bool = True,
              wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:
    text = str(s)
    wrap = environment.newline_sequence if wrapstring is None else str(wrapstring)
    lines = 2 * len(text) // max(width if isinstance(width, int) else 1, 1) + text.count("\n") + 2
    size = len(text) + lines * len(wrap)
    _refuse_oversized("wordwrap() result", size)
    return jinja_filters.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise TemplateError("format: can't handle positional and keyword arguments at the same time")
    _check_printf(str(value), kwargs or args)
    return jinja_filters.do_format(value, *args, **kwargs)


@jinja2.pass_eval_context
def _join(eval_ctx: Any, value: Any, d: str = "", attribute: str | int | None = None) -> str:
    if attribute is not None:
        value = map(jinja_filters.make_attrgetter(eval_ctx.environment, attribute), value)
    items = list(value)
    size = _measure(items, what="joined text") + len(str(d)) * len(items)
    _refuse_oversized("joined text", size)
    return jinja_filters.sync_do_join(eval_ctx, items, d)


@jinja2.pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    size = _replaced_size(str(s), (str(old), str(new), -1 if count is None else count), {})
    _refuse_oversized("replace() result", size)
    return jinja_filters.do_replace(eval_ctx, s, old, new, count)


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    if fill_with is not None and isinstance(linecount, int) and linecount > MAX_SEQUENCE_LENGTH:
        raise TemplateError(f"batch size {linecount} is larger than the limit of {MAX_SEQUENCE_LENGTH}")
    return jinja_filters.do_batch(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    if isinstance(slices, int) and slices > MAX_SEQUENCE_LENGTH:
        raise TemplateError(f"slice count {slices} is larger than the limit of {MAX_SEQUENCE_LENGTH}")
    return jinja_filters.sync_do_slice(value, slices, fill_with)


@jinja2.pass_environment
def _sum(environment: Any, iterable: Any, attribute: str | int | None = None, start: Any = 0) -> Any:
    if attribute is not None:
        iterable = map(jinja_filters.make_attrgetter(environment, attribute), iterable)
    if isinstance(start, (list, tuple)):
        # Built in one pass: Python's sum() of lists copies the partial result on every step.
        total = list(start)
        for item in iterable:
            if not isinstance(item, (list, tuple)):
                raise TypeError(f"can only concatenate list (not {type(item).__name__!r}) to list")
            if len(total) + len(item) > MAX_SEQUENCE_LENGTH:
                raise TemplateError(f"sum would have more than {MAX_SEQUENCE_LENGTH} items")
            _session().charge(len(item))
            total.extend(item)
        return type(start)(total)
    total = start
    for item in iterable:
        _check_add(total, item)
        total = total + item
    return total


@jinja2.pass_eval_context
def _urlize(eval_ctx: Any, value: str, trim_url_limit: int | None = None, nofollow: bool = False,
            target: str | None = None, rel: str | None = None, extra_schemes: Any = None) -> str:
    text = str(value)
    per_link = 64 + len(str(target or "")) + len(str(rel or ""))
    size = len(text) * 6 + (len(text) // 2 + 1) * per_link
    _refuse_oversized("urlize() result", size)
    return jinja_filters.do_urlize(eval_ctx, value, trim_url_limit, nofollow, target, rel, extra_schemes)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    if not (isinstance(n, int) and isinstance(max, int)) or n > 100 or max > 1000:
        raise TemplateError("lipsum() is limited to 100 paragraphs of 1000 words")
    return generate_lorem_ipsum(n, html, min, max)


_REPLACED_FILTERS: dict[str, Callable] = {
    "batch": _batch,
    "center": _center,
    "format": _format,
    "indent": _indent,
    "join": _join,
    "replace": _replace,
    "slice": _slice,
    "sum": _sum,
    "tojson": _tojson,
    "urlize": _urlize,
    "wordwrap": _wordwrap,
    "fromjson": _fromjson,
    "b64encode": _b64encode,
    "b64decode": _b64decode,
}


# --------------------------------------------------------------------------- the filter guard


# Filters that turn containers into text: an Undefined inside must fail instead of printing "Undefined".
_TEXT_FILTERS = frozenset([
    "b64encode", "capitalize", "center", "e", "escape", "forceescape", "format", "indent", "join",
    "lower", "pprint", "replace", "safe", "string", "striptags", "title", "tojson", "trim", "truncate",
    "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
])


# Filters that return (a part of) their input rather than building something new.
_REFERENCE_FILTERS = frozenset(["attr", "d", "default", "first", "last", "max", "min", "random"])


def _guard_filter(name: str, function: Callable) -> Callable:
    """Count a filter against the render budget and refuse oversized inputs and results."""
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0
    strict = name in _TEXT_FILTERS
    builds = name not in _REFERENCE_FILTERS

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _session().tick()
        for argument in itertools.chain(args[skip:], kwargs.values()):
            if strict or not isinstance(argument, Undefined):
                _measure(argument, strict=strict, what=f"input of filter {name!r}")
        result = function(*args, **kwargs)
        if builds and isinstance(result, (str, bytes, list, tuple)):
            _admit(f"result of filter {name!r}", len(result))
        return result

    return guarded
