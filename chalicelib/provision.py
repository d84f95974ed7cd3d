"""Creates the resources of infra/resources.yaml with boto3, for moto's server and test fixtures."""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

TEMPLATE_PATH = pathlib.Path(__file__).resolve().parent.parent / "infra" / "resources.yaml"

# Not CloudFormation itself: moto's CloudFormation silently drops TTL and point-in-time
# recovery, so each resource is created here with the calls AWS would make for it.


class TemplateError(Exception):
    """The template uses something this module cannot create faithfully."""


# --- loading ---------------------------------------------------------------------------

_SHORT_FORM_FUNCTIONS = (
    "Base64", "Cidr", "FindInMap", "GetAtt", "GetAZs", "ImportValue", "Join", "Select",
    "Split", "Sub", "Transform", "And", "Equals", "If", "Not", "Or", "ToJsonString",
    "Length",
)


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader plus the CloudFormation short-form tags; SafeLoader itself is untouched."""


def _construct_node(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _short_form(key: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
        value = _construct_node(loader, node)
        if key == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {key: value}

    return construct


_TemplateLoader.add_constructor("!Ref", _short_form("Ref"))
_TemplateLoader.add_constructor("!Condition", _short_form("Condition"))
for _name in _SHORT_FORM_FUNCTIONS:
    _TemplateLoader.add_constructor(f"!{_name}", _short_form(f"Fn::{_name}"))


def load_template(path: pathlib.Path = TEMPLATE_PATH) -> dict:
    with open(path, encoding="utf-8") as stream:
        return yaml.load(stream, Loader=_TemplateLoader)


# --- resolving intrinsic functions ---------------------------------------------------------

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass
class _Names:
    """What `Ref`, `Fn::GetAtt` and `Fn::Sub` can see: pseudo parameters, parameters, and
    the resources created so far."""

    parameters: dict[str, str]
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"Ref to unknown or not yet created name {name!r}")

    def attribute(self, resource: str, attribute: str) -> str:
        try:
            return self.attributes[(resource, attribute)]
        except KeyError:
            raise TemplateError(f"unsupported Fn::GetAtt {resource}.{attribute}") from None


def _resolve(value: Any, names: _Names) -> Any:
    if isinstance(value, list):
        return [_resolve(item, names) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, argument), = value.items()
        if key == "Ref":
            return names.ref(argument)
        if key == "Fn::GetAtt":
            return names.attribute(*argument)
        if key == "Fn::Sub":
            return _resolve_sub(argument, names)
        if key.startswith("Fn::") or key == "Condition":
            raise TemplateError(f"unsupported intrinsic function {key}")
    return {key: _resolve(item, names) for key, item in value.items()}


def _resolve_sub(argument: str | list, names: _Names) -> str:
    if isinstance(argument, list):
        text, variables = argument
        variables = {key: _resolve(item, names) for key, item in variables.items()}
    else:
        text, variables = argument, {}

    def substitute(match: re.Match) -> str:
        variable = match.group(1)
        if variable.startswith("!"):  # ${!Literal} is written out as ${Literal}
            return "${" + variable[1:] + "}"
        if variable in variables:
            return str(variables[variable])
        if "." in variable and not variable.startswith("AWS::"):
            return names.attribute(*variable.split(".", 1))
        return names.ref(variable)

    return _SUB_VARIABLE.sub(substitute, text)


def _referenced_names(value: Any) -> set[str]:
    """Every logical name `value` refers to; the caller keeps the resources among them."""
    if isinstance(value, list):
        return set().union(*(_referenced_names(item) for item in value))
    if not isinstance(value, dict):
        return set()
    found = set()
    for key, argument in value.items():
        if key == "Ref":
            found.add(argument)
        elif key == "Fn::GetAtt":
            found.add(argument[0])
        elif key == "Fn::Sub":
            text = argument[0] if isinstance(argument, list) else argument
            found |= {name.split(".", 1)[0] for name in _SUB_VARIABLE.findall(text)}
            if isinstance(argument, list):
                found |= _referenced_names(argument[1])
        else:
            found |= _referenced_names(argument)
    return found


def _creation_order(resources: dict[str, dict]) -> list[str]:
    """Template order, except that a resource comes after everything it refers to."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order:
            return
        if logical_id in visiting:
            raise TemplateError(f"circular reference through {logical_id}")
        visiting.add(logical_id)
        resource = resources[logical_id]
        depends_on = resource.get("DependsOn", [])
        depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
        referenced = _referenced_names(resource.get("Properties", {})) | set(depends_on)
        for dependency in [other for other in resources if other in referenced]:
            visit(dependency)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in resources:
        visit(logical_id)
    return order


# --- creating resources ------------------------------------------------------------------


@dataclass
class _Target:
    """The account and region resources are created in, with one client per service."""

    session: boto3.session.Session
    account_id: str
    region: str
    partition: str
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]


@dataclass(frozen=True)
class _Created:
    ref: str  # what `Ref` returns for this resource type
    arn: str


def _check_properties(resource_type: str, properties: dict, supported: set[str]) -> None:
    # A property that is not applied here would exist in AWS and not locally: refuse it.
    unsupported = sorted(properties.keys() - supported)
    if unsupported:
        raise TemplateError(f"{resource_type}: unsupported properties {unsupported}")


def _error_code(error: ClientError) -> str:
    return error.response["Error"]["Code"]


_TABLE_PROPERTIES = {
    "TableName", "BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
    "TimeToLiveSpecification", "PointInTimeRecoverySpecification", "SSESpecification",
}


def _create_table(target: _Target, properties: dict) -> _Created:
    _check_properties("AWS::DynamoDB::Table", properties, _TABLE_PROPERTIES)
    dynamodb = target.client("dynamodb")
    name = properties["TableName"]
    request = {
        "TableName": name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if "GlobalSecondaryIndexes" in properties:
        request["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    if "SSESpecification" in properties:
        request["SSESpecification"] = _table_sse(properties["SSESpecification"])
    try:
        dynamodb.create_table(**request)
    except ClientError as error:
        if _error_code(error) != "ResourceInUseException":
            raise
        return _Created(ref=name, arn=_table_arn(dynamodb, name))
    _configure_table(dynamodb, name, properties)
    return _Created(ref=name, arn=_table_arn(dynamodb, name))


def _configure_table(dynamodb: Any, name: str, properties: dict) -> None:
    # Settings CreateTable does not take; they need the table ACTIVE.
    dynamodb.get_waiter("table_exists").wait(TableName=name)
    if "TimeToLiveSpecification" in properties:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification=properties["TimeToLiveSpecification"]
        )
    if "PointInTimeRecoverySpecification" in properties:
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification=properties["PointInTimeRecoverySpecification"],
        )


def _table_sse(specification: dict) -> dict:
    # CloudFormation spells the flag SSEEnabled; the DynamoDB API spells it Enabled.
    sse = {"Enabled": specification["SSEEnabled"]}
    if "SSEType" in specification:
        sse["SSEType"] = specification["SSEType"]
    if "KMSMasterKeyId" in specification:
        sse["KMSMasterKeyId"] = specification["KMSMasterKeyId"]
    return sse


def _table_arn(dynamodb: Any, name: str) -> str:
    return dynamodb.describe_table(TableName=name)["Table"]["TableArn"]


# CloudFormation's AWS::SQS::Queue properties carry the SQS attribute names.
_QUEUE_ATTRIBUTES = {
    "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds", "VisibilityTimeout", "RedrivePolicy",
    "RedriveAllowPolicy", "SqsManagedSseEnabled", "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds", "FifoQueue", "ContentBasedDeduplication",
    "DeduplicationScope", "FifoThroughputLimit",
}


def _create_queue(target: _Target, properties: dict) -> _Created:
    _check_properties("AWS::SQS::Queue", properties, _QUEUE_ATTRIBUTES | {"QueueName"})
    sqs = target.client("sqs")
    name = properties["QueueName"]
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as error:
        if _error_code(error) != "AWS.SimpleQueueService.NonExistentQueue":
            raise
        attributes = {
            key: _queue_attribute(value) for key, value in properties.items() if key != "QueueName"
        }
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return _Created(ref=url, arn=arn["QueueArn"])


def _queue_attribute(value: Any) -> str:
    # SQS takes every attribute as a string: policies as JSON, flags as true/false.
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _create_event_bus(target: _Target, properties: dict) -> _Created:
    _check_properties("AWS::Events::EventBus", properties, {"Name"})
    events = target.client("events")
    name = properties["Name"]
    try:
        arn = events.create_event_bus(Name=name)["EventBusArn"]
    except ClientError as error:
        if _error_code(error) != "ResourceAlreadyExistsException":
            raise
        arn = events.describe_event_bus(Name=name)["Arn"]
    return _Created(ref=name, arn=arn)


_BUCKET_PROPERTIES = {
    "BucketName", "PublicAccessBlockConfiguration", "BucketEncryption",
    "NotificationConfiguration", "LifecycleConfiguration",
}


def _create_bucket(target: _Target, properties: dict) -> _Created:
    _check_properties("AWS::S3::Bucket", properties, _BUCKET_PROPERTIES)
    s3 = target.client("s3")
    name = properties["BucketName"]
    created = _Created(ref=name, arn=f"arn:{target.partition}:s3:::{name}")
    if _bucket_exists(s3, name):
        return created
    request: dict[str, Any] = {"Bucket": name}
    if target.region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
    s3.create_bucket(**request)
    _configure_bucket(s3, name, properties)
    return created


def _bucket_exists(s3: Any, name: str) -> bool:
    # Asked first because in us-east-1 CreateBucket succeeds again on one's own bucket.
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as error:
        if _error_code(error) not in ("404", "NoSuchBucket"):
            raise
        return False
    return True


def _configure_bucket(s3: Any, name: str, properties: dict) -> None:
    if "PublicAccessBlockConfiguration" in properties:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"],
        )
    if "BucketEncryption" in properties:
        encryption = _bucket_encryption(properties["BucketEncryption"])
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=encryption)
    if "NotificationConfiguration" in properties:
        notifications = _bucket_notifications(properties["NotificationConfiguration"])
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration=notifications
        )
    if "LifecycleConfiguration" in properties:
        lifecycle = _bucket_lifecycle(properties["LifecycleConfiguration"])
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=lifecycle)


def _bucket_encryption(encryption: dict) -> dict:
    rules = []
    for rule in encryption["ServerSideEncryptionConfiguration"]:
        _check_properties(
            "AWS::S3::Bucket encryption rule", rule,
            {"ServerSideEncryptionByDefault", "BucketKeyEnabled"},
        )
        api_rule: dict[str, Any] = {
            "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]
        }
        if "BucketKeyEnabled" in rule:
            api_rule["BucketKeyEnabled"] = rule["BucketKeyEnabled"]
        rules.append(api_rule)
    return {"Rules": rules}


def _bucket_notifications(notifications: dict) -> dict:
    _check_properties(
        "AWS::S3::Bucket notification", notifications, {"EventBridgeConfiguration"}
    )
    if notifications["EventBridgeConfiguration"].get("EventBridgeEnabled", True):
        # The S3 API enables EventBridge with an empty element, not a flag.
        return {"EventBridgeConfiguration": {}}
    return {}


def _bucket_lifecycle(lifecycle: dict) -> dict:
    rules = []
    for rule in lifecycle["Rules"]:
        _check_properties(
            "AWS::S3::Bucket lifecycle rule", rule,
            {"Id", "Status", "Prefix", "AbortIncompleteMultipartUpload", "ExpirationInDays"},
        )
        api_rule: dict[str, Any] = {
            "Status": rule["Status"],
            "Filter": {"Prefix": rule.get("Prefix", "")},
        }
        if "Id" in rule:
            api_rule["ID"] = rule["Id"]
        if "AbortIncompleteMultipartUpload" in rule:
            api_rule["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
        if "ExpirationInDays" in rule:
            api_rule["Expiration"] = {"Days": rule["ExpirationInDays"]}
        rules.append(api_rule)
    return {"Rules": rules}


@dataclass(frozen=True)
class ResourceType:
    create: Callable[[_Target, dict], _Created]
    group: str  # the Provisioned field that lists resources of this type


RESOURCE_TYPES: dict[str, ResourceType] = {
    "AWS::DynamoDB::Table": ResourceType(_create_table, "tables"),
    "AWS::SQS::Queue": ResourceType(_create_queue, "queues"),
    "AWS::Events::EventBus": ResourceType(_create_event_bus, "buses"),
    "AWS::S3::Bucket": ResourceType(_create_bucket, "buckets"),
}


# --- provisioning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Provisioned:
    tables: dict[str, str]  # logical id -> table name
    queues: dict[str, str]  # logical id -> queue URL
    buses: dict[str, str]  # logical id -> bus name
    buckets: dict[str, str]  # logical id -> bucket name


def provision(
    session: boto3.session.Session, stage: str, *, template: dict | None = None
) -> Provisioned:
    """Create every resource of the template that does not exist yet; existing ones are
    left as they are."""
    template = load_template() if template is None else template
    resources = template.get("Resources", {})
    _check_resource_types(resources)
    target = _target(session)
    names = _Names(parameters=_parameters(template, stage, target))
    groups: dict[str, dict[str, str]] = {"tables": {}, "queues": {}, "buses": {}, "buckets": {}}
    for logical_id in _creation_order(resources):
        resource = resources[logical_id]
        resource_type = RESOURCE_TYPES[resource["Type"]]
        properties = _resolve(resource.get("Properties", {}), names)
        created = resource_type.create(target, properties)
        names.refs[logical_id] = created.ref
        names.attributes[(logical_id, "Arn")] = created.arn
        groups[resource_type.group][logical_id] = created.ref
    return Provisioned(**groups)


def _check_resource_types(resources: dict[str, dict]) -> None:
    for logical_id, resource in resources.items():
        if resource["Type"] not in RESOURCE_TYPES:
            raise TemplateError(f"{logical_id}: unsupported resource type {resource['Type']}")


def _target(session: boto3.session.Session) -> _Target:
    region = session.region_name
    if not region:
        raise TemplateError("the session has no region")
    account_id = session.client("sts", region_name=region).get_caller_identity()["Account"]
    partition = session.get_partition_for_region(region)
    return _Target(session=session, account_id=account_id, region=region, partition=partition)


def _parameters(template: dict, stage: str, target: _Target) -> dict[str, str]:
    values = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
    values["Stage"] = stage
    missing = sorted(name for name, value in values.items() if value is None)
    if missing:
        raise TemplateError(f"parameters without a value: {missing}")
    return {
        **{name: str(value) for name, value in values.items()},
        "AWS::AccountId": target.account_id,
        "AWS::Region": target.region,
        "AWS::Partition": target.partition,
    }
