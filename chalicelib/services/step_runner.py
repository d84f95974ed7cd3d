"""Runs one claimed step attempt: evaluates `when`, holds it at an approval gate, renders
and checks its input, runs its action within the timeout, and turns what happened into
an engine event. Knows nothing of storage."""

from __future__ import annotations

import concurrent.futures
import functools
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Any, Callable

from chalicelib.actions.base import ActionContext, AwaitResponse, Sleep, StartChild
from chalicelib.actions.errors import ActionError
from chalicelib.actions.registry import REGISTRY
from chalicelib.engine.machine import AttemptFailed, AttemptSucceeded, Event, StepSkipped, WaitStarted
from chalicelib.engine.plan import StepPlan, StepStatus
from chalicelib.engine.templating import TemplateError, render_expression, render_value
from chalicelib.ids import iso
from chalicelib.logs import logger

# Actions run on this pool so that an attempt can be abandoned at its timeout.
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="action")


@dataclass
class Outcome:
    """What an attempt came to: the event for the engine, the rendered input to record,
    and a child execution to start (workflow.run)."""

    event: Event | None  # None: a child execution is to start (workflow.run)
    input: Any = None
    child: StartChild | None = None
    approval: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=256)
def _input_validator(ref: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator(REGISTRY.get(ref).input_schema)


def input_problems(ref: str, value: Any) -> list[str]:
    errors = sorted(_input_validator(ref).iter_errors(value), key=lambda e: list(e.absolute_path))
    return [("/".join(str(p) for p in e.absolute_path) or "input") + ": " + e.message for e in errors]


def _failed(step: str, error: ActionError | TemplateError, rendered: Any = None) -> Outcome:
    if isinstance(error, TemplateError):
        return Outcome(AttemptFailed(step, "TEMPLATE_ERROR", error.message), rendered)
    return Outcome(AttemptFailed(step, error.code, error.message, error.retryable), rendered)


def run_attempt(
    step: StepPlan,
    attempt: int,
    record: dict[str, Any],
    context: dict[str, Any],
    action_context: ActionContext,
    integration: Callable[[], dict[str, Any] | None] | None = None,
) -> Outcome:
    """`integration` finds the step's integration (None: it is gone), whose config
    configures the action; it is looked up only when the step is about to run."""
    fresh = record.get("status") in (None, StepStatus.PENDING.value)  # first run, or reset by a redrive
    if not record.get("approved"):
        # A redrive resets the approval: a rejected step must not run again without one.
        if fresh and step.when is not None:
            try:
                go = step.when if isinstance(step.when, bool) else render_expression(step.when, context)
            except TemplateError as error:
                return _failed(step.name, error)
            if not go:
                return Outcome(StepSkipped(step.name))
        if step.approval:
            return _approval_gate(step, context, action_context)

    try:
        rendered = render_value(step.input, context)
    except TemplateError as error:
        return _failed(step.name, error)
    spec = REGISTRY.get(step.action)
    given = rendered  # what the action gets; `rendered` is what the record shows
    if integration is not None:
        from chalicelib.services.integrations import IntegrationMismatch, shown_input, with_integration

        found = integration()
        if found is None:
            return Outcome(AttemptFailed(step.name, "INTEGRATION_MISSING",
                                         f"integration '{step.integration}' is not configured"), rendered)
        try:
            given = with_integration(found, spec.ref, rendered if isinstance(rendered, dict) else {})
        except IntegrationMismatch as error:
            return Outcome(AttemptFailed(step.name, "INVALID_INPUT", str(error)), rendered)
        rendered = shown_input(given, found)
    problems = input_problems(step.action, given)
    if problems:
        return Outcome(AttemptFailed(step.name, "INVALID_INPUT", "; ".join(problems)), rendered)

    future = _POOL.submit(spec.run, given, action_context)
    try:
        result = future.result(timeout=action_context.timeout)
    except concurrent.futures.TimeoutError:
        return Outcome(AttemptFailed(step.name, "TIMEOUT", f"the attempt ran past its timeout of {step.timeout:g} s",
                                     retryable=True), rendered)
    except ActionError as error:
        return _failed(step.name, error, rendered)
    except TemplateError as error:
        return _failed(step.name, error, rendered)
    except Exception as error:  # an action's own bug: fail the step, keep the worker
        logger.exception("action raised", extra={"step": step.name, "action": step.action})
        return Outcome(AttemptFailed(step.name, "ACTION_ERROR", f"{type(error).__name__}: {error}"), rendered)

    if isinstance(result, Sleep):
        until = datetime.fromtimestamp(result.until, timezone.utc)
        return Outcome(WaitStarted(step.name, StepStatus.SLEEPING, until=result.until), rendered,
                       extra={"output": {"slept_until": iso(until)}})
    if isinstance(result, AwaitResponse):
        deadline = action_context.now() + result.timeout if result.timeout else None
        approval = {"approvers": list(result.approvers), "message": result.message, "schema": result.schema,
                    "deadline": deadline, "inquiry": True}
        return Outcome(WaitStarted(step.name, StepStatus.WAITING_APPROVAL, until=deadline), rendered, approval=approval)
    if isinstance(result, StartChild):
        return Outcome(None, rendered, child=result)
    return Outcome(_succeeded(step, result, context), rendered)


def _succeeded(step: StepPlan, output: Any, context: dict[str, Any]) -> Event:
    published = None
    if step.publish:
        own = {"output": output, "status": "succeeded", "error": None}
        scope = {**context, step.name: own, "steps": {**context.get("steps", {}), step.name: own}}
        try:
            published = render_value(step.publish, scope)
        except TemplateError as error:
            return AttemptFailed(step.name, "TEMPLATE_ERROR", f"publish: {error.message}")
    return AttemptSucceeded(step.name, output=output, published=published)


def _approval_gate(step: StepPlan, context: dict[str, Any], action_context: ActionContext) -> Outcome:
    approval = dict(step.approval or {})
    message = approval.get("message")
    if isinstance(message, str):
        try:
            message = render_value(message, context)
        except TemplateError as error:
            return _failed(step.name, error)
    timeout = approval.get("timeout")
    deadline = action_context.now() + timeout if timeout else None
    view = {"approvers": approval.get("approvers", []), "message": message, "deadline": deadline, "inquiry": False}
    return Outcome(WaitStarted(step.name, StepStatus.WAITING_APPROVAL, until=deadline), approval=view)


def run_compensation(step: StepPlan, context: dict[str, Any], action_context: ActionContext,
                     submit: Callable = _POOL.submit) -> tuple[bool, dict[str, Any] | None]:
    """Runs a step's `compensate` action: (ok, error)."""
    compensate = step.compensate or {}
    try:
        rendered = render_value(compensate.get("input", {}), context)
    except TemplateError as error:
        return False, {"code": "TEMPLATE_ERROR", "message": error.message}
    problems = input_problems(compensate["action"], rendered)
    if problems:
        return False, {"code": "INVALID_INPUT", "message": "; ".join(problems)}
    future = submit(REGISTRY.get(compensate["action"]).run, rendered, action_context)
    try:
        future.result(timeout=action_context.timeout)
        return True, None
    except concurrent.futures.TimeoutError:
        return False, {"code": "TIMEOUT", "message": "the compensation ran past its timeout"}
    except ActionError as error:
        return False, {"code": error.code, "message": error.message}
    except Exception as error:
        logger.exception("compensation raised", extra={"step": step.name})
        return False, {"code": "ACTION_ERROR", "message": f"{type(error).__name__}: {error}"}
