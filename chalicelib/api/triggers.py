"""Inbound webhooks (SPEC §6.2), events, their registry and the filter operators (§6.3)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import CONTENT_TYPES, ApiRequest, endpoint, ok
from chalicelib.wiring import event_service, inbound_webhooks, workflow_service

bp = Blueprint(__name__)
TAG = "triggers"
# What a third-party sender may post to an inbound webhook, besides JSON, text and forms.
HOOK_CONTENT_TYPES = CONTENT_TYPES + ["application/xml", "text/xml", "text/csv", "application/cloudevents+json"]


@endpoint(bp, "/hooks/{trigger_id}", "POST", scope=None, status=202, tag=TAG, content_types=HOOK_CONTENT_TYPES,
          summary="Start a workflow from its inbound webhook (X-Sluice-Token or X-Sluice-Signature)")
def receive_hook(request: ApiRequest, trigger_id: str):
    execution_id = inbound_webhooks().receive(trigger_id, raw_body=request.raw_body(), headers=request.headers,
                                              query=request.query, method=request.method)
    return ok({"execution_id": execution_id, "status": "queued"}, status=202)


@endpoint(bp, "/workflows/{id_or_ref}/triggers/{trigger_id}/rotate-secret", "POST", scope="write", tag=TAG,
          summary="Issue a new secret for an inbound webhook trigger (the old one stops working)")
def rotate_secret(request: ApiRequest, id_or_ref: str, trigger_id: str):
    workflow = workflow_service().get(request.account_id, id_or_ref)
    return ok(inbound_webhooks().rotate(request.account_id, workflow.id, trigger_id),
              message="Secret rotated: it is shown this once")


@endpoint(bp, "/events", "POST", scope="execute", status=202, tag=TAG,
          summary="Publish an event: starts the event triggers it matches")
def publish_event(request: ApiRequest):
    return ok(event_service().publish(request.account_id, request.json_object()), status=202)


@endpoint(bp, "/event-types", "GET", scope="read", tag=TAG, summary="The event registry: names, descriptions, data schemas")
def list_event_types(request: ApiRequest):
    return ok(event_service().types(request.account_id))


@endpoint(bp, "/event-types", "POST", scope="write", status=201, tag=TAG, summary="Register a custom event type")
def register_event_type(request: ApiRequest):
    return ok(event_service().register(request.account_id, request.json_object()), status=201,
              message="Event type registered")


@endpoint(bp, "/filter-operators", "GET", scope="read", tag=TAG, summary="The operators of trigger filters")
def filter_operators(request: ApiRequest):
    from chalicelib.triggers.filters import operator_catalog

    return ok(operator_catalog())
