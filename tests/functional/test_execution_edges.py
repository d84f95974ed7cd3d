"""Edges found in review, each once a bug: cancelling a running chain, retrying past a
rejected approval, deleting a workflow with executions, unusable schemas, oversized
records, child workflows' checks and nesting, stats of cancelled runs, deep JSON."""

import json

import boto3
import pytest

from chalicelib import wiring
from chalicelib.config import get_settings
from tests.functional.conftest import create_workflow, execute, wait_for


@pytest.fixture(autouse=True)
def _workers(workers):
    return workers


def detail(api, execution_id):
    return api.get(f"/api/v1/executions/{execution_id}").data


def test_cancelling_stops_a_running_chain_before_its_next_steps(api, sink):
    sink.slow_seconds = 1.0
    wf = create_workflow(api, {"steps": [
        {"name": "slow", "action": "core.http", "input": {"url": sink.url("/slow/one")}},
        {"name": "two", "action": "core.http", "input": {"url": sink.url("/two")}},
        {"name": "three", "action": "core.http", "input": {"url": sink.url("/three")}},
    ]})
    started = execute(api, wf, wait_for_completion=False).data
    wait_for(lambda: sink.to("/slow/one"))
    cancelled = api.post(f"/api/v1/executions/{started['id']}/cancel")
    assert cancelled.status == 200 and cancelled.data["status"] == "cancelled"
    import time
    time.sleep(1.5)  # the slow step's worker comes back and must not go on
    final = detail(api, started["id"])
    assert final["status"] == "cancelled"
    assert [(s["name"], s["status"]) for s in final["steps"]] == [
        ("slow", "cancelled"), ("two", "not_run"), ("three", "not_run")]
    assert sink.routes() == ["/slow/one"]


def test_a_retry_after_a_rejection_waits_for_a_new_approval(api, sink):
    wf = create_workflow(api, {"steps": [
        {"name": "deploy", "action": "core.http", "input": {"url": sink.url("/deploy")},
         "approval": {"approvers": ["ops"], "timeout": 3600}},
    ]})
    started = execute(api, wf, wait_for_completion=False).data
    wait_for(lambda: detail(api, started["id"])["steps"][0]["status"] == "waiting_approval")
    rejected = api.post(f"/api/v1/executions/{started['id']}/steps/deploy/reject", {"comment": "no"})
    assert rejected.data["status"] == "failed"
    retried = api.post(f"/api/v1/executions/{started['id']}/retry")
    assert retried.status == 200
    waiting = wait_for(lambda: (d := detail(api, started["id"]))["status"] == "waiting" and d)
    assert waiting["steps"][0]["status"] == "waiting_approval" and waiting["redrive_count"] == 1
    assert sink.to("/deploy") == []
    api.post(f"/api/v1/executions/{started['id']}/steps/deploy/approve", {"comment": "now yes"})
    wait_for(lambda: detail(api, started["id"])["status"] == "succeeded")
    assert len(sink.to("/deploy")) == 1


def test_deleting_a_workflow_cancels_its_running_executions_and_removes_its_history(api):
    wf = create_workflow(api, {"steps": [{"name": "ask", "action": "core.inquiry", "input": {"message": "?"}}]})
    waiting = execute(api, wf, wait_for_completion=False).data
    wait_for(lambda: detail(api, waiting["id"])["status"] == "waiting")
    done_wf = create_workflow(api, {"steps": [{"name": "a", "action": "core.noop"}]}, name="Done")
    finished = execute(api, done_wf).data
    assert api.delete(f"/api/v1/workflows/{wf['id']}").status == 200
    wait_for(lambda: api.get(f"/api/v1/executions/{waiting['id']}").status == 404)
    assert wiring.runtime().executions.steps(api_account(api), waiting["id"]) == []
    # Another workflow's history is untouched.
    assert detail(api, finished["id"])["status"] == "succeeded"


def test_a_purged_execution_leaves_no_payload_objects(api):
    s3, bucket = boto3.client("s3"), get_settings().payload_bucket
    wf = create_workflow(api, {"steps": [{"name": "big", "action": "core.echo", "input": {"blob": "x" * 40_000}}]})
    kept = create_workflow(api, {"steps": [{"name": "big", "action": "core.echo", "input": {"blob": "y" * 40_000}}]},
                           name="Kept")
    gone, stays = execute(api, wf).data["id"], execute(api, kept).data["id"]

    def objects(execution_id):
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"executions/{api_account(api)}/{execution_id}/")
        return sorted(item["Key"].rsplit("/", 2)[-2] + "/" + item["Key"].rsplit("/", 1)[-1]
                      for item in listed.get("Contents", []))

    assert objects(gone) == ["big/input-1.json", "big/output.json", gone + "/result.json"]
    api.delete(f"/api/v1/workflows/{wf['id']}")
    wait_for(lambda: objects(gone) == [])
    assert len(objects(stays)) == 3


def api_account(api):
    from chalicelib.services.accounts import hash_key
    from chalicelib.store.models import ApiKeyModel

    return ApiKeyModel.get(hash_key(api.key)).account_id


@pytest.mark.parametrize("field, schema", [
    ("param_schema", {"$ref": "#/$defs/missing"}),
    ("out_schema", {"type": "object", "properties": {"x": {"$ref": "https://example.com/remote.json"}}}),
])
def test_a_schema_whose_ref_does_not_resolve_is_refused_at_write_time(api, field, schema):
    reply = api.post("/api/v1/workflows", {"name": "refs", field: schema})
    assert reply.status == 400
    assert reply.error["code"] == "INVALID_WORKFLOW_CONFIG"
    assert reply.error["details"][0]["field"] == field
    assert "does not resolve" in reply.error["details"][0]["message"]


def test_an_inquiry_with_an_unusable_schema_fails_its_step(api):
    wf = create_workflow(api, {"steps": [{"name": "ask", "action": "core.inquiry", "input": {"schema": {"type": "nonsense"}}}]})
    ex = execute(api, wf).data
    assert ex["status"] == "failed"
    assert ex["error"]["code"] == "INVALID_INPUT" and ex["error"]["message"].startswith("schema")


def test_a_huge_error_message_is_cut_and_the_execution_ends(api):
    wf = create_workflow(api, {"steps": [{"name": "boom", "action": "core.fail",
                                          "input": {"message": "{{ 'x' * 90000 }}"}}]})
    ex = execute(api, wf).data
    assert ex["status"] == "failed"
    assert len(ex["error"]["message"]) == 4000 + len(" [cut]") and ex["error"]["message"].endswith(" [cut]")


def test_publishing_more_than_32_kb_fails_the_step(api):
    wf = create_workflow(api, {"steps": [{"name": "big", "action": "core.noop",
                                          "publish": {"blob": "{{ 'y' * 40000 }}"}}]})
    ex = execute(api, wf).data
    assert ex["status"] == "failed"
    assert ex["error"]["code"] == "INVALID_INPUT" and "publish" in ex["error"]["message"]


def test_workflow_run_checks_the_child_like_a_manual_run(api):
    child = create_workflow(api, {"steps": [{"name": "a", "action": "core.noop"}]}, name="Child",
                            param_schema={"type": "object", "properties": {"n": {"type": "integer"}}})
    parent = create_workflow(api, {"steps": [{"name": "call", "action": "workflow.run",
                                              "input": {"workflow": child["ref"], "parameters": {"n": "many"}}}]},
                             name="Parent")
    ex = execute(api, parent).data
    assert ex["status"] == "failed" and ex["error"]["code"] == "INVALID_INPUT"
    assert "parameters.n" in ex["error"]["message"]
    api.post(f"/api/v1/workflows/{child['id']}/deactivate")
    good = create_workflow(api, {"steps": [{"name": "call", "action": "workflow.run",
                                            "input": {"workflow": child["ref"], "parameters": {"n": 1}}}]},
                           name="Parent two")
    ex = execute(api, good).data
    assert (ex["status"], ex["error"]["code"]) == ("failed", "INVALID_STATE")


def test_a_workflow_that_runs_itself_stops_at_the_nesting_limit(api):
    wf = create_workflow(api, {"steps": [{"name": "again", "action": "workflow.run",
                                          "input": {"workflow": "default.loop"}}]}, name="Loop")
    assert wf["ref"] == "default.loop"
    ex = execute(api, wf, timeout_seconds=20).data
    assert ex["status"] == "failed"
    listed = api.get("/api/v1/executions?limit=100").data
    assert len([e for e in listed if e["workflow_id"] == wf["id"]]) == 11  # the top one and 10 levels
    assert "at most 10 levels" in json.dumps(ex["error"])


def test_cancelled_runs_count_but_do_not_lower_the_average_duration(api):
    wf = create_workflow(api, {"steps": [{"name": "ask", "action": "core.inquiry"}]})
    waiting = execute(api, wf, wait_for_completion=False).data
    wait_for(lambda: detail(api, waiting["id"])["status"] == "waiting")
    api.post(f"/api/v1/executions/{waiting['id']}/cancel")
    stats = api.get(f"/api/v1/workflows/{wf['id']}").data["stats"]
    assert (stats["runs_total"], stats["runs_succeeded"], stats["runs_failed"], stats["average_duration_ms"]) == (1, 0, 0, 0)


def test_deeply_nested_json_is_a_400(api):
    reply = api.post("/api/v1/workflows", raw="[" * 100_000)
    assert reply.status == 400 and reply.error["details"] == [{"field": "body", "message": "is nested too deeply"}]


def test_an_unknown_type_filter_is_a_400(api):
    reply = api.get("/api/v1/workflows?type=bogus")
    assert reply.status == 400 and reply.error["details"][0]["field"] == "type"


def test_only_listed_approvers_or_an_admin_decide(api):
    wf = create_workflow(api, {"steps": [{"name": "gate", "action": "core.noop",
                                          "approval": {"approvers": ["release-manager"]}}]})
    started = execute(api, wf, wait_for_completion=False).data
    wait_for(lambda: detail(api, started["id"])["status"] == "waiting")
    outsider = api.as_key(api.post("/api/v1/api-keys", {"name": "intern", "scopes": ["execute", "read"]}).data["key"])
    denied = outsider.post(f"/api/v1/executions/{started['id']}/steps/gate/approve", {})
    assert denied.status == 403 and denied.error["code"] == "FORBIDDEN"
    assert "release-manager" in denied.error["message"]
    manager = api.as_key(api.post("/api/v1/api-keys", {"name": "release-manager", "scopes": ["execute"]}).data["key"])
    assert manager.post(f"/api/v1/executions/{started['id']}/steps/gate/approve", {}).status == 200
    wait_for(lambda: detail(api, started["id"])["status"] == "succeeded")
