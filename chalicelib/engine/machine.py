"""The execution state machine. An execution's state is its step records (one per step
that has started); `advance` applies an event to them and `decide` says what happens
next. Pure: the runtime persists records and carries out the commands."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Union

from chalicelib.engine.plan import (
    ACTIVE_STEP,
    WAITING_STEP,
    ExecutionStatus,
    Plan,
    StepStatus,
)

Record = dict[str, Any]  # a step record: {"status", "attempt", "error", "output", ...}


# -- commands ------------------------------------------------------------------------

@dataclass(frozen=True)
class RunStep:
    name: str
    attempt: int
    delay: float = 0.0


@dataclass(frozen=True)
class RunCompensation:
    name: str


@dataclass(frozen=True)
class FinishExecution:
    status: ExecutionStatus
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class CancelSteps:
    """Steps waiting for time, a person or a retry, cancelled with their execution."""

    names: tuple[str, ...]


Command = Union[RunStep, RunCompensation, FinishExecution, CancelSteps]


# -- events --------------------------------------------------------------------------

@dataclass(frozen=True)
class AttemptSucceeded:
    step: str
    output: Any = None
    published: dict[str, Any] | None = None


@dataclass(frozen=True)
class AttemptFailed:
    step: str
    code: str
    message: str
    retryable: bool = False


@dataclass(frozen=True)
class StepSkipped:
    step: str


@dataclass(frozen=True)
class WaitStarted:
    """The step sleeps until `until`, or waits for an approval (until its deadline, if any)."""

    step: str
    status: StepStatus
    until: float | None = None


@dataclass(frozen=True)
class TimerFired:
    step: str


@dataclass(frozen=True)
class ApprovalGiven:
    step: str
    response: Any = None
    run_action: bool = False  # an `approval` gate: now run the action; core.inquiry: the response is the output


@dataclass(frozen=True)
class ApprovalRefused:
    step: str
    code: str = "APPROVAL_REJECTED"
    message: str = "the approval was rejected"


@dataclass(frozen=True)
class CompensationFinished:
    step: str
    ok: bool
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class CancelRequested:
    status: ExecutionStatus = ExecutionStatus.CANCELLED
    code: str = "CANCELLED"
    message: str = "the execution was cancelled"


Event = Union[AttemptSucceeded, AttemptFailed, StepSkipped, WaitStarted, TimerFired, ApprovalGiven,
              ApprovalRefused, CompensationFinished, CancelRequested]


@dataclass(frozen=True)
class State:
    status: ExecutionStatus
    records: dict[str, Record] = field(default_factory=dict)
    clock: int = 0  # a counter that orders completions (compensation runs in reverse)

    def record(self, name: str) -> Record:
        return self.records.get(name) or {"status": StepStatus.PENDING.value, "attempt": 0}

    def status_of(self, name: str) -> StepStatus:
        return StepStatus(self.record(name)["status"])


# -- applying events -----------------------------------------------------------------

def advance(plan: Plan, state: State, event: Event, now: float) -> tuple[State, list[Command]]:
    """Applies `event`, then decides. Returns the new state and what to do."""
    state, commands = apply(plan, state, event, now)
    return state, commands + decide(plan, state)


def apply(plan: Plan, state: State, event: Event, now: float) -> tuple[State, list[Command]]:
    """The new state after `event`, with the commands the event itself implies (a retry)."""
    if isinstance(event, CancelRequested):
        if state.status.terminal:
            return state, []
        waiting = tuple(n for n, r in state.records.items()
                        if StepStatus(r["status"]) in ACTIVE_STEP and StepStatus(r["status"]) != StepStatus.RUNNING)
        records = dict(state.records)
        for name in waiting:
            records[name] = _finished(records[name], StepStatus.CANCELLED, now,
                                      error={"code": event.code, "message": event.message})
        error = {"code": event.code, "message": event.message}
        return (replace(state, status=event.status, records=records),
                [CancelSteps(waiting), FinishExecution(event.status, error)])

    record = state.record(event.step)
    clock = state.clock + 1
    commands: list[Command] = []
    if isinstance(event, AttemptSucceeded):
        record = _finished(record, StepStatus.SUCCEEDED, now, output=event.output, seq=clock)
        if event.published:
            record["published"] = event.published
    elif isinstance(event, AttemptFailed):
        step = plan.step(event.step)
        attempt = record["attempt"]
        error = {"code": event.code, "message": event.message, "step": event.step, "attempt": attempt}
        if step.retry.allows_retry(attempt, event.code, event.retryable):
            delay = step.retry.delay_after(attempt)
            record = dict(record, status=StepStatus.RETRYING.value, error=error, next_attempt_at=now + delay)
            commands.append(RunStep(event.step, attempt + 1, delay))
        else:
            record = _finished(record, StepStatus.FAILED, now, error=error, seq=clock)
    elif isinstance(event, StepSkipped):
        record = _finished(record, StepStatus.SKIPPED, now, seq=clock)
    elif isinstance(event, WaitStarted):
        record = dict(record, status=event.status.value, wake_at=event.until)
    elif isinstance(event, TimerFired):
        status = StepStatus(record["status"])
        if status == StepStatus.SLEEPING:
            record = _finished(record, StepStatus.SUCCEEDED, now, output=record.get("output"), seq=clock)
        elif status == StepStatus.WAITING_APPROVAL:
            code = "APPROVAL_TIMEOUT"
            record = _finished(record, StepStatus.FAILED, now, seq=clock, error={
                "code": code, "message": "no approval came before the deadline", "step": event.step,
                "attempt": record["attempt"]})
        elif status == StepStatus.RETRYING:
            commands.append(RunStep(event.step, record["attempt"] + 1))
    elif isinstance(event, ApprovalGiven):
        if event.run_action:
            record = dict(record, status=StepStatus.SCHEDULED.value, approved=True, approval_response=event.response)
            commands.append(RunStep(event.step, record["attempt"]))
        else:
            record = _finished(record, StepStatus.SUCCEEDED, now, output=event.response, seq=clock)
    elif isinstance(event, ApprovalRefused):
        record = _finished(record, StepStatus.FAILED, now, seq=clock, error={
            "code": event.code, "message": event.message, "step": event.step, "attempt": record["attempt"]})
    elif isinstance(event, CompensationFinished):
        record = dict(record, compensation={"status": "compensated" if event.ok else "failed", "error": event.error})
        if event.ok:
            record["status"] = StepStatus.COMPENSATED.value
    records = dict(state.records)
    records[event.step] = record
    return replace(state, records=records, clock=clock), commands


def _finished(record: Record, status: StepStatus, now: float, *, output: Any = None,
              error: dict | None = None, seq: int | None = None) -> Record:
    done = dict(record, status=status.value, finished_at=now, error=error)
    if output is not None:
        done["output"] = output
    if seq is not None:
        done["seq"] = seq
    done.pop("wake_at", None)
    done.pop("next_attempt_at", None)
    return done


# -- deciding ------------------------------------------------------------------------

def decide(plan: Plan, state: State) -> list[Command]:
    """What to do next: start the steps that became ready, run the next compensation, or
    finish the execution. An empty list means: wait for something in flight."""
    if state.status.terminal:
        return []
    failure = unhandled_failure(plan, state)
    if failure is not None:
        name, record = failure
        error = dict(record.get("error") or {}, step=name)
        if plan.step(name).failure_policy == "compensate":
            return _compensate(plan, state, error)
        return [FinishExecution(ExecutionStatus.FAILED, error)]
    ready = ready_steps(plan, state)
    if ready:
        return [RunStep(name, state.record(name)["attempt"] + 1) for name in ready]
    if any(state.status_of(name) in ACTIVE_STEP for name in plan.order):
        return []
    return [FinishExecution(ExecutionStatus.SUCCEEDED)]


def unhandled_failure(plan: Plan, state: State) -> tuple[str, Record] | None:
    """The first failure (in completion order) that no transition handles and whose policy
    is not `continue`."""
    failed = [(r.get("seq", 0), n, r) for n, r in state.records.items()
              if r["status"] in (StepStatus.FAILED.value, StepStatus.COMPENSATED.value) and r.get("error")
              and not plan.step(n).handles_failure and plan.step(n).failure_policy != "continue"]
    if not failed:
        return None
    _, name, record = min(failed, key=lambda item: item[0])
    return name, record


def _compensate(plan: Plan, state: State, error: dict[str, Any]) -> list[Command]:
    """Compensations run one at a time, in reverse completion order, then the execution fails."""
    if any(state.status_of(n) == StepStatus.RUNNING for n in plan.order):
        return []  # let what is running finish first
    if any((r.get("compensation") or {}).get("status") == "running" for r in state.records.values()):
        return []
    done = [(r.get("seq", 0), n) for n, r in state.records.items()
            if r["status"] == StepStatus.SUCCEEDED.value and plan.step(n).compensate and not r.get("compensation")]
    if done:
        return [RunCompensation(max(done)[1])]
    return [FinishExecution(ExecutionStatus.FAILED, error)]


def _finished_ok(plan: Plan, state: State, name: str) -> bool:
    """Finished in a way that lets what depends on it go on."""
    status = state.status_of(name)
    if status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.COMPENSATED):
        return True
    return status == StepStatus.FAILED and plan.step(name).failure_policy == "continue"


def _activated(plan: Plan, state: State, name: str) -> bool:
    """A transition into `name` fired."""
    for source in plan.steps.values():
        status = state.status_of(source.name)
        record = state.record(source.name)
        succeeded = status in (StepStatus.SUCCEEDED, StepStatus.COMPENSATED)
        failed = status == StepStatus.FAILED
        if name in source.on_success and succeeded:
            return True
        if name in source.on_failure and failed:
            return True
        if name in source.on_complete and (succeeded or failed):
            return True
        if succeeded and (name in source.on_true or name in source.on_false):
            result = bool((record.get("output") or {}).get("result")) if isinstance(record.get("output"), dict) else False
            if (name in source.on_true and result) or (name in source.on_false and not result):
                return True
    return False


def _not_started(state: State, name: str) -> bool:
    return state.status_of(name) == StepStatus.PENDING


def ready_steps(plan: Plan, state: State) -> list[str]:
    if not plan.graph:
        for position, name in enumerate(plan.order):
            if _not_started(state, name):
                previous = plan.order[position - 1] if position else None
                return [name] if previous is None or _finished_ok(plan, state, previous) else []
        return []
    ready = []
    for name in plan.order:
        if not _not_started(state, name):
            continue
        if name in plan.targeted and not _activated(plan, state, name):
            continue
        if all(_finished_ok(plan, state, dep) for dep in plan.step(name).depends_on):
            ready.append(name)
    return ready


def is_waiting(plan: Plan, state: State) -> bool:
    """Nothing runs and something waits for time, a person or a retry: SPEC's `waiting`."""
    statuses = [state.status_of(n) for n in plan.order]
    return (not any(s in (StepStatus.RUNNING, StepStatus.SCHEDULED) for s in statuses)
            and any(s in WAITING_STEP or s == StepStatus.RETRYING for s in statuses))


def step_statuses(plan: Plan, state: State) -> dict[str, StepStatus]:
    """Every step's status as shown to users: steps that never started are `not_run` once
    the execution is over, `pending` before."""
    out = {}
    for name in plan.order:
        status = state.status_of(name)
        if status == StepStatus.PENDING and state.status.terminal:
            status = StepStatus.NOT_RUN
        out[name] = status
    return out


def variables(initial: dict[str, Any], state: State) -> dict[str, Any]:
    """The workflow variables: the initial ones, then what each succeeded step published,
    in completion order (a later publish wins)."""
    merged = dict(initial)
    published = sorted((r.get("seq", 0), r["published"]) for r in state.records.values() if r.get("published"))
    for _, values in published:
        merged.update(values)
    return merged
