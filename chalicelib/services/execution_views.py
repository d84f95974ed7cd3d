"""Executions and step runs as the API shows them (SPEC §7)."""

from __future__ import annotations

from typing import Any

from chalicelib.engine.plan import ExecutionStatus, Plan, StepStatus
from chalicelib.store.models import ExecutionModel, StepRunModel
from chalicelib.store.payloads import PayloadStore


def execution_view(item: ExecutionModel, payloads: PayloadStore, steps: list[dict] | None = None) -> dict[str, Any]:
    view = {
        "id": item.id,
        "execution_id": item.id,
        "workflow_id": item.workflow_id,
        "workflow_ref": item.workflow_ref,
        "workflow_name": item.workflow_name,
        "workflow_revision": int(item.workflow_revision),
        "status": item.status,
        "triggered_by": item.triggered_by,
        "trigger_id": item.trigger_id,
        "redrive_count": int(item.redrive_count or 0),
        "parameters": payloads.load(item.parameters, item.parameters_ref),
        "result": payloads.load(item.result, item.result_ref),
        "error": item.error,
        "started_at": item.started_at,
        "completed_at": item.completed_at,
        "duration_ms": int(item.duration_ms) if item.duration_ms is not None else None,
        "parent_execution_id": item.parent_execution_id,
    }
    if steps is not None:
        view["steps"] = steps
    return view


def step_views(plan: Plan, item: ExecutionModel, steps: dict[str, StepRunModel], payloads: PayloadStore) -> list[dict]:
    """Every step of the plan, in order: its record, or pending / not_run when it never started."""
    terminal = ExecutionStatus(item.status).terminal
    views = []
    for name in plan.order:
        record = steps.get(name)
        if record is None:
            views.append({
                "name": name, "action": plan.step(name).action,
                "status": (StepStatus.NOT_RUN if terminal else StepStatus.PENDING).value,
                "attempts": 0, "started_at": None, "completed_at": None, "duration_ms": None,
                "input": None, "output": None, "error": None, "attempt_log": [],
            })
            continue
        view = {
            "name": name,
            "action": record.action or plan.step(name).action,
            "status": record.status,
            "attempts": int(record.attempt),
            "started_at": record.started_at,
            "completed_at": record.completed_at,
            "duration_ms": int(record.duration_ms) if record.duration_ms is not None else None,
            "input": payloads.load(record.input, record.input_ref),
            "output": payloads.load(record.output, record.output_ref),
            "error": record.error,
            "attempt_log": record.attempt_log or [],
        }
        if record.approval:
            view["approval"] = record.approval
        if record.child_execution_id:
            view["child_execution_id"] = record.child_execution_id
        if record.compensation:
            view["compensation"] = record.compensation
        views.append(view)
    return views
