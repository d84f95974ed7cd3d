"""Execution use cases (SPEC §7): execute (waiting or not), inspect, list, cancel, retry
from the failed steps, approve and reject."""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

from chalicelib.engine.machine import ApprovalGiven, ApprovalRefused, CancelRequested, decide
from chalicelib.engine.plan import ExecutionStatus, StepStatus
from chalicelib.errors import (
    ExecutionNotFoundError,
    ForbiddenError,
    ExecutionTimeoutError,
    InvalidParametersError,
    InvalidStateError,
    NotFoundError,
    ParameterValidationError,
    PayloadTooLargeError,
    ValidationError,
    detail,
)
from chalicelib.ids import is_id
from chalicelib.services.accounts import Caller
from chalicelib.services.execution_views import execution_view, step_views
from chalicelib.ids import epoch_iso
from chalicelib.paging import cursor_limit
from chalicelib.services.runtime import MAX_LIFETIME, WATCHDOG, Loaded, Runtime
from chalicelib.services.workflows import WorkflowService
from chalicelib.store.executions import ExecutionRepository
from chalicelib.store.models import ExecutionModel, StepRunModel

PARAMETERS_LIMIT = 256 * 1024
SYNC_WAIT_SECONDS = 25.0
STATUSES = tuple(s.value for s in ExecutionStatus)
TRIGGER_KINDS = ("manual", "schedule", "webhook", "event", "request", "error", "threshold", "parent")


def parameter_problems(schema: Any, parameters: Any) -> list[dict[str, str]]:
    from chalicelib.schemas import value_problems

    return value_problems(schema, parameters, "parameters")


def _options(body: dict[str, Any]) -> tuple[bool, float | None]:
    options = body.get("execution_options") or {}
    if not isinstance(options, dict):
        raise ValidationError.for_field("execution_options", "must be an object")
    wait = options.get("wait_for_completion", True)
    if not isinstance(wait, bool):
        raise ValidationError.for_field("execution_options.wait_for_completion", "must be a boolean")
    timeout = options.get("timeout_seconds")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout <= MAX_LIFETIME):
        raise ValidationError.for_field("execution_options.timeout_seconds",
                                        f"must be a number of seconds greater than 0 and at most {MAX_LIFETIME}")
    return wait, timeout


class ExecutionService:
    def __init__(self, runtime: Runtime, workflows: WorkflowService) -> None:
        self.runtime = runtime
        self.workflows = workflows
        self.repository: ExecutionRepository = runtime.executions
        self.payloads = runtime.payloads

    # -- starting ------------------------------------------------------------------------

    def _parameters(self, workflow: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        parameters = body.get("parameters")
        if parameters is None:
            # Without parameters, the trigger data stands for them (SPEC §6).
            parameters = body.get("trigger_data") or {}
        if not isinstance(parameters, dict):
            raise InvalidParametersError("parameters must be a JSON object", [detail("parameters", "must be an object")])
        size = len(json.dumps(parameters, separators=(",", ":"), ensure_ascii=False).encode())
        if size > PARAMETERS_LIMIT:
            raise PayloadTooLargeError(f"the parameters are {size} bytes; the limit is 256 KB")
        schema = workflow.get("param_schema")
        if schema is not None:
            problems = parameter_problems(schema, parameters)
            if problems:
                raise ParameterValidationError(f"{problems[0]['field']}: {problems[0]['message']}", problems)
        return parameters

    def _startable(self, account_id: str, id_or_ref: str) -> dict[str, Any]:
        workflow = self.workflows.get(account_id, id_or_ref).document
        if not workflow["enabled"]:
            raise InvalidStateError(f"workflow '{workflow['ref']}' is disabled: activate it to run it")
        if any(i.get("required") for i in workflow.get("integrations", [])):
            self.runtime.integrations.require(account_id, workflow)
        return workflow

    def execute(self, account_id: str, id_or_ref: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """200 with the finished execution, 202 while it still runs, 504 past its deadline."""
        workflow = self._startable(account_id, id_or_ref)
        wait, timeout = _options(body)
        trigger_data = body.get("trigger_data")
        if trigger_data is not None and not isinstance(trigger_data, dict):
            raise ValidationError.for_field("trigger_data", "must be an object")
        parameters = self._parameters(workflow, body)
        trigger = {"type": "manual", "id": None, "data": trigger_data or {}}
        item = self.runtime.start(account_id, workflow, parameters, triggered_by="manual", trigger=trigger,
                                  timeout_seconds=timeout)
        if not wait:
            return 202, self.view(item)
        return self._wait(item, timeout)

    def _wait(self, item: ExecutionModel, timeout: float | None) -> tuple[int, dict[str, Any]]:
        started = time.monotonic()
        limit = min(SYNC_WAIT_SECONDS, timeout) if timeout else SYNC_WAIT_SECONDS
        pause = 0.02
        while True:
            current = self.repository.get(item.account_id, item.id)
            if ExecutionStatus(current.status).terminal:
                return 200, self.detail(current)
            if time.monotonic() - started >= limit:
                break
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)
        if timeout and timeout <= SYNC_WAIT_SECONDS:
            loaded = self.runtime.load(item.account_id, item.id)
            if loaded is not None and not loaded.state.status.terminal:
                self.runtime.cancel(loaded, CancelRequested(ExecutionStatus.TIMED_OUT, "EXECUTION_TIMEOUT",
                                                            f"the execution did not finish within {timeout:g} s"))
            final = self.repository.get(item.account_id, item.id)
            if final.status == ExecutionStatus.TIMED_OUT.value:
                raise ExecutionTimeoutError(f"execution {item.id} did not finish within {timeout:g} s",
                                            [detail("execution_id", item.id)])
            return 200, self.detail(final)
        return 202, self.detail(self.repository.get(item.account_id, item.id))

    def execute_async(self, account_id: str, id_or_ref: str, body: dict[str, Any]) -> dict[str, Any]:
        workflow = self._startable(account_id, id_or_ref)
        callback = None
        url = body.get("callback_url")
        if url is not None:
            if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
                raise ValidationError.for_field("callback_url", "must be an http or https URL")
            secret = body.get("callback_secret")
            if secret is not None and (not isinstance(secret, str) or not secret):
                raise ValidationError.for_field("callback_secret", "must be a non-empty string")
            callback = {"url": url, "secret": secret}
        _, timeout = _options(body)
        parameters = self._parameters(workflow, body)
        item = self.runtime.start(account_id, workflow, parameters, triggered_by="manual",
                                  trigger={"type": "manual", "id": None, "data": body.get("trigger_data") or {}},
                                  timeout_seconds=timeout, callback=callback)
        view = self.view(item)
        if callback:
            view["callback_url"] = callback["url"]
        return view

    # -- reading -------------------------------------------------------------------------

    def _item(self, account_id: str, execution_id: str) -> ExecutionModel:
        item = self.repository.get(account_id, execution_id) if is_id(execution_id, "ex") else None
        if item is None:
            raise ExecutionNotFoundError(f"execution '{execution_id}' not found")
        return item

    def view(self, item: ExecutionModel) -> dict[str, Any]:
        return execution_view(item, self.payloads)

    def detail(self, item: ExecutionModel) -> dict[str, Any]:
        return execution_view(item, self.payloads, self._steps(item))

    def _steps(self, item: ExecutionModel) -> list[dict[str, Any]]:
        loaded = self.runtime._loaded(item)
        return step_views(loaded.plan, item, loaded.steps, self.payloads)

    def get(self, account_id: str, execution_id: str) -> dict[str, Any]:
        return self.detail(self._item(account_id, execution_id))

    def steps(self, account_id: str, execution_id: str) -> list[dict[str, Any]]:
        return self._steps(self._item(account_id, execution_id))

    def list(self, account_id: str, query: Mapping[str, str], workflow: str | None = None) -> tuple[list, dict]:
        size = cursor_limit(query)
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            raise ValidationError.for_field("status", "must be one of " + ", ".join(STATUSES))
        triggered_by = query.get("triggered_by") or None
        if triggered_by is not None and triggered_by not in TRIGGER_KINDS:
            raise ValidationError.for_field("triggered_by", "must be one of " + ", ".join(TRIGGER_KINDS))
        workflow_id = workflow or query.get("workflow_id") or None
        if workflow_id is not None:
            workflow_id = self.workflows.get(account_id, workflow_id).id
        start, end = (self._date(query, name) for name in ("start_date", "end_date"))
        page = self.repository.page(account_id, workflow_id=workflow_id, status=status, triggered_by=triggered_by,
                                    start=start, end=end, limit=size, cursor=query.get("cursor") or None)
        return [self.view(item) for item in page.items], {"limit": size, "next_cursor": page.next_cursor}

    @staticmethod
    def _date(query: Mapping[str, str], name: str) -> str | None:
        raw = query.get(name)
        if not raw:
            return None
        from datetime import datetime, timezone

        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError.for_field(name, "must be an ISO 8601 date or time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        if len(raw) == 10 and name == "end_date":  # a bare date ends at the end of that day
            return moment.strftime("%Y-%m-%dT23:59:59.999Z")
        from chalicelib.ids import iso

        return iso(moment)

    # -- changing ------------------------------------------------------------------------

    def _loaded(self, account_id: str, execution_id: str) -> Loaded:
        item = self._item(account_id, execution_id)
        return self.runtime._loaded(item)

    def cancel(self, account_id: str, execution_id: str) -> dict[str, Any]:
        loaded = self._loaded(account_id, execution_id)
        if loaded.state.status.terminal:
            raise InvalidStateError(f"execution {execution_id} already ended ({loaded.item.status})")
        if not self.runtime.cancel(loaded, CancelRequested()):
            raise InvalidStateError(f"execution {execution_id} ended meanwhile")
        return self.get(account_id, execution_id)

    def retry(self, account_id: str, execution_id: str) -> dict[str, Any]:
        """The same execution runs again from its failed, timed-out and cancelled steps;
        succeeded steps keep their results."""
        loaded = self._loaded(account_id, execution_id)
        status = loaded.state.status
        if not status.terminal or status == ExecutionStatus.SUCCEEDED:
            raise InvalidStateError(f"only an execution that ended without succeeding can be retried; this one is {status.value}")
        now = self.runtime.clock()
        for name, step in loaded.steps.items():
            if step.status in ("failed", "cancelled", "compensated"):
                self.repository.record(account_id, execution_id, name, None, {
                    "status": StepStatus.PENDING.value, "error": None, "lease_token": None, "lease_until": None,
                    "wake_at": None, "next_attempt_at": None, "compensation": None, "approved": None,
                    "child_execution_id": None, "completed_at": None,
                }, expect_status=(step.status,))
        item = loaded.item
        original = (float(item.deadline_at) - _started(item)) if item.deadline_at else MAX_LIFETIME
        deadline = now + original
        updated = self.repository.update_if(item, [
            ExecutionModel.status.set(ExecutionStatus.RUNNING.value),
            ExecutionModel.redrive_count.add(1),
            ExecutionModel.completed_at.remove(), ExecutionModel.duration_ms.remove(),
            ExecutionModel.result.remove(), ExecutionModel.result_ref.remove(), ExecutionModel.error.remove(),
            ExecutionModel.expires_at.remove(), ExecutionModel.deadline_at.set(int(deadline)),
        ], ExecutionModel.status == status.value)
        if not updated:
            raise InvalidStateError(f"execution {execution_id} changed meanwhile; retry again")
        fresh = self.runtime.load(account_id, execution_id)
        self.repository.set_due(fresh.item, min(now + WATCHDOG, deadline))
        self.runtime._carry_out(fresh, decide(fresh.plan, fresh.state), inline=False)
        return self.get(account_id, execution_id)

    def _waiting_step(self, account_id: str, execution_id: str, name: str) -> tuple[Loaded, StepRunModel]:
        loaded = self._loaded(account_id, execution_id)
        if name not in loaded.plan.steps:
            raise NotFoundError(f"execution {execution_id} has no step '{name}'")
        step = loaded.steps.get(name)
        if loaded.state.status.terminal or step is None or step.status != StepStatus.WAITING_APPROVAL.value:
            status = step.status if step is not None else "pending"
            raise InvalidStateError(f"step '{name}' is not waiting for an approval (it is {status})")
        return loaded, step

    @staticmethod
    def _may_decide(step: StepRunModel, caller: Caller) -> None:
        """With `approvers` listed, only those keys (by id or name) decide; an admin key
        always may. Without a list, any key with the execute scope may."""
        approvers = (step.approval or {}).get("approvers") or []
        if approvers and "admin" not in caller.scopes and not ({caller.key_id, caller.key_name} & set(approvers)):
            raise ForbiddenError(f"this API key is not one of the step's approvers ({', '.join(approvers)})")

    def approve(self, account_id: str, execution_id: str, name: str, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        loaded, step = self._waiting_step(account_id, execution_id, name)
        self._may_decide(step, caller)
        by = caller.key_id
        approval = dict(step.approval or {})
        response = body.get("response")
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise ValidationError.for_field("comment", "must be a string")
        if approval.get("inquiry") and approval.get("schema") is not None:
            from chalicelib.schemas import value_problems

            problems = value_problems(approval["schema"], response, "response")
            if problems:
                raise ValidationError(f"{problems[0]['field']}: {problems[0]['message']}", problems)
        approval.update(decision="approved", decided_by=by, comment=comment, decided_at=epoch_iso(self.runtime.clock()))
        event = ApprovalGiven(name, response=response, run_action=not approval.get("inquiry"))
        if not self.runtime.apply_external(loaded, name, event, expect=(StepStatus.WAITING_APPROVAL.value,),
                                           fields={"approval": approval}):
            raise InvalidStateError(f"step '{name}' was decided meanwhile")
        return self.get(account_id, execution_id)

    def reject(self, account_id: str, execution_id: str, name: str, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        loaded, step = self._waiting_step(account_id, execution_id, name)
        self._may_decide(step, caller)
        by = caller.key_id
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise ValidationError.for_field("comment", "must be a string")
        approval = dict(step.approval or {}, decision="rejected", decided_by=by, comment=comment,
                        decided_at=epoch_iso(self.runtime.clock()))
        message = f"rejected: {comment}" if comment else "the approval was rejected"
        if not self.runtime.apply_external(loaded, name, ApprovalRefused(name, message=message),
                                           expect=(StepStatus.WAITING_APPROVAL.value,), fields={"approval": approval}):
            raise InvalidStateError(f"step '{name}' was decided meanwhile")
        return self.get(account_id, execution_id)


def _started(item: ExecutionModel) -> float:
    from chalicelib.services.runtime import _epoch

    return _epoch(item.started_at)
