"""The workflow definition language (SPEC §3): normalisation of accepted aliases and the
write-time checks, each problem reported with the JSON path of the offending field."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from chalicelib.engine.templating import expression_syntax_errors, syntax_errors

Problem = tuple[str, str]  # (json path, message)

STEP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
STEP_NAME_MAX = 64
MAX_STEPS = 200
TIMEOUT_DEFAULT = 60
TIMEOUT_MAX = 900
FAILURE_POLICIES = ("abort", "continue", "compensate")
TRANSITIONS = ("on_success", "on_failure", "on_complete", "on_true", "on_false")
RETRY_DEFAULTS = {
    "max_attempts": 1,
    "initial_interval": 1,
    "backoff_coefficient": 2.0,
    "max_interval": 300,
    "non_retryable_errors": [],
}

DEFINITION_FIELDS = ("variables", "steps", "output", "on_failure")
STEP_FIELDS = (
    "name", "action", "input", "integration", "depends_on", "when", *TRANSITIONS,
    "retry", "timeout", "failure_policy", "compensate", "approval", "publish", "order",
    "description",
)
RETRY_FIELDS = tuple(RETRY_DEFAULTS)

# Spellings of the same fields that the product's source documents use.
_DEFINITION_ALIASES = {"tasks": "steps", "onFailure": "on_failure"}
_STEP_ALIASES = {
    "dependsOn": "depends_on", "dependencies": "depends_on", "onSuccess": "on_success",
    "onFailure": "on_failure", "onComplete": "on_complete", "onTrue": "on_true",
    "onFalse": "on_false", "retryPolicy": "retry", "retry_policy": "retry",
    "executionTimeout": "timeout", "failurePolicy": "failure_policy",
}
_RETRY_ALIASES = {
    "maximumAttempts": "max_attempts", "initialInterval": "initial_interval",
    "backoffCoefficient": "backoff_coefficient", "maximumInterval": "max_interval",
    "nonRetryableErrorTypes": "non_retryable_errors",
}


def _rename(obj: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    """Renames alias keys to their canonical names; the canonical name wins when both are given."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        canonical = aliases.get(key, key)
        if canonical != key and canonical in obj:
            continue
        out[canonical] = value
    return out


def _normalize_retry(retry: Any) -> Any:
    if not isinstance(retry, dict):
        return retry
    retry = _rename(retry, _RETRY_ALIASES)
    # Attune's form: `count` retries after the first attempt, `delay` seconds apart.
    if "count" in retry and "max_attempts" not in retry:
        count = retry.pop("count")
        retry["max_attempts"] = count + 1 if _is_int(count) else count
        retry.setdefault("backoff_coefficient", 1.0)
    if "delay" in retry and "initial_interval" not in retry:
        retry["initial_interval"] = retry.pop("delay")
    return retry


def normalize_definition(definition: Any) -> Any:
    """Returns the definition in its canonical spelling; anything malformed is returned as
    it is for validate_definition to report."""
    if not isinstance(definition, dict):
        return definition
    definition = _rename(definition, _DEFINITION_ALIASES)
    steps = definition.get("steps")
    if isinstance(steps, list):
        definition["steps"] = [_normalize_step(step) for step in steps]
    return definition


def _normalize_step(step: Any) -> Any:
    if not isinstance(step, dict):
        return step
    step = _rename(step, _STEP_ALIASES)
    if isinstance(step.get("depends_on"), str):
        step["depends_on"] = [step["depends_on"]]
    if "retry" in step:
        step["retry"] = _normalize_retry(step["retry"])
    return step


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _targets(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def validate_definition(
    definition: Any, action_exists: Callable[[str], bool], path: str = "definition"
) -> list[Problem]:
    """Every problem of a (normalised) definition; an empty list means it is valid."""
    if not isinstance(definition, dict):
        return [(path, "must be an object")]
    problems: list[Problem] = []
    for key in definition:
        if key not in DEFINITION_FIELDS:
            problems.append((f"{path}.{key}", "unknown field"))
    variables = definition.get("variables", {})
    if not isinstance(variables, dict):
        problems.append((f"{path}.variables", "must be an object"))
    else:
        problems += syntax_errors(variables, f"{path}.variables")
    if "on_failure" in definition and definition["on_failure"] not in FAILURE_POLICIES:
        problems.append((f"{path}.on_failure", f"must be one of {', '.join(FAILURE_POLICIES)}"))
    if "output" in definition:
        problems += syntax_errors(definition["output"], f"{path}.output")

    steps = definition.get("steps", [])
    if not isinstance(steps, list):
        return problems + [(f"{path}.steps", "must be a list")]
    if len(steps) > MAX_STEPS:
        return problems + [(f"{path}.steps", f"at most {MAX_STEPS} steps are allowed")]

    names: dict[str, int] = {}
    for index, step in enumerate(steps):
        step_path = f"{path}.steps[{index}]"
        problems += _validate_step(step, step_path, action_exists)
        name = step.get("name") if isinstance(step, dict) else None
        if isinstance(name, str):
            if name in names:
                problems.append((f"{step_path}.name", f"duplicate step name '{name}'"))
            else:
                names[name] = index

    step_dicts = [s for s in steps if isinstance(s, dict)]
    problems += _check_references(step_dicts, names, path)
    if not problems:
        problems += _check_graph(step_dicts, names, path)
    return problems


def _validate_step(step: Any, path: str, action_exists: Callable[[str], bool]) -> list[Problem]:
    if not isinstance(step, dict):
        return [(path, "must be an object")]
    problems: list[Problem] = []
    for key in step:
        if key not in STEP_FIELDS:
            problems.append((f"{path}.{key}", "unknown field"))

    name = step.get("name")
    if name is None:
        problems.append((f"{path}.name", "is required"))
    elif not isinstance(name, str) or not STEP_NAME.match(name) or len(name) > STEP_NAME_MAX:
        problems.append((f"{path}.name", f"must match [a-z][a-z0-9_]* and be at most {STEP_NAME_MAX} characters"))

    action = step.get("action")
    if action is None:
        problems.append((f"{path}.action", "is required"))
    elif not isinstance(action, str):
        problems.append((f"{path}.action", "must be a string"))
    elif not action_exists(action):
        problems.append((f"{path}.action", f"unknown action '{action}'"))

    if "input" in step:
        if not isinstance(step["input"], dict):
            problems.append((f"{path}.input", "must be an object"))
        else:
            problems += syntax_errors(step["input"], f"{path}.input")
    if "integration" in step and not isinstance(step["integration"], str):
        problems.append((f"{path}.integration", "must be an integration id"))
    if "when" in step:
        when = step["when"]
        if isinstance(when, str):
            problems += expression_syntax_errors(when, f"{path}.when")
        elif not isinstance(when, bool):
            problems.append((f"{path}.when", "must be an expression string or a boolean"))
    if "depends_on" in step:
        deps = step["depends_on"]
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            problems.append((f"{path}.depends_on", "must be a list of step names"))
    for transition in TRANSITIONS:
        if transition in step:
            targets = step[transition]
            if not all(isinstance(t, str) for t in _targets(targets)) or targets == []:
                problems.append((f"{path}.{transition}", "must be a step name or a list of step names"))
    if ("on_true" in step or "on_false" in step) and action != "core.condition":
        field = "on_true" if "on_true" in step else "on_false"
        problems.append((f"{path}.{field}", "is allowed only on a core.condition step"))
    if "retry" in step:
        problems += _validate_retry(step["retry"], f"{path}.retry")
    if "timeout" in step:
        timeout = step["timeout"]
        if not _is_number(timeout) or not 0 < timeout <= TIMEOUT_MAX:
            problems.append((f"{path}.timeout", f"must be a number of seconds greater than 0 and at most {TIMEOUT_MAX}"))
    if "failure_policy" in step and step["failure_policy"] not in FAILURE_POLICIES:
        problems.append((f"{path}.failure_policy", f"must be one of {', '.join(FAILURE_POLICIES)}"))
    if "compensate" in step:
        problems += _validate_compensate(step["compensate"], f"{path}.compensate", action_exists)
    if "approval" in step:
        problems += _validate_approval(step["approval"], f"{path}.approval")
    if "publish" in step:
        publish = step["publish"]
        if not isinstance(publish, dict):
            problems.append((f"{path}.publish", "must be an object of variable name to template"))
        else:
            problems += syntax_errors(publish, f"{path}.publish")
    if "order" in step and not _is_int(step["order"]):
        problems.append((f"{path}.order", "must be an integer"))
    if "description" in step and not isinstance(step["description"], str):
        problems.append((f"{path}.description", "must be a string"))
    return problems


def _validate_retry(retry: Any, path: str) -> list[Problem]:
    if not isinstance(retry, dict):
        return [(path, "must be an object")]
    problems: list[Problem] = []
    for key in retry:
        if key not in RETRY_FIELDS:
            problems.append((f"{path}.{key}", "unknown field"))
    attempts = retry.get("max_attempts", 1)
    if not _is_int(attempts) or not 1 <= attempts <= 100:
        problems.append((f"{path}.max_attempts", "must be an integer from 1 to 100"))
    initial = retry.get("initial_interval", RETRY_DEFAULTS["initial_interval"])
    if not _is_number(initial) or not 0 <= initial <= 86400:
        problems.append((f"{path}.initial_interval", "must be a number of seconds from 0 to 86400"))
    coefficient = retry.get("backoff_coefficient", RETRY_DEFAULTS["backoff_coefficient"])
    if not _is_number(coefficient) or not 1 <= coefficient <= 100:
        problems.append((f"{path}.backoff_coefficient", "must be a number from 1 to 100"))
    maximum = retry.get("max_interval", RETRY_DEFAULTS["max_interval"])
    if not _is_number(maximum) or not 0 < maximum <= 86400:
        problems.append((f"{path}.max_interval", "must be a number of seconds greater than 0 and at most 86400"))
    elif _is_number(initial) and maximum < initial:
        problems.append((f"{path}.max_interval", "must not be less than initial_interval"))
    codes = retry.get("non_retryable_errors", [])
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        problems.append((f"{path}.non_retryable_errors", "must be a list of error codes"))
    return problems


def _validate_compensate(compensate: Any, path: str, action_exists: Callable[[str], bool]) -> list[Problem]:
    if not isinstance(compensate, dict):
        return [(path, "must be an object with an action and an input")]
    problems: list[Problem] = []
    for key in compensate:
        if key not in ("action", "input"):
            problems.append((f"{path}.{key}", "unknown field"))
    action = compensate.get("action")
    if not isinstance(action, str):
        problems.append((f"{path}.action", "is required"))
    elif not action_exists(action):
        problems.append((f"{path}.action", f"unknown action '{action}'"))
    comp_input = compensate.get("input", {})
    if not isinstance(comp_input, dict):
        problems.append((f"{path}.input", "must be an object"))
    else:
        problems += syntax_errors(comp_input, f"{path}.input")
    return problems


def _validate_approval(approval: Any, path: str) -> list[Problem]:
    if not isinstance(approval, dict):
        return [(path, "must be an object")]
    problems: list[Problem] = []
    for key in approval:
        if key not in ("approvers", "timeout", "message"):
            problems.append((f"{path}.{key}", "unknown field"))
    approvers = approval.get("approvers", [])
    if not isinstance(approvers, list) or not all(isinstance(a, str) for a in approvers):
        problems.append((f"{path}.approvers", "must be a list of strings"))
    if "timeout" in approval:
        timeout = approval["timeout"]
        if not _is_number(timeout) or not 0 < timeout <= 365 * 86400:
            problems.append((f"{path}.timeout", "must be a number of seconds greater than 0 and at most one year"))
    if "message" in approval:
        if not isinstance(approval["message"], str):
            problems.append((f"{path}.message", "must be a string"))
        else:
            problems += syntax_errors(approval["message"], f"{path}.message")
    return problems


def _check_references(steps: list[dict], names: dict[str, int], path: str) -> list[Problem]:
    problems: list[Problem] = []
    for index, step in enumerate(steps):
        step_path = f"{path}.steps[{index}]"
        deps = step.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else []:
            if isinstance(dep, str) and dep not in names:
                problems.append((f"{step_path}.depends_on", f"unknown step '{dep}'"))
        for transition in TRANSITIONS:
            for target in _targets(step.get(transition, [])):
                if isinstance(target, str) and target not in names:
                    problems.append((f"{step_path}.{transition}", f"unknown step '{target}'"))
    return problems


def uses_graph(steps: Iterable[dict]) -> bool:
    """Graph mode: some step has `depends_on` or a transition; otherwise steps run in order."""
    return any("depends_on" in s or any(t in s for t in TRANSITIONS) for s in steps)


def start_steps(steps: list[dict]) -> list[str]:
    """In graph mode, the steps that start the execution: no `depends_on`, no transition targets them."""
    targeted = {t for s in steps for tr in TRANSITIONS for t in _targets(s.get(tr, []))}
    return [s["name"] for s in steps if not s.get("depends_on") and s["name"] not in targeted]


def _check_graph(steps: list[dict], names: dict[str, int], path: str) -> list[Problem]:
    if not steps or not uses_graph(steps):
        return []
    cycle = _dependency_cycle(steps)
    if cycle:
        first = names[cycle[0]]
        return [(f"{path}.steps[{first}].depends_on", "cycle in depends_on: " + " -> ".join(cycle))]
    if not start_steps(steps):
        return [(f"{path}.steps", "no step can start: every step has depends_on or is the target of a transition")]
    return []


def _dependency_cycle(steps: list[dict]) -> list[str] | None:
    """A cycle in the depends_on graph as a path of names (first == last), or None."""
    edges = {s["name"]: list(s.get("depends_on", [])) for s in steps}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in edges.get(node, []):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for name in edges:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None
