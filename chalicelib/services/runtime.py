"""The execution runtime: turns the engine's decisions into claims, records, messages and
finished executions. Every step attempt is claimed with a conditional write (its lease)
and recorded once, conditional on still holding it; an execution's watchdog in the due
index lets the tick re-drive whatever a dead worker left behind."""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from chalicelib.actions.base import ActionContext, StartChild
from chalicelib.config import Settings
from chalicelib.engine.definition import normalize_definition
from chalicelib.engine.machine import (
    AttemptFailed,
    AttemptSucceeded,
    CancelRequested,
    CancelSteps,
    Command,
    CompensationFinished,
    Event,
    FinishExecution,
    RunCompensation,
    RunStep,
    State,
    TimerFired,
    apply,
    decide,
    is_waiting,
    variables,
)
from chalicelib.engine.plan import ExecutionStatus, Plan, StepStatus, compile_plan
from chalicelib.engine.templating import TemplateError
from chalicelib.ids import epoch_iso, new_id
from chalicelib.logs import logger
from chalicelib.secrets import mask_secrets
from chalicelib.services.context import template_context
from chalicelib.services.queues import MAX_DELAY, Queue
from chalicelib.services.step_runner import run_attempt, run_compensation
from chalicelib.store.executions import ExecutionRepository, due_shard, execution_key
from chalicelib.store.models import ExecutionModel, StepRunModel
from chalicelib.store.payloads import PayloadStore
from chalicelib.store.workflows import WorkflowRepository

LEASE_GRACE = 30          # seconds a lease outlives its step's timeout
WATCHDOG = 300            # how long after its last lease the tick looks at an execution in flight
MAX_LIFETIME = 365 * 86400
MAX_DEPTH = 10            # workflow.run nesting levels
ERROR_MESSAGE_MAX = 4000  # characters of an error message kept in a step record
PUBLISH_MAX = 32 * 1024   # bytes of variables one step may publish
INLINE_MARGIN = 10        # seconds that must remain after a step's timeout to run it in-process
ENDED_CHECK_SECONDS = 1.0  # how often an in-process chain re-reads its execution's status


def _epoch(moment: str) -> float:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


@dataclass
class Loaded:
    """An execution with what deciding about it needs."""

    item: ExecutionModel
    workflow: dict[str, Any]
    plan: Plan
    steps: dict[str, StepRunModel]
    state: State
    claimed_at: dict[str, float] = field(default_factory=dict)  # first claims made by this process
    attempt_logs: dict[str, list] = field(default_factory=dict)  # written by this process since loading
    payloads: dict[str, Any] = field(default_factory=dict)  # large outputs read from S3, by reference

    @property
    def account_id(self) -> str:
        return self.item.account_id

    @property
    def id(self) -> str:
        return self.item.id


def engine_record(item: StepRunModel) -> dict[str, Any]:
    return {
        "status": item.status, "attempt": int(item.attempt), "error": item.error, "output": item.output,
        "published": item.published, "seq": item.seq, "wake_at": item.wake_at,
        "next_attempt_at": item.next_attempt_at, "approved": bool(item.approved),
        "compensation": item.compensation,
    }


def _complete(steps: list[StepRunModel]) -> dict[str, StepRunModel]:
    """Step items by name. An item without a status is a write still in progress (moto,
    which the local runtime uses, is not atomic across requests): it counts as not yet
    there, which is what it will be to the claim that is writing it."""
    return {s.name: s for s in steps if s.status is not None and s.attempt is not None}


def _state(item: ExecutionModel, steps: dict[str, StepRunModel]) -> State:
    records = {name: engine_record(s) for name, s in steps.items()}
    clock = max((int(r["seq"] or 0) for r in records.values()), default=0)
    return State(ExecutionStatus(item.status), records, clock)


def _execution_data(item: ExecutionModel) -> dict[str, Any]:
    """What a lifecycle event says of an execution (the whole one is one GET away)."""
    return {"execution_id": item.id, "workflow_id": item.workflow_id, "workflow_ref": item.workflow_ref,
            "status": item.status, "triggered_by": item.triggered_by, "trigger_id": item.trigger_id,
            "started_at": item.started_at, "completed_at": item.completed_at, "duration_ms": item.duration_ms,
            "error": item.error}


class Runtime:
    def __init__(self, *, executions: ExecutionRepository, workflows: WorkflowRepository, payloads: PayloadStore,
                 steps: Queue, deliveries: Queue, settings: Settings, integrations: Any,
                 clock: Callable[[], float] = time.time) -> None:
        self.executions = executions
        self.integrations = integrations  # services.integrations.IntegrationService
        # The lifecycle events (services.lifecycle): emit(account_id, type, data, depth=…),
        # and route_event(account_id, event, depth) for the ones that reach event triggers.
        self.emit: Callable[..., None] = lambda *event, **how: None
        self.route_event: Callable[[str, dict[str, Any], int], Any] = lambda *event: None
        self.fire_trigger: Callable[[dict[str, Any]], Any] = lambda message: None  # services.traffic
        self.workflows = workflows
        self.payloads = payloads
        self.step_queue = steps
        self.delivery_queue = deliveries
        self.settings = settings
        self.clock = clock
        self._revision = functools.lru_cache(maxsize=256)(self._load_revision)

    # -- loading -----------------------------------------------------------------------

    def _load_revision(self, account_id: str, workflow_id: str, revision: int) -> tuple[dict[str, Any], Plan]:
        """Revisions are immutable, so a worker keeps the ones it has compiled."""
        document = self.workflows.revision(account_id, workflow_id, revision)
        if document is None:
            raise LookupError(f"revision {revision} of {workflow_id} is gone")
        return document, compile_plan(normalize_definition(document.get("definition") or {}))

    def load(self, account_id: str, execution_id: str) -> Loaded | None:
        item = self.executions.get(account_id, execution_id)
        if item is None:
            return None
        return self._loaded(item)

    def _loaded(self, item: ExecutionModel, running: str | None = None) -> Loaded:
        """The execution with its step records. For a graph step whose templates use none
        of the other steps' data (`running`), its own record is enough: the records are
        read again, all of them, after its result is recorded."""
        workflow, plan = self._revision(item.account_id, item.workflow_id, int(item.workflow_revision))
        if running is not None and plan.graph and not self._needs_records(plan, running, item):
            own = self.executions.step(item.account_id, item.id, running)
            steps = _complete([own] if own is not None else [])
        else:
            steps = _complete(self.executions.steps(item.account_id, item.id))
        return Loaded(item, workflow, plan, steps, _state(item, steps))

    #: Template names whose values come from the execution item, not from step records.
    EXECUTION_NAMES = frozenset({"params", "trigger", "execution", "workflow", "context", "request", "response",
                                 "timings", "metric", "event", "bucket", "account", "environment", "now"})

    def _needs_records(self, plan: Plan, name: str, item: ExecutionModel) -> bool:
        from chalicelib.engine.templating import referenced_names

        step = plan.step(name)
        used = referenced_names([step.input, step.when, step.publish, (step.approval or {}).get("message")])
        parameters = item.parameters if isinstance(item.parameters, dict) else {}
        if item.parameters_ref:
            return True  # its names are not at hand; do not guess
        return bool(used - self.EXECUTION_NAMES - set(parameters))

    def _refresh(self, loaded: Loaded) -> None:
        """Re-reads the step records: parallel branches change them. (A cancel shows here
        as revoked steps, and to every later message as the execution's status.)"""
        loaded.steps = _complete(self.executions.steps(loaded.account_id, loaded.id))
        loaded.state = _state(loaded.item, loaded.steps)

    # -- starting ------------------------------------------------------------------------

    def start(self, account_id: str, workflow: dict[str, Any], parameters: dict[str, Any], *,
              triggered_by: str, trigger_id: str | None = None, trigger: dict[str, Any] | None = None,
              timeout_seconds: float | None = None, callback: dict[str, Any] | None = None,
              parent: tuple[str, str] | None = None, execution_id: str | None = None,
              depth: int = 0) -> ExecutionModel:
        """Stores a new execution pinned to the workflow's current revision and sends its
        first steps. Parameters must already be valid."""
        now = self.clock()
        execution_id = execution_id or new_id("ex")
        started_at = epoch_iso(now)
        document, plan = self._revision(account_id, workflow["id"], int(workflow["revision"]))
        inline, ref = self.payloads.pack(f"executions/{account_id}/{execution_id}/parameters.json", parameters)
        trigger, trigger_ref = self.payloads.pack(f"executions/{account_id}/{execution_id}/trigger.json", trigger)
        deadline = now + (timeout_seconds if timeout_seconds else MAX_LIFETIME)
        item = ExecutionModel(
            account_id, execution_id, workflow_id=workflow["id"], workflow_key=f"{account_id}#{workflow['id']}",
            workflow_ref=workflow["ref"], workflow_name=workflow["name"], workflow_revision=int(workflow["revision"]),
            status=ExecutionStatus.QUEUED.value, triggered_by=triggered_by, trigger_id=trigger_id, trigger=trigger,
            trigger_ref=trigger_ref,
            redrive_count=0, parameters=inline, parameters_ref=ref, variables=dict(plan.variables),
            started_at=started_at, started_key=f"{started_at}#{execution_id}", deadline_at=int(deadline),
            parent_execution_id=parent[0] if parent else None, parent_step=parent[1] if parent else None,
            depth=depth, callback=callback, due_shard=due_shard(execution_id), due_at=int(min(now + WATCHDOG, deadline)),
        )
        self.executions.create(item)
        self.emit(account_id, "workflow.executed", _execution_data(item), depth=depth)
        loaded = Loaded(item, document, plan, {}, State(ExecutionStatus.QUEUED))
        self._carry_out(loaded, decide(plan, loaded.state), inline=False)
        return item

    # -- messages ------------------------------------------------------------------------

    def handle(self, message: dict[str, Any], deadline: float) -> None:
        """One step-queue message. Everything is idempotent: a duplicate is a no-op."""
        kind = message.get("k", "run")
        if kind == "purge":
            self.purge_workflow(message["a"], message["w"], message.get("c"))
            return
        if kind == "event":  # a lifecycle event for the account's event triggers
            self.route_event(message["a"], message["ev"], int(message.get("d", 0)))
            return
        if kind == "fire":  # a traffic record's firing of a request or error trigger
            self.fire_trigger(message)
            return
        account_id, execution_id = message["a"], message["e"]
        item = self.executions.get(account_id, execution_id)
        if item is None:
            return
        loaded = self._loaded(item, running=message["s"] if kind == "run" else None)
        if kind == "reconcile":
            self.reconcile(account_id, execution_id)
            return
        if loaded.state.status.terminal:
            return
        if kind == "run":
            self._run_chain(loaded, message["s"], int(message["n"]), deadline)
        elif kind == "wake":
            self._wake(loaded, message["s"], deadline)
        elif kind == "compensate":
            self._compensate(loaded, message["s"])
        elif kind == "child":
            self._child_finished(loaded, message["s"], message["c"], deadline)

    def _run_chain(self, loaded: Loaded, name: str, attempt: int, deadline: float) -> None:
        """Runs a step and, while time allows, the next ready step in the same process: a
        sequential workflow needs one message, not one per step."""
        next_step: tuple[str, int] | None = (name, attempt)
        checked = self.clock()
        while next_step is not None:
            # Cancel revokes the running step (its record then fails and the chain stops);
            # what is left is a cancel between one step's record and the next one's claim,
            # so the chain re-reads the execution's status once a second, not every step.
            if self.clock() - checked >= ENDED_CHECK_SECONDS:
                if self._ended(loaded):
                    return
                checked = self.clock()
            name, attempt = next_step
            commands = self._attempt(loaded, name, attempt)
            if commands is None:
                return
            next_step = self._carry_out(loaded, commands, inline=True, deadline=deadline)

    def _ended(self, loaded: Loaded) -> bool:
        """Re-reads the execution's status (an API call may have ended it)."""
        current = self.executions.get(loaded.account_id, loaded.id)
        if current is None or ExecutionStatus(current.status).terminal:
            if current is not None:
                loaded.item.status = current.status
                loaded.state = State(ExecutionStatus(current.status), loaded.state.records, loaded.state.clock)
            return True
        return False

    # -- one attempt ---------------------------------------------------------------------

    def _attempt(self, loaded: Loaded, name: str, attempt: int) -> list[Command] | None:
        """Claims and runs one attempt; returns what the engine decided, or None when the
        attempt was not ours to run (a duplicate, a stale message) or left nothing to do."""
        step = loaded.plan.step(name)
        now = self.clock()
        token = uuid.uuid4().hex
        lease_until = now + step.timeout + LEASE_GRACE
        if not self.executions.claim(loaded.account_id, loaded.id, name, attempt=attempt, token=token,
                                     lease_until=lease_until, now=now, action=step.action, started_at=epoch_iso(now)):
            return None
        self._touch(loaded, lease_until)
        previous = loaded.state.record(name)
        claimed = dict(previous, status=StepStatus.RUNNING.value, attempt=attempt)
        loaded.state = State(loaded.state.status, {**loaded.state.records, name: claimed}, loaded.state.clock)
        if name not in loaded.steps or not loaded.steps[name].started_at:
            loaded.claimed_at.setdefault(name, now)
        context = self.context(loaded, step=name)
        action_context = ActionContext(
            account_id=loaded.account_id, execution_id=loaded.id, workflow_id=loaded.item.workflow_id, step=name,
            attempt=attempt, timeout=step.timeout, allow_private_networks=self.settings.allow_private_networks,
            now=self.clock,
        )
        integration = None
        if step.integration:
            integration = lambda: self.integrations.resolver(loaded.account_id).find(step.integration)  # noqa: E731
        outcome = run_attempt(step, attempt, previous, context, action_context, integration=integration)
        fields = {"input": outcome.input}
        if outcome.approval is not None:
            fields["approval"] = outcome.approval
        if outcome.child is not None:
            return self._start_child(loaded, name, token, outcome.child, outcome.input, attempt)
        return self._record(loaded, name, outcome.event, token=token, attempt_started=now, fields=fields,
                            extra=outcome.extra)

    def _record(self, loaded: Loaded, name: str, event: Event, *, token: str | None, attempt_started: float | None,
                fields: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                expect: tuple[str, ...] = ("running",)) -> list[Command] | None:
        """Applies `event` to the step, writes the step's new record (once), and returns
        the commands that follow: a retry, or the engine's next decision."""
        now = self.clock()
        before = loaded.state.record(name)
        event = self._bounded(event)
        state, commands = apply(loaded.plan, loaded.state, event, now)
        record = dict(state.records[name], **(extra or {}))
        writes = self._record_fields(loaded, name, before, record, now, attempt_started, fields or {})
        if not self.executions.record(loaded.account_id, loaded.id, name, token, writes, expect_status=expect):
            return None  # someone else holds or finished this step
        if "attempt_log" in writes:
            loaded.attempt_logs[name] = writes["attempt_log"]
        if record["status"] in (StepStatus.SUCCEEDED.value, StepStatus.FAILED.value):
            self.emit(loaded.account_id, "execution.step_completed",
                      dict(_execution_data(loaded.item), step=name, step_status=record["status"]),
                      depth=int(loaded.item.depth or 0))
        state.records[name] = record
        loaded.state = state
        self._schedule_timers(loaded, name, record, commands)
        if loaded.plan.graph:
            self._refresh(loaded)  # see what parallel branches recorded meanwhile
        # Only what this step's end made ready: a branch must not send its siblings again
        # while they wait for their workers (the watchdog sweeps up anything truly lost).
        successors = loaded.plan.successors(name)
        decided = [c for c in decide(loaded.plan, loaded.state)
                   if not isinstance(c, RunStep) or c.name in successors or c.name == name]
        if not decided and is_waiting(loaded.plan, loaded.state):
            self._enter_waiting(loaded)
        return [c for c in commands if not (isinstance(c, RunStep) and c.delay)] + decided

    @staticmethod
    def _bounded(event: Event) -> Event:
        """What a step record holds inline is bounded: a long error message is cut, and
        oversized published variables fail the step instead of the record write."""
        import json as _json
        from dataclasses import replace as _replace

        if isinstance(event, AttemptFailed) and len(event.message) > ERROR_MESSAGE_MAX:
            return _replace(event, message=event.message[:ERROR_MESSAGE_MAX] + " [cut]")
        if isinstance(event, AttemptSucceeded) and event.published:
            size = len(_json.dumps(event.published, default=str).encode())
            if size > PUBLISH_MAX:
                return AttemptFailed(event.step, "INVALID_INPUT",
                                     f"publish: the variables are {size} bytes; the limit is {PUBLISH_MAX // 1024} KB")
        return event

    def _record_fields(self, loaded: Loaded, name: str, before: dict, record: dict, now: float,
                       attempt_started: float | None, fields: dict[str, Any]) -> dict[str, Any]:
        status = StepStatus(record["status"])
        writes: dict[str, Any] = {
            "status": status.value, "error": record.get("error"), "seq": record.get("seq"),
            "published": record.get("published"), "wake_at": record.get("wake_at"),
            "next_attempt_at": record.get("next_attempt_at"),
        }
        if status != StepStatus.RUNNING:
            writes.update(lease_token=None, lease_until=None)
        if "input" in fields:
            writes["input"], writes["input_ref"] = self.payloads.pack(
                f"executions/{loaded.account_id}/{loaded.id}/{name}/input-{record['attempt']}.json",
                mask_secrets(fields.pop("input")))
        if record.get("output") is not None and record.get("output") is not before.get("output"):
            writes["output"], writes["output_ref"] = self.payloads.pack(
                f"executions/{loaded.account_id}/{loaded.id}/{name}/output.json", record["output"])
        if record.get("approved"):
            writes["approved"] = 1
        writes.update(fields)
        finished = status in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED)
        step_item = loaded.steps.get(name)
        if finished:
            writes["completed_at"] = epoch_iso(now)
            if step_item is not None and step_item.started_at:
                first_start = _epoch(step_item.started_at)
            else:
                first_start = loaded.claimed_at.get(name, now)
            writes["duration_ms"] = int(round((now - first_start) * 1000))
            writes["expires_at"] = self._step_expiry(loaded)
        if attempt_started is not None:
            if name in loaded.attempt_logs:
                log = list(loaded.attempt_logs[name])
            else:
                log = list(step_item.attempt_log or []) if step_item is not None else []
            log.append({
                "attempt": record["attempt"], "status": status.value, "started_at": epoch_iso(attempt_started),
                "completed_at": epoch_iso(now), "duration_ms": int(round((now - attempt_started) * 1000)),
                "error": record.get("error") if status in (StepStatus.FAILED, StepStatus.RETRYING) else None,
            })
            writes["attempt_log"] = log
        return writes

    def _step_expiry(self, loaded: Loaded):
        from datetime import timedelta

        retention = int(loaded.workflow.get("retention_days", 30))
        # Kept as long as the execution can run, plus its retention: an execution's
        # records never expire under it (the execution item itself expires at its end).
        remaining = max(0.0, float(loaded.item.deadline_at or 0) - self.clock())
        return timedelta(seconds=remaining, days=retention)

    # -- carrying out commands -------------------------------------------------------------

    def _carry_out(self, loaded: Loaded, commands: list[Command], *, inline: bool,
                   deadline: float | None = None) -> tuple[str, int] | None:
        """Sends, finishes or compensates as the commands say. Returns the step to run next
        in this process, if any."""
        runs = [c for c in commands if isinstance(c, RunStep)]
        for command in commands:
            if isinstance(command, FinishExecution):
                self._finish(loaded, command.status, command.error)
                return None
        compensations = [c for c in commands if isinstance(c, RunCompensation)]
        if compensations:
            self.step_queue.send([(self._message(loaded, "compensate", c.name), 0) for c in compensations])
        continue_with = None
        if inline and runs and deadline is not None:
            first = runs[0]
            if first.delay == 0 and deadline - self.clock() > loaded.plan.step(first.name).timeout + INLINE_MARGIN:
                continue_with = (first.name, first.attempt)
                runs = runs[1:]
        if runs:
            self.step_queue.send([(self._message(loaded, "run", c.name, attempt=c.attempt), c.delay) for c in runs])
        return continue_with

    def _message(self, loaded: Loaded, kind: str, step: str, **more: Any) -> dict[str, Any]:
        body = {"k": kind, "a": loaded.account_id, "e": loaded.id, "s": step}
        if "attempt" in more:
            body["n"] = more["attempt"]
        if "child" in more:
            body["c"] = more["child"]
        return body

    def _schedule_timers(self, loaded: Loaded, name: str, record: dict, commands: list[Command]) -> None:
        """A wait up to 15 minutes is a delayed message; a longer one is a timer: the
        execution's due time, which the tick reads."""
        now = self.clock()
        timers = []
        for command in commands:
            if isinstance(command, RunStep) and command.delay:
                if command.delay <= MAX_DELAY:
                    self.step_queue.send([(self._message(loaded, "run", name, attempt=command.attempt), command.delay)])
                else:
                    timers.append(now + command.delay)
        wake_at = record.get("wake_at")
        if wake_at is not None and StepStatus(record["status"]) in (StepStatus.SLEEPING, StepStatus.WAITING_APPROVAL):
            if wake_at - now <= MAX_DELAY:
                self.step_queue.send([(self._message(loaded, "wake", name), max(0.0, wake_at - now))])
            timers.append(wake_at)
        if timers:
            self._due_no_later_than(loaded, min(timers))

    def _due_no_later_than(self, loaded: Loaded, moment: float) -> None:
        due = loaded.item.due_at
        if due is None or moment < due:
            self.executions.set_due(loaded.item, min(moment, float(loaded.item.deadline_at)))

    def _touch(self, loaded: Loaded, lease_until: float) -> None:
        """A claimed step makes the execution `running` and keeps its watchdog beyond the
        lease, in one write, and only when either needs to change."""
        item = loaded.item
        actions = []
        start_running = item.status in (ExecutionStatus.QUEUED.value, ExecutionStatus.WAITING.value)
        if start_running:
            actions.append(ExecutionModel.status.set(ExecutionStatus.RUNNING.value))
        due = None
        if item.due_at is None or item.due_at < lease_until:
            due = int(min(lease_until + WATCHDOG, float(item.deadline_at)))
            actions += [ExecutionModel.due_at.set(due), ExecutionModel.due_shard.set(due_shard(item.id))]
        if not actions:
            return
        if self.executions.update_if(item, actions, ExecutionModel.status.is_in("queued", "waiting", "running")):
            if due is not None:
                item.due_at = due
            if start_running:
                item.status = ExecutionStatus.RUNNING.value
                loaded.state = State(ExecutionStatus.RUNNING, loaded.state.records, loaded.state.clock)

    def _enter_waiting(self, loaded: Loaded) -> None:
        item = loaded.item
        if self.executions.set_status(item, ExecutionStatus.WAITING.value, only_from=("running", "queued")):
            item.status = ExecutionStatus.WAITING.value
            loaded.state = State(ExecutionStatus.WAITING, loaded.state.records, loaded.state.clock)

    # -- timers, approvals, children, compensations ---------------------------------------

    def _wake(self, loaded: Loaded, name: str, deadline: float) -> None:
        record = loaded.state.record(name)
        status = StepStatus(record["status"])
        wake_at = record.get("wake_at")
        if status not in (StepStatus.SLEEPING, StepStatus.WAITING_APPROVAL) or wake_at is None:
            return
        if wake_at > self.clock() + 1:
            # Woken early (a long timer re-delayed in hops): wait for the rest.
            self.step_queue.send([(self._message(loaded, "wake", name), min(MAX_DELAY, wake_at - self.clock()))])
            return
        commands = self._record(loaded, name, TimerFired(name), token=None, attempt_started=None,
                                expect=(status.value,))
        if commands is not None:
            self._continue(loaded, commands, deadline)

    def _continue(self, loaded: Loaded, commands: list[Command], deadline: float) -> None:
        next_step = self._carry_out(loaded, commands, inline=True, deadline=deadline)
        if next_step is not None:
            self._run_chain(loaded, next_step[0], next_step[1], deadline)

    def apply_external(self, loaded: Loaded, name: str, event: Event, *, expect: tuple[str, ...],
                       fields: dict[str, Any] | None = None) -> bool:
        """An event from outside a worker (approve, reject): recorded once, then carried out
        by messages so the caller does not run steps."""
        commands = self._record(loaded, name, event, token=None, attempt_started=None, expect=expect, fields=fields)
        if commands is None:
            return False
        self._carry_out(loaded, commands, inline=False)
        return True

    def _start_child(self, loaded: Loaded, name: str, token: str, child: StartChild, rendered: Any,
                     attempt: int) -> list[Command] | None:
        """Starts a child execution with the checks a manual run gets. The child's id and
        spec are recorded first: if this worker dies, reconcile starts that same child."""
        problem = self._child_problem(loaded, child)
        if problem is not None:
            return self._record(loaded, name, AttemptFailed(name, problem[0], problem[1]), token=token,
                                attempt_started=self.clock(), fields={"input": rendered})
        workflow = self._child_workflow(loaded, child.workflow)
        child_id = new_id("ex")
        spec = {"workflow_id": workflow["id"], "parameters": child.parameters}
        writes = {"child_execution_id": child_id, "child": spec, "lease_until": None}
        writes["input"], writes["input_ref"] = self.payloads.pack(
            f"executions/{loaded.account_id}/{loaded.id}/{name}/input-{attempt}.json", mask_secrets(rendered))
        if not self.executions.record(loaded.account_id, loaded.id, name, token, writes):
            return None
        self._start_recorded_child(loaded, name, child_id, spec)
        self._refresh(loaded)
        if is_waiting(loaded.plan, loaded.state) or not any(
                s.status == "running" and s.lease_until is not None for s in loaded.steps.values()):
            self._enter_waiting(loaded)
        return None

    def _child_workflow(self, loaded: Loaded, id_or_ref: str) -> dict[str, Any]:
        from chalicelib.services.workflows import WorkflowService

        return WorkflowService(self.workflows).get(loaded.account_id, id_or_ref).document

    def _child_problem(self, loaded: Loaded, child: StartChild) -> tuple[str, str] | None:
        from chalicelib.errors import SluiceError
        from chalicelib.schemas import value_problems

        if int(loaded.item.depth or 0) + 1 > MAX_DEPTH:
            return "INVALID_INPUT", f"workflow.run may nest at most {MAX_DEPTH} levels"
        try:
            workflow = self._child_workflow(loaded, child.workflow)
        except SluiceError as error:
            return "INVALID_INPUT", error.message
        if not workflow["enabled"]:
            return "INVALID_STATE", f"workflow '{workflow['ref']}' is disabled"
        missing = self.integrations.resolver(loaded.account_id).missing(workflow)
        if missing:
            return "INTEGRATION_MISSING", f"workflow '{workflow['ref']}' requires integration '{missing[0]}', not configured"
        if workflow.get("param_schema") is not None:
            problems = value_problems(workflow["param_schema"], child.parameters, "parameters")
            if problems:
                return "INVALID_INPUT", f"{problems[0]['field']}: {problems[0]['message']}"
        return None

    def _start_recorded_child(self, loaded: Loaded, name: str, child_id: str, spec: dict[str, Any]) -> None:
        document = self.workflows.get(loaded.account_id, spec["workflow_id"])
        if document is None:
            return  # deleted meanwhile: reconcile will find no child and fail the step
        self.start(loaded.account_id, document.document, spec["parameters"], triggered_by="parent",
                   parent=(loaded.id, name), execution_id=child_id, depth=int(loaded.item.depth or 0) + 1)

    def _child_finished(self, loaded: Loaded, name: str, child_id: str, deadline: float) -> None:
        step_item = loaded.steps.get(name)
        if step_item is None or step_item.status != "running" or step_item.child_execution_id != child_id:
            return
        child = self.executions.get(loaded.account_id, child_id)
        if child is None or not ExecutionStatus(child.status).terminal:
            return
        if child.status == ExecutionStatus.SUCCEEDED.value:
            event: Event = AttemptSucceeded(name, output=self.payloads.load(child.result, child.result_ref))
        else:
            error = child.error or {}
            event = AttemptFailed(name, error.get("code", "CHILD_FAILED"),
                                  f"child execution {child_id} {child.status}: {error.get('message', '')}".strip())
        commands = self._record(loaded, name, event, token=step_item.lease_token,
                                attempt_started=_epoch(step_item.started_at))
        if commands is not None:
            self._continue(loaded, commands, deadline)

    def _compensate(self, loaded: Loaded, name: str) -> None:
        step = loaded.plan.step(name)
        item = StepRunModel(execution_key(loaded.account_id, loaded.id), name)
        claim = {"status": "running", "token": uuid.uuid4().hex}
        if not self.executions.update_if(item, [StepRunModel.compensation.set(claim)],
                                              (StepRunModel.status == "succeeded")
                                              & StepRunModel.compensation.does_not_exist()):
            return
        context = self.context(loaded, step=name)
        action_context = ActionContext(
            account_id=loaded.account_id, execution_id=loaded.id, workflow_id=loaded.item.workflow_id,
            step=name, attempt=int(loaded.state.record(name)["attempt"]), timeout=step.timeout,
            allow_private_networks=self.settings.allow_private_networks, now=self.clock)
        ok, error = run_compensation(step, context, action_context)
        now = self.clock()
        state, _ = apply(loaded.plan, loaded.state, CompensationFinished(name, ok, error), now)
        record = state.records[name]
        writes = [StepRunModel.compensation.set(dict(record["compensation"], completed_at=epoch_iso(now))),
                  StepRunModel.status.set(record["status"])]
        if not self.executions.update_if(item, writes, StepRunModel.compensation == claim):
            return
        loaded.state = state
        self._refresh(loaded)
        self._carry_out(loaded, decide(loaded.plan, loaded.state), inline=False)

    # -- finishing -----------------------------------------------------------------------

    def outputs(self, loaded: Loaded) -> dict[str, Any]:
        """Every step's output: from the records in memory, or (when it was too large to
        keep inline) from the payload bucket."""
        outputs = {}
        for name, record in loaded.state.records.items():
            if record.get("output") is not None:
                outputs[name] = record["output"]
            elif name in loaded.steps and loaded.steps[name].output_ref:
                # Read once per loaded execution: a chain renders many steps against it.
                ref = loaded.steps[name].output_ref
                if ref not in loaded.payloads:
                    loaded.payloads[ref] = self.payloads.load(None, ref)
                outputs[name] = loaded.payloads[ref]
        return outputs

    def _trigger(self, loaded: Loaded) -> dict[str, Any] | None:
        """What fired the execution; a large one (a traffic record with its bodies, say)
        lives in the payload bucket and is read once per loaded execution."""
        ref = loaded.item.trigger_ref
        if ref is None:
            return loaded.item.trigger
        if ref not in loaded.payloads:
            loaded.payloads[ref] = self.payloads.load(None, ref)
        return loaded.payloads[ref]

    def context(self, loaded: Loaded, step: str | None = None) -> dict[str, Any]:
        item = loaded.item
        return template_context(
            plan=loaded.plan, state=loaded.state, outputs=self.outputs(loaded),
            parameters=self.payloads.load(item.parameters, item.parameters_ref) or {},
            variables=variables(item.variables or {}, loaded.state),
            execution={"id": item.id, "started_at": item.started_at}, workflow=loaded.workflow,
            trigger=self._trigger(loaded), account_id=item.account_id, environment=self.settings.stage,
            now=epoch_iso(self.clock()), step=step,
        )

    def _result(self, loaded: Loaded) -> Any:
        from chalicelib.engine.templating import render_value

        if loaded.plan.has_output:
            return render_value(loaded.plan.output, self.context(loaded))
        # Without an `output`, the result is the output of the step that finished last.
        finished = [(r.get("seq") or 0, name) for name, r in loaded.state.records.items()
                    if r["status"] == StepStatus.SUCCEEDED.value]
        if not finished:
            return None
        return self.outputs(loaded).get(max(finished)[1])

    def _finish(self, loaded: Loaded, status: ExecutionStatus, error: dict[str, Any] | None) -> None:
        item = loaded.item
        now = self.clock()
        result = None
        if status == ExecutionStatus.SUCCEEDED:
            try:
                result = self._result(loaded)
                self._check_output(loaded, result)
            except TemplateError as problem:
                status, error = ExecutionStatus.FAILED, {"code": "TEMPLATE_ERROR", "message": f"output: {problem.message}"}
            except _OutputInvalid as problem:
                status, error = ExecutionStatus.FAILED, {"code": "OUTPUT_VALIDATION_ERROR", "message": str(problem)}
        inline, ref = self.payloads.pack(f"executions/{item.account_id}/{item.id}/result.json", result)
        duration_ms = int(round((now - _epoch(item.started_at)) * 1000))
        completed_at = epoch_iso(now)
        if not self.executions.finish(item, status=status.value, completed_at=completed_at, duration_ms=duration_ms,
                                      result=inline, result_ref=ref, error=error,
                                      retention_days=int(loaded.workflow.get("retention_days", 30))):
            return
        item.status, item.completed_at, item.duration_ms, item.error = status.value, completed_at, duration_ms, error
        item.result, item.result_ref = inline, ref
        loaded.state = State(status, loaded.state.records, loaded.state.clock)
        logger.info("execution finished", extra={"execution_id": item.id, "status": status.value,
                                                 "duration_ms": duration_ms})
        self.workflows.record_run(item.account_id, item.workflow_id, succeeded=status == ExecutionStatus.SUCCEEDED,
                                  failed=status == ExecutionStatus.FAILED, duration_ms=duration_ms,
                                  finished_at=completed_at)
        if item.triggered_by == "schedule" and item.trigger_id:
            self._update_schedule(item)
        kind = "execution.completed" if status == ExecutionStatus.SUCCEEDED else "execution.failed"
        self.emit(item.account_id, kind, _execution_data(item), depth=int(item.depth or 0))
        if item.callback:
            self.delivery_queue.send([({"kind": "callback", "a": item.account_id, "e": item.id, "attempt": 1}, 0)])
        if item.parent_execution_id:
            self.step_queue.send([({"k": "child", "a": item.account_id, "e": item.parent_execution_id,
                                    "s": item.parent_step, "c": item.id}, 0)])

    def _update_schedule(self, item: ExecutionModel) -> None:
        """The schedule's `last_execution`, if this is still its last one."""
        from pynamodb.exceptions import UpdateError

        from chalicelib.store.models import TriggerModel

        last = {"execution_id": item.id, "status": item.status, "started_at": item.started_at,
                "completed_at": item.completed_at}
        try:
            TriggerModel(item.trigger_id).update(actions=[TriggerModel.last_execution.set(last)],
                                                 condition=TriggerModel.id.exists())
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise

    def _check_output(self, loaded: Loaded, result: Any) -> None:
        schema = loaded.workflow.get("out_schema")
        if schema is None:
            return
        from chalicelib.schemas import value_problems

        problems = value_problems(schema, result, "result")
        if problems:
            first = problems[0]
            where = first["field"].removeprefix("result.") if first["field"] != "result" else "result"
            raise _OutputInvalid(f"the result does not match out_schema: {where}: {first['message']}")

    # -- cancel, deadline, reconcile ---------------------------------------------------------

    def cancel(self, loaded: Loaded, event: CancelRequested) -> bool:
        state, commands = apply(loaded.plan, loaded.state, event, self.clock())
        finish = next(c for c in commands if isinstance(c, FinishExecution))
        if not self.executions.finish(loaded.item, status=finish.status.value, completed_at=epoch_iso(self.clock()),
                                      duration_ms=int(round((self.clock() - _epoch(loaded.item.started_at)) * 1000)),
                                      result=None, result_ref=None, error=finish.error,
                                      retention_days=int(loaded.workflow.get("retention_days", 30))):
            return False
        for command in commands:
            if isinstance(command, CancelSteps):
                for name in command.names:
                    before = loaded.state.record(name)["status"]
                    self.executions.record(loaded.account_id, loaded.id, name, None, {
                        "status": StepStatus.CANCELLED.value, "error": state.records[name]["error"],
                        "completed_at": epoch_iso(self.clock()), "wake_at": None, "next_attempt_at": None,
                    }, expect_status=(before,))
        for name, item in loaded.steps.items():
            if item.status != "running":
                continue
            # Revoking the lease: the worker's result can no longer be recorded, and its
            # chain stops. A child execution is cancelled with its parent.
            self.executions.record(loaded.account_id, loaded.id, name, None, {
                "status": StepStatus.CANCELLED.value, "error": finish.error, "completed_at": epoch_iso(self.clock()),
                "lease_token": None, "lease_until": None,
            }, expect_status=("running",))
            if item.child_execution_id:
                child = self.load(loaded.account_id, item.child_execution_id)
                if child is not None and not child.state.status.terminal:
                    self.cancel(child, event)
        loaded.item.status = finish.status.value
        self.workflows.record_run(loaded.account_id, loaded.item.workflow_id, succeeded=False, failed=False,
                                  duration_ms=None, finished_at=epoch_iso(self.clock()))
        return True

    def reconcile(self, account_id: str, execution_id: str) -> None:
        """What the tick does with a due execution: time it out at its deadline, re-drive
        what a dead worker left, fire due timers, send what was decided but never sent,
        and set the next due time."""
        loaded = self.load(account_id, execution_id)
        if loaded is None:
            return
        if loaded.state.status.terminal:
            self.executions.set_due(loaded.item, None)
            return
        now = self.clock()
        if now >= float(loaded.item.deadline_at):
            self.cancel(loaded, CancelRequested(ExecutionStatus.TIMED_OUT, "EXECUTION_TIMEOUT",
                                                "the execution ran past its deadline"))
            return
        messages: list[tuple[dict, float]] = []
        in_flight = False
        timers: list[float] = []
        for name, item in loaded.steps.items():
            status = item.status
            if status == "running" and item.child_execution_id:
                child = self.executions.get(account_id, item.child_execution_id)
                if child is None and item.child:
                    logger.warning("starting a child execution its worker never started",
                                   extra={"execution_id": execution_id, "step": name})
                    self._start_recorded_child(loaded, name, item.child_execution_id, item.child)
                    child = self.executions.get(account_id, item.child_execution_id)
                if child is None:
                    self._record(loaded, name, AttemptFailed(name, "INVALID_INPUT", "the child workflow no longer exists"),
                                 token=item.lease_token, attempt_started=None)
                    continue
                if ExecutionStatus(child.status).terminal:
                    messages.append((self._message(loaded, "child", name, child=child.id), 0))
                in_flight = True
            elif status == "running":
                in_flight = True
                if item.lease_until is not None and item.lease_until < now:
                    messages.append((self._message(loaded, "run", name, attempt=int(item.attempt)), 0))
            elif status == "retrying":
                if (item.next_attempt_at or 0) <= now:
                    messages.append((self._message(loaded, "run", name, attempt=int(item.attempt) + 1), 0))
                timers.append(float(item.next_attempt_at or now))
            elif status in ("sleeping", "waiting_approval") and item.wake_at is not None:
                if item.wake_at <= now:
                    messages.append((self._message(loaded, "wake", name), 0))
                timers.append(float(item.wake_at))
            elif status == "scheduled":
                in_flight = True
                messages.append((self._message(loaded, "run", name, attempt=int(item.attempt)), 0))
            if (item.compensation or {}).get("status") == "running":
                in_flight = True
        commands = decide(loaded.plan, loaded.state)
        for command in commands:
            if isinstance(command, FinishExecution):
                self._finish(loaded, command.status, command.error)
                return
            if isinstance(command, RunStep):
                in_flight = True
                messages.append((self._message(loaded, "run", command.name, attempt=command.attempt), 0))
            if isinstance(command, RunCompensation) and not any(
                    (s.compensation or {}).get("status") == "running" for s in loaded.steps.values()):
                in_flight = True
                messages.append((self._message(loaded, "compensate", command.name), 0))
        if messages:
            self.step_queue.send(messages)
        upcoming = [t for t in timers if t > now]
        if in_flight:
            upcoming.append(now + WATCHDOG)
        self.executions.set_due(loaded.item, min(upcoming + [float(loaded.item.deadline_at)]))

    PURGE_PAGE = 25

    def purge_workflow(self, account_id: str, workflow_id: str, cursor: dict | None = None) -> None:
        """After a workflow is deleted: cancels its running executions, then removes its
        execution history and their payload objects, a page per message (the next page is
        a new message)."""
        ids, next_cursor = self.executions.of_workflow(account_id, workflow_id, cursor, self.PURGE_PAGE)
        for execution_id in ids:
            loaded = self.load(account_id, execution_id)
            if loaded is not None and not loaded.state.status.terminal:
                self.cancel(loaded, CancelRequested(message="the workflow was deleted"))
            self.executions.delete_history(account_id, execution_id)
            self.payloads.delete_prefix(f"executions/{account_id}/{execution_id}/")
        if next_cursor:
            self.step_queue.send([({"k": "purge", "a": account_id, "w": workflow_id, "c": next_cursor}, 0)])

    def request_purge(self, account_id: str, workflow_id: str) -> None:
        self.step_queue.send([({"k": "purge", "a": account_id, "w": workflow_id}, 0)])

    def tick(self, until: float) -> int:
        """Reconciles every due execution, stopping at `until` (the tick's own deadline)."""
        count = 0
        for account_id, execution_id in list(self.executions.due(self.clock())):
            if time.monotonic() > until:
                break
            try:
                self.reconcile(account_id, execution_id)
                count += 1
            except Exception:
                logger.exception("reconcile failed", extra={"execution_id": execution_id})
        return count


class _OutputInvalid(Exception):
    pass
