"""How executions behave, end to end through the API with the real step and delivery
workers on SQS: graph mode, failure policies, retries, variables, approvals, timers,
cancel and redrive, child workflows, large outputs, deadlines, listing and callbacks
(SPEC §3, §4, §5, §7). HTTP steps and callbacks talk to a local sink on 127.0.0.1."""

from __future__ import annotations

import base64
import secrets
import time

import boto3
import pytest

from chalicelib import signing
from chalicelib.config import get_settings
from tests.functional.conftest import create_workflow, execute, new_tenant, wait_for


@pytest.fixture(autouse=True)
def _workers(workers):
    return workers




# -- helpers -------------------------------------------------------------------------

create = create_workflow


def finished(api, workflow, parameters=None):
    reply = execute(api, workflow, parameters)
    assert reply.status == 200, reply.body
    return reply.data


def start(api, workflow, parameters=None):
    reply = execute(api, workflow, parameters, wait_for_completion=False)
    assert reply.status == 202, reply.body
    return reply.data["id"]


def get(api, execution_id):
    reply = api.get(f"/api/v1/executions/{execution_id}")
    assert reply.status == 200, reply.body
    return reply.data


def wait_status(api, execution_id, *statuses, timeout=10.0):
    """The execution once its status is one of `statuses` (fails the test after `timeout`)."""
    def reached():
        execution = get(api, execution_id)
        return execution if execution["status"] in statuses else None

    return wait_for(reached, timeout)


def settled(api, execution_id, timeout=5.0):
    """The execution once it has ended."""
    return wait_status(api, execution_id, "succeeded", "failed", "cancelled", "timed_out", timeout=timeout)


def steps(execution):
    """(name, status, attempts) of every step, in plan order."""
    return [(s["name"], s["status"], s["attempts"]) for s in execution["steps"]]


def step(execution, name):
    return next(s for s in execution["steps"] if s["name"] == name)


def post(sink, route, **more):
    return {"url": sink.url(route), "method": "POST", **more}


# -- 1. graph mode ---------------------------------------------------------------------

def test_start_steps_run_together_and_a_join_runs_once_after_all_branches(api, sink):
    wf = create(api, {"steps": [
        {"name": "left", "action": "core.http", "input": post(sink, "/meet/left")},
        {"name": "right", "action": "core.http", "input": post(sink, "/meet/right")},
        {"name": "middle", "action": "core.echo", "input": {"side": "middle"}},
        {"name": "join", "action": "core.http", "depends_on": ["left", "right", "middle"],
         "input": post(sink, "/join", json={"left": "{{ left.output.status_code }}",
                                            "right": "{{ steps.right.output.body.route }}",
                                            "middle": "{{ middle.output.side }}"})},
    ]})
    ex = finished(api, wf)
    assert (ex["status"], ex["error"]) == ("succeeded", None)
    assert steps(ex) == [("left", "succeeded", 1), ("right", "succeeded", 1), ("middle", "succeeded", 1),
                         ("join", "succeeded", 1)]
    # Both /meet requests were inside the sink at once: the start steps ran concurrently.
    assert step(ex, "left")["output"]["status_code"] == 200 and step(ex, "right")["output"]["status_code"] == 200
    assert sorted(sink.routes()[:2]) == ["/meet/left", "/meet/right"]
    joins = sink.to("/join")
    assert len(joins) == 1
    assert joins[0].json == {"left": 200, "right": "/meet/right", "middle": "middle"}
    assert step(ex, "join")["started_at"] >= max(step(ex, n)["completed_at"] for n in ("left", "right", "middle"))


def test_on_success_and_on_failure_paths_a_handled_failure_does_not_fail_the_execution(api):
    wf = create(api, {"steps": [
        {"name": "charge", "action": "core.fail", "input": {"code": "CARD_DECLINED", "message": "card declined"},
         "on_success": "ship", "on_failure": "refund"},
        {"name": "ship", "action": "core.noop"},
        {"name": "after_ship", "action": "core.noop", "depends_on": ["ship"]},
        {"name": "refund", "action": "core.echo",
         "input": {"why": "{{ error.message }}", "failed_step": "{{ error.step }}", "code": "{{ error.code }}"}},
    ]})
    ex = finished(api, wf)
    assert (ex["status"], ex["error"]) == ("succeeded", None)
    assert steps(ex) == [("charge", "failed", 1), ("ship", "not_run", 0), ("after_ship", "not_run", 0),
                         ("refund", "succeeded", 1)]
    assert step(ex, "charge")["error"] == {"code": "CARD_DECLINED", "message": "card declined", "step": "charge",
                                           "attempt": 1}
    assert step(ex, "refund")["output"] == {"why": "card declined", "failed_step": "charge", "code": "CARD_DECLINED"}
    assert ex["result"] == {"why": "card declined", "failed_step": "charge", "code": "CARD_DECLINED"}


def test_on_success_path_runs_and_the_failure_handler_stays_not_run(api):
    wf = create(api, {"steps": [
        {"name": "charge", "action": "core.echo", "input": {"amount": 12}, "on_success": "ship",
         "on_failure": "refund"},
        {"name": "ship", "action": "core.echo", "input": {"shipped": "{{ charge.output.amount }}"}},
        {"name": "refund", "action": "core.noop"},
    ]})
    ex = finished(api, wf)
    assert ex["status"] == "succeeded"
    assert steps(ex) == [("charge", "succeeded", 1), ("ship", "succeeded", 1), ("refund", "not_run", 0)]
    assert step(ex, "ship")["output"] == {"shipped": 12}


def test_on_complete_runs_after_a_success_and_after_a_failure(api):
    wf = create(api, {"steps": [
        {"name": "work", "action": "core.echo", "input": {"n": 1}, "on_complete": "cleanup"},
        {"name": "cleanup", "action": "core.echo", "input": {"after": "{{ steps.work.status }}"}},
    ]})
    ex = finished(api, wf)
    assert steps(ex) == [("work", "succeeded", 1), ("cleanup", "succeeded", 1)]
    assert step(ex, "cleanup")["output"] == {"after": "succeeded"}

    failing = create(api, {"steps": [
        {"name": "work", "action": "core.fail", "input": {"message": "broken"}, "on_complete": "cleanup"},
        {"name": "cleanup", "action": "core.echo",
         "input": {"after": "{{ steps.work.status }}", "why": "{{ error.message }}"}},
    ]})
    ex = finished(api, failing)
    # on_complete handles the failure as on_failure would: the flow goes on to cleanup.
    assert (ex["status"], ex["error"]) == ("succeeded", None)
    assert steps(ex) == [("work", "failed", 1), ("cleanup", "succeeded", 1)]
    assert step(ex, "cleanup")["output"] == {"after": "failed", "why": "broken"}


def test_a_condition_branches_with_on_true_and_on_false(api):
    wf = create(api, {"steps": [
        {"name": "check", "action": "core.condition", "input": {"condition": "{{ params.amount > 100 }}"},
         "on_true": "review", "on_false": "approve"},
        {"name": "review", "action": "core.echo", "input": {"path": "review"}},
        {"name": "approve", "action": "core.echo", "input": {"path": "auto"}},
        {"name": "done", "action": "core.noop", "depends_on": ["review"]},
    ]})
    big = finished(api, wf, {"amount": 500})
    assert big["status"] == "succeeded"
    assert steps(big) == [("check", "succeeded", 1), ("review", "succeeded", 1), ("approve", "not_run", 0),
                          ("done", "succeeded", 1)]
    assert step(big, "check")["output"] == {"result": True}

    small = finished(api, wf, {"amount": 5})
    assert small["status"] == "succeeded"
    assert steps(small) == [("check", "succeeded", 1), ("review", "not_run", 0), ("approve", "succeeded", 1),
                            ("done", "not_run", 0)]
    assert step(small, "check")["output"] == {"result": False}
    assert step(small, "approve")["output"] == {"path": "auto"}


def test_when_false_skips_the_step_and_its_dependants_still_run(api):
    wf = create(api, {"steps": [
        {"name": "notify", "action": "core.echo", "input": {"sent": True}, "when": "{{ params.notify }}"},
        {"name": "audit", "action": "core.echo", "depends_on": ["notify"],
         "input": {"notify_status": "{{ steps.notify.status }}"}},
    ]})
    ex = finished(api, wf, {"notify": False})
    assert (ex["status"], ex["error"]) == ("succeeded", None)
    # Evaluating `when` is the step's one attempt; its action never ran.
    assert steps(ex) == [("notify", "skipped", 1), ("audit", "succeeded", 1)]
    assert step(ex, "notify")["output"] is None
    assert step(ex, "audit")["output"] == {"notify_status": "skipped"}

    ran = finished(api, wf, {"notify": True})
    assert steps(ran) == [("notify", "succeeded", 1), ("audit", "succeeded", 1)]
    assert step(ran, "audit")["output"] == {"notify_status": "succeeded"}


# -- 2. failure policies ----------------------------------------------------------------

def test_failure_policy_continue_treats_the_failure_as_finished(api):
    wf = create(api, {"steps": [
        {"name": "optional", "action": "core.fail", "input": {"code": "NOT_THERE", "message": "missing"},
         "failure_policy": "continue"},
        {"name": "next", "action": "core.echo",
         "input": {"before": "{{ steps.optional.status }}", "code": "{{ steps.optional.error.code }}"}},
    ]})
    ex = finished(api, wf)
    assert (ex["status"], ex["error"]) == ("succeeded", None)
    assert steps(ex) == [("optional", "failed", 1), ("next", "succeeded", 1)]
    assert step(ex, "optional")["error"] == {"code": "NOT_THERE", "message": "missing", "step": "optional",
                                             "attempt": 1}
    assert step(ex, "next")["output"] == {"before": "failed", "code": "NOT_THERE"}


def test_failure_policy_compensate_undoes_finished_steps_in_reverse_completion_order(api, sink):
    def undo(name):
        return {"action": "core.http", "input": post(sink, f"/undo/{name}", json={"undo": name,
                                                                                    "id": "{{ execution.id }}"})}

    # `slow` is listed first but finishes after `fast`, so it is compensated first.
    wf = create(api, {"steps": [
        {"name": "slow", "action": "core.http", "input": post(sink, "/slow/reserve"), "compensate": undo("slow")},
        {"name": "fast", "action": "core.http", "input": post(sink, "/charge"), "compensate": undo("fast")},
        {"name": "plain", "action": "core.noop"},
        {"name": "ship", "action": "core.fail", "input": {"code": "NO_COURIER", "message": "no courier"},
         "depends_on": ["slow", "fast", "plain"], "failure_policy": "compensate"},
        {"name": "invoice", "action": "core.noop", "depends_on": ["ship"]},
    ]})
    ex = finished(api, wf)
    assert ex["status"] == "failed"
    assert ex["error"] == {"code": "NO_COURIER", "message": "no courier", "step": "ship", "attempt": 1}
    assert steps(ex) == [("slow", "compensated", 1), ("fast", "compensated", 1), ("plain", "succeeded", 1),
                         ("ship", "failed", 1), ("invoice", "not_run", 0)]
    assert step(ex, "fast")["completed_at"] <= step(ex, "slow")["completed_at"]
    undos = [r for r in sink.received if r.path.startswith("/undo/")]
    assert [r.json for r in undos] == [{"undo": "slow", "id": ex["id"]}, {"undo": "fast", "id": ex["id"]}]
    assert step(ex, "slow")["compensation"]["status"] == "compensated"
    assert step(ex, "slow")["compensation"]["error"] is None


# -- 3. retries ------------------------------------------------------------------------

FLAKY_CALL = {"name": "call", "action": "core.http", "retry": {"max_attempts": 3, "initial_interval": 0}}


def test_a_5xx_is_retried_with_a_new_idempotency_key_per_attempt(api, sink):
    sink.scripts["/flaky"] = [500, 500]
    wf = create(api, {"steps": [dict(FLAKY_CALL, input=post(sink, "/flaky", json={"n": 1}))]})
    ex = finished(api, wf)
    assert (ex["status"], ex["error"]) == ("succeeded", None)
    assert steps(ex) == [("call", "succeeded", 3)]
    call = step(ex, "call")
    assert call["error"] is None
    assert call["output"]["status_code"] == 200 and call["output"]["body"] == {"route": "/flaky", "status": 200}
    assert [r.header("Idempotency-Key") for r in sink.to("/flaky")] == [
        f"{ex['id']}:call:1", f"{ex['id']}:call:2", f"{ex['id']}:call:3"]
    assert [r.json for r in sink.to("/flaky")] == [{"n": 1}] * 3


def _attempt_log(execution, name):
    return [(e["attempt"], e["status"], e["error"]["code"] if e["error"] else None)
            for e in step(execution, name)["attempt_log"]]


def test_the_attempt_log_keeps_every_attempt_of_a_graph_step(api, sink):
    sink.scripts["/flaky"] = [500, 500]
    wf = create(api, {"steps": [
        dict(FLAKY_CALL, input=post(sink, "/flaky")),
        {"name": "after", "action": "core.noop", "depends_on": ["call"]},
    ]})
    ex = finished(api, wf)
    assert steps(ex) == [("call", "succeeded", 3), ("after", "succeeded", 1)]
    assert _attempt_log(ex, "call") == [(1, "retrying", "HTTP_5XX"), (2, "retrying", "HTTP_5XX"),
                                        (3, "succeeded", None)]


def test_the_attempt_log_keeps_every_attempt_of_a_sequential_step(api, sink):
    sink.scripts["/flaky"] = [500, 500]
    wf = create(api, {"steps": [dict(FLAKY_CALL, input=post(sink, "/flaky"))]})
    ex = finished(api, wf)
    assert steps(ex) == [("call", "succeeded", 3)]
    assert _attempt_log(ex, "call") == [(1, "retrying", "HTTP_5XX"), (2, "retrying", "HTTP_5XX"),
                                        (3, "succeeded", None)]


def test_a_4xx_is_not_retried(api, sink):
    sink.scripts["/missing"] = [404, 404, 404]
    wf = create(api, {"steps": [
        {"name": "call", "action": "core.http", "input": post(sink, "/missing"),
         "retry": {"max_attempts": 3, "initial_interval": 0}},
    ]})
    ex = finished(api, wf)
    assert ex["status"] == "failed"
    assert ex["error"]["code"] == "HTTP_4XX" and ex["error"]["step"] == "call" and ex["error"]["attempt"] == 1
    assert steps(ex) == [("call", "failed", 1)]
    assert [e["status"] for e in step(ex, "call")["attempt_log"]] == ["failed"]
    assert len(sink.to("/missing")) == 1


# -- 4, 5. variables, transform, condition ----------------------------------------------

def test_publish_sets_variables_that_later_steps_see(api):
    wf = create(api, {
        "variables": {"greeting": "hi", "total": 0},
        "steps": [
            {"name": "count", "action": "core.echo", "input": {"n": 4},
             "publish": {"total": "{{ steps.count.output.n * 10 }}", "label": "items-{{ count.output.n }}"}},
            {"name": "report", "action": "core.echo",
             "input": {"total": "{{ vars.total }}", "label": "{{ vars.label }}", "greeting": "{{ vars.greeting }}"}},
        ],
    })
    ex = finished(api, wf)
    assert ex["status"] == "succeeded"
    assert step(ex, "report")["output"] == {"total": 40, "label": "items-4", "greeting": "hi"}


def test_transform_applies_a_jmespath_expression_and_condition_reports_truthiness(api):
    wf = create(api, {
        "steps": [
            {"name": "big_orders", "action": "core.transform",
             "input": {"data": "{{ params.orders }}", "expression": "[?total > `10`].id"}},
            {"name": "whole", "action": "core.transform", "input": {"data": {"n": "{{ params.orders | length }}"}}},
            {"name": "any_big", "action": "core.condition", "input": {"condition": "{{ big_orders.output }}"}},
            {"name": "empty", "action": "core.condition", "input": {"condition": "{{ [] }}"}},
        ],
        "output": {"ids": "{{ steps.big_orders.output }}", "whole": "{{ whole.output }}",
                   "flags": ["{{ any_big.output.result }}", "{{ empty.output.result }}"]},
    })
    orders = [{"id": "o1", "total": 5}, {"id": "o2", "total": 25}, {"id": "o3", "total": 11}]
    ex = finished(api, wf, {"orders": orders})
    assert ex["status"] == "succeeded"
    assert ex["result"] == {"ids": ["o2", "o3"], "whole": {"n": 3}, "flags": [True, False]}
    assert step(ex, "big_orders")["input"] == {"data": orders, "expression": "[?total > `10`].id"}


def test_names_that_are_also_dict_methods_resolve_to_their_values(api):
    wf = create(api, {"steps": [
        {"name": "values", "action": "core.echo", "input": {"items": "{{ params.items }}"}},
        {"name": "total", "action": "core.transform",
         "input": {"data": "{{ steps.values.output['items'] }}", "expression": "sum([*].qty)"}},
    ]})
    ex = settled(api, start(api, wf, {"items": [{"qty": 2}, {"qty": 3}]}))
    assert (ex["status"], ex["error"]) == ("succeeded", None)
    assert step(ex, "values")["output"] == {"items": [{"qty": 2}, {"qty": 3}]}
    assert step(ex, "total")["output"] == 5


def test_an_expression_that_renders_to_a_method_fails_the_step_with_template_error(api):
    wf = create(api, {"steps": [{"name": "shout", "action": "core.echo", "input": {"text": "{{ 'abc'.upper }}"}}]})
    ex = settled(api, start(api, wf))
    assert ex["status"] == "failed"
    assert (ex["error"]["code"], ex["error"]["step"]) == ("TEMPLATE_ERROR", "shout")
    assert steps(ex) == [("shout", "failed", 1)]


# -- 6. approvals and inquiries -----------------------------------------------------------

APPROVAL_FLOW = {"steps": [
    {"name": "prepare", "action": "core.echo", "input": {"version": "{{ params.version }}"}},
    {"name": "deploy", "action": "core.echo", "input": {"deployed": "{{ prepare.output.version }}"},
     "approval": {"approvers": ["ops@example.com"], "timeout": 3600, "message": "Deploy {{ params.version }}?"}},
    {"name": "announce", "action": "core.noop"},
]}


def test_an_approval_gate_waits_then_runs_its_action_when_approved(api):
    wf = create(api, APPROVAL_FLOW)
    ex_id = start(api, wf, {"version": "1.2.3"})
    waiting = wait_status(api, ex_id, "waiting")
    assert steps(waiting) == [("prepare", "succeeded", 1), ("deploy", "waiting_approval", 1),
                              ("announce", "pending", 0)]
    approval = step(waiting, "deploy")["approval"]
    assert (approval["approvers"], approval["message"], approval["inquiry"]) == (
        ["ops@example.com"], "Deploy 1.2.3?", False)
    assert approval["deadline"] == pytest.approx(time.time() + 3600, abs=30)
    assert step(waiting, "deploy")["output"] is None

    reply = api.post(f"/api/v1/executions/{ex_id}/steps/deploy/approve", {"comment": "go"})
    assert reply.status == 200, reply.body
    done = wait_status(api, ex_id, "succeeded")
    assert done["error"] is None
    assert steps(done) == [("prepare", "succeeded", 1), ("deploy", "succeeded", 1), ("announce", "succeeded", 1)]
    assert step(done, "deploy")["output"] == {"deployed": "1.2.3"}
    assert step(done, "deploy")["approval"]["decision"] == "approved"
    assert step(done, "deploy")["approval"]["comment"] == "go"


def test_a_rejected_approval_fails_the_execution(api):
    wf = create(api, APPROVAL_FLOW)
    ex_id = start(api, wf, {"version": "2.0.0"})
    wait_status(api, ex_id, "waiting")
    reply = api.post(f"/api/v1/executions/{ex_id}/steps/deploy/reject", {"comment": "not on a Friday"})
    assert reply.status == 200, reply.body
    done = wait_status(api, ex_id, "failed")
    assert done["error"] == {"code": "APPROVAL_REJECTED", "message": "rejected: not on a Friday", "step": "deploy",
                             "attempt": 1}
    assert steps(done) == [("prepare", "succeeded", 1), ("deploy", "failed", 1), ("announce", "not_run", 0)]
    assert step(done, "deploy")["approval"]["decision"] == "rejected"


def test_approving_a_step_that_is_not_waiting_or_does_not_exist(api):
    wf = create(api, APPROVAL_FLOW)
    ex_id = start(api, wf, {"version": "1.0.0"})
    wait_status(api, ex_id, "waiting")
    for name in ("prepare", "announce"):
        reply = api.post(f"/api/v1/executions/{ex_id}/steps/{name}/approve", {})
        assert reply.status == 409 and reply.error["code"] == "INVALID_STATE", reply.body
    unknown = api.post(f"/api/v1/executions/{ex_id}/steps/nope/approve", {})
    assert unknown.status == 404 and unknown.error["code"] == "NOT_FOUND"
    rejected_unknown = api.post(f"/api/v1/executions/{ex_id}/steps/nope/reject", {})
    assert rejected_unknown.status == 404
    assert get(api, ex_id)["status"] == "waiting"
    assert api.post(f"/api/v1/executions/{ex_id}/cancel").status == 200


def test_an_inquiry_validates_its_response_against_the_schema_and_outputs_it(api):
    wf = create(api, {"steps": [
        {"name": "ask", "action": "core.inquiry", "input": {
            "message": "How many?", "approvers": ["lead@example.com"],
            "schema": {"type": "object", "properties": {"count": {"type": "integer", "minimum": 1}},
                       "required": ["count"]}}},
        {"name": "use", "action": "core.echo", "input": {"n": "{{ ask.output.count }}"}},
    ]})
    ex_id = start(api, wf)
    waiting = wait_status(api, ex_id, "waiting")
    assert steps(waiting) == [("ask", "waiting_approval", 1), ("use", "pending", 0)]
    assert step(waiting, "ask")["approval"]["inquiry"] is True

    bad = api.post(f"/api/v1/executions/{ex_id}/steps/ask/approve", {"response": {"count": 0}})
    assert bad.status == 400 and bad.error["code"] == "VALIDATION_ERROR"
    assert [d["field"] for d in bad.error["details"]] == ["response.count"]
    missing = api.post(f"/api/v1/executions/{ex_id}/steps/ask/approve", {"response": {}})
    assert missing.status == 400 and missing.error["details"][0]["field"].startswith("response")
    assert get(api, ex_id)["status"] == "waiting"

    good = api.post(f"/api/v1/executions/{ex_id}/steps/ask/approve", {"response": {"count": 3}})
    assert good.status == 200, good.body
    done = wait_status(api, ex_id, "succeeded")
    assert steps(done) == [("ask", "succeeded", 1), ("use", "succeeded", 1)]
    assert step(done, "ask")["output"] == {"count": 3}
    assert step(done, "use")["output"] == {"n": 3}


# -- 7. sleep ----------------------------------------------------------------------------

def test_sleep_waits_without_a_worker_and_then_goes_on(api):
    wf = create(api, {"steps": [
        {"name": "nap", "action": "core.sleep", "input": {"seconds": 1}},
        {"name": "after", "action": "core.echo", "input": {"woke": True}},
    ]})
    began = time.monotonic()
    ex_id = start(api, wf)
    sleeping = wait_status(api, ex_id, "waiting", timeout=1.0)
    assert steps(sleeping) == [("nap", "sleeping", 1), ("after", "pending", 0)]
    done = wait_status(api, ex_id, "succeeded", timeout=6)
    assert time.monotonic() - began >= 1.0
    assert steps(done) == [("nap", "succeeded", 1), ("after", "succeeded", 1)]
    assert set(step(done, "nap")["output"]) == {"slept_until"}


# -- 8. cancel ---------------------------------------------------------------------------

def test_cancelling_an_execution_that_waits_for_an_approval(api):
    wf = create(api, APPROVAL_FLOW)
    ex_id = start(api, wf, {"version": "3.0.0"})
    wait_status(api, ex_id, "waiting")
    reply = api.post(f"/api/v1/executions/{ex_id}/cancel")
    assert reply.status == 200, reply.body
    ex = reply.data
    assert ex["status"] == "cancelled"
    assert ex["error"] == {"code": "CANCELLED", "message": "the execution was cancelled"}
    assert ex["completed_at"] is not None
    assert steps(ex) == [("prepare", "succeeded", 1), ("deploy", "cancelled", 1), ("announce", "not_run", 0)]
    assert step(ex, "deploy")["error"] == {"code": "CANCELLED", "message": "the execution was cancelled"}
    assert get(api, ex_id)["status"] == "cancelled"

    again = api.post(f"/api/v1/executions/{ex_id}/cancel")
    assert again.status == 409 and again.error["code"] == "INVALID_STATE"
    late = api.post(f"/api/v1/executions/{ex_id}/steps/deploy/approve", {})
    assert late.status == 409 and late.error["code"] == "INVALID_STATE"


# -- 9. redrive --------------------------------------------------------------------------

def test_retry_re_runs_the_failed_step_of_the_same_execution(api, sink):
    sink.scripts["/second"] = [503]
    wf = create(api, {"steps": [
        {"name": "first", "action": "core.http", "input": post(sink, "/first")},
        {"name": "second", "action": "core.http", "input": post(sink, "/second")},
        {"name": "third", "action": "core.echo", "input": {"got": "{{ second.output.body.route }}"}},
    ]})
    failed = finished(api, wf)
    assert failed["status"] == "failed" and failed["error"]["code"] == "HTTP_5XX"
    assert steps(failed) == [("first", "succeeded", 1), ("second", "failed", 1), ("third", "not_run", 0)]

    reply = api.post(f"/api/v1/executions/{failed['id']}/retry")
    assert reply.status == 200, reply.body
    assert reply.data["id"] == failed["id"] and reply.data["redrive_count"] == 1
    done = wait_status(api, failed["id"], "succeeded")
    assert (done["error"], done["redrive_count"]) == (None, 1)
    assert steps(done) == [("first", "succeeded", 1), ("second", "succeeded", 2), ("third", "succeeded", 1)]
    assert step(done, "third")["output"] == {"got": "/second"}
    assert len(sink.to("/first")) == 1
    assert [r.header("Idempotency-Key") for r in sink.to("/second")] == [
        f"{failed['id']}:second:1", f"{failed['id']}:second:2"]

    again = api.post(f"/api/v1/executions/{failed['id']}/retry")
    assert again.status == 409 and again.error["code"] == "INVALID_STATE"


# -- 10. child workflows ------------------------------------------------------------------

def test_workflow_run_starts_a_child_and_its_result_is_the_step_output(api):
    child = create(api, {
        "steps": [{"name": "double", "action": "core.transform", "input": {"data": "{{ params.n * 2 }}"}}],
        "output": {"doubled": "{{ steps.double.output }}"},
    }, name="Doubler")
    parent = create(api, {"steps": [
        {"name": "call", "action": "workflow.run",
         "input": {"workflow": child["ref"], "parameters": {"n": "{{ params.n }}"}}},
        {"name": "after", "action": "core.echo", "input": {"got": "{{ call.output.doubled }}"}},
    ]}, name="Parent")
    ex = finished(api, parent, {"n": 21})
    assert (ex["status"], ex["error"]) == ("succeeded", None)
    assert steps(ex) == [("call", "succeeded", 1), ("after", "succeeded", 1)]
    assert step(ex, "call")["output"] == {"doubled": 42}
    assert step(ex, "after")["output"] == {"got": 42}

    child_ex = get(api, step(ex, "call")["child_execution_id"])
    assert (child_ex["workflow_id"], child_ex["status"]) == (child["id"], "succeeded")
    assert (child_ex["triggered_by"], child_ex["parent_execution_id"]) == ("parent", ex["id"])
    assert child_ex["parameters"] == {"n": 21} and child_ex["result"] == {"doubled": 42}
    listed = api.get("/api/v1/executions?triggered_by=parent")
    assert [e["id"] for e in listed.data] == [child_ex["id"]]


def test_a_failing_child_fails_the_parent_step(api):
    child = create(api, {"steps": [
        {"name": "boom", "action": "core.fail", "input": {"code": "CHILD_BROKE", "message": "no good"}}]},
        name="Broken child")
    parent = create(api, {"steps": [
        {"name": "call", "action": "workflow.run", "input": {"workflow": child["id"]}},
        {"name": "after", "action": "core.noop"},
    ]}, name="Parent of broken")
    ex = finished(api, parent)
    assert ex["status"] == "failed"
    assert steps(ex) == [("call", "failed", 1), ("after", "not_run", 0)]
    child_id = step(ex, "call")["child_execution_id"]
    assert get(api, child_id)["status"] == "failed"
    # The child's error code carries over; the message names the child execution.
    assert ex["error"] == {"code": "CHILD_BROKE", "message": f"child execution {child_id} failed: no good",
                           "step": "call", "attempt": 1}


# -- 11. outputs ----------------------------------------------------------------------------

def test_a_100_kb_output_round_trips_intact(api, tenant):
    blob = secrets.token_hex(51_200)  # 100 KB of text
    wf = create(api, {"steps": [
        {"name": "big", "action": "core.echo", "input": {"blob": "{{ params.blob }}"}},
        {"name": "repeat", "action": "core.echo", "input": {"again": "{{ big.output.blob }}"}},
        {"name": "size", "action": "core.transform", "input": {"data": "{{ steps.repeat.output.again | length }}"}},
    ]})
    ex = finished(api, wf, {"blob": blob})
    assert ex["status"] == "succeeded"
    fetched = get(api, ex["id"])
    assert step(fetched, "big")["output"] == {"blob": blob}
    assert step(fetched, "repeat")["input"] == {"again": blob}
    assert step(fetched, "repeat")["output"] == {"again": blob}
    assert step(fetched, "size")["output"] == 102_400
    assert fetched["parameters"] == {"blob": blob}
    # Kept in the payload bucket, not in the item (SPEC §7: over 32 KB).
    stored = boto3.client("s3").list_objects_v2(Bucket=get_settings().payload_bucket,
                                                Prefix=f"executions/{tenant.account_id}/{ex['id']}/big/")
    assert [o["Key"] for o in stored.get("Contents", [])] == [
        f"executions/{tenant.account_id}/{ex['id']}/big/input-1.json",
        f"executions/{tenant.account_id}/{ex['id']}/big/output.json"]


def test_a_result_that_violates_out_schema_fails_the_execution(api):
    wf = create(api, {
        "steps": [{"name": "count", "action": "core.echo", "input": {"n": "many"}}],
        "output": {"count": "{{ count.output.n }}"},
    }, out_schema={"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]})
    ex = finished(api, wf)
    assert ex["status"] == "failed"
    assert ex["error"]["code"] == "OUTPUT_VALIDATION_ERROR"
    assert ex["error"] == {"code": "OUTPUT_VALIDATION_ERROR",
                           "message": "the result does not match out_schema: count: 'many' is not of type 'integer'"}
    assert steps(ex) == [("count", "succeeded", 1)]
    assert ex["result"] == {"count": "many"}  # kept, to show what did not match


# -- 12. deadline -------------------------------------------------------------------------

def test_an_execution_past_its_timeout_answers_504_and_is_timed_out(api):
    wf = create(api, {"steps": [
        {"name": "nap", "action": "core.sleep", "input": {"seconds": 3}},
        {"name": "after", "action": "core.noop"},
    ]})
    began = time.monotonic()
    reply = execute(api, wf, timeout_seconds=1)
    assert time.monotonic() - began < 2.9  # it did not wait for the 3 s sleep
    assert reply.status == 504, reply.body
    assert reply.error["code"] == "EXECUTION_TIMEOUT"
    ex_id = reply.error["details"][0]["message"]
    assert reply.error["details"][0]["field"] == "execution_id" and ex_id.startswith("ex_")
    ex = get(api, ex_id)
    assert ex["status"] == "timed_out"
    assert ex["error"] == {"code": "EXECUTION_TIMEOUT", "message": "the execution did not finish within 1 s"}
    assert steps(ex) == [("nap", "cancelled", 1), ("after", "not_run", 0)]


# -- 13. listing --------------------------------------------------------------------------

def test_listing_executions_newest_first_with_paging_and_filters(api):
    ok = create(api, {"steps": [{"name": "a", "action": "core.noop"}]}, name="Ok flow")
    bad = create(api, {"steps": [{"name": "a", "action": "core.fail", "input": {"message": "no"}}]}, name="Bad flow")
    first = finished(api, ok)
    time.sleep(0.01)
    second = finished(api, ok)
    time.sleep(0.01)
    third = finished(api, bad)
    assert [first["status"], second["status"], third["status"]] == ["succeeded", "succeeded", "failed"]

    page1 = api.get("/api/v1/executions?limit=2")
    assert page1.status == 200
    assert [e["id"] for e in page1.data] == [third["id"], second["id"]]
    assert page1.body["meta"]["limit"] == 2 and page1.body["meta"]["next_cursor"]
    assert "steps" not in page1.data[0]
    page2 = api.get(f"/api/v1/executions?limit=2&cursor={page1.body['meta']['next_cursor']}")
    assert [e["id"] for e in page2.data] == [first["id"]]
    assert page2.body["meta"] == {"limit": 2, "next_cursor": None}

    def ids(query):
        reply = api.get(f"/api/v1/executions?{query}")
        assert reply.status == 200, reply.body
        return [e["id"] for e in reply.data]

    assert ids(f"workflow_id={ok['id']}") == [second["id"], first["id"]]
    assert ids(f"workflow_id={bad['ref']}") == [third["id"]]
    assert ids("status=failed") == [third["id"]]
    assert ids(f"status=succeeded&workflow_id={ok['id']}") == [second["id"], first["id"]]
    assert ids("triggered_by=manual") == [third["id"], second["id"], first["id"]]
    assert ids("triggered_by=schedule") == []

    by_workflow = api.get(f"/api/v1/workflows/{ok['id']}/executions")
    assert [e["id"] for e in by_workflow.data] == [second["id"], first["id"]]
    assert by_workflow.body["meta"] == {"limit": 20, "next_cursor": None}

    step_list = api.get(f"/api/v1/executions/{third['id']}/steps")
    assert step_list.status == 200
    assert [(s["name"], s["status"], s["error"]["message"]) for s in step_list.data] == [("a", "failed", "no")]
    assert step_list.body["meta"] == {"total": 1}


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"), ("status=done", "status"),
    ("triggered_by=robot", "triggered_by"), ("cursor=not-a-cursor", "cursor"),
    pytest.param("cursor=" + base64.urlsafe_b64encode(b'{"some": {"S": "key"}}').decode().rstrip("="), "cursor", id="cursor-forged"),
])
def test_bad_list_queries_answer_400(api, query, field):
    reply = api.get(f"/api/v1/executions?{query}")
    assert reply.status == 400, reply.body
    assert reply.error["code"] == "VALIDATION_ERROR"
    assert [d["field"] for d in reply.error["details"]] == [field]


def test_another_account_sees_neither_the_execution_nor_it_in_lists(api, chalice_client):
    wf = create(api, {"steps": [{"name": "a", "action": "core.noop"}]})
    ex = finished(api, wf)
    other = new_tenant(chalice_client, "other").api
    for path in (f"/api/v1/executions/{ex['id']}", f"/api/v1/executions/{ex['id']}/steps"):
        reply = other.get(path)
        assert reply.status == 404 and reply.error["code"] == "EXECUTION_NOT_FOUND", path
    assert other.post(f"/api/v1/executions/{ex['id']}/retry").status == 404
    assert other.post(f"/api/v1/executions/{ex['id']}/cancel").status == 404
    listed = other.get("/api/v1/executions")
    assert (listed.status, listed.data) == (200, [])
    assert other.get(f"/api/v1/workflows/{wf['id']}/executions").status == 404


# -- 14. callbacks ------------------------------------------------------------------------

def test_execute_async_posts_a_signed_callback_when_done(api, sink):
    wf = create(api, {"steps": [{"name": "a", "action": "core.echo", "input": {"x": 1}}]})
    reply = api.post(f"/api/v1/workflows/{wf['id']}/execute_async",
                     {"parameters": {"p": 1}, "callback_url": sink.url("/hook"), "callback_secret": "s3cret"})
    assert reply.status == 202, reply.body
    ex_id = reply.data["id"]
    assert reply.data["callback_url"] == sink.url("/hook")
    delivered = wait_for(lambda: sink.to("/hook"))[0]
    assert delivered.method == "POST"
    body = delivered.json
    assert set(body) == {"id", "type", "created_at", "data"}
    assert body["id"].startswith("evt_") and body["type"] == "execution.completed"
    assert body["created_at"].endswith("Z")
    assert body["data"]["id"] == ex_id and body["data"]["status"] == "succeeded"
    assert body["data"]["parameters"] == {"p": 1} and body["data"]["result"] == {"x": 1}
    assert steps(body["data"]) == [("a", "succeeded", 1)]
    signature = delivered.header("Sluice-Signature")
    assert signature is not None and signing.verify("s3cret", delivered.body, signature)
    assert not signing.verify("other", delivered.body, signature)


def test_a_callback_without_a_secret_is_unsigned_and_a_failure_sends_execution_failed(api, sink):
    wf = create(api, {"steps": [{"name": "a", "action": "core.fail", "input": {"code": "NOPE", "message": "x"}}]})
    reply = api.post(f"/api/v1/workflows/{wf['id']}/execute_async", {"callback_url": sink.url("/hook")})
    assert reply.status == 202, reply.body
    delivered = wait_for(lambda: sink.to("/hook"))[0]
    assert delivered.header("Sluice-Signature") is None
    assert delivered.json["type"] == "execution.failed"
    assert delivered.json["data"]["id"] == reply.data["id"]
    assert delivered.json["data"]["error"]["code"] == "NOPE"


# -- 15. workflow stats -------------------------------------------------------------------

def test_workflow_stats_count_runs_without_changing_the_revision(api):
    wf = create(api, {"steps": [
        {"name": "maybe_fail", "action": "core.fail", "input": {"message": "asked to"}, "when": "{{ params.fail }}"},
    ]})
    assert wf["stats"]["runs_total"] == 0
    results = [finished(api, wf, {"fail": fail})["status"] for fail in (False, True, False)]
    assert results == ["succeeded", "failed", "succeeded"]
    now = api.get(f"/api/v1/workflows/{wf['id']}").data
    stats = now["stats"]
    assert (stats["runs_total"], stats["runs_succeeded"], stats["runs_failed"]) == (3, 2, 1)
    assert stats["last_run_at"] is not None and stats["last_run_at"].endswith("Z")
    assert isinstance(stats["average_duration_ms"], int) and stats["average_duration_ms"] >= 0
    assert (now["revision"], now["updated_at"]) == (wf["revision"], wf["updated_at"])
    assert len(api.get(f"/api/v1/workflows/{wf['id']}/versions").data) == 1
