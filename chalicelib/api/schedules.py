"""Schedules (SPEC §6.1) in their three forms, views over the workflows' schedule triggers."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import ApiRequest, endpoint, ok
from chalicelib.paging import PageRequest, paginate
from chalicelib.wiring import schedule_views

bp = Blueprint(__name__)
TAG = "schedules"


@endpoint(bp, "/workflows/{id_or_ref}/schedules", "POST", scope="write", status=201, tag=TAG,
          request_schema="ScheduleInput", summary="Add a schedule to a workflow")
def create_schedule(request: ApiRequest, id_or_ref: str):
    view = schedule_views().create(request.account_id, id_or_ref, request.json(), by=request.caller.key_id)
    return ok(view, message="Schedule created successfully", status=201)


@endpoint(bp, "/workflows/{id_or_ref}/schedules", "GET", scope="read", tag=TAG, summary="List a workflow's schedules")
def list_workflow_schedules(request: ApiRequest, id_or_ref: str):
    items, meta = paginate(schedule_views().list_for(request.account_id, id_or_ref), PageRequest.from_query(request.query))
    return ok(items, meta=meta)


@endpoint(bp, "/schedules", "GET", scope="read", tag=TAG, summary="List schedules (filters: workflow_id, enabled)")
def list_schedules(request: ApiRequest):
    items, meta = paginate(schedule_views().list_all(request.account_id, request.query), PageRequest.from_query(request.query))
    return ok(items, meta=meta)


@endpoint(bp, "/schedules/{schedule_id}", "GET", scope="read", tag=TAG, summary="Get a schedule")
def get_schedule(request: ApiRequest, schedule_id: str):
    return ok(schedule_views().get(request.account_id, schedule_id))


def _update(request: ApiRequest, schedule_id: str):
    view = schedule_views().update(request.account_id, schedule_id, request.json(), by=request.caller.key_id)
    return ok(view, message="Schedule updated successfully")


@endpoint(bp, "/schedules/{schedule_id}", "PUT", scope="write", tag=TAG, request_schema="ScheduleInput",
          summary="Change a schedule (the given fields are merged)")
def put_schedule(request: ApiRequest, schedule_id: str):
    return _update(request, schedule_id)


@endpoint(bp, "/schedules/{schedule_id}", "PATCH", scope="write", tag=TAG, request_schema="ScheduleInput",
          summary="Change a schedule (the given fields are merged)")
def patch_schedule(request: ApiRequest, schedule_id: str):
    return _update(request, schedule_id)


@endpoint(bp, "/schedules/{schedule_id}", "DELETE", scope="write", tag=TAG, summary="Delete a schedule")
def delete_schedule(request: ApiRequest, schedule_id: str):
    return ok(schedule_views().delete(request.account_id, schedule_id, by=request.caller.key_id),
              message="Schedule deleted successfully")


@endpoint(bp, "/workflows/{id_or_ref}/schedule", "GET", scope="read", tag=TAG, summary="Get a workflow's (first) schedule")
def get_workflow_schedule(request: ApiRequest, id_or_ref: str):
    return ok(schedule_views().first(request.account_id, id_or_ref))


@endpoint(bp, "/workflows/{id_or_ref}/schedule", "POST", scope="write", tag=TAG, request_schema="ScheduleInput",
          summary="Create the workflow's schedule (or change it if it has one)")
def post_workflow_schedule(request: ApiRequest, id_or_ref: str):
    status, view = schedule_views().upsert_first(request.account_id, id_or_ref, request.json(), request.caller.key_id,
                                                 create=True)
    return ok(view, message="Schedule saved successfully", status=status)


@endpoint(bp, "/workflows/{id_or_ref}/schedule", "PUT", scope="write", tag=TAG, request_schema="ScheduleInput",
          summary="Change the workflow's schedule")
def put_workflow_schedule(request: ApiRequest, id_or_ref: str):
    _, view = schedule_views().upsert_first(request.account_id, id_or_ref, request.json(), request.caller.key_id,
                                            create=False)
    return ok(view, message="Schedule updated successfully")


@endpoint(bp, "/workflows/{id_or_ref}/schedule", "DELETE", scope="write", tag=TAG, summary="Delete the workflow's schedule")
def delete_workflow_schedule(request: ApiRequest, id_or_ref: str):
    first = schedule_views().first(request.account_id, id_or_ref)
    return ok(schedule_views().delete(request.account_id, first["id"], by=request.caller.key_id),
              message="Schedule deleted successfully")
