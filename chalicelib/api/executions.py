"""Executing workflows and inspecting, cancelling, retrying and approving executions (SPEC §7)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import ApiRequest, endpoint, ok
from chalicelib.wiring import execution_service

bp = Blueprint(__name__)
TAG = "executions"


@endpoint(bp, "/workflows/{id_or_ref}/execute", "POST", scope="execute", tag=TAG, request_schema="ExecuteInput",
          summary="Run a workflow; by default wait up to 25 s for it to finish (200), else 202")
def execute(request: ApiRequest, id_or_ref: str):
    status, view = execution_service().execute(request.account_id, id_or_ref, request.json_object(required=False))
    message = "Execution finished" if status == 200 else "Execution accepted and still running"
    return ok(view, message=message, status=status)


@endpoint(bp, "/workflows/{id_or_ref}/execute_async", "POST", scope="execute", tag=TAG, status=202,
          request_schema="ExecuteAsyncInput", summary="Start a workflow and answer at once; POST the result to callback_url")
def execute_async(request: ApiRequest, id_or_ref: str):
    view = execution_service().execute_async(request.account_id, id_or_ref, request.json_object(required=False))
    return ok(view, message="Execution accepted", status=202)


@endpoint(bp, "/executions", "GET", scope="read", tag=TAG,
          summary="List executions, newest first (workflow_id, status, triggered_by, start_date, end_date; limit, cursor)")
def list_executions(request: ApiRequest):
    items, meta = execution_service().list(request.account_id, request.query)
    return ok(items, meta=meta)


@endpoint(bp, "/workflows/{id_or_ref}/executions", "GET", scope="read", tag=TAG, summary="List a workflow's executions")
def list_workflow_executions(request: ApiRequest, id_or_ref: str):
    items, meta = execution_service().list(request.account_id, request.query, workflow=id_or_ref)
    return ok(items, meta=meta)


@endpoint(bp, "/executions/{execution_id}", "GET", scope="read", tag=TAG, summary="Get an execution with its steps")
def get_execution(request: ApiRequest, execution_id: str):
    return ok(execution_service().get(request.account_id, execution_id))


@endpoint(bp, "/executions/{execution_id}/steps", "GET", scope="read", tag=TAG, summary="List an execution's step runs")
def list_steps(request: ApiRequest, execution_id: str):
    steps = execution_service().steps(request.account_id, execution_id)
    return ok(steps, meta={"total": len(steps)})


@endpoint(bp, "/executions/{execution_id}/cancel", "POST", scope="execute", tag=TAG, summary="Cancel a running execution")
def cancel(request: ApiRequest, execution_id: str):
    return ok(execution_service().cancel(request.account_id, execution_id), message="Execution cancelled")


@endpoint(bp, "/executions/{execution_id}/retry", "POST", scope="execute", tag=TAG,
          summary="Re-run a failed, timed-out or cancelled execution from the steps that did not succeed")
def retry(request: ApiRequest, execution_id: str):
    return ok(execution_service().retry(request.account_id, execution_id), message="Execution retried")


@endpoint(bp, "/executions/{execution_id}/steps/{step}/approve", "POST", scope="execute", tag=TAG,
          request_schema="ApprovalDecision", summary="Approve a step that waits for an approval")
def approve(request: ApiRequest, execution_id: str, step: str):
    view = execution_service().approve(request.account_id, execution_id, step, request.json_object(required=False),
                                       caller=request.caller)
    return ok(view, message="Step approved")


@endpoint(bp, "/executions/{execution_id}/steps/{step}/reject", "POST", scope="execute", tag=TAG,
          request_schema="ApprovalDecision", summary="Reject a step that waits for an approval")
def reject(request: ApiRequest, execution_id: str, step: str):
    view = execution_service().reject(request.account_id, execution_id, step, request.json_object(required=False),
                                      caller=request.caller)
    return ok(view, message="Step rejected")
