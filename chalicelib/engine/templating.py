"""Sandboxed, bounded Jinja2 rendering of the templates in workflow documents (SPEC §4)."""

from __future__ import annotations

import functools
import itertools
import types
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, Callable

import jinja2
from jinja2 import nodes
from jinja2.compiler import optimizeconst
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.runtime import LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from chalicelib.engine.template_errors import TemplateError

from chalicelib.engine.template_filters import (
    _REPLACED_FILTERS,
    _guard_filter,
    _lipsum,
)
from chalicelib.engine.template_limits import (
    _BINOP_CHECKS,
    MAX_OUTPUT_SIZE,  # noqa: F401  (part of this module's interface)
    _admit,
    _check_method_call,
    _GuardedEscapeFormatter,
    _GuardedFormatter,
    _join_text,
    _measure,
    _rendering,
    _RenderSession,
    _safe_range,
    _session,
    _too_large,
)

COMPILE_CACHE_SIZE = 4096


# --------------------------------------------------------------------------- native concat


def native_concat(values: Iterable[Any]) -> Any:
    """One output keeps its own value and type; several are joined as text (never literal_eval'd)."""
    values = iter(values)
    head = list(itertools.islice(values, 2))
    if not head:
        return ""
    if len(head) == 1:
        return head[0]
    return _join_text(itertools.chain(head, values))


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

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`params.items` is the parameter named `items`, not the dict method: in a
        workflow's data, a mapping's keys come before its methods."""
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

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
    if callable(value):
        # A method or function is not data: `{{ params.name.upper }}` forgot its parentheses.
        raise TemplateError(f"the expression gives a {type(value).__name__}, not a value (missing parentheses?)")
    return value


_environment = TemplateEnvironment()


# --------------------------------------------------------------------------- public API


@functools.lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _names_in(source: str) -> frozenset[str]:
    from jinja2 import meta

    try:
        return frozenset(meta.find_undeclared_variables(_environment.parse(source)))
    except jinja2.TemplateSyntaxError:
        return frozenset()


def referenced_names(value: Any) -> frozenset[str]:
    """The top-level names the templates inside `value` look up (dict keys not included),
    Jinja's own globals left out."""
    names: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if is_template(item):
                names |= _names_in(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return frozenset(names - set(_environment.globals))


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
