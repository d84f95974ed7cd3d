"""Unit tests of the template engine (SPEC §4): native values, sandbox, limits, cache."""

import threading
import time

import pytest

from chalicelib.engine.templating import (
    MAX_OUTPUT_SIZE,
    TemplateError,
    build_context,
    compile_template,
    expression_syntax_errors,
    is_template,
    render_expression,
    render_string,
    render_value,
    syntax_errors,
)

CONTEXT = {
    "params": {"d": {"a": 1}, "list": [1, 2], "count": 3, "ratio": 0.5, "flag": True, "nothing": None,
               "text": "42", "name": "ada"},
    "n": 42,
}


def render_error(source, context=CONTEXT):
    with pytest.raises(TemplateError) as caught:
        render_string(source, context)
    return caught.value.message


# --------------------------------------------------------------------------- native values


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ params.d }}", {"a": 1}),
        ("{{ params.list }}", [1, 2]),
        ("{{ params.count }}", 3),
        ("{{ params.ratio }}", 0.5),
        ("{{ params.flag }}", True),
        ("{{ params.nothing }}", None),
        ("{{params.count}}", 3),
        ("{{ params.count > 2 }}", True),
        ("{{ [1, 2] }}", [1, 2]),
        ("{{ {'k': 'v'} }}", {"k": "v"}),
        ("{{ 7 }}", 7),
        ("{{ none }}", None),
        ("{{ 2 ** 10 }}", 1024),
        ("{{ params.list | map('string') }}", ["1", "2"]),
        ("{{ range(3) }}", [0, 1, 2]),
    ],
)
def test_a_single_expression_renders_to_its_native_value(source, expected):
    value = render_string(source, CONTEXT)

    assert value == expected
    assert type(value) is type(expected)


def test_a_string_that_looks_like_a_number_stays_a_string():
    assert render_string("{{ params.text }}", CONTEXT) == "42"
    assert type(render_string("{{ params.text }}", CONTEXT)) is str
    assert render_string("{{ '42' }}", CONTEXT) == "42"
    assert render_string("{{ '[1, 2]' }}", CONTEXT) == "[1, 2]"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("id-{{ n }}", "id-42"),
        ("{{ n }}{{ n }}", "4242"),
        ("{{ n }} ", "42 "),
        ("{{ n }}\n", "42\n"),
        ("{% if true %}{{ n }}{% endif %}", "42"),
        ("{% if true %}[1, 2]{% endif %}", "[1, 2]"),
        ("{% for i in params.list %}{{ i }},{% endfor %}", "1,2,"),
        ("{{ params.d }} and {{ params.flag }}", "{'a': 1} and True"),
        ("{{ 'a' ~ n }}", "a42"),
    ],
)
def test_anything_but_one_expression_renders_to_text(source, expected):
    value = render_string(source, CONTEXT)

    assert value == expected
    assert type(value) is str


def test_strings_without_markup_are_returned_unchanged_without_compiling():
    text = "plain {text} with } braces"
    misses = compile_template.cache_info().misses

    assert render_string(text, CONTEXT) is text
    assert compile_template.cache_info().misses == misses
    assert render_string(5, CONTEXT) == 5


def test_is_template_only_looks_for_markup():
    assert is_template("{{ x }}")
    assert is_template("a {% if x %}b{% endif %}")
    assert not is_template("{ x }")
    assert not is_template("{# comment #}")


def test_render_value_renders_every_string_and_keeps_keys():
    value = {
        "{{ n }}": "{{ n }}",
        "list": ["a {{ n }}", {"deep": "{{ params.d }}"}, 3, None],
        "plain": "no template",
        "flag": False,
    }

    assert render_value(value, CONTEXT) == {
        "{{ n }}": 42,
        "list": ["a 42", {"deep": {"a": 1}}, 3, None],
        "plain": "no template",
        "flag": False,
    }
    assert value["list"][0] == "a {{ n }}"


# --------------------------------------------------------------------------- undefined names and syntax


def test_a_missing_top_level_name_is_named_in_the_error():
    message = render_error("{{ steps.fetch.output }}", {})

    assert message == "undefined name 'steps': 'steps' is undefined"


def test_a_missing_attribute_is_named_in_the_error():
    message = render_error("url: {{ params.missing }}")

    assert message == "undefined name 'missing': 'dict object' has no attribute 'missing'"


@pytest.mark.parametrize(
    "source",
    ["{{ [missing] }}", "{{ {'k': missing} }}", "{% if missing %}x{% endif %}", "a {{ missing }}",
     "{{ 'a' ~ missing }}", "{{ [missing] | tojson }}"],
)
def test_an_undefined_name_anywhere_in_the_output_fails(source):
    assert "undefined name 'missing'" in render_error(source)


def test_default_still_works_on_undefined_names():
    assert render_string("{{ missing | default('fallback') }}", CONTEXT) == "fallback"
    assert render_string("{{ missing is defined }}", CONTEXT) is False


def test_syntax_errors_report_the_json_path_and_line():
    definition = {
        "steps": [
            {"name": "fetch", "input": {"url": "{{ params.url }", "method": "GET"}},
            {"name": "ok", "input": {"text": "fine {{ n }}"}},
            {"name": "bad", "input": {"rows": ["x", "line one\n{% if %}"], "n": 3}},
        ],
        "output": {"v": "{{ n | no_such_filter }}"},
    }

    assert syntax_errors(definition, "definition") == [
        ("definition.steps[0].input.url", "unexpected '}' (line 1)"),
        ("definition.steps[2].input.rows[1]", "Expected an expression, got 'end of statement block' (line 2)"),
        ("definition.output.v", "No filter named 'no_such_filter'. (line 1)"),
    ]


def test_compile_template_raises_template_error_on_bad_syntax():
    with pytest.raises(TemplateError) as caught:
        compile_template("{{ ")

    assert caught.value.message == "unexpected 'end of template' (line 1)"


def test_expression_syntax_errors():
    assert expression_syntax_errors("params.count > 2", "definition.steps[1].when") == []
    assert expression_syntax_errors("{{ params.count > 2 }}", "w") == []
    assert expression_syntax_errors("params.count >", "definition.steps[1].when") == [
        ("definition.steps[1].when", "unexpected 'end of print statement' (line 1)"),
    ]
    assert expression_syntax_errors("a }} b", "w") == [("w", "not a single expression: 'a }} b'")]


# --------------------------------------------------------------------------- expressions and context


def test_render_expression_accepts_bare_and_braced_expressions():
    assert render_expression("params.count > 2", CONTEXT) is True
    assert render_expression("{{ params.count > 5 }}", CONTEXT) is False
    assert render_expression("params.list", CONTEXT) == [1, 2]
    assert render_expression("'}}'", CONTEXT) == "}}"
    assert render_expression(True, CONTEXT) is True


def test_render_expression_refuses_more_than_one_expression():
    with pytest.raises(TemplateError) as caught:
        render_expression("n }} text", CONTEXT)

    assert caught.value.message == "not a single expression: 'n }} text'"


def test_build_context_gives_earlier_layers_precedence():
    params = {"params": {"x": 1}, "shared": "params"}
    variables = {"vars": {"y": 2}, "shared": "vars", "only_vars": True}
    steps = {"fetch": {"output": 3}, "shared": "steps"}

    context = build_context([params, variables, None, steps])

    assert context == {
        "params": {"x": 1},
        "shared": "params",
        "vars": {"y": 2},
        "only_vars": True,
        "fetch": {"output": 3},
    }
    assert render_string("{{ shared }}/{{ fetch.output }}", context) == "params/3"


# --------------------------------------------------------------------------- filters


def test_json_and_base64_filters():
    assert render_string("{{ params.d | tojson }}", CONTEXT) == '{"a": 1}'
    assert type(render_string("{{ params.d | tojson }}", CONTEXT)) is str
    assert render_string("{{ {'b': 'é<'} | tojson }}", CONTEXT) == '{"b": "é<"}'
    assert render_string("{{ '{\"a\": [1, null]}' | fromjson }}", CONTEXT) == {"a": [1, None]}
    assert render_string("{{ 'ada' | b64encode }}", CONTEXT) == "YWRh"
    assert render_string("{{ 'YWRh' | b64decode }}", CONTEXT) == "ada"
    assert render_error("{{ 'not base64!' | b64decode }}").startswith("b64decode: ")
    assert render_error("{{ '{' | fromjson }}").startswith("fromjson: invalid JSON: ")


def test_string_formatting_still_works_within_limits():
    assert render_string("{{ '%05d|%s' % (n, 'x') }}", CONTEXT) == "00042|x"
    assert render_string("{{ '{:>4}|{name}'.format(n, name='ada') }}", CONTEXT) == "  42|ada"
    assert render_string("{{ '%s-%s' | format(1, 2) }}", CONTEXT) == "1-2"
    assert render_string("{{ ['a', 'b'] | join(',') }}", CONTEXT) == "a,b"
    assert render_string("{{ [[1], [2]] | sum(start=[]) }}", CONTEXT) == [1, 2]


# --------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ x.__class__ }}",
        "{{ ().__class__.__bases__[0].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ x | attr('__class__') }}",
        "{{ ''['__class__'] }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{{ '{a.__class__}'.format_map({'a': 1}) }}",
        "{{ self._TemplateReference__context }}",
        "{{ (range(3) | map('string')).gi_frame }}",
        "{{ cycler.mro() }}",
        "{{ [1].pop() }}",
        "{{ {}.update(a=1) }}",
    ],
)
def test_sandbox_escapes_are_refused(source):
    assert "is unsafe" in render_error(source, {"x": {}})


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 'a' * 10**9 }}", "repetition would have 1000000000 items, the limit is 100000"),
        ("{{ 10**9 * 'a' }}", "repetition would have 1000000000 items"),
        ("{{ [1] * 10**9 }}", "repetition would have 1000000000 items"),
        ("{{ ['x' * 100000] * 1000 }}", "repetition would be about"),
        ("{{ 2 ** (10**8) }}", "power 2 ** 100000000 is too large"),
        ("{{ (10**1000) * (10**1000) * (10**1000) }}", "integer product"),
        ("{{ range(10**9) | list }}", "range() would have 1000000000 items, the limit is 100000"),
        ("{{ ('x' * 100000) | join('y' * 100000) }}", "joined text would be about"),
        ("{{ (['x' * 100000] * 15) | join('y' * 100000) }}", "joined text would be about"),
        ("{{ ('y' * 100000).join(['x' * 100000] * 15) }}", "join() result would be about"),
        ("{{ 'a'.ljust(10**9) }}", "ljust() result would be about 1000000000 characters"),
        ("{{ (1).to_bytes(10**9, 'big') }}", "to_bytes() result would be about"),
        ("{{ '%0999999999d' % 1 }}", "format width 999999999 is larger than the limit of 10000"),
        ("{{ '%*d' % (10**9, 1) }}", "'*' width or precision is not allowed"),
        ("{{ ('%(a)s' * 16000) % {'a': 'x' * 100000} }}", "formatted text would be about"),
        ("{{ '{:>999999999}'.format(1) }}", "format width 999999999 is larger than the limit of 10000"),
        ("{{ '%0999999999d' | format(1) }}", "format width 999999999"),
        ("{{ 'a' | center(10**9) }}", "center() result would be about"),
        ("{{ 'a' | indent(10**9) }}", "indent() result would be about"),
        ("{{ ('a' * 100000) | replace('a', 'b' * 100000) }}", "replace() result would be about"),
        ("{{ ('a b ' * 10000) | wordwrap(1, wrapstring='x' * 1000) }}", "wordwrap() result would be about"),
        ("{{ [1] | batch(10**9, 'x') | list }}", "batch size 1000000000"),
        ("{{ [1] | slice(10**9) | list }}", "slice count 1000000000"),
        ("{{ lipsum(10**6) }}", "lipsum() is limited"),
        ("{{ 1 | tojson(indent=10**9) }}", "tojson indent must be an integer from 0 to 16"),
        ("{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
         "text would be about"),
        ("{% set ns = namespace(l=1) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
         "{{ ns.l | tojson }}", "input of filter 'tojson' would be about"),
        ("{% set ns = namespace(l=1) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
         "{{ ns.l }}", "would be about"),
        ("{% set ns = namespace(l=1) %}{{ [ns] | length }}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}"
         "{% endfor %}{{ [ns] | string }}", "input of filter 'string' would be about"),
        ("{{ '%s' % {'a': ['x' * 100000] * 19} }}", "rendered output would be about 1900083 characters"),
        ("{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}", "text would be about 2100000 characters"),
        ("{% set x %}{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}{% endset %}",
         "template builds more than 20000000 characters in total"),
        ("{% macro m() %}{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}{% endmacro %}{{ m() }}",
         "template builds more than 20000000 characters in total"),
    ],
)
def test_blowups_are_refused_at_once(source, message):
    started = time.perf_counter()

    assert message in render_error(source)
    assert time.perf_counter() - started < 1.0


def test_endless_loops_run_out_of_operations():
    source = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    started = time.perf_counter()

    assert render_error(source) == "template needs more than 500000 operations"
    assert time.perf_counter() - started < 1.0


def test_rendered_output_is_capped_at_one_megabyte():
    exact = {"s": "x" * MAX_OUTPUT_SIZE}
    over = {"s": "x" * (MAX_OUTPUT_SIZE + 1)}

    assert len(render_string("{{ s }}", exact)) == MAX_OUTPUT_SIZE
    with pytest.raises(TemplateError) as caught:
        render_string("{{ s }}", over)
    assert caught.value.message == "rendered output would be about 1048577 characters, the limit is 1048576"
    assert "rendered output" in render_error("{% for i in range(11) %}{{ 'x' * 100000 }}{% endfor %}")


def test_render_value_caps_its_whole_output():
    context = {"body": "x" * 600_000}

    with pytest.raises(TemplateError) as caught:
        render_value({"a": "{{ body }}", "b": ["{{ body }}"]}, context)

    assert caught.value.message.startswith("rendered output would be about 1200000 characters")


# --------------------------------------------------------------------------- cache and threads


def test_templates_are_compiled_once_per_source():
    source = "cache probe {{ n }} " + str(time.perf_counter_ns())
    before = compile_template.cache_info()

    assert render_string(source, CONTEXT).startswith("cache probe 42 ")
    assert render_string(source, {"n": 7}).startswith("cache probe 7 ")
    after = compile_template.cache_info()

    assert after.misses == before.misses + 1
    assert after.hits == before.hits + 1
    assert compile_template(source) is compile_template(source)


def test_rendering_from_eight_threads():
    errors = []
    results = {}

    def work(worker):
        try:
            for i in range(200):
                context = {"w": worker, "i": i, "items": list(range(i % 5))}
                got = render_value({"id": "w{{ w }}-{{ i }}", "n": "{{ items | length }}", "raw": "{{ items }}"},
                                   context)
                assert got == {"id": f"w{worker}-{i}", "n": i % 5, "raw": list(range(i % 5))}
            results[worker] = render_string("{{ 'x' * 10**9 }}" if worker % 2 else "{{ w }}", {"w": worker})
        except TemplateError as exc:
            results[worker] = exc.message
        except AssertionError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert results == {
        worker: (worker if worker % 2 == 0 else "repetition would have 1000000000 items, the limit is 100000")
        for worker in range(8)
    }


def test_a_mapping_key_wins_over_a_dict_method_of_the_same_name():
    context = {"params": {"items": [1, 2], "values": "v", "get": 3}}
    assert render_string("{{ params.items }}", context) == [1, 2]
    assert render_string("{{ params.values }}-{{ params.get }}", context) == "v-3"
    assert render_string("{{ params.keys() | list }}", context) == ["items", "values", "get"]


def test_an_expression_that_gives_a_method_is_a_template_error():
    with pytest.raises(TemplateError, match="missing parentheses"):
        render_string("{{ 'abc'.upper }}", {})
    assert render_string("{{ 'abc'.upper() }}", {}) == "ABC"


def test_referenced_names_are_the_top_level_names_templates_use():
    from chalicelib.engine.templating import referenced_names

    value = {"a": "{{ steps.fetch.output }} and {{ params.x }}", "b": ["{{ vars.y | upper }}", "plain", 3],
             "{{ key }}": "{% for i in range(3) %}{{ i }}{% endfor %}", "c": None}
    assert referenced_names(value) == {"steps", "params", "vars"}
    assert referenced_names("no template") == frozenset()
