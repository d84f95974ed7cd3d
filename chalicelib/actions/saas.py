"""Actions that call hosted services over HTTP (SPEC §5): Slack incoming webhooks,
Activepieces flows, PagerDuty Events API v2 and Jira's REST API. Every request goes
through the outbound guard (`http_request`), with the attempt's idempotency key; 5xx,
408, 429 and connection errors are retryable, other 4xx are not."""

from __future__ import annotations

import base64
from typing import Any

from chalicelib.actions.base import ActionContext
from chalicelib.actions.errors import ActionError
from chalicelib.actions.registry import ActionSpec

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_ANY: dict = {}


def _post(url: str, payload: Any, ctx: ActionContext, headers: dict[str, str] | None = None) -> dict[str, Any]:
    from chalicelib.actions.http import http_request

    return http_request({"url": url, "method": "POST", "json": payload, "headers": headers or {}},
                        idempotency_key=ctx.idempotency_key, timeout=ctx.timeout,
                        allow_private=ctx.allow_private_networks)


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def slack_post_message(input: dict, ctx: ActionContext) -> dict:
    text = input.get("text", input.get("message"))
    if text is None and not input.get("blocks"):
        raise ActionError("INVALID_INPUT", "give `text` (or `message`) or `blocks`")
    payload = _present({"text": text, "channel": input.get("channel"), "username": input.get("username"),
                        "icon_emoji": input.get("icon_emoji"), "blocks": input.get("blocks")})
    return {"status_code": _post(input["webhook_url"], payload, ctx)["status_code"]}


def activepieces_trigger_flow(input: dict, ctx: ActionContext) -> dict:
    response = _post(input["webhook_url"], input.get("data", {}), ctx)
    return {"status_code": response["status_code"], "body": response["body"], "flow_id": input.get("flow_id")}


def pagerduty_create_incident(input: dict, ctx: ActionContext) -> dict:
    event = _present({
        "routing_key": input["routing_key"], "event_action": "trigger", "dedup_key": input.get("dedup_key"),
        "payload": _present({
            "summary": input["summary"], "source": input.get("source", "sluice"),
            "severity": input.get("severity", "error"), "component": input.get("component"),
            "group": input.get("group"), "class": input.get("class"), "custom_details": input.get("custom_details"),
        }),
        "links": input.get("links"),
    })
    response = _post(input.get("events_url") or PAGERDUTY_EVENTS_URL, event, ctx)
    body = response["body"] if isinstance(response["body"], dict) else {}
    return {"status_code": response["status_code"], "status": body.get("status"), "message": body.get("message"),
            "dedup_key": body.get("dedup_key")}


def jira_create_issue(input: dict, ctx: ActionContext) -> dict:
    if input.get("api_token") and input.get("email"):
        credentials = base64.b64encode(f"{input['email']}:{input['api_token']}".encode()).decode()
        authorization = f"Basic {credentials}"
    elif input.get("token"):
        authorization = f"Bearer {input['token']}"
    else:
        raise ActionError("INVALID_INPUT", "give `email` and `api_token` (Jira Cloud) or `token` (a personal access token)")
    fields = {"project": {"key": input["project_key"]}, "summary": input["summary"],
              "issuetype": {"name": input.get("issue_type", "Task")}}
    if input.get("description") is not None:
        fields["description"] = input["description"]
    if input.get("labels"):
        fields["labels"] = input["labels"]
    if input.get("priority"):
        fields["priority"] = {"name": input["priority"]}
    fields.update(input.get("fields") or {})
    base = input["base_url"].rstrip("/")
    response = _post(f"{base}/rest/api/2/issue", {"fields": fields}, ctx,
                     headers={"Authorization": authorization, "Accept": "application/json"})
    body = response["body"] if isinstance(response["body"], dict) else {}
    key = body.get("key")
    return {"status_code": response["status_code"], "id": body.get("id"), "key": key,
            "url": f"{base}/browse/{key}" if key else None}


_URL = {"type": "string", "minLength": 1}
_STATUS = {"type": "object", "properties": {"status_code": {"type": "integer"}}, "required": ["status_code"]}

SPECS = [
    ActionSpec(
        ref="slack.post_message", run=slack_post_message,
        description="Posts a message to a Slack incoming webhook.",
        input_schema={"type": "object", "properties": {
            "webhook_url": _URL, "text": {"type": "string"}, "message": {"type": "string"},
            "channel": {"type": "string"}, "username": {"type": "string"}, "icon_emoji": {"type": "string"},
            "blocks": {"type": "array"}}, "required": ["webhook_url"]},
        output_schema=_STATUS,
    ),
    ActionSpec(
        ref="activepieces.trigger_flow", run=activepieces_trigger_flow,
        description="Starts an Activepieces flow: POSTs `data` as JSON to the flow's webhook URL.",
        input_schema={"type": "object", "properties": {"webhook_url": _URL, "flow_id": {"type": "string"}, "data": _ANY},
                      "required": ["webhook_url"]},
        output_schema={"type": "object", "properties": {"status_code": {"type": "integer"}, "body": _ANY,
                                                        "flow_id": {"type": ["string", "null"]}},
                       "required": ["status_code"]},
    ),
    ActionSpec(
        ref="pagerduty.create_incident", run=pagerduty_create_incident,
        description="Triggers a PagerDuty incident through the Events API v2.",
        input_schema={"type": "object", "properties": {
            "routing_key": {"type": "string", "minLength": 1}, "summary": {"type": "string", "minLength": 1},
            "source": {"type": "string"}, "severity": {"enum": ["critical", "error", "warning", "info"]},
            "dedup_key": {"type": "string"}, "component": {"type": "string"}, "group": {"type": "string"},
            "class": {"type": "string"}, "custom_details": _ANY, "links": {"type": "array"}, "events_url": _URL},
            "required": ["routing_key", "summary"]},
        output_schema={"type": "object", "properties": {"status_code": {"type": "integer"},
                                                        "dedup_key": {"type": ["string", "null"]}},
                       "required": ["status_code"]},
    ),
    ActionSpec(
        ref="jira.create_issue", run=jira_create_issue,
        description="Creates a Jira issue through the REST API (v2); credentials usually come from an integration.",
        input_schema={"type": "object", "properties": {
            "base_url": _URL, "email": {"type": "string"}, "api_token": {"type": "string"}, "token": {"type": "string"},
            "project_key": {"type": "string", "minLength": 1}, "summary": {"type": "string", "minLength": 1},
            "description": {"type": "string"}, "issue_type": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}}, "priority": {"type": "string"},
            "fields": {"type": "object"}}, "required": ["base_url", "project_key", "summary"]},
        output_schema={"type": "object", "properties": {"status_code": {"type": "integer"},
                                                        "key": {"type": ["string", "null"]}},
                       "required": ["status_code"]},
    ),
]
