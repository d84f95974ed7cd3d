"""Workflows, their versions and packs (SPEC §2)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import ApiRequest, endpoint, ok
from chalicelib.errors import NotFoundError
from chalicelib.paging import PageRequest, paginate
from chalicelib.services.workflow_document import status_of
from chalicelib.store.workflows import WorkflowRecord
from chalicelib.wiring import integration_service, runtime, workflow_service

bp = Blueprint(__name__)
TAG = "workflows"


def present(document: dict[str, Any], account_id: str) -> dict[str, Any]:
    """A workflow as the API shows it: with its derived status and, for each integration
    it names, whether the account has it (`connected`) or not (`missing`)."""
    view = {k: v for k, v in document.items() if k != "updated_by"}
    view["status"] = status_of(document)
    if document.get("integrations"):
        view["integrations"] = integration_service().resolver(account_id).statuses(document)
    return view


def _with_hook(trigger: dict[str, Any], issued: dict[str, str]) -> dict[str, Any]:
    """An inbound webhook shows its URL, and its secret in the answer that created it only."""
    if trigger.get("type") != "webhook":
        return trigger
    from chalicelib.services.hooks import hook_url

    shown = dict(trigger, url=hook_url(trigger["id"]))
    if trigger["id"] in issued:
        shown["secret"] = issued[trigger["id"]]
    return shown


def one_workflow(record: WorkflowRecord, *, message: str | None = None, status: int = 200):
    view = present(record.document, record.account_id)
    if any(t.get("type") == "schedule" for t in view.get("triggers", [])):
        state = workflow_service().schedule_state(record.account_id, record.id)
        view["triggers"] = [dict(t, **state.get(t["id"], {})) if t.get("type") == "schedule" else t
                            for t in view["triggers"]]
    view["triggers"] = [_with_hook(t, record.issued_secrets) for t in view.get("triggers", [])]
    return ok(view, message=message, status=status, headers={"ETag": f'"{record.revision}"'})


@endpoint(bp, "/workflows", "POST", scope="write", status=201, tag=TAG, summary="Create a workflow",
          request_schema="WorkflowInput")
def create_workflow(request: ApiRequest):
    record = workflow_service().create(request.account_id, request.json(), created_by=request.caller.key_id)
    return one_workflow(record, message="Workflow created successfully", status=201)


@endpoint(bp, "/workflows", "GET", scope="read", tag=TAG,
          summary="List workflows (filters: tags, enabled, status, type, pack, search, bucket; sort_by, sort_order)")
def list_workflows(request: ApiRequest):
    page = PageRequest.from_query(request.query)
    items, meta = paginate(workflow_service().list(request.account_id, request.query), page)
    return ok(items, meta=meta)


@endpoint(bp, "/workflows/{id_or_ref}", "GET", scope="read", tag=TAG, summary="Get a workflow by id or ref")
def get_workflow(request: ApiRequest, id_or_ref: str):
    return one_workflow(workflow_service().get(request.account_id, id_or_ref))


@endpoint(bp, "/workflows/{id_or_ref}", "PUT", scope="write", tag=TAG, request_schema="WorkflowInput",
          summary="Replace a workflow (If-Match: <revision> guards against lost updates)")
def replace_workflow(request: ApiRequest, id_or_ref: str):
    record = workflow_service().replace(request.account_id, id_or_ref, request.json(), request.if_match(),
                                        updated_by=request.caller.key_id)
    return one_workflow(record, message="Workflow updated successfully")


@endpoint(bp, "/workflows/{id_or_ref}", "PATCH", scope="write", tag=TAG, request_schema="WorkflowPatch",
          summary="Merge changes into a workflow (JSON merge patch; If-Match supported)")
def patch_workflow(request: ApiRequest, id_or_ref: str):
    record = workflow_service().patch(request.account_id, id_or_ref, request.json(), request.if_match(),
                                      updated_by=request.caller.key_id)
    return one_workflow(record, message="Workflow updated successfully")


@endpoint(bp, "/workflows/{id_or_ref}", "DELETE", scope="write", tag=TAG,
          summary="Delete a workflow with its triggers and schedules")
def delete_workflow(request: ApiRequest, id_or_ref: str):
    record = workflow_service().delete(request.account_id, id_or_ref)
    # Running executions are cancelled and the history removed by the step worker.
    runtime().request_purge(request.account_id, record.id)
    return ok({"id": record.id, "ref": record.ref, "deleted": True},
              message=f"Workflow '{record.ref}' deleted successfully")


def _set_enabled(request: ApiRequest, id_or_ref: str, enabled: bool | None, verb: str):
    record = workflow_service().set_enabled(request.account_id, id_or_ref, enabled, updated_by=request.caller.key_id)
    return one_workflow(record, message=f"Workflow {verb} successfully")


@endpoint(bp, "/workflows/{id_or_ref}/activate", "POST", scope="write", tag=TAG, summary="Enable a workflow")
def activate_workflow(request: ApiRequest, id_or_ref: str):
    return _set_enabled(request, id_or_ref, True, "activated")


@endpoint(bp, "/workflows/{id_or_ref}/deactivate", "POST", scope="write", tag=TAG, summary="Disable a workflow")
def deactivate_workflow(request: ApiRequest, id_or_ref: str):
    return _set_enabled(request, id_or_ref, False, "deactivated")


@endpoint(bp, "/workflows/{id_or_ref}/toggle", "POST", scope="write", tag=TAG, summary="Flip a workflow's enabled flag")
def toggle_workflow(request: ApiRequest, id_or_ref: str):
    return _set_enabled(request, id_or_ref, None, "toggled")


@endpoint(bp, "/workflows/{id_or_ref}/versions", "GET", scope="read", tag=TAG,
          summary="List a workflow's revisions, newest first")
def list_versions(request: ApiRequest, id_or_ref: str):
    page = PageRequest.from_query(request.query)
    items, meta = paginate(workflow_service().versions(request.account_id, id_or_ref), page)
    return ok(items, meta=meta)


@endpoint(bp, "/workflows/{id_or_ref}/versions/{revision}", "GET", scope="read", tag=TAG,
          summary="Get the workflow document as it was at a revision")
def get_version(request: ApiRequest, id_or_ref: str, revision: str):
    return ok(present(workflow_service().version(request.account_id, id_or_ref, revision), request.account_id))


@endpoint(bp, "/packs", "GET", scope="read", tag="packs", summary="List the packs that hold workflows")
def list_packs(request: ApiRequest):
    page = PageRequest.from_query(request.query)
    items, meta = paginate(workflow_service().packs(request.account_id), page)
    return ok(items, meta=meta)


@endpoint(bp, "/packs/{pack}/workflows", "GET", scope="read", tag="packs", summary="List a pack's workflows")
def list_pack_workflows(request: ApiRequest, pack: str):
    page = PageRequest.from_query(request.query)
    query = {k: v for k, v in request.query.items() if k not in ("pack", "pack_ref")}
    workflows = workflow_service().list(request.account_id, {**query, "pack": pack})
    if not workflows and not any(p["name"] == pack for p in workflow_service().packs(request.account_id)):
        raise NotFoundError(f"pack '{pack}' not found")
    items, meta = paginate(workflows, page)
    return ok(items, meta=meta)
