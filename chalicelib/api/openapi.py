"""The OpenAPI 3.1 document, built from the route table that `endpoint` fills."""

from __future__ import annotations

import functools
from typing import Any

from chalicelib import __version__
from chalicelib.api.http import ROUTES
from chalicelib.services.workflow_document import TRIGGER_TYPES, WORKFLOW_TYPES

_STRING_LIST = {"type": "array", "items": {"type": "string"}}
_STEP = {
    "type": "object",
    "required": ["name", "action"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "action": {"type": "string", "description": "an action ref from GET /api/v1/actions"},
        "input": {"type": "object", "description": "every string is a Jinja2 template"},
        "integration": {"type": "string"},
        "depends_on": _STRING_LIST,
        "when": {"type": ["string", "boolean"]},
        **{t: {"oneOf": [{"type": "string"}, _STRING_LIST]}
           for t in ("on_success", "on_failure", "on_complete", "on_true", "on_false")},
        "retry": {
            "type": "object",
            "properties": {
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
                "initial_interval": {"type": "number", "default": 1},
                "backoff_coefficient": {"type": "number", "minimum": 1, "default": 2.0},
                "max_interval": {"type": "number", "default": 300},
                "non_retryable_errors": _STRING_LIST,
            },
        },
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 900, "default": 60},
        "failure_policy": {"enum": ["abort", "continue", "compensate"]},
        "compensate": {"type": "object", "properties": {"action": {"type": "string"}, "input": {"type": "object"}}},
        "approval": {"type": "object", "properties": {
            "approvers": _STRING_LIST, "timeout": {"type": "number"}, "message": {"type": "string"}}},
        "publish": {"type": "object", "additionalProperties": {"type": "string"}},
        "order": {"type": "integer"},
    },
}
_WORKFLOW_PROPERTIES = {
    "ref": {"type": "string", "description": "<pack>.<name>; defaults to <pack>.<slug of name>"},
    "pack": {"type": "string", "default": "default"},
    "name": {"type": "string", "maxLength": 200},
    "description": {"type": ["string", "null"]},
    "version": {"type": "string", "default": "1.0.0"},
    "type": {"enum": list(WORKFLOW_TYPES), "default": "custom"},
    "tags": _STRING_LIST,
    "enabled": {"type": "boolean", "default": True},
    "param_schema": {"type": ["object", "boolean"]},
    "out_schema": {"type": ["object", "boolean"]},
    "definition": {"type": "object", "properties": {
        "variables": {"type": "object"},
        "steps": {"type": "array", "items": _STEP},
        "output": {},
        "on_failure": {"enum": ["abort", "continue", "compensate"]},
    }},
    "triggers": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {
        "id": {"type": "string"}, "type": {"enum": list(TRIGGER_TYPES)}, "enabled": {"type": "boolean"},
        "parameters": {"type": "object"}}}},
    "integrations": {"type": "array", "items": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "required": {"type": "boolean"}}}},
    "configuration": {"type": "object"},
    "metadata": {"type": "object"},
    "retention_days": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 30},
}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "properties": {
                    "field": {"type": "string"}, "message": {"type": "string"}}}},
            },
        }},
    },
    "WorkflowInput": {"type": "object", "required": ["name"], "properties": _WORKFLOW_PROPERTIES},
    "WorkflowPatch": {"type": "object", "properties": _WORKFLOW_PROPERTIES,
                      "description": "A JSON merge patch (RFC 7396) of the workflow document"},
    "ExecuteInput": {"type": "object", "properties": {
        "parameters": {"type": "object"}, "trigger_data": {"type": "object"},
        "execution_options": {"type": "object", "properties": {
            "wait_for_completion": {"type": "boolean", "default": True},
            "timeout_seconds": {"type": "number", "exclusiveMinimum": 0}}}}},
    "ExecuteAsyncInput": {"type": "object", "properties": {
        "parameters": {"type": "object"}, "callback_url": {"type": "string", "format": "uri"},
        "callback_secret": {"type": "string"}}},
    "ApprovalDecision": {"type": "object", "properties": {"comment": {"type": "string"}, "response": {}}},
    "ScheduleInput": {"type": "object", "properties": {
        "name": {"type": "string"}, "description": {"type": "string"},
        "schedule_type": {"enum": ["cron", "interval", "fixed_time"]}, "cron_expression": {"type": "string"},
        "interval_value": {"type": "integer", "minimum": 1}, "interval_unit": {"enum": ["minutes", "hours", "days"]},
        "execution_time": {"type": "string", "format": "date-time"}, "timezone": {"type": "string"},
        "start_at": {"type": "string"}, "end_at": {"type": "string"}, "overlap_policy": {"enum": ["allow", "skip"]},
        "enabled": {"type": "boolean"}, "parameters": {"type": "object"}}},
    "AccountCreate": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
    "ApiKeyCreate": {"type": "object", "required": ["name", "scopes"], "properties": {
        "name": {"type": "string"},
        "scopes": {"type": "array", "items": {"enum": ["read", "write", "execute", "admin", "operator"]}}}},
}
_ERROR_STATUSES = {
    400: "Invalid input", 401: "Missing or invalid API key", 403: "The key lacks the scope",
    404: "Not found", 409: "Conflict", 413: "Payload too large",
}


def _operation(route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": f"{route.method.lower()}_{route.path.replace('/api/v1/', '').replace('/', '_').replace('{', '').replace('}', '').replace('.', '_').replace('-', '_')}",
        "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in route.parameters],
        "responses": {str(route.status): {"description": "Success", "content": {"application/json": {"schema": {"type": "object"}}}}},
    }
    if route.scope is None:
        operation["security"] = []
    else:
        operation["description"] = f"Requires the `{route.scope}` scope."
        for status, text in _ERROR_STATUSES.items():
            operation["responses"][str(status)] = {
                "description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if route.request_schema:
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{route.request_schema}"}}}}
    return operation


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Sluice", "version": __version__,
                 "description": "Serverless workflow automation on AWS."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
            "schemas": SCHEMAS,
        },
        "paths": dict(sorted(paths.items())),
    }
