"""The `core` pack: control-flow and data actions, and HTTP (SPEC §5)."""

from __future__ import annotations

from chalicelib.actions.registry import ActionSpec

_ANY: dict = {}
_OBJECT = {"type": "object"}

SPECS = [
    ActionSpec(
        ref="core.noop",
        description="Does nothing and succeeds.",
        input_schema={"type": "object"},
        output_schema={"type": "null"},
    ),
    ActionSpec(
        ref="core.echo",
        description="Returns its input as its output.",
        input_schema={"type": "object"},
        output_schema=_OBJECT,
    ),
    ActionSpec(
        ref="core.log",
        description="Writes a structured log line carrying the execution and step.",
        input_schema={
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "level": {"enum": ["debug", "info", "warning", "error"], "default": "info"},
                "data": _ANY,
            },
            "required": ["message"],
        },
        output_schema={"type": "object", "properties": {"logged": {"type": "boolean"}}},
    ),
    ActionSpec(
        ref="core.fail",
        description="Fails the step with the given error code and message.",
        input_schema={
            "type": "object",
            "properties": {
                "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$", "default": "FAILED"},
                "message": {"type": "string"},
            },
            "required": ["message"],
        },
        output_schema={"type": "null"},
    ),
    ActionSpec(
        ref="core.sleep",
        description="Waits `seconds` or `until` an ISO time, without holding a worker.",
        input_schema={
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "minimum": 0, "maximum": 31536000},
                "until": {"type": "string", "format": "date-time"},
            },
            "oneOf": [{"required": ["seconds"]}, {"required": ["until"]}],
        },
        output_schema={"type": "object", "properties": {"slept_until": {"type": "string"}}},
    ),
    ActionSpec(
        ref="core.transform",
        description="Applies an optional JMESPath `expression` to `data`; without one, returns `data`.",
        input_schema={
            "type": "object",
            "properties": {"data": _ANY, "expression": {"type": "string"}},
            "required": ["data"],
        },
        output_schema=_ANY,
    ),
    ActionSpec(
        ref="core.condition",
        description="Evaluates `condition` by truthiness; branches with on_true / on_false.",
        input_schema={
            "type": "object",
            "properties": {"condition": _ANY},
            "required": ["condition"],
        },
        output_schema={
            "type": "object",
            "properties": {"result": {"type": "boolean"}},
            "required": ["result"],
        },
    ),
    ActionSpec(
        ref="core.inquiry",
        description="Waits for a human response: approve (with an optional JSON response validated by `schema`) or reject.",
        input_schema={
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "approvers": {"type": "array", "items": {"type": "string"}},
                "timeout": {"type": "number", "exclusiveMinimum": 0},
                "schema": {"type": ["object", "boolean"]},
            },
        },
        output_schema=_ANY,
    ),
    ActionSpec(
        ref="core.http",
        aliases=("webhook.send",),
        description="Makes an HTTP request through the outbound guard; 5xx and connection errors are retryable, 4xx are not.",
        input_schema={
            "type": "object",
            "properties": {
                "url": {"type": "string", "minLength": 1},
                "method": {
                    "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                    "default": "GET",
                },
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "query": {"type": "object"},
                "json": _ANY,
                "body": _ANY,
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 900},
            },
            "required": ["url"],
        },
        output_schema={
            "type": "object",
            "properties": {
                "status_code": {"type": "integer"},
                "headers": {"type": "object"},
                "body": _ANY,
            },
            "required": ["status_code", "headers", "body"],
        },
    ),
    ActionSpec(
        ref="workflow.run",
        description="Runs another workflow as a child execution and waits for its result.",
        input_schema={
            "type": "object",
            "properties": {
                "workflow": {"type": "string", "minLength": 1},
                "parameters": {"type": "object"},
            },
            "required": ["workflow"],
        },
        output_schema=_ANY,
    ),
]
