"""The execution state machine, driven by events alone: no AWS, no mocks."""

import pytest

from chalicelib.engine.definition import normalize_definition, validate_definition
from chalicelib.engine.machine import (
    AttemptFailed,
    AttemptSucceeded,
    ApprovalGiven,
    ApprovalRefused,
    CancelRequested,
    CancelSteps,
    CompensationFinished,
    FinishExecution,
    RunCompensation,
    RunStep,
    State,
    StepSkipped,
    TimerFired,
    WaitStarted,
    advance,
    decide,
    is_waiting,
    step_statuses,
    variables,
)
from chalicelib.engine.plan import ExecutionStatus, RetryPolicy, StepStatus, compile_plan

NOW = 1_000.0


def plan_of(*steps, **definition):
    raw = normalize_definition({"steps": list(steps), **definition})
    assert validate_definition(raw, lambda ref: True) == []
    return compile_plan(raw)


def step(name, action="core.noop", **fields):
    return {"name": name, "action": action, **fields}


def start(plan):
    """The commands of a new execution, and its state with the started steps running."""
    state = State(ExecutionStatus.RUNNING)
    commands = decide(plan, state)
    return running(state, commands), commands


def running(state, commands):
    """The state after the runtime claimed every RunStep command."""
    records = dict(state.records)
    for command in commands:
        if isinstance(command, RunStep):
            records[command.name] = dict(records.get(command.name, {}), status="running", attempt=command.attempt)
    return State(state.status, records, state.clock)


def run(plan, state, event):
    """Applies an event the way the runtime does: advance, then claim what it started."""
    state, commands = advance(plan, state, event, NOW)
    for command in commands:
        if isinstance(command, FinishExecution):
            state = State(command.status, state.records, state.clock)
    return running(state, commands), commands


def names(commands):
    return [c.name for c in commands if isinstance(c, RunStep)]


def finish(commands):
    done = [c for c in commands if isinstance(c, FinishExecution)]
    return (done[0].status, (done[0].error or {}).get("code")) if done else None


# -- order ---------------------------------------------------------------------------

def test_sequential_steps_run_one_after_another_in_list_order():
    plan = plan_of(step("a"), step("b"), step("c"))
    state, commands = start(plan)
    assert commands == [RunStep("a", 1)]
    state, commands = run(plan, state, AttemptSucceeded("a"))
    assert commands == [RunStep("b", 1)]
    state, commands = run(plan, state, AttemptSucceeded("b"))
    assert commands == [RunStep("c", 1)]
    state, commands = run(plan, state, AttemptSucceeded("c"))
    assert commands == [FinishExecution(ExecutionStatus.SUCCEEDED)]


def test_order_sorts_sequential_steps_first():
    plan = plan_of(step("a", order=3), step("b", order=1), step("c", order=2), step("d", order=1))
    assert plan.order == ("b", "d", "c", "a")
    assert not plan.graph


def test_graph_start_steps_run_together():
    plan = plan_of(step("a"), step("b"), step("c", depends_on=["a", "b"]), step("d", on_success="e"), step("e"))
    assert plan.graph
    _, commands = start(plan)
    assert names(commands) == ["a", "b", "d"]


def test_a_join_starts_once_when_all_dependencies_finished():
    plan = plan_of(step("a"), step("b"), step("c"), step("join", depends_on=["a", "b", "c"]))
    state, _ = start(plan)
    state, commands = run(plan, state, AttemptSucceeded("a"))
    assert commands == []
    state, commands = run(plan, state, AttemptSucceeded("c"))
    assert commands == []
    state, commands = run(plan, state, AttemptSucceeded("b"))
    assert commands == [RunStep("join", 1)]
    state, commands = run(plan, state, AttemptSucceeded("join"))
    assert finish(commands) == (ExecutionStatus.SUCCEEDED, None)


def test_on_success_and_on_failure_choose_the_path():
    plan = plan_of(step("fetch", on_success="transform", on_failure="notify"), step("transform"), step("notify"))
    state, commands = start(plan)
    assert names(commands) == ["fetch"]
    ok, commands = run(plan, state, AttemptSucceeded("fetch"))
    assert names(commands) == ["transform"]
    _, commands = run(plan, ok, AttemptSucceeded("transform"))
    assert finish(commands) == (ExecutionStatus.SUCCEEDED, None)

    failed, commands = run(plan, state, AttemptFailed("fetch", "HTTP_5XX", "boom"))
    assert names(commands) == ["notify"]
    failed, commands = run(plan, failed, AttemptSucceeded("notify"))
    # The handled failure does not fail the execution; transform never ran.
    assert finish(commands) == (ExecutionStatus.SUCCEEDED, None)
    assert step_statuses(plan, State(ExecutionStatus.SUCCEEDED, failed.records)) == {
        "fetch": StepStatus.FAILED, "transform": StepStatus.NOT_RUN, "notify": StepStatus.SUCCEEDED}


def test_on_complete_runs_after_either_outcome():
    plan = plan_of(step("a", on_complete="cleanup"), step("cleanup"))
    state, _ = start(plan)
    _, commands = run(plan, state, AttemptFailed("a", "X", "no"))
    assert names(commands) == ["cleanup"]
    _, commands = run(plan, state, AttemptSucceeded("a"))
    assert names(commands) == ["cleanup"]


def test_on_true_and_on_false_branch_on_a_condition():
    plan = plan_of(step("check", "core.condition", on_true="yes", on_false="no"), step("yes"), step("no"))
    state, _ = start(plan)
    _, commands = run(plan, state, AttemptSucceeded("check", output={"result": True}))
    assert names(commands) == ["yes"]
    _, commands = run(plan, state, AttemptSucceeded("check", output={"result": False}))
    assert names(commands) == ["no"]


def test_a_skipped_step_lets_its_dependants_run():
    plan = plan_of(step("a", when="{{ params.go }}"), step("b", depends_on=["a"]))
    state, _ = start(plan)
    state, commands = run(plan, state, StepSkipped("a"))
    assert commands == [RunStep("b", 1)]
    assert state.status_of("a") == StepStatus.SKIPPED


def test_a_skipped_sequential_step_moves_on():
    plan = plan_of(step("a"), step("b", when="false"), step("c"))
    state, _ = start(plan)
    state, _ = run(plan, state, AttemptSucceeded("a"))
    state, commands = run(plan, state, StepSkipped("b"))
    assert commands == [RunStep("c", 1)]


def test_steps_nothing_reaches_stay_not_run():
    plan = plan_of(step("a", on_failure="handler"), step("handler"), step("orphan", depends_on=["handler"]))
    state, _ = start(plan)
    state, commands = run(plan, state, AttemptSucceeded("a"))
    assert finish(commands) == (ExecutionStatus.SUCCEEDED, None)
    assert step_statuses(plan, state) == {"a": StepStatus.SUCCEEDED, "handler": StepStatus.NOT_RUN,
                                          "orphan": StepStatus.NOT_RUN}


# -- failures ------------------------------------------------------------------------

def test_an_unhandled_failure_aborts_by_default():
    plan = plan_of(step("a"), step("b"))
    state, _ = start(plan)
    state, commands = run(plan, state, AttemptFailed("a", "HTTP_4XX", "bad request"))
    assert commands == [FinishExecution(ExecutionStatus.FAILED, {
        "code": "HTTP_4XX", "message": "bad request", "step": "a", "attempt": 1})]
    assert step_statuses(plan, state)["b"] == StepStatus.NOT_RUN


def test_abort_in_a_graph_fails_even_with_a_branch_still_running():
    plan = plan_of(step("a"), step("b"), step("c", depends_on=["a", "b"]))
    state, _ = start(plan)
    state, commands = run(plan, state, AttemptFailed("a", "BOOM", "x"))
    assert finish(commands) == (ExecutionStatus.FAILED, "BOOM")
    state, commands = run(plan, state, AttemptSucceeded("b"))
    assert commands == []  # the execution is over


def test_continue_treats_a_failure_as_finished():
    plan = plan_of(step("a", failure_policy="continue"), step("b"))
    state, _ = start(plan)
    state, commands = run(plan, state, AttemptFailed("a", "X", "y"))
    assert commands == [RunStep("b", 1)]
    _, commands = run(plan, state, AttemptSucceeded("b"))
    assert finish(commands) == (ExecutionStatus.SUCCEEDED, None)


def test_the_definition_level_policy_is_the_default():
    plan = plan_of(step("a"), step("b"), on_failure="continue")
    assert plan.step("a").failure_policy == "continue"


def test_compensate_runs_compensations_in_reverse_completion_order_then_fails():
    plan = plan_of(
        step("reserve", compensate={"action": "core.noop"}),
        step("charge", compensate={"action": "core.noop"}),
        step("log"),
        step("ship", failure_policy="compensate"),
    )
    state, _ = start(plan)
    for name in ("reserve", "charge", "log"):
        state, _ = run(plan, state, AttemptSucceeded(name))
    # Stored records carry the key with no value until a compensation starts.
    state = State(state.status, {n: dict(r, compensation=None) for n, r in state.records.items()}, state.clock)
    state, commands = run(plan, state, AttemptFailed("ship", "OUT_OF_STOCK", "none left"))
    assert commands == [RunCompensation("charge")]
    state = State(state.status, {**state.records, "charge": {**state.records["charge"], "compensation": {"status": "running"}}}, state.clock)
    assert decide(plan, state) == []
    state, commands = run(plan, state, CompensationFinished("charge", ok=True))
    assert commands == [RunCompensation("reserve")]
    state, commands = run(plan, state, CompensationFinished("reserve", ok=False, error={"code": "X"}))
    assert commands == [FinishExecution(ExecutionStatus.FAILED, {
        "code": "OUT_OF_STOCK", "message": "none left", "step": "ship", "attempt": 1})]
    assert state.status_of("charge") == StepStatus.COMPENSATED
    assert state.status_of("reserve") == StepStatus.SUCCEEDED  # its compensation failed


# -- retries -------------------------------------------------------------------------

def test_retry_backoff_is_capped_by_max_interval():
    policy = RetryPolicy(max_attempts=6, initial_interval=2, backoff_coefficient=3, max_interval=60)
    assert [policy.delay_after(n) for n in range(1, 6)] == [2, 6, 18, 54, 60]


def test_a_retryable_failure_is_retried_with_backoff():
    plan = plan_of(step("a", retry={"max_attempts": 3, "initial_interval": 2, "backoff_coefficient": 2}))
    state, _ = start(plan)
    state, commands = run(plan, state, AttemptFailed("a", "HTTP_5XX", "down", retryable=True))
    assert commands == [RunStep("a", 2, 2.0)]
    assert state.status_of("a") == StepStatus.RUNNING  # claimed by the runtime
    state, commands = run(plan, state, AttemptFailed("a", "HTTP_5XX", "down", retryable=True))
    assert commands == [RunStep("a", 3, 4.0)]
    state, commands = run(plan, state, AttemptFailed("a", "HTTP_5XX", "down", retryable=True))
    assert finish(commands) == (ExecutionStatus.FAILED, "HTTP_5XX")
    assert state.record("a")["error"]["attempt"] == 3


def test_a_retry_waits_in_retrying_until_its_attempt_is_claimed():
    plan = plan_of(step("a", retry={"max_attempts": 2}))
    state, _ = start(plan)
    state, commands = advance(plan, state, AttemptFailed("a", "CONNECTION_ERROR", "x", retryable=True), NOW)
    assert state.status_of("a") == StepStatus.RETRYING
    assert state.record("a")["next_attempt_at"] == NOW + 1
    assert is_waiting(plan, state)
    _, commands = advance(plan, state, TimerFired("a"), NOW + 1)
    assert commands == [RunStep("a", 2)]


@pytest.mark.parametrize("code, retryable", [("HTTP_4XX", True), ("BLOCKED_DESTINATION", True),
                                             ("TEMPLATE_ERROR", True), ("HTTP_5XX", False)])
def test_non_retryable_failures_are_not_retried(code, retryable):
    plan = plan_of(step("a", retry={"max_attempts": 5, "non_retryable_errors": ["HTTP_4XX"]}))
    state, _ = start(plan)
    _, commands = run(plan, state, AttemptFailed("a", code, "x", retryable=retryable))
    assert finish(commands) == (ExecutionStatus.FAILED, code)


# -- waiting, publish, cancel, deadline ------------------------------------------------

def test_sleep_then_timer():
    plan = plan_of(step("nap", "core.sleep"), step("after"))
    state, _ = start(plan)
    state, commands = run(plan, state, WaitStarted("nap", StepStatus.SLEEPING, until=NOW + 3600))
    assert commands == [] and is_waiting(plan, state)
    state, commands = run(plan, state, TimerFired("nap"))
    assert commands == [RunStep("after", 1)]


def test_an_approval_gate_runs_the_action_when_approved():
    plan = plan_of(step("deploy", approval={"approvers": ["a@x"], "timeout": 60}))
    state, _ = start(plan)
    state, commands = run(plan, state, WaitStarted("deploy", StepStatus.WAITING_APPROVAL, until=NOW + 60))
    assert commands == [] and is_waiting(plan, state)
    _, commands = run(plan, state, ApprovalGiven("deploy", run_action=True))
    assert commands == [RunStep("deploy", 1)]


def test_an_inquiry_response_is_the_output_and_a_rejection_fails():
    plan = plan_of(step("ask", "core.inquiry"), step("after"))
    state, _ = start(plan)
    state, _ = run(plan, state, WaitStarted("ask", StepStatus.WAITING_APPROVAL))
    approved, commands = run(plan, state, ApprovalGiven("ask", response={"ok": True}))
    assert approved.record("ask")["output"] == {"ok": True} and commands == [RunStep("after", 1)]
    _, commands = run(plan, state, ApprovalRefused("ask"))
    assert finish(commands) == (ExecutionStatus.FAILED, "APPROVAL_REJECTED")
    _, commands = run(plan, state, TimerFired("ask"))
    assert finish(commands) == (ExecutionStatus.FAILED, "APPROVAL_TIMEOUT")


def test_publish_sets_variables_in_completion_order():
    plan = plan_of(step("a"), step("b"))
    state, _ = start(plan)
    state, _ = run(plan, state, AttemptSucceeded("a", published={"x": 1, "y": "a"}))
    state, _ = run(plan, state, AttemptSucceeded("b", published={"y": "b"}))
    assert variables({"x": 0, "z": True}, state) == {"x": 1, "y": "b", "z": True}


def test_cancel_stops_everything_and_cancels_waiting_steps():
    plan = plan_of(step("a"), step("b"), step("c", depends_on=["a", "b"]))
    state, _ = start(plan)
    state, _ = run(plan, state, WaitStarted("b", StepStatus.WAITING_APPROVAL))
    state, commands = advance(plan, state, CancelRequested(), NOW)
    assert commands == [CancelSteps(("b",)), FinishExecution(ExecutionStatus.CANCELLED,
                                                             {"code": "CANCELLED", "message": "the execution was cancelled"})]
    assert state.status == ExecutionStatus.CANCELLED
    assert step_statuses(plan, state) == {"a": StepStatus.RUNNING, "b": StepStatus.CANCELLED, "c": StepStatus.NOT_RUN}
    # A result arriving afterwards changes the record but decides nothing.
    _, commands = advance(plan, state, AttemptSucceeded("a"), NOW)
    assert commands == []
    assert advance(plan, state, CancelRequested(), NOW)[1] == []


def test_a_deadline_times_the_execution_out():
    plan = plan_of(step("a"))
    state, _ = start(plan)
    state, commands = advance(plan, state, CancelRequested(ExecutionStatus.TIMED_OUT, "EXECUTION_TIMEOUT", "deadline"), NOW)
    assert state.status == ExecutionStatus.TIMED_OUT
    assert commands[-1] == FinishExecution(ExecutionStatus.TIMED_OUT, {"code": "EXECUTION_TIMEOUT", "message": "deadline"})


def test_an_empty_workflow_succeeds_at_once():
    assert decide(plan_of(), State(ExecutionStatus.RUNNING)) == [FinishExecution(ExecutionStatus.SUCCEEDED)]


def test_successors_are_what_a_step_can_make_ready():
    graph = plan_of(step("a", on_failure="h"), step("b"), step("h"), step("j", depends_on=["a", "b"]))
    assert graph.successors("a") == {"h", "j"}
    assert graph.successors("b") == {"j"}
    assert graph.successors("j") == frozenset()
    sequential = plan_of(step("a"), step("b"), step("c"))
    assert sequential.successors("a") == {"b"} and sequential.successors("c") == frozenset()
