"""The names a template sees (SPEC §4), highest precedence first: params, vars, steps,
trigger, execution, workflow, error, context, the trigger's own names (request, response,
timings, metric, event, bucket), account, environment, now; then every step name, every
variable and every parameter."""

from __future__ import annotations

from typing import Any

from chalicelib.engine.machine import State
from chalicelib.engine.plan import Plan, StepStatus
from chalicelib.engine.templating import build_context

TRIGGER_NAMES = ("request", "response", "timings", "metric", "event", "bucket")


def step_views(plan: Plan, state: State, outputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {"output": outputs.get(name), "status": state.status_of(name).value,
               "error": state.record(name).get("error")}
        for name in plan.order
    }


def failure_for(plan: Plan, state: State, step: str | None) -> dict[str, Any] | None:
    """The error a failure handler sees: that of the failed step whose on_failure (or
    on_complete) transition started `step`."""
    if step is None:
        return None
    for source in plan.steps.values():
        if step in source.on_failure or step in source.on_complete:
            if state.status_of(source.name) == StepStatus.FAILED:
                error = state.record(source.name).get("error") or {}
                return {"message": error.get("message"), "code": error.get("code"), "step": source.name}
    return None


def template_context(
    *,
    plan: Plan,
    state: State,
    outputs: dict[str, Any],
    parameters: dict[str, Any],
    variables: dict[str, Any],
    execution: dict[str, Any],
    workflow: dict[str, Any],
    trigger: dict[str, Any] | None,
    account_id: str,
    environment: str,
    now: str,
    step: str | None = None,
) -> dict[str, Any]:
    trigger = trigger or {"type": "manual", "id": None, "data": {}}
    steps = step_views(plan, state, outputs)
    workflow_view = {
        "id": workflow.get("id"), "ref": workflow.get("ref"), "name": workflow.get("name"),
        "version": workflow.get("version"), "param": parameters,
        "configuration": workflow.get("configuration") or {},
    }
    execution_view = {"id": execution["id"], "started_at": execution["started_at"]}
    named = {
        "params": parameters,
        "vars": variables,
        "steps": steps,
        "trigger": {k: trigger.get(k) for k in ("type", "id", "data")},
        "execution": execution_view,
        "workflow": workflow_view,
        "error": failure_for(plan, state, step),
        "context": {"event": trigger.get("event"), "execution": execution_view, "workflow": workflow_view},
        **{name: trigger.get(name) for name in TRIGGER_NAMES if trigger.get(name) is not None},
        "account": {"id": account_id},
        # A traffic trigger's bucket names its environment; otherwise it is the stage's.
        "environment": trigger.get("environment") or {"name": environment},
        "now": now,
    }
    return build_context([named, steps, variables, parameters])
