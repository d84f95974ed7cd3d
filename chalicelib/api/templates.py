"""Workflow templates (SPEC §8)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import ApiRequest, endpoint, ok
from chalicelib.api.workflows import one_workflow
from chalicelib.paging import PageRequest, paginate
from chalicelib.wiring import template_service

bp = Blueprint(__name__)
TAG = "templates"


@endpoint(bp, "/templates", "GET", scope="read", tag=TAG, summary="List templates (filter: category)")
def list_templates(request: ApiRequest):
    items, meta = paginate(template_service().list(request.account_id, request.query),
                           PageRequest.from_query(request.query))
    return ok(items, meta=meta)


@endpoint(bp, "/templates/{template_id}", "GET", scope="read", tag=TAG, summary="Get a template")
def get_template(request: ApiRequest, template_id: str):
    return ok(template_service().get(request.account_id, template_id))


@endpoint(bp, "/templates", "POST", scope="write", status=201, tag=TAG,
          summary="Save a workflow's document as a template")
def save_template(request: ApiRequest):
    return ok(template_service().save(request.account_id, request.json(), created_by=request.caller.key_id),
              status=201, message="Template saved")


@endpoint(bp, "/workflows/from-template", "POST", scope="write", status=201, tag=TAG,
          summary="Create a workflow from a template (overrides deep-merged: objects merge, lists replace)")
def workflow_from_template(request: ApiRequest):
    record = template_service().instantiate(request.account_id, request.json(), created_by=request.caller.key_id)
    return one_workflow(record, message="Workflow created from template", status=201)
