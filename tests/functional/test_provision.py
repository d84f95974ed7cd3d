"""Provisioning infra/resources.yaml against moto creates exactly what the template declares."""

import json

import boto3
import pytest
from moto import mock_aws

from chalicelib import provision

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "eu-west-1"  # not us-east-1, so the bucket needs a location constraint
STAGE = "test"
PREFIX = f"sluice-{STAGE}"


def fake_aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # An endpoint override (the local runtime sets one) would send the calls past the mock.
    for service in ("", "_DYNAMODB", "_SQS", "_S3", "_EVENTBRIDGE", "_STS"):
        monkeypatch.delenv(f"AWS_ENDPOINT_URL{service}", raising=False)
    return mock_aws()


@pytest.fixture
def empty_session(monkeypatch):
    with fake_aws(monkeypatch):
        yield boto3.session.Session()


def queue_url(name):
    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"


def queue_arn(name):
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"


def index(name, hash_key, range_key, projection):
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": hash_key, "KeyType": "HASH"},
            {"AttributeName": range_key, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": projection},
    }


def by_account_index(hash_key, range_key):
    return {
        "IndexName": "by_account",
        "KeySchema": [
            {"AttributeName": hash_key, "KeyType": "HASH"},
            {"AttributeName": range_key, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


QUEUE_ATTRIBUTES = ["VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled"]


@pytest.fixture(scope="class")
def shared_account():
    # Provisioning costs ~0.5 s, mostly boto3 client creation, so the read-only checks share
    # one account. Class scope, not module scope: moto's mocks nest, and the shared account
    # must be gone before a test that needs an empty one starts.
    with pytest.MonkeyPatch.context() as monkeypatch, fake_aws(monkeypatch):
        session = boto3.session.Session()
        yield session, provision.provision(session, STAGE)


@pytest.fixture
def session(shared_account):
    return shared_account[0]


@pytest.fixture
def provisioned(shared_account):
    return shared_account[1]


class TestProvisionedAccount:
    """Read-only checks on one provisioned account."""

    def test_returns_every_resource_by_logical_id(self, provisioned):
        assert provisioned == provision.Provisioned(
            tables={
                "AccountsTable": f"{PREFIX}-accounts",
                "ApiKeysTable": f"{PREFIX}-api-keys",
                "WorkflowsTable": f"{PREFIX}-workflows",
                "TriggersTable": f"{PREFIX}-triggers",
                "ExecutionsTable": f"{PREFIX}-executions",
                "StepRunsTable": f"{PREFIX}-step-runs",
                "TrafficTable": f"{PREFIX}-traffic",
                "DeliveriesTable": f"{PREFIX}-deliveries",
            },
            queues={
                "StepDeadLetterQueue": queue_url(f"{PREFIX}-steps-dlq"),
                "StepQueue": queue_url(f"{PREFIX}-steps"),
                "DeliveryDeadLetterQueue": queue_url(f"{PREFIX}-deliveries-dlq"),
                "DeliveryQueue": queue_url(f"{PREFIX}-deliveries"),
            },
            buses={"EventBus": PREFIX},
            buckets={"PayloadBucket": f"{PREFIX}-payloads-{ACCOUNT_ID}-{REGION}"},
        )

    @pytest.mark.parametrize(
        ("name", "key_schema", "attributes", "indexes"),
        [
            (
                "accounts",
                [{"AttributeName": "id", "KeyType": "HASH"}],
                {"id": "S"},
                [],
            ),
            (
                "api-keys",
                [{"AttributeName": "key_hash", "KeyType": "HASH"}],
                {"key_hash": "S", "account_id": "S", "id": "S"},
                [by_account_index("account_id", "id")],
            ),
            (
                "workflows",
                [
                    {"AttributeName": "account_id", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                {"account_id": "S", "sk": "S"},
                [],
            ),
            (
                "triggers",
                [{"AttributeName": "id", "KeyType": "HASH"}],
                {"id": "S", "account_id": "S", "workflow_id": "S", "due_shard": "S", "fire_at": "N", "match_key": "S"},
                [by_account_index("account_id", "workflow_id"), index("due", "due_shard", "fire_at", "ALL"),
                 index("by_match", "match_key", "id", "ALL")],
            ),
            (
                "deliveries",
                [
                    {"AttributeName": "webhook_key", "KeyType": "HASH"},
                    {"AttributeName": "attempt_key", "KeyType": "RANGE"},
                ],
                {"webhook_key": "S", "attempt_key": "S"},
                [],
            ),
            (
                "traffic",
                [
                    {"AttributeName": "bucket_key", "KeyType": "HASH"},
                    {"AttributeName": "minute", "KeyType": "RANGE"},
                ],
                {"bucket_key": "S", "minute": "N"},
                [],
            ),
            (
                "executions",
                [
                    {"AttributeName": "account_id", "KeyType": "HASH"},
                    {"AttributeName": "id", "KeyType": "RANGE"},
                ],
                {"account_id": "S", "id": "S", "started_key": "S", "workflow_key": "S", "due_shard": "S", "due_at": "N"},
                [
                    index("by_started", "account_id", "started_key", "KEYS_ONLY"),
                    index("by_workflow", "workflow_key", "started_key", "KEYS_ONLY"),
                    index("due", "due_shard", "due_at", "KEYS_ONLY"),
                ],
            ),
            (
                "step-runs",
                [
                    {"AttributeName": "execution_key", "KeyType": "HASH"},
                    {"AttributeName": "name", "KeyType": "RANGE"},
                ],
                {"execution_key": "S", "name": "S"},
                [],
            ),
        ],
    )
    def test_table_keys_indexes_billing_and_protection(
        self, session, provisioned, name, key_schema, attributes, indexes
    ):
        dynamodb = session.client("dynamodb")
        table = dynamodb.describe_table(TableName=f"{PREFIX}-{name}")["Table"]

        assert table["KeySchema"] == key_schema
        assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == (
            attributes
        )
        assert [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
            for index in table.get("GlobalSecondaryIndexes", [])
        ] == indexes
        assert table.get("LocalSecondaryIndexes", []) == []
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["SSEDescription"]["Status"] == "ENABLED"
        backups = dynamodb.describe_continuous_backups(TableName=f"{PREFIX}-{name}")
        recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"

    def test_history_tables_expire_items(self, session, provisioned):
        dynamodb = session.client("dynamodb")
        ttl = {
            name: dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            for name in provisioned.tables.values()
        }

        assert ttl == {
            f"{PREFIX}-accounts": {"TimeToLiveStatus": "DISABLED"},
            f"{PREFIX}-api-keys": {"TimeToLiveStatus": "DISABLED"},
            f"{PREFIX}-workflows": {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"},
            f"{PREFIX}-triggers": {"TimeToLiveStatus": "DISABLED"},
            f"{PREFIX}-executions": {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"},
            f"{PREFIX}-step-runs": {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"},
            f"{PREFIX}-traffic": {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"},
            f"{PREFIX}-deliveries": {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"},
        }

    @pytest.mark.parametrize(
        ("logical_id", "dlq_logical_id", "dlq_name", "visibility_timeout"),
        [
            ("StepQueue", "StepDeadLetterQueue", f"{PREFIX}-steps-dlq", "960"),
            ("DeliveryQueue", "DeliveryDeadLetterQueue", f"{PREFIX}-deliveries-dlq", "720"),
        ],
    )
    def test_queue_redrives_to_its_dead_letter_queue(
        self, session, provisioned, logical_id, dlq_logical_id, dlq_name, visibility_timeout
    ):
        sqs = session.client("sqs")
        attributes = sqs.get_queue_attributes(
            QueueUrl=provisioned.queues[logical_id],
            AttributeNames=[*QUEUE_ATTRIBUTES, "RedrivePolicy"],
        )["Attributes"]
        dlq_attributes = sqs.get_queue_attributes(
            QueueUrl=provisioned.queues[dlq_logical_id],
            AttributeNames=[*QUEUE_ATTRIBUTES, "QueueArn", "RedrivePolicy"],
        )["Attributes"]

        assert json.loads(attributes.pop("RedrivePolicy")) == {
            "deadLetterTargetArn": queue_arn(dlq_name),
            "maxReceiveCount": 5,
        }
        assert attributes == {
            "VisibilityTimeout": visibility_timeout,
            "MessageRetentionPeriod": "345600",
            "SqsManagedSseEnabled": "true",
        }
        assert dlq_attributes == {
            "QueueArn": queue_arn(dlq_name),
            "VisibilityTimeout": "30",
            "MessageRetentionPeriod": str(14 * 24 * 3600),
            "SqsManagedSseEnabled": "true",
        }

    def test_event_bus(self, session, provisioned):
        bus = session.client("events").describe_event_bus(Name=PREFIX)

        assert bus["Name"] == PREFIX
        assert bus["Arn"] == f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{PREFIX}"

    def test_bucket_blocks_public_access_and_encrypts(self, session, provisioned):
        s3 = session.client("s3")
        bucket = provisioned.buckets["PayloadBucket"]

        assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION
        assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
        assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"] == {
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BucketKeyEnabled": False,
                }
            ]
        }
        assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == [
            {
                "ID": "abort-incomplete-multipart-uploads",
                "Filter": {"Prefix": ""},
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            },
            {
                "ID": "expire-traffic-firings",
                "Filter": {"Prefix": "traffic/"},
                "Status": "Enabled",
                "Expiration": {"Days": 2},
            },
        ]


def test_bucket_sends_object_events_to_eventbridge(empty_session):
    # moto's GetBucketNotificationConfiguration never reports EventBridgeConfiguration, so
    # check the behaviour instead: an upload reaches a rule matching S3's "Object Created".
    session = empty_session
    bucket = provision.provision(session, STAGE).buckets["PayloadBucket"]
    sqs = session.client("sqs")
    events = session.client("events")
    probe_url = sqs.create_queue(QueueName="probe")["QueueUrl"]
    events.put_rule(
        Name="s3-object-created",
        EventPattern=json.dumps(
            {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [bucket]}},
            }
        ),
    )
    events.put_targets(
        Rule="s3-object-created",
        Targets=[{"Id": "probe", "Arn": queue_arn("probe")}],
    )

    session.client("s3").put_object(Bucket=bucket, Key="payloads/x.json", Body=b"{}")

    messages = sqs.receive_message(QueueUrl=probe_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["detail"]["object"]["key"] for m in messages] == [
        "payloads/x.json"
    ]


def test_provisioning_twice_leaves_the_resources_as_they_are(empty_session):
    session = empty_session
    provisioned = provision.provision(session, STAGE)
    sqs = session.client("sqs")
    dynamodb = session.client("dynamodb")
    sqs.send_message(QueueUrl=provisioned.queues["StepQueue"], MessageBody="in flight")
    dynamodb.put_item(TableName=f"{PREFIX}-accounts", Item={"id": {"S": "acc-1"}})

    again = provision.provision(session, STAGE)

    assert again == provisioned
    attributes = sqs.get_queue_attributes(
        QueueUrl=provisioned.queues["StepQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "1"}
    assert dynamodb.scan(TableName=f"{PREFIX}-accounts")["Items"] == [{"id": {"S": "acc-1"}}]
    assert sorted(dynamodb.list_tables()["TableNames"]) == sorted(provisioned.tables.values())


def test_every_resource_type_in_the_template_is_handled():
    template = provision.load_template()
    types = {resource["Type"] for resource in template["Resources"].values()}

    assert types == {
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Events::EventBus",
        "AWS::S3::Bucket",
    }
    assert types <= provision.RESOURCE_TYPES.keys()


def test_template_short_forms_load_as_intrinsic_functions():
    resources = provision.load_template()["Resources"]

    assert resources["AccountsTable"]["Properties"]["TableName"] == {
        "Fn::Sub": "sluice-${Stage}-accounts"
    }
    assert resources["StepQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["StepDeadLetterQueue", "Arn"]
    }


def test_unknown_resource_type_is_refused_before_anything_is_created(empty_session):
    template = provision.load_template()
    template["Resources"]["Topic"] = {"Type": "AWS::SNS::Topic", "Properties": {}}

    with pytest.raises(provision.TemplateError, match="AWS::SNS::Topic"):
        provision.provision(empty_session, STAGE, template=template)
    assert empty_session.client("dynamodb").list_tables()["TableNames"] == []


def test_unsupported_intrinsic_function_is_refused(empty_session):
    template = {
        "Resources": {
            "Bus": {
                "Type": "AWS::Events::EventBus",
                "Properties": {"Name": {"Fn::Join": ["-", ["a", "b"]]}},
            }
        }
    }

    with pytest.raises(provision.TemplateError, match="Fn::Join"):
        provision.provision(empty_session, STAGE, template=template)
