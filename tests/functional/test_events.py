"""Events (SPEC §6.3): the registry, the filter operators, `POST /api/v1/events`, and the
EventBridge router fed by the Sluice bus and by S3 documents."""

import json

import boto3
import pytest

from tests.functional.conftest import create_workflow, new_tenant, wait_for

ECHO = {"steps": [{"name": "echo", "action": "core.echo",
                   "input": {"event_id": "{{ event.id }}", "type": "{{ context.event.type }}",
                             "data": "{{ trigger.data }}", "kind": "{{ trigger.type }}"}}]}


def on_event(api, event, filters=None, **trigger):
    spec = {"type": "event", "event": event, **trigger}
    if filters is not None:
        spec["filters"] = filters
    return create_workflow(api, ECHO, name=f"On {event}", triggers=[spec])


def finished(api, execution_id):
    return wait_for(lambda: (d := api.get(f"/api/v1/executions/{execution_id}").data)["status"]
                    in ("succeeded", "failed") and d)


def test_the_registry_lists_built_in_types_with_schemas(api, workers):
    types = {t["name"]: t for t in api.get("/api/v1/event-types").data}
    for name in ("document.uploaded", "document.processed", "extraction.completed", "chat.message",
                 "workflow.created", "workflow.executed", "execution.step_completed", "execution.completed",
                 "execution.failed", "schedule.created", "schedule.triggered"):
        assert types[name]["built_in"] is True and types[name]["schema"]["type"] == "object"
        assert types[name]["description"]
    assert types["document.uploaded"]["schema"]["properties"]["file_type"] == {"type": "string"}


def test_custom_types_are_registered_once_and_checked(api, workers):
    schema = {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}
    reply = api.post("/api/v1/event-types", {"name": "invoice.paid", "description": "Paid", "schema": schema})
    assert reply.status == 201 and reply.data["name"] == "invoice.paid" and reply.data["built_in"] is False
    assert api.post("/api/v1/event-types", {"name": "invoice.paid", "schema": schema}).status == 409
    assert api.post("/api/v1/event-types", {"name": "document.uploaded"}).status == 409
    bad_name = api.post("/api/v1/event-types", {"name": "Invoice Paid"})
    bad_schema = api.post("/api/v1/event-types", {"name": "invoice.sent", "schema": {"type": "nope"}})
    assert bad_name.status == 400 and bad_name.error["details"][0]["field"] == "name"
    assert bad_schema.status == 400 and bad_schema.error["details"][0]["field"].startswith("schema")
    listed = [t for t in api.get("/api/v1/event-types").data if not t["built_in"]]
    assert [t["name"] for t in listed] == ["invoice.paid"]
    # Data of a registered type is checked against its schema.
    wrong = api.post("/api/v1/events", {"type": "invoice.paid", "data": {"amount": "ten"}})
    assert wrong.status == 400 and wrong.error["details"][0]["field"] == "data.amount"
    assert api.post("/api/v1/events", {"type": "invoice.paid", "data": {"amount": 10}}).status == 202


def test_filter_operators(api, workers):
    catalog = api.get("/api/v1/filter-operators").data
    assert [o["name"] for o in catalog if o["kind"] == "comparison"] == [
        "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "~starts", "~ends", "~contains", "regex", "exists"]
    assert [o["name"] for o in catalog if o["kind"] == "logical"] == ["$and", "$or", "$not"]
    assert all(o["description"] for o in catalog)


def test_an_event_starts_the_triggers_whose_filters_match(api, workers):
    pdf = on_event(api, "document.uploaded", {"file_type": "pdf", "size": {"gt": 1000}})
    templated = on_event(api, "document.uploaded", {"{{ context.event.data.file_name }}": {"~ends": ".PDF"}})
    other = on_event(api, "document.processed")
    reply = api.post("/api/v1/events", {"type": "document.uploaded", "source": "scanner",
                                        "data": {"file_type": "pdf", "size": 5000, "file_name": "a.pdf"}})
    assert reply.status == 202, reply.body
    event_id = reply.data["id"]
    assert event_id.startswith("evt_")
    assert sorted(reply.data["matched_triggers"]) == sorted([pdf["triggers"][0]["id"], templated["triggers"][0]["id"]])
    assert len(reply.data["execution_ids"]) == 2
    for execution_id in reply.data["execution_ids"]:
        detail = finished(api, execution_id)
        assert detail["triggered_by"] == "event" and detail["status"] == "succeeded"
        assert detail["steps"][0]["output"] == {
            "event_id": event_id, "type": "document.uploaded", "kind": "event",
            "data": {"file_type": "pdf", "size": 5000, "file_name": "a.pdf"}}
    assert api.get(f"/api/v1/workflows/{other['id']}/executions").data == []

    small = api.post("/api/v1/events", {"type": "document.uploaded", "data": {"file_type": "pdf", "size": 10,
                                                                             "file_name": "b.txt"}})
    assert small.data["matched_triggers"] == [] and small.data["execution_ids"] == []


def test_type_mismatches_do_not_match_and_do_not_fail(api, workers):
    on_event(api, "chat.message", {"count": {"gt": 3}, "$or": [{"tags": {"contains": "vip"}}, {"user": {"regex": "^a"}}]})
    reply = api.post("/api/v1/events", {"type": "chat.message", "data": {"count": "many", "tags": 5}})
    assert reply.status == 202 and reply.data["matched_triggers"] == []
    reply = api.post("/api/v1/events", {"type": "chat.message", "data": {"count": 4, "tags": ["vip"]}})
    assert len(reply.data["matched_triggers"]) == 1


def test_disabled_triggers_and_workflows_and_other_accounts_do_not_fire(api, chalice_client, workers):
    disabled = on_event(api, "chat.message", enabled=False)
    inactive = on_event(api, "chat.message")
    api.post(f"/api/v1/workflows/{inactive['id']}/deactivate")
    stranger = new_tenant(chalice_client, "stranger").api
    on_event(stranger, "chat.message")
    reply = api.post("/api/v1/events", {"type": "chat.message", "data": {}})
    assert reply.data == {"id": reply.data["id"], "matched_triggers": [], "execution_ids": []}
    assert disabled["triggers"][0]["enabled"] is False


def test_event_input_is_checked(api, workers):
    for body, field in [({"data": {}}, "type"), ({"type": "x"}, "type"), ({"type": "a.b", "data": [1]}, "data"),
                        ({"type": "a.b", "source": ""}, "source")]:
        reply = api.post("/api/v1/events", body)
        assert reply.status == 400 and reply.error["details"][0]["field"] == field, body


@pytest.mark.parametrize(("trigger", "field"), [
    ({"type": "event"}, "triggers[0].event"),
    ({"type": "event", "event": "a.b", "filters": {"x": {"between": 1}}}, "triggers[0].filters.x"),
    ({"type": "event", "event": "a.b", "filters": {"x": {"regex": "("}}}, "triggers[0].filters.x"),
    ({"type": "event", "event": "a.b", "filters": []}, "triggers[0].filters"),
])
def test_event_triggers_are_checked_when_written(api, workers, trigger, field):
    reply = api.post("/api/v1/workflows", {"name": "Bad", "definition": ECHO, "triggers": [trigger]})
    assert reply.status == 400 and reply.error["code"] == "INVALID_WORKFLOW_CONFIG"
    assert reply.error["details"][0]["field"].startswith(field), reply.error


def router_drained() -> bool:
    """Nothing left in, or in flight through, the local event router's queue."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="local-events-event_router")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_event_trigger_parameters_see_the_envelope(api, workers):
    wf = create_workflow(api, ECHO, name="Params", triggers=[{"type": "event", "event": "chat.message", "parameters": {
        "id": "{{ context.event.id }}", "who": "{{ event.data.user }}", "text": "{{ message }}"}}])
    reply = api.post("/api/v1/events", {"type": "chat.message", "data": {"user": "ada", "message": "hi"}})
    [execution_id] = reply.data["execution_ids"]
    detail = finished(api, execution_id)
    assert detail["parameters"] == {"id": reply.data["id"], "who": "ada", "text": "hi"}
    assert wf["triggers"][0]["id"] == reply.data["matched_triggers"][0]


def test_events_on_the_bus_reach_the_router(api, tenant, aws, workers):
    wf = on_event(api, "invoice.paid", {"amount": {"gte": 100}})
    events = boto3.client("events")
    events.put_events(Entries=[
        {"EventBusName": aws.buses["EventBus"], "Source": "billing", "DetailType": "invoice.paid",
         "Detail": json.dumps({"amount": 150}), "Resources": [f"sluice:account:{tenant.account_id}"]},
        {"EventBusName": aws.buses["EventBus"], "Source": "billing", "DetailType": "invoice.paid",
         "Detail": json.dumps({"amount": 5}), "Resources": [f"sluice:account:{tenant.account_id}"]},
    ])
    wait_for(lambda: router_drained())
    [execution] = api.get(f"/api/v1/workflows/{wf['id']}/executions").data  # amount 5 did not pass
    detail = finished(api, execution["id"])
    assert detail["triggered_by"] == "event"
    assert detail["steps"][0]["output"]["data"] == {"amount": 150}
    assert detail["steps"][0]["output"]["type"] == "invoice.paid"


def test_a_document_stored_in_s3_is_document_uploaded(api, tenant, aws, workers):
    wf = on_event(api, "document.uploaded", {"file_type": "pdf"})
    s3 = boto3.client("s3")
    bucket = aws.buckets["PayloadBucket"]
    s3.put_object(Bucket=bucket, Key=f"documents/{tenant.account_id}/inbox/Invoice-7.PDF", Body=b"%PDF-1.4")
    s3.put_object(Bucket=bucket, Key=f"documents/{tenant.account_id}/inbox/notes.txt", Body=b"hi")
    s3.put_object(Bucket=bucket, Key=f"executions/{tenant.account_id}/x/output.json", Body=b"{}")
    [execution] = wait_for(lambda: api.get(f"/api/v1/workflows/{wf['id']}/executions").data)
    data = finished(api, execution["id"])["steps"][0]["output"]["data"]
    assert data["key"] == f"documents/{tenant.account_id}/inbox/Invoice-7.PDF"
    assert (data["file_name"], data["file_type"], data["bucket"], data["size"]) == ("Invoice-7.PDF", "pdf", bucket, 8)
    assert data["document_id"].startswith("doc_")


def test_a_redelivered_eventbridge_event_starts_nothing_new(api, tenant, workers):
    from chalicelib.handlers import events

    wf = on_event(api, "invoice.paid")
    delivery = {"id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "invoice.paid", "source": "billing",
                "time": "2026-11-23T10:00:00Z", "resources": [f"sluice:account:{tenant.account_id}"],
                "detail": {"amount": 1}}
    first, second = events.handle(delivery), events.handle(delivery)
    assert first["execution_ids"] == second["execution_ids"] and len(first["execution_ids"]) == 1
    assert len(api.get(f"/api/v1/workflows/{wf['id']}/executions").data) == 1
    # Events the router does not know what to do with are ignored.
    assert events.handle({"id": "x", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}) == {
        "matched_triggers": [], "execution_ids": []}
