"""The action library of SPEC §5 beyond core: the exact request each action sends (to a
local HTTP sink, or to moto for AWS and SES) and how its failures map (retryable or not)."""

import base64
import json

import boto3
import pytest

from tests.functional.conftest import create_workflow, execute

FAST_RETRY = {"max_attempts": 2, "initial_interval": 0.1, "backoff_coefficient": 1}


def run_step(api, action, input, retry=None, **step):
    spec = {"name": "act", "action": action, "input": input, **step}
    if retry:
        spec["retry"] = retry
    wf = create_workflow(api, {"steps": [spec]}, name=action)
    reply = execute(api, wf)
    assert reply.status == 200, reply.body
    return reply.data["steps"][0]


# -- hosted services over HTTP ---------------------------------------------------------------

def test_slack_posts_the_incoming_webhook_json(api, workers, sink):
    step = run_step(api, "slack.post_message", {"webhook_url": sink.url("/slack"), "message": "🚨 down",
                                                "channel": "#alerts", "username": "Sluice Bot", "icon_emoji": ":fire:"})
    assert step["status"] == "succeeded" and step["output"] == {"status_code": 200}
    [sent] = sink.to("/slack")
    assert sent.method == "POST" and sent.header("Content-Type") == "application/json"
    assert sent.json == {"text": "🚨 down", "channel": "#alerts", "username": "Sluice Bot", "icon_emoji": ":fire:"}
    assert sent.header("Idempotency-Key").endswith(":act:1")
    assert step["input"]["webhook_url"] == "********"  # a webhook URL carries its token


def test_slack_5xx_is_retried_and_4xx_is_not(api, workers, sink):
    sink.scripts["/slack-5xx"] = [503]
    retried = run_step(api, "slack.post_message", {"webhook_url": sink.url("/slack-5xx"), "text": "x"}, FAST_RETRY)
    assert retried["status"] == "succeeded" and retried["attempts"] == 2
    sink.scripts["/slack-4xx"] = [404, 404]
    refused = run_step(api, "slack.post_message", {"webhook_url": sink.url("/slack-4xx"), "text": "x"}, FAST_RETRY)
    assert refused["status"] == "failed" and refused["attempts"] == 1 and refused["error"]["code"] == "HTTP_4XX"


def test_activepieces_posts_the_data(api, workers, sink):
    step = run_step(api, "activepieces.trigger_flow", {"webhook_url": sink.url("/flow"), "flow_id": "flow_abc123",
                                                       "data": {"request": {"path": "/api/users"}}})
    assert step["output"] == {"status_code": 200, "body": {"route": "/flow", "status": 200}, "flow_id": "flow_abc123"}
    assert sink.to("/flow")[0].json == {"request": {"path": "/api/users"}}


def test_pagerduty_sends_an_events_v2_trigger(api, workers, sink):
    step = run_step(api, "pagerduty.create_incident", {
        "events_url": sink.url("/v2/enqueue"), "routing_key": "R0UT1NG", "summary": "Error rate 25%",
        "severity": "critical", "dedup_key": "bucket-1", "custom_details": {"rate": 25}})
    assert step["status"] == "succeeded" and step["output"]["status_code"] == 200
    assert sink.to("/v2/enqueue")[0].json == {
        "routing_key": "R0UT1NG", "event_action": "trigger", "dedup_key": "bucket-1",
        "payload": {"summary": "Error rate 25%", "source": "sluice", "severity": "critical",
                    "custom_details": {"rate": 25}}}
    assert step["input"]["routing_key"] == "********"


def test_pagerduty_rate_limits_are_retried(api, workers, sink):
    sink.scripts["/pd-429"] = [429]
    step = run_step(api, "pagerduty.create_incident", {"events_url": sink.url("/pd-429"), "routing_key": "k",
                                                       "summary": "s"}, FAST_RETRY)
    assert step["status"] == "succeeded" and step["attempts"] == 2


def test_jira_creates_an_issue_with_basic_auth(api, workers, sink):
    step = run_step(api, "jira.create_issue", {
        "base_url": sink.url(""), "email": "bot@acme.io", "api_token": "t0ken", "project_key": "OPS",
        "summary": "API errors", "description": "25% errors", "issue_type": "Bug", "labels": ["api"],
        "priority": "High"})
    assert step["status"] == "succeeded"
    [sent] = sink.to("/rest/api/2/issue")
    assert sent.header("Authorization") == "Basic " + base64.b64encode(b"bot@acme.io:t0ken").decode()
    assert sent.json == {"fields": {"project": {"key": "OPS"}, "summary": "API errors", "issuetype": {"name": "Bug"},
                                    "description": "25% errors", "labels": ["api"], "priority": {"name": "High"}}}
    assert step["input"]["api_token"] == "********"


def test_jira_needs_credentials(api, workers, sink):
    step = run_step(api, "jira.create_issue", {"base_url": sink.url(""), "project_key": "OPS", "summary": "x"})
    assert step["error"]["code"] == "INVALID_INPUT" and sink.to("/rest/api/2/issue") == []


def test_an_integration_supplies_the_credentials(api, workers, sink):
    jira = api.post("/api/v1/integrations", {"name": "jira", "integration_type": "jira", "config": {
        "base_url": sink.url(""), "token": "pat-123"}}).data
    step = run_step(api, "jira.create_issue", {"project_key": "OPS", "summary": "from integration"},
                    integration=jira["id"])
    assert step["status"] == "succeeded", step["error"]
    assert sink.to("/rest/api/2/issue")[0].header("Authorization") == "Bearer pat-123"


def test_hosted_service_calls_go_through_the_outbound_guard(api, workers):
    step = run_step(api, "slack.post_message", {"webhook_url": "http://169.254.169.254/latest", "text": "x"})
    assert step["error"]["code"] == "BLOCKED_DESTINATION" and step["attempts"] == 1


# -- Amazon SES --------------------------------------------------------------------------------

def sent_mail():
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages


def test_email_goes_through_ses(api, workers):
    boto3.client("ses").verify_email_identity(EmailAddress="alerts@sluice.example")
    before = len(sent_mail())
    step = run_step(api, "email.send", {"from": "alerts@sluice.example", "to": ["ops@acme.io"], "cc": "cto@acme.io",
                                        "subject": "API Alert: threshold", "body": "Error rate 25%",
                                        "html": "<b>Error rate 25%</b>"})
    assert step["status"] == "succeeded" and step["output"]["message_id"]
    message = sent_mail()[before]
    assert message.source == "alerts@sluice.example" and message.subject == "API Alert: threshold"
    assert message.destinations == {"ToAddresses": ["ops@acme.io"], "CcAddresses": ["cto@acme.io"],
                                    "BccAddresses": []}
    assert message.body == "<b>Error rate 25%</b>"  # moto keeps the HTML part of a two-part message
    text_only = run_step(api, "email.send", {"from": "alerts@sluice.example", "to": "ops@acme.io", "subject": "s",
                                             "body": {"rate": 25}})
    assert text_only["status"] == "succeeded" and sent_mail()[before + 1].body == '{"rate":25}'


def test_an_unverified_sender_is_refused_without_retries(api, workers):
    step = run_step(api, "email.send", {"from": "nobody@unverified.example", "to": "ops@acme.io", "subject": "s",
                                        "body": "b"}, FAST_RETRY)
    assert step["status"] == "failed" and step["attempts"] == 1
    assert step["error"]["code"] == "AWS_ERROR" and "MessageRejected" in step["error"]["message"]


def test_email_needs_a_sender_and_a_body(api, workers):
    no_sender = run_step(api, "email.send", {"to": "ops@acme.io", "subject": "s", "body": "b"})
    no_body = run_step(api, "email.send", {"from": "a@b.c", "to": "ops@acme.io", "subject": "s"})
    assert no_sender["error"]["code"] == no_body["error"]["code"] == "INVALID_INPUT"
    assert "SLUICE_EMAIL_FROM" in no_sender["error"]["message"]


# -- aws.* -------------------------------------------------------------------------------------

def test_sqs_sns_eventbridge_and_s3(api, workers):
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    sent = run_step(api, "aws.sqs_send", {"queue_url": url, "message_body": {"order": 7}})
    assert sent["status"] == "succeeded"
    [message] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert json.loads(message["Body"]) == {"order": 7} and sent["output"]["message_id"] == message["MessageId"]

    topic = boto3.client("sns").create_topic(Name="alerts")["TopicArn"]
    published = run_step(api, "aws.sns_publish", {"topic_arn": topic, "message": "down", "subject": "API"})
    assert published["status"] == "succeeded" and published["output"]["message_id"]

    events = boto3.client("events")
    probe = sqs.create_queue(QueueName="probe-events")["QueueUrl"]
    events.put_rule(Name="probe", EventPattern=json.dumps({"source": ["shop"]}))
    events.put_targets(Rule="probe", Targets=[{"Id": "p", "Arn": "arn:aws:sqs:us-east-1:123456789012:probe-events"}])
    put = run_step(api, "aws.eventbridge_put", {"source": "shop", "detail_type": "order.placed", "detail": {"id": 7}})
    assert put["status"] == "succeeded" and put["output"]["event_id"]
    [event] = sqs.receive_message(QueueUrl=probe)["Messages"]
    assert json.loads(event["Body"])["detail"] == {"id": 7}

    s3.create_bucket(Bucket="reports")
    stored = run_step(api, "aws.s3_put", {"bucket": "reports", "key": "daily/1.json", "body": {"ok": True}})
    assert stored["output"]["key"] == "daily/1.json" and stored["output"]["etag"]
    obj = s3.get_object(Bucket="reports", Key="daily/1.json")
    assert json.loads(obj["Body"].read()) == {"ok": True} and obj["ContentType"] == "application/json"


def test_dynamodb_put_and_query_speak_plain_json(api, workers):
    boto3.client("dynamodb").create_table(
        TableName="customers", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    for sk, score in (("a", 1.5), ("b", 2)):
        put = run_step(api, "aws.dynamodb_put", {"table_name": "customers",
                                                 "item": {"pk": "c1", "sk": sk, "score": score, "tags": ["x"]}})
        assert put["status"] == "succeeded", put["error"]
    query = run_step(api, "aws.dynamodb_query", {"table_name": "customers", "key_condition_expression": "pk = :p",
                                                 "expression_attribute_values": {":p": "c1"}})
    assert query["output"] == {"count": 2, "last_evaluated_key": None, "items": [
        {"pk": "c1", "sk": "a", "score": 1.5, "tags": ["x"]}, {"pk": "c1", "sk": "b", "score": 2, "tags": ["x"]}]}
    duplicate = run_step(api, "aws.dynamodb_put", {"table_name": "customers", "item": {"pk": "c1", "sk": "a"},
                                                   "condition_expression": "attribute_not_exists(pk)"}, FAST_RETRY)
    assert duplicate["error"]["code"] == "AWS_ERROR" and duplicate["attempts"] == 1
    assert "ConditionalCheckFailedException" in duplicate["error"]["message"]


def test_a_missing_lambda_is_a_clear_error(api, workers):
    step = run_step(api, "aws.lambda_invoke", {"function_name": "nope", "payload": {}}, FAST_RETRY)
    assert step["status"] == "failed" and step["attempts"] == 1
    assert step["error"]["code"] == "AWS_ERROR" and "ResourceNotFoundException" in step["error"]["message"]


@pytest.mark.parametrize(("action", "input"), [
    ("aws.dynamodb_query", {"table_name": "sluice-test-api-keys", "key_condition_expression": "key_hash = :k",
                            "expression_attribute_values": {":k": "x"}}),
    ("aws.dynamodb_put", {"table_name": "arn:aws:dynamodb:us-east-1:123456789012:table/sluice-test-workflows",
                          "item": {"account_id": "x", "sk": "y"}}),
    ("aws.sqs_send", {"queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/sluice-test-steps",
                      "message_body": "x"}),
    ("aws.s3_put", {"bucket": "sluice-test-payloads-123456789012-us-east-1", "key": "k", "body": "x"}),
    ("aws.eventbridge_put", {"event_bus_name": "sluice-test", "source": "shop", "detail_type": "order.placed"}),
    ("aws.eventbridge_put", {"event_bus_name": "arn:aws:events:us-east-1:123456789012:event-bus/sluice-test",
                             "source": "shop", "detail_type": "order.placed"}),
    ("aws.eventbridge_put", {"source": "shop", "detail_type": "order.placed",
                             "resources": ["sluice:account:acc_aaaaaaaaaaaaaaaaaaaaaaaa"]}),
    ("aws.eventbridge_put", {"source": "aws.s3", "detail_type": "Object Created"}),
    ("aws.lambda_invoke", {"function_name": "sluice-test-step_worker"}),
])
def test_sluices_own_resources_are_out_of_reach(api, workers, action, input):
    step = run_step(api, action, input)
    assert step["error"]["code"] == "BLOCKED_DESTINATION" and step["attempts"] == 1


def test_a_role_is_assumed_with_the_account_as_external_id(api, tenant, workers):
    from moto.sts.models import sts_backends

    boto3.client("s3").create_bucket(Bucket="tenant-data")
    role = "arn:aws:iam::123456789012:role/tenant-actions"
    step = run_step(api, "aws.s3_put", {"bucket": "tenant-data", "key": "k", "body": "x", "role_arn": role})
    assert step["status"] == "succeeded", step["error"]
    assumed = [r for r in sts_backends["123456789012"]["global"].assumed_roles if r.role_arn == role]
    assert [r.external_id for r in assumed] == [tenant.account_id]
    # A role of its own does not open Sluice's resources.
    blocked = run_step(api, "aws.s3_put", {"bucket": "sluice-test-payloads-123456789012-us-east-1", "key": "k",
                                           "body": "x", "role_arn": role})
    assert blocked["error"]["code"] == "BLOCKED_DESTINATION"
