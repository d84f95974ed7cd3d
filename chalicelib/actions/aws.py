"""Actions that call AWS (SPEC §5): `email.send` through Amazon SES, and the `aws.*` calls
of those names through boto3.

Whose credentials: an `aws.*` call runs as `role_arn` (usually from an `aws`
integration's config) or else the deployment's actions role (`SLUICE_ACTIONS_ROLE_ARN`),
assumed through STS with the Sluice account as external id; without either it runs as
the step worker itself. Whatever the role, a call may not name Sluice's own resources:
a workflow cannot read the API keys table, or put events on Sluice's bus, by naming them."""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from typing import Any

from chalicelib.actions.base import ActionContext
from chalicelib.actions.errors import ActionError
from chalicelib.actions.registry import ActionSpec
from chalicelib.config import get_settings

RETRYABLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestThrottled", "SlowDown", "ServiceUnavailable",
    "InternalError", "InternalFailure", "InternalServerError", "ServiceException", "RequestTimeout",
})
_ANY: dict = {}
_credentials_lock = threading.Lock()
_assumed: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}


def _credentials(role_arn: str, ctx: ActionContext) -> dict[str, str]:
    """Temporary credentials of the role, reused until five minutes before they expire."""
    with _credentials_lock:
        cached = _assumed.get((role_arn, ctx.account_id))
        if cached and cached[0] - 300 > time.time():
            return cached[1]
    from chalicelib.wiring import aws_client

    # The account is the external id: a role trusts one Sluice account, not all of them.
    answer = aws_client("sts").assume_role(RoleArn=role_arn, RoleSessionName=f"sluice-{ctx.account_id}"[:64],
                                           ExternalId=ctx.account_id)
    raw = answer["Credentials"]
    credentials = {"aws_access_key_id": raw["AccessKeyId"], "aws_secret_access_key": raw["SecretAccessKey"],
                   "aws_session_token": raw["SessionToken"]}
    with _credentials_lock:
        _assumed[(role_arn, ctx.account_id)] = (raw["Expiration"].timestamp(), credentials)
    return credentials


@functools.lru_cache(maxsize=64)
def _client_for(service: str, region: str, credentials: tuple[tuple[str, str], ...]):
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
    return boto3.client(service, region_name=region, config=config, **dict(credentials))


def _client(service: str, input: dict, ctx: ActionContext):
    settings = get_settings()
    role = input.get("role_arn") or settings.actions_role_arn
    region = input.get("region") or settings.region
    try:
        credentials = tuple(sorted(_credentials(role, ctx).items())) if role else ()
    except Exception as error:
        raise _mapped(error, "AssumeRole") from None
    return _client_for(service, region, credentials)


def _guard(input: dict, *names: str) -> None:
    """A call may not name Sluice's own resources (its tables, queues, bus, bucket,
    functions: `sluice-<stage>` and what follows it), whatever the role, in any field or
    ARN; nor put events that claim a Sluice account."""
    own = re.compile(rf"sluice-{re.escape(get_settings().stage)}(?![A-Za-z0-9])")

    def strings(value: Any):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    for name in names:
        for text in strings(input.get(name)):
            if own.search(text):
                raise ActionError("BLOCKED_DESTINATION", f"{name}: Sluice's own resources are not reachable "
                                                         "from a workflow")
            if text.startswith("sluice:account:"):
                raise ActionError("BLOCKED_DESTINATION", f"{name}: events may not name a Sluice account")


def _mapped(error: Exception, operation: str) -> ActionError:
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "Unknown")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        message = error.response.get("Error", {}).get("Message", "")
        return ActionError("AWS_ERROR", f"{operation}: {code}: {message}",
                           retryable=code in RETRYABLE_CODES or status >= 500,
                           details={"aws_code": code, "status_code": status})
    if isinstance(error, EndpointConnectionError):
        return ActionError("CONNECTION_ERROR", f"{operation}: {error}", retryable=True)
    if isinstance(error, BotoCoreError):
        return ActionError("AWS_ERROR", f"{operation}: {error}", retryable=False)
    raise error


def _call(client: Any, operation: str, **params: Any) -> dict:
    try:
        return getattr(client, operation)(**{k: v for k, v in params.items() if v is not None})
    except Exception as error:
        raise _mapped(error, operation) from None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def _addresses(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


# -- email -------------------------------------------------------------------------------

def email_send(input: dict, ctx: ActionContext) -> dict:
    sender = input.get("from") or get_settings().email_from
    if not sender:
        raise ActionError("INVALID_INPUT", "from: no sender given and SLUICE_EMAIL_FROM is not configured")
    if input.get("body") is None and input.get("html") is None:
        raise ActionError("INVALID_INPUT", "give `body` (text), `html`, or both")
    body = {}
    if input.get("body") is not None:
        body["Text"] = {"Data": _text(input["body"]), "Charset": "UTF-8"}
    if input.get("html") is not None:
        body["Html"] = {"Data": input["html"], "Charset": "UTF-8"}
    destination = {"ToAddresses": _addresses(input["to"]), "CcAddresses": _addresses(input.get("cc")),
                   "BccAddresses": _addresses(input.get("bcc"))}
    from chalicelib.wiring import aws_client

    answer = _call(aws_client("ses"), "send_email", Source=sender, Destination=destination,
                   Message={"Subject": {"Data": input["subject"], "Charset": "UTF-8"}, "Body": body},
                   ReplyToAddresses=_addresses(input.get("reply_to")) or None)
    return {"message_id": answer["MessageId"]}


# -- aws.* -------------------------------------------------------------------------------

def sqs_send(input: dict, ctx: ActionContext) -> dict:
    _guard(input, "queue_url")
    answer = _call(_client("sqs", input, ctx), "send_message", QueueUrl=input["queue_url"],
                   MessageBody=_text(input["message_body"]), DelaySeconds=input.get("delay_seconds"),
                   MessageGroupId=input.get("message_group_id"),
                   MessageDeduplicationId=input.get("message_deduplication_id"))
    return {"message_id": answer["MessageId"]}


def sns_publish(input: dict, ctx: ActionContext) -> dict:
    _guard(input, "topic_arn")
    answer = _call(_client("sns", input, ctx), "publish", TopicArn=input["topic_arn"],
                   Message=_text(input["message"]), Subject=input.get("subject"))
    return {"message_id": answer["MessageId"]}


def eventbridge_put(input: dict, ctx: ActionContext) -> dict:
    _guard(input, "event_bus_name", "resources")
    if str(input["source"]).startswith("aws."):
        raise ActionError("BLOCKED_DESTINATION", "source: events may not claim to come from AWS")
    entry = {"Source": input["source"], "DetailType": input["detail_type"], "Detail": _text(input.get("detail", {})),
             "EventBusName": input.get("event_bus_name"), "Resources": input.get("resources")}
    answer = _call(_client("events", input, ctx), "put_events",
                   Entries=[{k: v for k, v in entry.items() if v is not None}])
    [result] = answer["Entries"]
    if answer.get("FailedEntryCount") or "ErrorCode" in result:
        raise ActionError("AWS_ERROR", f"put_events: {result.get('ErrorCode')}: {result.get('ErrorMessage')}",
                          retryable=result.get("ErrorCode") in RETRYABLE_CODES)
    return {"event_id": result["EventId"]}


def s3_put(input: dict, ctx: ActionContext) -> dict:
    _guard(input, "bucket")
    body = input["body"]
    content_type = input.get("content_type") or ("text/plain; charset=utf-8" if isinstance(body, str)
                                                 else "application/json")
    answer = _call(_client("s3", input, ctx), "put_object", Bucket=input["bucket"], Key=input["key"],
                   Body=_text(body).encode(), ContentType=content_type)
    return {"bucket": input["bucket"], "key": input["key"], "etag": answer.get("ETag", "").strip('"'),
            "version_id": answer.get("VersionId")}


def lambda_invoke(input: dict, ctx: ActionContext) -> dict:
    _guard(input, "function_name")
    answer = _call(_client("lambda", input, ctx), "invoke", FunctionName=input["function_name"],
                   InvocationType=input.get("invocation_type", "RequestResponse"),
                   Payload=_text(input.get("payload", {})).encode())
    raw = answer["Payload"].read() if answer.get("Payload") is not None else b""
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode("utf-8", errors="replace")
    if answer.get("FunctionError"):
        raise ActionError("LAMBDA_FUNCTION_ERROR", f"{input['function_name']} failed: {answer['FunctionError']}",
                          details={"payload": payload})
    return {"status_code": answer["StatusCode"], "payload": payload}


def _dynamodb(value: Any) -> dict:
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer().serialize(_decimals(value))


def _decimals(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


def _plain(item: dict) -> Any:
    from decimal import Decimal

    from boto3.dynamodb.types import TypeDeserializer

    def unwrap(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dict):
            return {k: unwrap(v) for k, v in value.items()}
        if isinstance(value, (list, set)):
            return [unwrap(v) for v in value]
        return value

    deserializer = TypeDeserializer()
    return {k: unwrap(deserializer.deserialize(v)) for k, v in item.items()}


def dynamodb_put(input: dict, ctx: ActionContext) -> dict:
    _guard(input, "table_name")
    item = {k: _dynamodb(v) for k, v in input["item"].items()}
    values = {k: _dynamodb(v) for k, v in (input.get("expression_attribute_values") or {}).items()} or None
    _call(_client("dynamodb", input, ctx), "put_item", TableName=input["table_name"], Item=item,
          ConditionExpression=input.get("condition_expression"), ExpressionAttributeValues=values,
          ExpressionAttributeNames=input.get("expression_attribute_names"))
    return {"table_name": input["table_name"]}


def dynamodb_query(input: dict, ctx: ActionContext) -> dict:
    _guard(input, "table_name")
    values = {k: _dynamodb(v) for k, v in (input.get("expression_attribute_values") or {}).items()} or None
    answer = _call(_client("dynamodb", input, ctx), "query", TableName=input["table_name"],
                   IndexName=input.get("index_name"), KeyConditionExpression=input["key_condition_expression"],
                   FilterExpression=input.get("filter_expression"), ExpressionAttributeValues=values,
                   ExpressionAttributeNames=input.get("expression_attribute_names"), Limit=input.get("limit"),
                   ScanIndexForward=input.get("scan_forward"))
    last = answer.get("LastEvaluatedKey")
    return {"items": [_plain(i) for i in answer.get("Items", [])], "count": answer.get("Count", 0),
            "last_evaluated_key": _plain(last) if last else None}


_ROLE = {"role_arn": {"type": "string", "pattern": "^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$"},
         "region": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]$"}}
_NAME = {"type": "string", "minLength": 1}
_ADDRESSES = {"oneOf": [{"type": "string", "minLength": 3}, {"type": "array", "items": {"type": "string"}}]}


def _spec(ref: str, run: Any, description: str, properties: dict, required: list[str], output: dict) -> ActionSpec:
    return ActionSpec(ref=ref, run=run, description=description,
                      input_schema={"type": "object", "properties": {**_ROLE, **properties}, "required": required},
                      output_schema={"type": "object", "properties": output, "required": list(output)})


SPECS = [
    ActionSpec(
        ref="email.send", run=email_send,
        description="Sends an email through Amazon SES (text `body`, `html`, or both); `from` defaults to SLUICE_EMAIL_FROM.",
        input_schema={"type": "object", "properties": {
            "to": _ADDRESSES, "cc": _ADDRESSES, "bcc": _ADDRESSES, "reply_to": _ADDRESSES,
            "from": {"type": "string"}, "subject": {"type": "string", "minLength": 1}, "body": _ANY,
            "html": {"type": "string"}}, "required": ["to", "subject"]},
        output_schema={"type": "object", "properties": {"message_id": {"type": "string"}}, "required": ["message_id"]},
    ),
    _spec("aws.sqs_send", sqs_send, "Sends a message to an SQS queue (an object body is sent as JSON).",
          {"queue_url": _NAME, "message_body": _ANY, "delay_seconds": {"type": "integer", "minimum": 0, "maximum": 900},
           "message_group_id": {"type": "string"}, "message_deduplication_id": {"type": "string"}},
          ["queue_url", "message_body"], {"message_id": {"type": "string"}}),
    _spec("aws.sns_publish", sns_publish, "Publishes a message to an SNS topic.",
          {"topic_arn": _NAME, "message": _ANY, "subject": {"type": "string"}},
          ["topic_arn", "message"], {"message_id": {"type": "string"}}),
    _spec("aws.eventbridge_put", eventbridge_put, "Puts one event on an EventBridge bus (default: the default bus).",
          {"event_bus_name": {"type": "string"}, "source": _NAME, "detail_type": _NAME, "detail": _ANY,
           "resources": {"type": "array", "items": {"type": "string"}}},
          ["source", "detail_type"], {"event_id": {"type": "string"}}),
    _spec("aws.s3_put", s3_put, "Stores an object in S3 (an object body is stored as JSON).",
          {"bucket": _NAME, "key": _NAME, "body": _ANY, "content_type": {"type": "string"}},
          ["bucket", "key", "body"], {"bucket": {"type": "string"}, "key": {"type": "string"}, "etag": {"type": "string"}}),
    _spec("aws.lambda_invoke", lambda_invoke, "Invokes a Lambda function; a function error fails the step.",
          {"function_name": _NAME, "payload": _ANY, "invocation_type": {"enum": ["RequestResponse", "Event"]}},
          ["function_name"], {"status_code": {"type": "integer"}, "payload": _ANY}),
    _spec("aws.dynamodb_put", dynamodb_put, "Puts an item (plain JSON) into a DynamoDB table.",
          {"table_name": _NAME, "item": {"type": "object"}, "condition_expression": {"type": "string"},
           "expression_attribute_values": {"type": "object"}, "expression_attribute_names": {"type": "object"}},
          ["table_name", "item"], {"table_name": {"type": "string"}}),
    _spec("aws.dynamodb_query", dynamodb_query, "Queries a DynamoDB table or index; items come back as plain JSON.",
          {"table_name": _NAME, "index_name": {"type": "string"}, "key_condition_expression": _NAME,
           "filter_expression": {"type": "string"}, "expression_attribute_values": {"type": "object"},
           "expression_attribute_names": {"type": "object"}, "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
           "scan_forward": {"type": "boolean"}},
          ["table_name", "key_condition_expression"],
          {"items": {"type": "array"}, "count": {"type": "integer"}, "last_evaluated_key": _ANY}),
]
