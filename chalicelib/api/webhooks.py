"""Event webhooks (SPEC §8): subscriptions and their delivery log."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import ApiRequest, endpoint, ok
from chalicelib.paging import PageRequest, paginate
from chalicelib.wiring import webhook_service

bp = Blueprint(__name__)
TAG = "webhooks"


@endpoint(bp, "/webhooks", "POST", scope="write", status=201, tag=TAG,
          summary="Subscribe a URL to lifecycle events (the secret is write-only)")
def create_webhook(request: ApiRequest):
    return ok(webhook_service().create(request.account_id, request.json()), status=201,
              message="Webhook created successfully")


@endpoint(bp, "/webhooks", "GET", scope="read", tag=TAG, summary="List webhook subscriptions")
def list_webhooks(request: ApiRequest):
    items, meta = paginate(webhook_service().list(request.account_id), PageRequest.from_query(request.query))
    return ok(items, meta=meta)


@endpoint(bp, "/webhooks/{webhook_id}", "GET", scope="read", tag=TAG, summary="Get a webhook subscription")
def get_webhook(request: ApiRequest, webhook_id: str):
    return ok(webhook_service().get(request.account_id, webhook_id))


@endpoint(bp, "/webhooks/{webhook_id}", "PATCH", scope="write", tag=TAG,
          summary="Change a subscription (url, events, secret, description, enabled)")
def update_webhook(request: ApiRequest, webhook_id: str):
    return ok(webhook_service().update(request.account_id, webhook_id, request.json()), message="Webhook updated")


@endpoint(bp, "/webhooks/{webhook_id}", "DELETE", scope="write", tag=TAG, summary="Delete a webhook subscription")
def delete_webhook(request: ApiRequest, webhook_id: str):
    webhook_service().delete(request.account_id, webhook_id)
    return ok({"id": webhook_id, "deleted": True}, message="Webhook deleted")


@endpoint(bp, "/webhooks/{webhook_id}/deliveries", "GET", scope="read", tag=TAG,
          summary="Every delivery attempt, newest first (limit, cursor)")
def list_deliveries(request: ApiRequest, webhook_id: str):
    items, meta = webhook_service().deliveries(request.account_id, webhook_id, request.query)
    return ok(items, meta=meta)
