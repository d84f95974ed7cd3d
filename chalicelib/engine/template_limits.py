"""Per-render budget and size guards: the MAX_* limits, value sizes, operator, format and method-call checks."""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
import time
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, Callable

from jinja2.runtime import Undefined
from jinja2.sandbox import SandboxedFormatter
from jinja2.utils import Namespace
from markupsafe import EscapeFormatter

from chalicelib.engine.template_errors import TemplateError

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


# --------------------------------------------------------------------------- range()


def _safe_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_SEQUENCE_LENGTH:
        raise TemplateError(f"range() would have {len(numbers)} items, the limit is {MAX_SEQUENCE_LENGTH}")
    return numbers
