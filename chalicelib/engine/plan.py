"""A workflow definition compiled into a plan: steps with their settings resolved,
sequential or graph mode, start steps; statuses; retry maths."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from chalicelib.engine.definition import RETRY_DEFAULTS, TIMEOUT_DEFAULT, TRANSITIONS, start_steps, uses_graph


class ExecutionStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_EXECUTION


TERMINAL_EXECUTION = frozenset({ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED,
                                ExecutionStatus.CANCELLED, ExecutionStatus.TIMED_OUT})


class StepStatus(str, Enum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    SLEEPING = "sleeping"
    WAITING_APPROVAL = "waiting_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"
    NOT_RUN = "not_run"


# A step in one of these is in flight: something will happen to it without a new decision.
ACTIVE_STEP = frozenset({StepStatus.SCHEDULED, StepStatus.RUNNING, StepStatus.RETRYING,
                         StepStatus.SLEEPING, StepStatus.WAITING_APPROVAL})
# Of those, these wait for time or a person, not for a worker.
WAITING_STEP = frozenset({StepStatus.SLEEPING, StepStatus.WAITING_APPROVAL})
FINISHED_STEP = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED,
                           StepStatus.CANCELLED, StepStatus.COMPENSATED, StepStatus.NOT_RUN})

# Errors that no retry can fix.
NEVER_RETRYABLE = frozenset({"TEMPLATE_ERROR", "INVALID_INPUT", "BLOCKED_DESTINATION", "APPROVAL_REJECTED",
                             "APPROVAL_TIMEOUT", "CANCELLED", "OUTPUT_VALIDATION_ERROR"})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = RETRY_DEFAULTS["max_attempts"]
    initial_interval: float = RETRY_DEFAULTS["initial_interval"]
    backoff_coefficient: float = RETRY_DEFAULTS["backoff_coefficient"]
    max_interval: float = RETRY_DEFAULTS["max_interval"]
    non_retryable_errors: frozenset[str] = frozenset()

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based) before the next one."""
        return min(self.initial_interval * self.backoff_coefficient ** (attempt - 1), self.max_interval)

    def allows_retry(self, attempt: int, code: str, retryable: bool) -> bool:
        return (retryable and attempt < self.max_attempts and code not in self.non_retryable_errors
                and code not in NEVER_RETRYABLE)


@dataclass(frozen=True)
class StepPlan:
    name: str
    action: str
    index: int
    input: dict[str, Any] = field(default_factory=dict)
    integration: str | None = None
    depends_on: tuple[str, ...] = ()
    when: Any = None
    on_success: tuple[str, ...] = ()
    on_failure: tuple[str, ...] = ()
    on_complete: tuple[str, ...] = ()
    on_true: tuple[str, ...] = ()
    on_false: tuple[str, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    timeout: float = TIMEOUT_DEFAULT
    failure_policy: str = "abort"
    compensate: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None
    publish: dict[str, Any] | None = None

    @property
    def handles_failure(self) -> bool:
        """A failure with an on_failure (or on_complete) path is part of the flow, not an error."""
        return bool(self.on_failure or self.on_complete)


@dataclass(frozen=True)
class Plan:
    steps: dict[str, StepPlan]
    order: tuple[str, ...]          # execution order in sequential mode; list order in graph mode
    graph: bool
    start: tuple[str, ...]
    targeted: frozenset[str]        # steps that only a transition starts
    variables: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    has_output: bool = False

    def step(self, name: str) -> StepPlan:
        return self.steps[name]

    def successors(self, name: str) -> frozenset[str]:
        """The steps whose readiness can change when `name` finishes: its transition
        targets and dependants, or the next step in sequential mode."""
        if not self.graph:
            position = self.order.index(name)
            return frozenset(self.order[position + 1:position + 2])
        step = self.steps[name]
        targets = {t for group in (step.on_success, step.on_failure, step.on_complete, step.on_true, step.on_false)
                   for t in group}
        dependants = {s.name for s in self.steps.values() if name in s.depends_on}
        return frozenset(targets | dependants)


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def compile_plan(definition: dict[str, Any]) -> Plan:
    """The plan of a definition that validate_definition accepted."""
    raw_steps = definition.get("steps", [])
    default_policy = definition.get("on_failure", "abort")
    steps: dict[str, StepPlan] = {}
    for index, raw in enumerate(raw_steps):
        retry = raw.get("retry", {})
        steps[raw["name"]] = StepPlan(
            name=raw["name"], action=raw["action"], index=index, input=raw.get("input", {}),
            integration=raw.get("integration"), depends_on=tuple(raw.get("depends_on", [])),
            when=raw.get("when"),
            on_success=_names(raw.get("on_success")), on_failure=_names(raw.get("on_failure")),
            on_complete=_names(raw.get("on_complete")), on_true=_names(raw.get("on_true")),
            on_false=_names(raw.get("on_false")),
            retry=RetryPolicy(
                max_attempts=retry.get("max_attempts", RETRY_DEFAULTS["max_attempts"]),
                initial_interval=retry.get("initial_interval", RETRY_DEFAULTS["initial_interval"]),
                backoff_coefficient=retry.get("backoff_coefficient", RETRY_DEFAULTS["backoff_coefficient"]),
                max_interval=retry.get("max_interval", RETRY_DEFAULTS["max_interval"]),
                non_retryable_errors=frozenset(retry.get("non_retryable_errors", [])),
            ),
            timeout=raw.get("timeout", TIMEOUT_DEFAULT),
            failure_policy=raw.get("failure_policy", default_policy),
            compensate=raw.get("compensate"), approval=raw.get("approval"), publish=raw.get("publish"),
        )
    graph = uses_graph(raw_steps)
    if graph:
        order = tuple(steps)
        start = tuple(start_steps(raw_steps))
        targeted = frozenset(t for raw in raw_steps for tr in TRANSITIONS for t in _names(raw.get(tr)))
    else:
        # `order` sorts first; the list order breaks ties (a stable sort).
        order = tuple(s.name for s in sorted(steps.values(), key=lambda s: (raw_steps[s.index].get("order", 0), s.index)))
        start = order[:1]
        targeted = frozenset()
    return Plan(steps=steps, order=order, graph=graph, start=start, targeted=targeted,
                variables=definition.get("variables", {}), output=definition.get("output"),
                has_output="output" in definition)
