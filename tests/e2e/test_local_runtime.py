"""The local runtime as a user drives it: over HTTP, with the printed key."""

import requests

from tests.e2e.conftest import start_runtime, stop_runtime


def test_workflow_lifecycle_over_http(runtime, http):
    base = f"{runtime.base_url}/api/v1"
    created = http.post(f"{base}/workflows", json={
        "name": "Nightly Report", "pack": "reports", "tags": ["nightly", "report"],
        "definition": {"steps": [{"name": "say", "action": "core.echo", "input": {"text": "{{ params.text }}"}}]},
    })
    assert created.status_code == 201, created.text
    wf = created.json()["data"]
    assert wf["ref"] == "reports.nightly_report" and wf["revision"] == 1

    http.post(f"{base}/workflows", json={"name": "Other", "tags": ["adhoc"], "enabled": False})
    filtered = http.get(f"{base}/workflows", params={"tags": "nightly", "enabled": "true"})
    assert filtered.status_code == 200
    assert [w["ref"] for w in filtered.json()["data"]] == ["reports.nightly_report"]
    assert filtered.json()["meta"] == {"page": 1, "per_page": 20, "total": 1, "total_pages": 1}

    updated = http.patch(f"{base}/workflows/reports.nightly_report", json={"description": "v2"},
                         headers={"If-Match": '"1"'})
    assert updated.status_code == 200 and updated.json()["data"]["revision"] == 2
    stale = http.put(f"{base}/workflows/{wf['id']}", json={"name": "Lost"}, headers={"If-Match": "1"})
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "CONFLICT"

    deleted = http.delete(f"{base}/workflows/{wf['id']}")
    assert deleted.status_code == 200 and deleted.json()["data"]["deleted"] is True
    assert http.get(f"{base}/workflows/{wf['id']}").status_code == 404


def test_errors_are_enveloped_and_auth_is_required(runtime, http):
    base = f"{runtime.base_url}/api/v1"
    assert requests.get(f"{base}/workflows").json()["error"]["code"] == "UNAUTHORIZED"
    malformed = http.post(f"{base}/workflows", data="{nope", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "VALIDATION_ERROR"
    # What the framework answers before any view runs is enveloped too.
    no_route = http.get(f"{base}/no-such-thing")
    no_method = http.patch(f"{base}/api-keys", json={})
    media = http.post(f"{base}/workflows", data="<x/>", headers={"Content-Type": "application/xml"})
    assert (no_route.status_code, no_method.status_code, media.status_code) == (404, 404, 415)
    assert no_route.json() == no_method.json() == {
        "error": {"code": "NOT_FOUND", "message": "no such endpoint or method", "details": []}}
    assert media.json()["error"]["code"] == "VALIDATION_ERROR"
    assert media.json()["error"]["details"][0]["field"] == "Content-Type"


def test_the_emulated_aws_is_reachable_for_inspection(runtime):
    import boto3

    dynamodb = boto3.client("dynamodb", endpoint_url=runtime.aws_url, region_name="us-east-1",
                            aws_access_key_id="x", aws_secret_access_key="x")
    tables = dynamodb.list_tables()["TableNames"]
    assert "sluice-local-workflows" in tables and "sluice-local-api-keys" in tables


def test_ctrl_c_stops_everything_cleanly():
    runtime = start_runtime(api_key="slk_e2e-second-runtime")
    banner_key_seen = requests.get(f"{runtime.base_url}/api/v1/api-keys",
                                   headers={"X-Api-Key": runtime.api_key}).status_code
    assert banner_key_seen == 200
    code, output = stop_runtime(runtime)
    assert code == 0, output
    assert "Sluice is running on " + runtime.base_url in output
    assert "slk_e2e-second-runtime" in output
    assert "stopping..." in output
    assert "Traceback" not in output


def test_a_workflow_runs_end_to_end_through_the_local_workers(runtime, http):
    """The same step worker as in AWS, driven by the runtime's SQS pollers: a fan-out
    whose join runs once, with the execute call waiting for the result."""
    base = f"{runtime.base_url}/api/v1"
    wf = http.post(f"{base}/workflows", json={"name": "Fan", "definition": {
        "steps": [{"name": "start", "action": "core.echo", "input": {"n": "{{ params.n }}"}}]
        + [{"name": f"b{i}", "action": "core.echo", "input": {"i": i}, "depends_on": ["start"]} for i in range(5)]
        + [{"name": "join", "action": "core.transform", "depends_on": [f"b{i}" for i in range(5)],
            "input": {"data": "{{ [b0.output.i, b1.output.i, b2.output.i, b3.output.i, b4.output.i] | sum }}"}}],
        "output": {"total": "{{ steps.join.output }}", "n": "{{ params.n }}"}}}).json()["data"]
    reply = http.post(f"{base}/workflows/{wf['id']}/execute", json={"parameters": {"n": 7}})
    assert reply.status_code == 200, reply.text
    ex = reply.json()["data"]
    assert ex["status"] == "succeeded"
    assert ex["result"] == {"total": 10, "n": 7}
    join = next(s for s in ex["steps"] if s["name"] == "join")
    assert (join["attempts"], len(join["attempt_log"])) == (1, 1)


def _succeeded(http, base, workflow_id, count=1):
    import time

    for _ in range(200):
        runs = http.get(f"{base}/workflows/{workflow_id}/executions").json()["data"]
        if len(runs) >= count and all(r["status"] == "succeeded" for r in runs):
            return runs
        time.sleep(0.1)
    raise AssertionError(f"no {count} succeeded execution(s) of {workflow_id}")


def test_an_inbound_webhook_over_http_with_a_form_body_and_a_signature(runtime, http):
    import hashlib
    import hmac

    base = f"{runtime.base_url}/api/v1"
    wf = http.post(f"{base}/workflows", json={"name": "Form hook", "triggers": [{"type": "webhook"}], "definition": {
        "steps": [{"name": "say", "action": "core.echo", "input": {"who": "{{ trigger.data.body.name }}"}}]}}).json()["data"]
    hook = wf["triggers"][0]
    body = b"name=Ada&plan=pro"
    signature = "sha256=" + hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    reply = requests.post(runtime.base_url + hook["url"], data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Sluice-Signature": signature})
    assert reply.status_code == 202, reply.text
    [run] = _succeeded(http, base, wf["id"])
    assert http.get(f"{base}/executions/{run['id']}").json()["data"]["steps"][0]["output"] == {"who": "Ada"}
    assert requests.post(runtime.base_url + hook["url"], data=body).status_code == 401


def test_an_event_put_on_the_bus_reaches_its_trigger(runtime, http):
    import json

    import boto3

    base = f"{runtime.base_url}/api/v1"
    wf = http.post(f"{base}/workflows", json={"name": "On invoice", "definition": {"steps": [
        {"name": "say", "action": "core.echo", "input": {"amount": "{{ event.data.amount }}"}}]},
        "triggers": [{"type": "event", "event": "invoice.paid", "filters": {"amount": {"gt": 10}}}]}).json()["data"]
    events = boto3.client("events", endpoint_url=runtime.aws_url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    # No account resource: the event belongs to the deployment's own account (the printed key's).
    events.put_events(Entries=[{"EventBusName": "sluice-local", "Source": "billing", "DetailType": "invoice.paid",
                                "Detail": json.dumps({"amount": 42})}])
    [run] = _succeeded(http, base, wf["id"])
    assert run["triggered_by"] == "event"
