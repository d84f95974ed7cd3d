"""Templates (SPEC §8): the built-in ones per category, saving a workflow as a template,
workflows made from templates with overrides, and every built-in template run as shipped
with its integrations pointed at a local sink (and SES)."""

import base64
import time

import boto3
import pytest

from chalicelib import wiring
from chalicelib.handlers import tick
from tests.functional.conftest import execute, wait_for
from tests.functional.test_documents import INVOICE, pdf

CATEGORIES = ["invoice", "contract", "resume", "general", "alerting", "incident", "approval", "data", "feedback"]
SENDER = "alerts@sluice.example"


def templates(api, category=None):
    query = f"?category={category}&per_page=100" if category else "?per_page=100"
    return api.get(f"/api/v1/templates{query}").data


def by_name(api, name):
    return next(t for t in templates(api) if t["name"] == name)


def test_every_category_has_built_in_templates(api, workers):
    listed = templates(api)
    assert {t["category"] for t in listed if t["built_in"]} == set(CATEGORIES)
    names = {t["name"] for t in listed}
    assert {"High Error Rate Alert", "Slow Response Alert", "New User Registration", "Daily Summary Report",
            "Incident Response", "Approval Request", "Data Pipeline", "Invoice Processing", "Contract Review",
            "Resume Screening", "Customer Feedback Analysis"} <= names
    assert [t["name"] for t in templates(api, "alerting")] == ["High Error Rate Alert", "Slow Response Alert"]
    one = api.get(f"/api/v1/templates/{listed[0]['id']}").data
    assert one == listed[0] and one["workflow"]["definition"]["steps"]
    assert api.get("/api/v1/templates?category=weather").status == 400
    assert api.get("/api/v1/templates/tpl_aaaaaaaaaaaaaaaaaaaaaaaa").error["code"] == "NOT_FOUND"


def test_overrides_merge_objects_and_replace_lists(api, workers):
    template = by_name(api, "Customer Feedback Analysis")
    reply = api.post("/api/v1/workflows/from-template", {
        "template_id": template["id"], "name": "Feedback (EU)", "description": "for the EU team",
        "overrides": {"configuration": {"language": "de"}, "tags": ["eu"], "metadata": {"team": "eu"}}})
    assert reply.status == 201, reply.body
    wf = reply.data
    assert (wf["name"], wf["description"], wf["tags"]) == ("Feedback (EU)", "for the EU team", ["eu"])
    assert wf["configuration"] == {"sentiment_analysis": True, "topic_extraction": True, "language": "de"}
    assert wf["metadata"] == {"team": "eu", "template_id": template["id"]}
    assert wf["definition"]["steps"] == template["workflow"]["definition"]["steps"]
    bad = api.post("/api/v1/workflows/from-template", {"template_id": template["id"], "overrides": {"type": "x"}})
    assert bad.status == 400 and bad.error["details"][0]["field"] == "type"
    assert api.post("/api/v1/workflows/from-template", {"template_id": "nope"}).status == 404


def test_a_workflow_saved_as_a_template_makes_copies(api, workers):
    source = api.post("/api/v1/workflows", {"name": "Mine", "tags": ["x"], "configuration": {"k": 1},
                                            "triggers": [{"type": "webhook"}],
                                            "definition": {"steps": [{"name": "a", "action": "core.echo",
                                                                      "input": {"v": "{{ workflow.configuration.k }}"}}]}}).data
    saved = api.post("/api/v1/templates", {"name": "My template", "description": "d", "category": "general",
                                           "workflow_id": source["id"]})
    assert saved.status == 201 and saved.data["built_in"] is False and saved.data["category"] == "general"
    assert [t["id"] for t in templates(api, "general") if not t["built_in"]] == [saved.data["id"]]
    copy = api.post("/api/v1/workflows/from-template", {"template_id": saved.data["id"], "name": "Copy"}).data
    assert copy["definition"] == source["definition"] and copy["configuration"] == {"k": 1}
    assert copy["triggers"][0]["id"] != source["triggers"][0]["id"] and copy["triggers"][0]["secret"]
    assert execute(api, copy).data["result"] == {"v": 1}
    for body, field in [({"name": "t", "category": "nope", "workflow_id": source["id"]}, "category"),
                        ({"category": "general", "workflow_id": source["id"]}, "name"),
                        ({"name": "t"}, "workflow_id")]:
        reply = api.post("/api/v1/templates", body)
        assert reply.status == 400 and reply.error["details"][0]["field"] == field


# -- every built-in template, as shipped ------------------------------------------------------

@pytest.fixture
def connected(api, workers, sink):
    """Every integration the templates name, pointed at the local sink (and SES)."""
    boto3.client("ses").verify_email_identity(EmailAddress=SENDER)
    for name, kind, config in [
        ("slack", "slack", {"webhook_url": sink.url("/slack")}),
        ("email", "email", {"to": ["ops@acme.io"], "from": SENDER}),
        ("crm", "webhook", {"url": sink.url("/crm")}),
        ("pagerduty", "pagerduty", {"routing_key": "R0UT1NG", "events_url": sink.url("/pagerduty")}),
        ("jira", "jira", {"base_url": sink.url(""), "token": "pat", "project_key": "OPS"}),
    ]:
        assert api.post("/api/v1/integrations", {"name": name, "integration_type": kind, "config": config}).status == 201
    return sink


def from_template(api, name, **body):
    reply = api.post("/api/v1/workflows/from-template", {"template_id": by_name(api, name)["id"], **body})
    assert reply.status == 201, reply.body
    assert all(i["status"] == "connected" for i in reply.data["integrations"])
    return reply.data


def slack_texts(sink):
    return [r.json["text"] for r in sink.to("/slack")]


def mail_subjects():
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return [m.subject for m in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages]


def upload(api, filename, content):
    reply = api.post("/api/v1/documents", {"filename": filename, "content_type": "application/octet-stream",
                                           "content_base64": base64.b64encode(content).decode()})
    assert reply.status == 201, reply.body


@pytest.fixture
def clock():
    state = {"now": time.time() // 60 * 60 + 5}
    runtime, firer, ingest = wiring.runtime(), wiring.schedules(), wiring.traffic_ingest()
    saved = runtime.clock, firer.clock, ingest.clock
    runtime.clock = firer.clock = ingest.clock = lambda: state["now"]
    yield state
    runtime.clock, firer.clock, ingest.clock = saved


def traffic(api, bucket, records):
    assert api.post(f"/api/v1/buckets/{bucket['id']}/traffic", {"records": records}).status == 202


def test_api_traffic_templates(api, connected, clock):
    bucket = api.post("/api/v1/buckets", {"name": "Shop API"}).data
    # Shipped without a bucket, a traffic trigger waits, disabled.
    waiting = from_template(api, "High Error Rate Alert")
    assert waiting["triggers"][0]["enabled"] is False
    from_template(api, "High Error Rate Alert", bucket_id=bucket["id"])
    from_template(api, "Slow Response Alert", bucket_id=bucket["id"])
    from_template(api, "New User Registration", bucket_id=bucket["id"])
    at = (clock["now"] - 30) * 1000
    traffic(api, bucket, [{"method": "POST", "path": "/api/users", "status_code": 201, "duration_ms": 2500,
                           "timestamp": at, "request": {"body": {"email": "ada@example.com"}}},
                          {"method": "GET", "path": "/api/orders", "status_code": 500, "duration_ms": 2600,
                           "timestamp": at}])
    [crm] = wait_for(lambda: connected.to("/crm"))
    assert crm.json == {"event": "user_registered", "user_data": {"email": "ada@example.com"}}
    clock["now"] += 60
    tick.handle(None)
    assert wait_for(lambda: slack_texts(connected)) == ["🚨 Error rate is 50.0% in Shop API"]
    wait_for(lambda: "Slow API Performance Alert" in mail_subjects())


def test_schedule_incident_approval_and_data_templates(api, connected):
    daily = from_template(api, "Daily Summary Report")
    assert daily["triggers"][0]["cron_expression"] == "0 9 * * *"
    assert execute(api, daily).data["status"] == "succeeded"
    assert "Daily API Summary" in mail_subjects()

    incident = from_template(api, "Incident Response")
    result = execute(api, incident, {"summary": "Checkout down", "severity": "critical"}).data
    assert result["status"] == "succeeded", result["steps"]
    assert connected.to("/pagerduty")[0].json["payload"]["summary"] == "Checkout down"
    assert connected.to("/rest/api/2/issue")[0].json["fields"]["summary"] == "Incident: Checkout down"
    assert slack_texts(connected)[-1].startswith("🚨 Checkout down (PagerDuty: ")

    approval = from_template(api, "Approval Request")
    waiting = execute(api, approval, {"request": "Deploy v2"}, wait_for_completion=False).data
    wait_for(lambda: api.get(f"/api/v1/executions/{waiting['id']}").data["status"] == "waiting")
    decided = api.post(f"/api/v1/executions/{waiting['id']}/steps/decide/approve", {"response": {"note": "go"}})
    assert decided.status == 200, decided.body
    wait_for(lambda: "✅ Approved: Deploy v2 (go)" in slack_texts(connected))

    pipeline = from_template(api, "Data Pipeline")
    run = execute(api, pipeline, {"source_url": connected.url("/data"), "expression": "[route]"}).data
    assert run["status"] == "succeeded" and run["result"] == {"loaded": 1}
    assert connected.to("/crm")[-1].json == {"records": ["/data"]}


def test_document_templates(api, connected):
    for name in ("Invoice Processing", "Contract Review", "Resume Screening"):
        from_template(api, name)
    upload(api, "march-invoice.pdf", pdf(INVOICE))
    upload(api, "acme-contract.txt", b"This agreement is made between ACME Corp and Globex Inc.\n"
                                     b"Effective Date: January 1, 2026\nContract Value: $120,000\n")
    upload(api, "ada-resume.txt", b"Name: Ada Lovelace\nada@example.com\n+44 20 7946 0958\n"
                                  b"8 years of experience in Python\nSkills: Python, AWS\n")
    texts = wait_for(lambda: len(slack_texts(connected)) >= 3 and slack_texts(connected), timeout=20)
    assert sorted(texts) == sorted([
        "Invoice processed: INV-2026-0042 for 1234.5 USD",
        "📄 Contract needs review: ACME Corp and Globex Inc., value 120000.0",
        "👤 Ada Lovelace (ada@example.com), 8 years",
    ])


def test_feedback_template(api, connected):
    wf = from_template(api, "Customer Feedback Analysis")
    feedback = ("The checkout page is terribly slow and the shipping costs are far too high. "
                "The checkout page froze twice.")
    run = execute(api, wf, {"feedback": feedback, "customer": "Ada"}).data
    assert run["status"] == "succeeded", run["steps"]
    result = run["result"]
    assert result["sentiment"]["label"] == "negative" and result["topics"][0] == "checkout page"
    assert result["recommendations"]["priority"] == "high"
    assert result["recommendations"]["actions"].startswith("Follow up on checkout page")
    assert slack_texts(connected) == ["⚠️ negative feedback from Ada: " + ", ".join(result["topics"])]
    happy = execute(api, wf, {"feedback": "Wonderful service, thank you so much!"}).data
    assert happy["result"]["recommendations"] == {"priority": "low", "actions": "Thank the customer"}
    assert len(slack_texts(connected)) == 1
