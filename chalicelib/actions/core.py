"""The `core` pack: control-flow and data actions, and HTTP (SPEC §5)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from chalicelib.actions.base import ActionContext, AwaitResponse, Sleep, StartChild
from chalicelib.actions.errors import ActionError
from chalicelib.actions.registry import ActionSpec
from chalicelib.logs import logger

_ANY: dict = {}
_OBJECT = {"type": "object"}


def noop(input: dict, ctx: ActionContext) -> None:
    return None


def echo(input: dict, ctx: ActionContext) -> dict:
    return input


def log(input: dict, ctx: ActionContext) -> dict:
    level = input.get("level", "info")
    getattr(logger, level)(input["message"], extra={
        "execution_id": ctx.execution_id, "step": ctx.step, "attempt": ctx.attempt, "data": input.get("data")})
    return {"logged": True}


def fail(input: dict, ctx: ActionContext) -> None:
    raise ActionError(input.get("code", "FAILED"), input["message"], retryable=False)


def _parse_time(value: str) -> float:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ActionError("INVALID_INPUT", f"until: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def sleep(input: dict, ctx: ActionContext) -> Sleep:
    until = _parse_time(input["until"]) if "until" in input else ctx.now() + float(input["seconds"])
    return Sleep(until=until)


def transform(input: dict, ctx: ActionContext) -> Any:
    expression = input.get("expression")
    if not expression:
        return input["data"]
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(expression, input["data"])
    except JMESPathError as error:
        raise ActionError("INVALID_INPUT", f"expression: {error}") from None


def condition(input: dict, ctx: ActionContext) -> dict:
    return {"result": bool(input["condition"])}


def inquiry(input: dict, ctx: ActionContext) -> AwaitResponse:
    if input.get("schema") is not None:
        from chalicelib.schemas import schema_problems

        problems = schema_problems(input["schema"], "schema")
        if problems:
            raise ActionError("INVALID_INPUT", f"{problems[0][0]}: {problems[0][1]}")
    return AwaitResponse(message=input.get("message"), approvers=tuple(input.get("approvers", ())),
                         timeout=input.get("timeout"), schema=input.get("schema"))


def http(input: dict, ctx: ActionContext) -> dict:
    from chalicelib.actions.http import http_request  # requests is imported by the steps that need it

    return http_request(input, idempotency_key=ctx.idempotency_key, timeout=ctx.timeout,
                        allow_private=ctx.allow_private_networks)


def run_workflow(input: dict, ctx: ActionContext) -> StartChild:
    return StartChild(workflow=input["workflow"], parameters=input.get("parameters") or {})

SPECS = [
    ActionSpec(
        ref="core.noop",
        run=noop,
        description="Does nothing and succeeds.",
        input_schema={"type": "object"},
        output_schema={"type": "null"},
    ),
    ActionSpec(
        ref="core.echo",
        run=echo,
        description="Returns its input as its output.",
        input_schema={"type": "object"},
        output_schema=_OBJECT,
    ),
    ActionSpec(
        ref="core.log",
        run=log,
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
        run=fail,
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
        run=sleep,
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
        run=transform,
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
        run=condition,
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
        run=inquiry,
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
        run=http,
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
        run=run_workflow,
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
