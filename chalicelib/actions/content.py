"""The content actions (SPEC §5): `document.parse`, `document.extract`, `text.sentiment`
and `text.topics`. The computing is in chalicelib/documents.py; here are the reads."""

from __future__ import annotations

from typing import Any

from chalicelib.actions.base import ActionContext
from chalicelib.actions.errors import ActionError
from chalicelib.actions.registry import ActionSpec
from chalicelib.config import get_settings

READ_MAX = 20 * 1024 * 1024
_ANY: dict = {}


def _read(input: dict, ctx: ActionContext) -> tuple[bytes, str | None, str | None, dict[str, Any]]:
    """(bytes, filename, declared content type, what is known of the document)."""
    from chalicelib.wiring import document_service

    settings = get_settings()
    if input.get("document_id"):
        record = document_service().repository.get(ctx.account_id, input["document_id"])
        if record is None or record.get("status") == "pending":
            raise ActionError("DOCUMENT_NOT_FOUND", f"no uploaded document '{input['document_id']}'")
        bucket, key = settings.payload_bucket, record["key"]
        known = {k: record.get(k) for k in ("document_id", "filename", "knowledge_base_id")}
        known["document_id"] = record["id"]
        filename, declared = record.get("filename"), record.get("content_type")
    elif input.get("bucket") and input.get("key"):
        bucket, key = input["bucket"], input["key"]
        if bucket == settings.payload_bucket and not key.startswith(f"documents/{ctx.account_id}/"):
            raise ActionError("BLOCKED_DESTINATION", "key: only this account's documents/ are readable here")
        known, filename, declared = {"bucket": bucket, "key": key}, key.rsplit("/", 1)[-1], None
    else:
        raise ActionError("INVALID_INPUT", "give `document_id`, or `bucket` and `key`")
    from chalicelib.actions.aws import _call, _client, _guard
    from chalicelib.wiring import aws_client

    if bucket == settings.payload_bucket:
        client = aws_client("s3")
    else:
        _guard(input, "bucket")
        client = _client("s3", input, ctx)
    answer = _call(client, "get_object", Bucket=bucket, Key=key)
    if int(answer.get("ContentLength") or 0) > READ_MAX:
        raise ActionError("DOCUMENT_TOO_LARGE", f"the document is over {READ_MAX // (1024 * 1024)} MB")
    return answer["Body"].read(READ_MAX + 1), filename, declared or answer.get("ContentType"), known


def document_parse(input: dict, ctx: ActionContext) -> dict:
    from chalicelib.documents import DocumentError, media_type, parse

    content, filename, declared, known = _read(input, ctx)
    try:
        parsed = parse(content, media_type(filename, declared, content))
    except DocumentError as error:
        raise ActionError(error.code, error.message) from None
    parsed["metadata"] = {**known, "size": len(content), **parsed["metadata"]}
    return parsed


def document_extract(input: dict, ctx: ActionContext) -> dict:
    from chalicelib.documents import extract, schema_problems

    schema = input.get("schema")
    if schema is None and input.get("schema_id"):
        from chalicelib.wiring import extraction_schemas

        found = extraction_schemas().find(ctx.account_id, input["schema_id"])
        if found is None:
            raise ActionError("INVALID_INPUT", f"schema_id: no extraction schema '{input['schema_id']}'")
        schema = found
    if schema is None:
        raise ActionError("INVALID_INPUT", "give `schema` or `schema_id`")
    problems = schema_problems(schema)
    if problems:
        raise ActionError("INVALID_INPUT", f"{problems[0][0]}: {problems[0][1]}")
    return extract(input["text"], schema)


def text_sentiment(input: dict, ctx: ActionContext) -> dict:
    from chalicelib.documents import sentiment

    return sentiment(input["text"])


def text_topics(input: dict, ctx: ActionContext) -> dict:
    from chalicelib.documents import topics

    return topics(input["text"], int(input.get("max_topics", 5)), input.get("language", "en"))


_FIELDS_SCHEMA = {"type": "object", "properties": {"fields": {"type": "array"}}, "required": ["fields"]}

SPECS = [
    ActionSpec(
        ref="document.parse", run=document_parse,
        description="Reads a document (PDF, text, CSV, JSON, HTML) into text, by `document_id` or `bucket` + `key`.",
        input_schema={"type": "object", "properties": {
            "document_id": {"type": "string"}, "bucket": {"type": "string"}, "key": {"type": "string"},
            "role_arn": {"type": "string"}, "region": {"type": "string"}}},
        output_schema={"type": "object", "properties": {
            "text": {"type": "string"}, "pages": {"type": "integer"}, "content_type": {"type": "string"},
            "metadata": {"type": "object"}}, "required": ["text", "pages", "content_type", "metadata"]},
    ),
    ActionSpec(
        ref="document.extract", run=document_extract,
        description="Extracts typed fields (string, number, date, money) from text by an extraction schema: "
                    "patterns, keywords, required.",
        input_schema={"type": "object", "properties": {
            "text": {"type": "string"}, "schema": _FIELDS_SCHEMA, "schema_id": {"type": "string"}},
            "required": ["text"]},
        output_schema={"type": "object", "properties": {"fields": {"type": "object"}, "missing": {"type": "array"}},
                       "required": ["fields", "missing"]},
    ),
    ActionSpec(
        ref="text.sentiment", run=text_sentiment,
        description="The sentiment of a text (VADER): label positive / negative / neutral / mixed, score -1..1.",
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        output_schema={"type": "object", "properties": {
            "label": {"enum": ["positive", "negative", "neutral", "mixed"]},
            "score": {"type": "number", "minimum": -1, "maximum": 1}}, "required": ["label", "score"]},
    ),
    ActionSpec(
        ref="text.topics", run=text_topics,
        description="The key topics of a text (YAKE key phrases), most relevant first.",
        input_schema={"type": "object", "properties": {
            "text": {"type": "string"}, "max_topics": {"type": "integer", "minimum": 1, "maximum": 20},
            "language": {"type": "string", "minLength": 2, "maxLength": 5}}, "required": ["text"]},
        output_schema={"type": "object", "properties": {"topics": {"type": "array", "items": {"type": "string"}}},
                       "required": ["topics"]},
    ),
]
