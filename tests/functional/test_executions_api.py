"""Executing workflows through the API, with the real step worker on SQS (SPEC §3, §7)."""

import pytest

from tests.functional.conftest import create_workflow, execute, wait_for


@pytest.fixture(autouse=True)
def _workers(workers):
    return workers


create = create_workflow


def test_a_sequential_workflow_runs_to_its_output(api):
    wf = create(api, {
        "variables": {"greeting": "hello"},
        "steps": [
            {"name": "say", "action": "core.echo", "input": {"text": "{{ vars.greeting }} {{ params.who }}"}},
            {"name": "shout", "action": "core.transform",
             "input": {"data": "{{ say.output.text | upper }}"}},
        ],
        "output": {"message": "{{ steps.shout.output }}", "n": "{{ params.n }}"},
    })
    reply = execute(api, wf, {"who": "world", "n": 3})
    assert reply.status == 200, reply.body
    ex = reply.data
    assert (ex["status"], ex["error"]) == ("succeeded", None)
    assert ex["result"] == {"message": "HELLO WORLD", "n": 3}
    assert ex["id"].startswith("ex_") and ex["execution_id"] == ex["id"]
    assert (ex["workflow_id"], ex["workflow_ref"], ex["workflow_revision"]) == (wf["id"], wf["ref"], 1)
    assert ex["triggered_by"] == "manual" and ex["redrive_count"] == 0
    assert ex["parameters"] == {"who": "world", "n": 3}
    assert [(s["name"], s["status"], s["attempts"]) for s in ex["steps"]] == [("say", "succeeded", 1),
                                                                              ("shout", "succeeded", 1)]
    say = ex["steps"][0]
    assert say["input"] == {"text": "hello world"} and say["output"] == {"text": "hello world"}
    assert say["attempt_log"][0]["status"] == "succeeded"
    assert ex["duration_ms"] >= 0 and ex["completed_at"] >= ex["started_at"]


def test_parameters_are_validated_against_param_schema(api):
    wf = create(api, {"steps": [{"name": "a", "action": "core.noop"}]},
                param_schema={"type": "object", "properties": {"severity": {"enum": ["low", "high"]}},
                              "required": ["severity"]})
    reply = execute(api, wf, {"severity": "urgent"})
    assert reply.status == 422
    assert reply.error["code"] == "PARAMETER_VALIDATION_ERROR"
    assert reply.error["details"][0]["field"] == "parameters.severity"
    missing = execute(api, wf, {})
    assert missing.status == 422 and "'severity' is a required property" in missing.error["details"][0]["message"]
    assert api.get("/api/v1/executions").data == []


def test_a_disabled_workflow_cannot_run(api):
    wf = create(api, {"steps": []}, enabled=False)
    reply = execute(api, wf)
    assert reply.status == 409 and reply.error["code"] == "INVALID_STATE"


def test_an_unhandled_failure_fails_the_execution(api):
    wf = create(api, {"steps": [
        {"name": "ok", "action": "core.noop"},
        {"name": "boom", "action": "core.fail", "input": {"code": "OUT_OF_STOCK", "message": "none left"}},
        {"name": "never", "action": "core.noop"},
    ]})
    ex = execute(api, wf).data
    assert ex["status"] == "failed"
    assert ex["error"] == {"code": "OUT_OF_STOCK", "message": "none left", "step": "boom", "attempt": 1}
    assert [s["status"] for s in ex["steps"]] == ["succeeded", "failed", "not_run"]


def test_a_template_error_names_the_missing_name(api):
    wf = create(api, {"steps": [{"name": "a", "action": "core.echo", "input": {"x": "{{ params.nope }}"}}]})
    ex = execute(api, wf).data
    assert ex["status"] == "failed"
    assert ex["error"]["code"] == "TEMPLATE_ERROR" and "nope" in ex["error"]["message"]


def test_execute_without_waiting_answers_202_then_finishes(api):
    wf = create(api, {"steps": [{"name": "a", "action": "core.noop"}]})
    reply = execute(api, wf, wait_for_completion=False)
    assert reply.status == 202
    assert reply.data["status"] == "queued"
    done = wait_for(lambda: api.get(f"/api/v1/executions/{reply.data['id']}").data["status"] == "succeeded")
    assert done
