"""The local runtime drives an app's SQS and schedule handlers as Lambda would."""

import threading

import boto3
import pytest
from chalice import Chalice
from moto import mock_aws

from chalicelib.local import SqsDriver, event_source_loops, scheduled_event


def make_app(seen, ticks):
    app = Chalice(app_name="drivers")

    @app.on_sqs_message(queue="work", batch_size=10)
    def consume(event):
        failures = []
        for record in event:
            if record.body == "fail":
                failures.append({"itemIdentifier": record.to_dict()["messageId"]})
            else:
                seen.append(record.body)
        return {"batchItemFailures": failures}

    @app.schedule("rate(1 minute)")
    def tick(event):
        ticks.append(event.to_dict())

    return app


@pytest.fixture
def sqs():
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        client.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "30"})
        yield client


def messages_left(sqs, url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_handled_messages_are_deleted_and_reported_failures_stay(sqs):
    seen, ticks = [], []
    app = make_app(seen, ticks)
    config = next(c for c in app.event_sources if c.name == "consume")
    driver = SqsDriver(app, config, sqs, "us-east-1")
    for body in ["a", "fail", "b"]:
        sqs.send_message(QueueUrl=driver.queue_url, MessageBody=body)
    assert driver.poll_once(wait_seconds=0) == 3
    assert sorted(seen) == ["a", "b"]
    assert messages_left(sqs, driver.queue_url) == 1  # only "fail", back after its visibility timeout


def test_a_raising_handler_leaves_the_whole_batch(sqs):
    app = Chalice(app_name="raising")

    @app.on_sqs_message(queue="work")
    def consume(event):
        raise RuntimeError("boom")

    driver = SqsDriver(app, app.event_sources[0], sqs, "us-east-1")
    sqs.send_message(QueueUrl=driver.queue_url, MessageBody="x")
    assert driver.poll_once(wait_seconds=0) == 1
    assert messages_left(sqs, driver.queue_url) == 1


def test_loops_cover_every_event_source_and_the_tick_fires(sqs):
    seen, ticks = [], []
    app = make_app(seen, ticks)
    stop = threading.Event()
    loops = event_source_loops(app, sqs, "us-east-1", tick_seconds=0.05, workers=2, stop=stop)
    assert sorted(loop.name for loop in loops) == ["consume-0", "consume-1", "tick"]
    tick_loop = next(loop for loop in loops if loop.name == "tick")
    tick_loop.start()
    deadline = threading.Event()
    for _ in range(100):
        if len(ticks) >= 2:
            break
        deadline.wait(0.05)
    stop.set()
    tick_loop.join(timeout=5)
    assert len(ticks) >= 2
    assert ticks[0]["detail-type"] == "Scheduled Event" and ticks[0]["source"] == "aws.events"


def test_an_event_source_without_a_driver_is_refused(sqs):
    app = Chalice(app_name="sns")

    @app.on_sns_message(topic="t")
    def handler(event):
        pass

    with pytest.raises(RuntimeError, match="no driver for SNSEventConfig"):
        event_source_loops(app, sqs, "us-east-1", tick_seconds=1, workers=1, stop=threading.Event())


def test_scheduled_event_shape():
    event = scheduled_event("tick", "eu-west-1", when=0)
    assert event["time"] == "1970-01-01T00:00:00Z"
    assert event["resources"] == ["arn:aws:events:eu-west-1:123456789012:rule/tick"]
