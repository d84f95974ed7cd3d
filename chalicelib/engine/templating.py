"""Sandboxed, bounded Jinja2 rendering of the templates in workflow documents (SPEC §4)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import functools
import itertools
import json
import re
import threading
import time
import types
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, Callable

import jinja2
from jinja2 import filters as jinja_filters
from jinja2 import nodes
from jinja2.compiler import optimizeconst
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.runtime import LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, generate_lorem_ipsum
from markupsafe import EscapeFormatter, Markup

#: items of a range and items/characters of a `*` repetition or a `+` of lists
MAX_SEQUENCE_LENGTH = 100_000
#: approximate characters (as text or JSON) of any value built while rendering
MAX_VALUE_SIZE = 2_000_000
#: characters of what one render (render_string, render_value, ...) produces
MAX_OUTPUT_SIZE = 1024 * 1024
#: bits of an integer built with `*` or `**`
MAX_INT_BITS = 4096
#: width or precision in a `%` or `str.format` specification
MAX_FORMAT_WIDTH = 10_000
#: characters/items that the operations of one render may build in total
MAX_BUILT_SIZE = 20_000_000
#: loop iterations, calls, filters and guarded operators in one render
MAX_OPERATIONS = 500_000
#: wall-clock bound of one render, a backstop behind the limits above
MAX_RENDER_SECONDS = 1.0
#: spaces of indentation `tojson` accepts
MAX_JSON_INDENT = 16

COMPILE_CACHE_SIZE = 4096


class TemplateError(Exception):
    """A template that does not parse, names something undefined, or breaks a sandbox rule."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- render session


class _RenderSession:
    """Budget and size memo shared by everything one public render call evaluates."""

    __slots__ = ("operations", "built_size", "deadline", "sizes", "output_size")

    def __init__(self) -> None:
        self.operations = 0
        self.built_size = 0
        self.deadline = time.perf_counter() + MAX_RENDER_SECONDS
        # id -> (value, size, first Undefined inside or None); holding the value keeps the id valid
        self.sizes: dict[int, tuple[Any, int, Undefined | None]] = {}
        self.output_size = 0

    def tick(self) -> None:
        self.operations += 1
        if self.operations > MAX_OPERATIONS:
            raise TemplateError(f"template needs more than {MAX_OPERATIONS} operations")
        if not self.operations & 0x3F:
            self.check_deadline()

    def charge(self, size: int) -> None:
        # Values held in block buffers or namespaces escape the per-value limits; their sum cannot.
        self.built_size += size
        if self.built_size > MAX_BUILT_SIZE:
            raise TemplateError(f"template builds more than {MAX_BUILT_SIZE} characters in total")

    def check_deadline(self) -> None:
        if time.perf_counter() > self.deadline:
            raise TemplateError(f"template took longer than {MAX_RENDER_SECONDS} s to render")


_local = threading.local()


def _session() -> _RenderSession:
    # Outside a render (constant folding at compile time) a throwaway session still applies the limits.
    return getattr(_local, "session", None) or _RenderSession()


@contextlib.contextmanager
def _rendering() -> Iterator[_RenderSession]:
    outer = getattr(_local, "session", None)
    if outer is not None:
        yield outer
        return
    session = _local.session = _RenderSession()
    try:
        yield session
    finally:
        _local.session = None


# --------------------------------------------------------------------------- value sizes


def _too_large(what: str, size: int, limit: int) -> TemplateError:
    return TemplateError(f"{what} would be about {size} characters, the limit is {limit}")


def _refuse_oversized(what: str, size: int) -> None:
    if size > MAX_VALUE_SIZE:
        raise _too_large(what, size, MAX_VALUE_SIZE)


def _admit(what: str, size: int) -> None:
    """Refuse building a value of `size` over the value limit, else count it against the render."""
    _refuse_oversized(what, size)
    _session().charge(size)


def _leaf_size(value: Any) -> int | None:
    """Approximate text size of a value without children; None for a container."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value)
    if kind is bool or value is None:
        return 5
    if kind is int:
        return value.bit_length() // 3 + 2
    if kind is float:
        return 24
    if isinstance(value, (list, tuple, dict, set, frozenset, Namespace, KeysView, ValuesView, ItemsView)):
        return None
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if isinstance(value, range):
        return len(value) * 8
    return 32


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, Namespace):
        value = object.__getattribute__(value, "_Namespace__attrs")
    if isinstance(value, dict):
        return itertools.chain.from_iterable(value.items())
    return iter(value)


def _measure(value: Any, limit: int = MAX_VALUE_SIZE, *, strict: bool = True, what: str = "value") -> int:
    """Approximate size of `value` written out as text, counting shared parts each time they appear.

    Walks each distinct container once per render (memoised by identity), so a list repeating one
    big item is measured in linear time and refused before anything expands it. With `strict`, an
    Undefined anywhere inside fails with its own error (text conversion would hide it otherwise).
    """
    size = _leaf_size(value)
    if size is not None:
        if isinstance(value, Undefined):
            if strict:
                value._fail_with_undefined_error()
            return 9
        if size > limit:
            raise _too_large(what, size, limit)
        return size
    session = _session()
    memo = session.sizes
    hit = memo.get(id(value))
    if hit is None:
        hit = _walk(value, limit, memo, session, strict, what)
    if strict and hit[2] is not None:
        hit[2]._fail_with_undefined_error()
    if hit[1] > limit:
        raise _too_large(what, hit[1], limit)
    return hit[1]


class _Frame:
    """A container being measured: its remaining children and the totals so far."""

    __slots__ = ("value", "children", "size", "undefined", "mutable")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.children = _children(value)
        self.size = 2
        self.undefined: Undefined | None = None
        # `{% set ns.x = ... %}` changes a namespace later in the render: never memoise what holds one
        self.mutable = isinstance(value, Namespace)

    def add(self, size: int, undefined: Undefined | None, limit: int, what: str) -> None:
        self.size += size + 2
        self.undefined = self.undefined or undefined
        if self.size > limit:
            raise _too_large(what, self.size, limit)


def _walk(root: Any, limit: int, memo: dict, session: _RenderSession, strict: bool, what: str) -> tuple:
    """Iterative post-order walk of a container; returns its (value, size, first Undefined) entry."""
    stack = [_Frame(root)]
    active = {id(root)}
    steps = 0
    while True:
        frame = stack[-1]
        for child in frame.children:
            steps += 1
            if not steps & 0xFFF:
                session.check_deadline()
            size, undefined = _leaf_size(child), None
            if size is None:
                hit = memo.get(id(child))
                if hit is not None:
                    size, undefined = hit[1], hit[2]
                elif id(child) in active:  # a cycle through a namespace: repr writes "[...]"
                    size = 5
                else:
                    stack.append(_Frame(child))
                    active.add(id(child))
                    break
            elif isinstance(child, Undefined):
                if strict:
                    child._fail_with_undefined_error()
                undefined = child
            frame.add(size, undefined, limit, what)
        else:
            stack.pop()
            active.discard(id(frame.value))
            entry = (frame.value, frame.size, frame.undefined)
            if not frame.mutable:
                memo[id(frame.value)] = entry
            if not stack:
                return entry
            stack[-1].mutable = stack[-1].mutable or frame.mutable
            stack[-1].add(frame.size, frame.undefined, limit, what)


def _join_text(parts: Iterable[Any]) -> str:
    """Concatenate outputs as text, refusing as soon as the total grows too large."""
    texts, total = [], 0
    for part in parts:  # consumed one by one: a loop's output is checked while it runs
        total += _measure(part, what="text")
        _refuse_oversized("text", total)
        texts.append(part if type(part) is str else str(part))
    _session().charge(total)
    return "".join(texts)


def native_concat(values: Iterable[Any]) -> Any:
    """One output keeps its own value and type; several are joined as text (never literal_eval'd)."""
    values = iter(values)
    head = list(itertools.islice(values, 2))
    if not head:
        return ""
    if len(head) == 1:
        return head[0]
    return _join_text(itertools.chain(head, values))


# --------------------------------------------------------------------------- operator limits


def _check_multiply(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() + right.bit_length()
        if bits > MAX_INT_BITS:
            raise TemplateError(f"integer product would have about {bits} bits, the limit is {MAX_INT_BITS}")
        return
    if isinstance(left, (str, bytes, list, tuple)) and isinstance(right, int):
        sequence, count = left, right
    elif isinstance(right, (str, bytes, list, tuple)) and isinstance(left, int):
        sequence, count = right, left
    else:
        return
    if count <= 0:
        return
    length = len(sequence) * count
    if length > MAX_SEQUENCE_LENGTH:
        raise TemplateError(f"repetition would have {length} items, the limit is {MAX_SEQUENCE_LENGTH}")
    if isinstance(sequence, (list, tuple)):
        size = _measure(sequence, strict=False) * count
        _refuse_oversized("repetition", size)
    _session().charge(length)


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 1 or abs(base) <= 1:
        return
    if exponent > MAX_INT_BITS or base.bit_length() * exponent > MAX_INT_BITS:
        raise TemplateError(f"power {base} ** {exponent} is too large, results are limited to {MAX_INT_BITS} bits")


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
        _admit("concatenation", len(left) + len(right))
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        length = len(left) + len(right)
        if length > MAX_SEQUENCE_LENGTH:
            raise TemplateError(f"concatenation would have {length} items, the limit is {MAX_SEQUENCE_LENGTH}")
        _session().charge(length)


_PRINTF_SPEC = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[#0 +\-]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?[hlL]?(?P<conversion>.?)",
    re.S,
)


def _check_width(digits: str | None) -> int:
    if not digits:
        return 0
    if digits == "*":
        raise TemplateError("'*' width or precision is not allowed in template formatting")
    if len(digits) > 6 or int(digits) > MAX_FORMAT_WIDTH:
        raise TemplateError(f"format width {digits} is larger than the limit of {MAX_FORMAT_WIDTH}")
    return int(digits)


def _check_printf(template: Any, values: Any) -> None:
    """Bound `template % values` before Python builds it."""
    text = template.decode("latin-1") if isinstance(template, bytes) else str(template)
    mapping = values if isinstance(values, Mapping) else None
    produced = len(text)
    positional = mapping is None
    for spec in _PRINTF_SPEC.finditer(text):
        if spec["conversion"] == "%":
            continue
        produced += _check_width(spec["width"]) + _check_width(spec["precision"]) + 400
        if mapping is not None and spec["key"] is not None:
            produced += _measure(mapping.get(spec["key"]), what="formatted text")
        else:
            positional = True
        _refuse_oversized("formatted text", produced)
    if positional:
        produced += _measure(values if isinstance(values, tuple) else (values,), what="formatted text")
    _admit("formatted text", produced)


def _check_modulo(left: Any, right: Any) -> None:
    if isinstance(left, (str, bytes)):
        _check_printf(left, right)


_BINOP_CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "*": _check_multiply,
    "**": _check_power,
    "+": _check_add,
    "%": _check_modulo,
}


class _GuardedFormatter(SandboxedFormatter):
    """`str.format` with bounded widths and output."""

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._produced = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        _measure(value, what="formatted text")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for digits in re.findall(r"\d+", format_spec):
            self._produced += _check_width(digits)
        size = _measure(value, what="formatted text")
        self._produced += size
        _refuse_oversized("formatted text", self._produced)
        _session().charge(size)
        return super().format_field(value, format_spec)


class _GuardedEscapeFormatter(_GuardedFormatter, EscapeFormatter):
    pass


# --------------------------------------------------------------------------- method-call limits


def _int_argument(args: tuple, kwargs: Mapping, index: int, name: str, default: int = 0) -> int:
    value = args[index] if len(args) > index else kwargs.get(name, default)
    return value if isinstance(value, int) else default


def _padded_size(text: Any, args: tuple, kwargs: Mapping) -> int:
    return max(len(text), _int_argument(args, kwargs, 0, "width"))


def _expanded_tabs_size(text: Any, args: tuple, kwargs: Mapping) -> int:
    tab = "\t" if isinstance(text, str) else b"\t"
    return len(text) + text.count(tab) * max(_int_argument(args, kwargs, 0, "tabsize", 8), 0)


def _replaced_size(text: Any, args: tuple, kwargs: Mapping) -> int:
    if len(args) < 2 or not isinstance(args[0], type(text)) or not isinstance(args[1], type(text)):
        return len(text)  # the call itself refuses these arguments
    old, new = args[0], args[1]
    hits = text.count(old) if old else len(text) + 1
    count = _int_argument(args, kwargs, 2, "count", -1)
    if count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new)


def _translated_size(text: Any, args: tuple, kwargs: Mapping) -> int:
    table = args[0] if args else None
    longest = 1
    if isinstance(table, Mapping):
        longest = max([len(v) if isinstance(v, (str, bytes)) else 1 for v in table.values()] or [1])
    return len(text) * max(longest, 1)


_TEXT_METHOD_SIZES: dict[str, Callable[[Any, tuple, Mapping], int]] = {
    "ljust": _padded_size,
    "rjust": _padded_size,
    "center": _padded_size,
    "zfill": _padded_size,
    "expandtabs": _expanded_tabs_size,
    "replace": _replaced_size,
    "translate": _translated_size,
}


def _check_method_call(function: Any, args: tuple, kwargs: Mapping) -> tuple:
    """Bound calls of str/bytes/int methods that build large results; returns the args to use."""
    owner = getattr(function, "__self__", None)
    if not isinstance(owner, (str, bytes, int)):
        return args
    name = getattr(function, "__name__", "")
    kwargs = {k: v for k, v in kwargs.items() if k not in ("_loop_vars", "_block_vars")}
    if isinstance(owner, int):
        size = _int_argument(args, kwargs, 0, "length", 1) if name == "to_bytes" else 0
    elif name == "join" and args:
        items = list(args[0])
        size = _measure(items, what="joined text") + len(owner) * len(items)
        args = (items,) + args[1:]
    elif name in _TEXT_METHOD_SIZES:
        size = _TEXT_METHOD_SIZES[name](owner, args, kwargs)
    else:
        return args
    _refuse_oversized(f"{name}() result", size)
    return args


# --------------------------------------------------------------------------- filters and globals


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


def _safe_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_SEQUENCE_LENGTH:
        raise TemplateError(f"range() would have {len(numbers)} items, the limit is {MAX_SEQUENCE_LENGTH}")
    return numbers


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


# --------------------------------------------------------------------------- environment


class _StrictUndefined(jinja2.StrictUndefined):
    """StrictUndefined whose error names the missing name first."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        message = super()._undefined_message
        if self._undefined_hint or self._undefined_name is None:
            return message
        return f"undefined name {self._undefined_name!r}: {message}"


def _is_guarded(node: nodes.Expr) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.EnvironmentAttribute)
        and node.node.name == "guard_iterable"
    )


class _CodeGenerator(NativeCodeGenerator):
    """Native code generator that routes loops and `~` through the environment's limits."""

    def visit_For(self, node: nodes.For, frame: Any) -> None:
        # Jinja forbids new node types; a call of an environment attribute does the same job.
        if not _is_guarded(node.iter):
            guard = nodes.EnvironmentAttribute("guard_iterable", lineno=node.iter.lineno)
            node.iter = nodes.Call(guard, [node.iter], [], None, None, lineno=node.iter.lineno)
        super().visit_For(node, frame)

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        # A lone constant keeps its type (`{{ [1, 2] }}` is a list); the base class makes it text.
        group = list(group)
        if len(group) == 1:
            return repr(group[0])
        return repr("".join([str(value) for value in group]))

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        self.write("environment.join_text((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write("))")


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """Immutable sandbox rendering native values, with every unbounded operation capped."""

    code_generator_class = _CodeGenerator
    concat = staticmethod(native_concat)
    intercepted_binops = frozenset(_BINOP_CHECKS)

    def __init__(self) -> None:
        super().__init__(undefined=_StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.filters.update(_REPLACED_FILTERS)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.globals["range"] = _safe_range
        self.globals["lipsum"] = _lipsum

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _session().tick()
        _BINOP_CHECKS[operator](left, right)
        return self.binop_table[operator](left, right)

    def call(self, context: Any, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        _session().tick()
        if isinstance(function, LoopContext) and args:  # a recursive loop's next level
            args = (self.guard_iterable(args[0]),) + args[1:]
        else:
            args = _check_method_call(function, args, kwargs)
        result = super().call(context, function, *args, **kwargs)
        if isinstance(getattr(function, "__self__", None), (str, bytes)) and isinstance(result, (str, bytes, list)):
            _admit(f"{function.__name__}() result", len(result))
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        if isinstance(text, Markup):
            formatter: _GuardedFormatter = _GuardedEscapeFormatter(self, escape=text.escape)
        else:
            formatter = _GuardedFormatter(self)
        text_type = type(text)
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one positional argument")
                args, kwargs = (), args[0]
            return text_type(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    @staticmethod
    def guard_iterable(iterable: Any) -> Iterator[Any]:
        session = _session()
        for item in iterable:
            session.tick()
            yield item

    @staticmethod
    def join_text(parts: tuple) -> str:
        _session().tick()
        return _join_text(parts)


class Template(jinja2.Template):
    """A compiled template; `is_expression` marks a source that is exactly one `{{ expression }}`."""

    environment_class = TemplateEnvironment
    source: str = ""
    is_expression: bool = False

    def render(self, *args: Any, **kwargs: Any) -> Any:
        context = dict(*args, **kwargs)
        with _rendering() as session:
            try:
                return self._render_bounded(context, session)
            except TemplateError:
                raise
            except jinja2.TemplateError as exc:
                raise TemplateError(exc.message or type(exc).__name__) from exc
            except Exception as exc:  # noqa: BLE001 - any failure of a user expression is a template error
                raise TemplateError(f"{type(exc).__name__}: {exc}") from exc

    def _render_bounded(self, context: dict, session: _RenderSession) -> Any:
        parts = self.root_render_func(self.new_context(context))
        value = _plain(native_concat(parts)) if self.is_expression else _join_text(parts)
        session.output_size += _measure(value, MAX_OUTPUT_SIZE, what="rendered output")
        if session.output_size > MAX_OUTPUT_SIZE:
            raise _too_large("rendered output", session.output_size, MAX_OUTPUT_SIZE)
        return value


TemplateEnvironment.template_class = Template


def _plain(value: Any) -> Any:
    """Turn lazy results (map, select, range, dict views) into lists and Markup into str."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, (types.GeneratorType, range, KeysView, ValuesView, ItemsView, Iterator)):
        items = []
        for item in value:
            _session().tick()
            items.append(item)
        return items
    if isinstance(value, Markup):
        return str(value)
    return value


_environment = TemplateEnvironment()


# --------------------------------------------------------------------------- public API


def is_template(value: str) -> bool:
    """True when the string contains Jinja markup (`{{` or `{%`); a cheap check, no parsing."""
    return "{{" in value or "{%" in value


def _is_single_expression(tree: nodes.Template) -> bool:
    return (
        len(tree.body) == 1
        and isinstance(tree.body[0], nodes.Output)
        and len(tree.body[0].nodes) == 1
        and not isinstance(tree.body[0].nodes[0], nodes.TemplateData)
    )


@functools.lru_cache(maxsize=COMPILE_CACHE_SIZE)
def compile_template(source: str) -> Template:
    """Parse and compile once per source string (LRU-cached); TemplateError on a syntax error."""
    if not isinstance(source, str):
        raise TemplateError(f"a template must be a string, not {type(source).__name__}")
    try:
        tree = _environment.parse(source)
        is_expression = _is_single_expression(tree)
        template = _environment.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.message} (line {exc.lineno})") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(exc.message or type(exc).__name__) from None
    template.source = source
    template.is_expression = is_expression
    return template


def render_string(source: str, context: Mapping[str, Any]) -> Any:
    """Render one string: exactly `{{ expression }}` gives the native value, anything else a str."""
    if not isinstance(source, str) or not is_template(source):
        return source
    return compile_template(source).render(context)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside dicts and lists (keys are kept as they are); other values unchanged."""
    with _rendering():
        return _render_tree(value, context)


def _render_tree(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, dict):
        return {key: _render_tree(item, context) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_render_tree(item, context) for item in value)
    return value


def _expression_template(expression: str) -> Template:
    if is_template(expression):
        return compile_template(expression)
    template = compile_template("{{ " + expression + " }}")
    if not template.is_expression:
        raise TemplateError(f"not a single expression: {expression!r}")
    return template


def render_expression(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a `when`-style field, a bare expression (`params.x > 3`) or a template."""
    if not isinstance(expression, str):
        return expression
    return _expression_template(expression).render(context)


def syntax_errors(value: Any, path: str) -> list[tuple[str, str]]:
    """(JSON path, message) for every template string inside `value` that does not compile."""
    errors: list[tuple[str, str]] = []
    if isinstance(value, str):
        if is_template(value):
            try:
                compile_template(value)
            except TemplateError as exc:
                errors.append((path, exc.message))
    elif isinstance(value, dict):
        for key, item in value.items():
            errors.extend(syntax_errors(item, f"{path}.{key}"))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            errors.extend(syntax_errors(item, f"{path}[{index}]"))
    return errors


def expression_syntax_errors(expression: Any, path: str) -> list[tuple[str, str]]:
    """Like syntax_errors, for a `when`-style expression."""
    if not isinstance(expression, str):
        return []
    try:
        _expression_template(expression)
    except TemplateError as exc:
        return [(path, exc.message)]
    return []


def build_context(layers: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Merge name tables; a name in an earlier layer hides the same name in later ones."""
    context: dict[str, Any] = {}
    for layer in reversed(list(layers)):
        if layer:
            context.update(layer)
    return context
