"""Write-time checks of workflow definitions (SPEC §3): every problem with its JSON path."""

import pytest

from chalicelib.engine.definition import normalize_definition, start_steps, uses_graph, validate_definition

KNOWN = {"core.noop", "core.echo", "core.condition", "core.fail", "core.http"}


def check(definition):
    return validate_definition(normalize_definition(definition), KNOWN.__contains__)


def step(name, action="core.noop", **fields):
    return {"name": name, "action": action, **fields}


def test_a_valid_sequential_definition_has_no_problems():
    assert check({"variables": {"n": 3}, "steps": [step("a"), step("b", input={"x": "{{ a.output }}"})],
                  "output": {"r": "{{ steps.b.output }}"}, "on_failure": "abort"}) == []


def test_empty_definition_is_valid():
    assert check({"steps": []}) == []
    assert check({}) == []


@pytest.mark.parametrize("definition, expected", [
    ([], [("definition", "must be an object")]),
    ({"steps": {}}, [("definition.steps", "must be a list")]),
    ({"steps": [], "extra": 1}, [("definition.extra", "unknown field")]),
    ({"steps": [], "variables": []}, [("definition.variables", "must be an object")]),
    ({"steps": [], "on_failure": "panic"}, [("definition.on_failure", "must be one of abort, continue, compensate")]),
    ({"steps": ["a"]}, [("definition.steps[0]", "must be an object")]),
    ({"steps": [{"action": "core.noop"}]}, [("definition.steps[0].name", "is required")]),
    ({"steps": [step("Bad-Name")]},
     [("definition.steps[0].name", "must match [a-z][a-z0-9_]* and be at most 64 characters")]),
    ({"steps": [{"name": "a"}]}, [("definition.steps[0].action", "is required")]),
    ({"steps": [step("a", "x.y")]}, [("definition.steps[0].action", "unknown action 'x.y'")]),
    ({"steps": [step("a"), step("a")]}, [("definition.steps[1].name", "duplicate step name 'a'")]),
    ({"steps": [step("a", colour=1)]}, [("definition.steps[0].colour", "unknown field")]),
    ({"steps": [step("a", input=[])]}, [("definition.steps[0].input", "must be an object")]),
    ({"steps": [step("a", depends_on=["ghost"])]}, [("definition.steps[0].depends_on", "unknown step 'ghost'")]),
    ({"steps": [step("a", on_failure=["b", "ghost"]), step("b")]},
     [("definition.steps[0].on_failure", "unknown step 'ghost'")]),
    ({"steps": [step("a", on_true="b"), step("b")]},
     [("definition.steps[0].on_true", "is allowed only on a core.condition step")]),
    ({"steps": [step("a", timeout=0)]},
     [("definition.steps[0].timeout", "must be a number of seconds greater than 0 and at most 900")]),
    ({"steps": [step("a", timeout="60")]},
     [("definition.steps[0].timeout", "must be a number of seconds greater than 0 and at most 900")]),
    ({"steps": [step("a", failure_policy="retry")]},
     [("definition.steps[0].failure_policy", "must be one of abort, continue, compensate")]),
    ({"steps": [step("a", retry={"max_attempts": 0})]},
     [("definition.steps[0].retry.max_attempts", "must be an integer from 1 to 100")]),
    ({"steps": [step("a", retry={"backoff_coefficient": 0.5})]},
     [("definition.steps[0].retry.backoff_coefficient", "must be a number from 1 to 100")]),
    ({"steps": [step("a", retry={"initial_interval": 10, "max_interval": 5})]},
     [("definition.steps[0].retry.max_interval", "must not be less than initial_interval")]),
    ({"steps": [step("a", retry={"non_retryable_errors": "HTTP_4XX"})]},
     [("definition.steps[0].retry.non_retryable_errors", "must be a list of error codes")]),
    ({"steps": [step("a", retry={"tries": 3})]}, [("definition.steps[0].retry.tries", "unknown field")]),
    ({"steps": [step("a", compensate={"action": "nope.x"})]},
     [("definition.steps[0].compensate.action", "unknown action 'nope.x'")]),
    ({"steps": [step("a", approval={"approvers": "me"})]},
     [("definition.steps[0].approval.approvers", "must be a list of strings")]),
    ({"steps": [step("a", publish=["x"])]},
     [("definition.steps[0].publish", "must be an object of variable name to template")]),
    ({"steps": [step("a", when=3)]},
     [("definition.steps[0].when", "must be an expression string or a boolean")]),
    ({"steps": [step("a", order="1")]}, [("definition.steps[0].order", "must be an integer")]),
])
def test_each_problem_is_reported_at_its_path(definition, expected):
    assert check(definition) == expected


def test_template_syntax_errors_name_the_field():
    problems = check({"steps": [step("a", input={"url": "{{ params.x ", "ok": "{{ params.y }}"})]})
    assert [p[0] for p in problems] == ["definition.steps[0].input.url"]
    problems = check({"steps": [step("a", when="params.x >")]})
    assert [p[0] for p in problems] == ["definition.steps[0].when"]
    problems = check({"steps": [step("a")], "output": {"r": "{% if %}"}})
    assert [p[0] for p in problems] == ["definition.output.r"]


def test_a_dependency_cycle_is_named():
    problems = check({"steps": [step("a"), step("b", depends_on=["c"]), step("c", depends_on=["b"])]})
    assert problems == [("definition.steps[1].depends_on", "cycle in depends_on: b -> c -> b")]
    assert check({"steps": [step("a", depends_on=["a"])]}) == [
        ("definition.steps[0].depends_on", "cycle in depends_on: a -> a")]


def test_a_graph_with_no_start_step_is_refused():
    problems = check({"steps": [step("a", on_success="b"), step("b", on_success="a")]})
    assert problems == [("definition.steps",
                         "no step can start: every step has depends_on or is the target of a transition")]


def test_transition_loops_with_a_start_step_are_allowed():
    assert check({"steps": [step("start", on_success="a"), step("a", on_failure="b"), step("b", on_success="a")]}) == []


def test_aliases_of_the_source_documents_are_normalised():
    definition = normalize_definition({
        "tasks": [
            {"name": "a", "action": "core.noop", "retry": {"count": 3, "delay": 60}, "onSuccess": "b"},
            {"name": "b", "action": "core.noop", "dependencies": "a",
             "retryPolicy": {"maximumAttempts": 4, "initialInterval": 2, "backoffCoefficient": 3}},
        ],
    })
    assert definition == {"steps": [
        {"name": "a", "action": "core.noop", "on_success": "b",
         "retry": {"max_attempts": 4, "initial_interval": 60, "backoff_coefficient": 1.0}},
        {"name": "b", "action": "core.noop", "depends_on": ["a"],
         "retry": {"max_attempts": 4, "initial_interval": 2, "backoff_coefficient": 3}},
    ]}
    assert validate_definition(definition, KNOWN.__contains__) == []


def test_sequential_and_graph_modes():
    sequential = [step("a"), step("b")]
    assert not uses_graph(sequential)
    graph = [step("a"), step("b"), step("c", depends_on=["a", "b"]), step("d"), step("e")]
    graph[3]["on_failure"] = "e"
    assert uses_graph(graph)
    assert start_steps(graph) == ["a", "b", "d"]
