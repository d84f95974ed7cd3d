"""API traffic (SPEC §6.4): buckets, ingestion, request/error triggers, per-minute
aggregates, threshold triggers evaluated by the tick, and the ApiTraffic examples of seed
000 as Sluice workflows."""

import time

import pytest

from chalicelib import wiring
from chalicelib.handlers import tick
from chalicelib.store.models import TrafficMinuteModel, TriggerModel
from tests.functional.conftest import create_workflow, wait_for


@pytest.fixture
def clock():
    state = {"now": time.time()}
    runtime, firer = wiring.runtime(), wiring.schedules()
    ingest = wiring.traffic_ingest()
    saved = runtime.clock, firer.clock, ingest.clock
    runtime.clock = firer.clock = ingest.clock = lambda: state["now"]
    yield state
    runtime.clock, firer.clock, ingest.clock = saved


@pytest.fixture
def bucket(api, workers):
    reply = api.post("/api/v1/buckets", {"name": "Storefront API", "environment": "staging"})
    assert reply.status == 201, reply.body
    return reply.data


def rec(path="/api/users", method="GET", status=200, duration=20, **more):
    return {"method": method, "path": path, "status_code": status, "duration_ms": duration, **more}


def ingest(api, bucket, records):
    reply = api.post(f"/api/v1/buckets/{bucket['id']}/traffic", {"records": records})
    assert reply.status == 202, reply.body
    return reply.data


def finished(api, execution_id):
    """The execution once it has finished (a firing starts it on the step worker)."""
    def done():
        reply = api.get(f"/api/v1/executions/{execution_id}")
        return reply.status == 200 and reply.data["status"] in ("succeeded", "failed") and reply.data

    return wait_for(done)


def post_to(sink, route, body):
    return {"name": "notify", "action": "webhook.send", "input": {"url": sink.url(route), "method": "POST", "body": body}}


# -- buckets -------------------------------------------------------------------------------

def test_bucket_crud(api, bucket):
    assert bucket["id"].startswith("bkt_") and bucket["environment"] == "staging"
    assert api.get(f"/api/v1/buckets/{bucket['id']}").data == bucket
    default = api.post("/api/v1/buckets", {"name": "Internal"}).data
    assert default["environment"] == "production"
    listed = api.get("/api/v1/buckets")
    assert [b["id"] for b in listed.data] == [bucket["id"], default["id"]]
    assert listed.body["meta"] == {"page": 1, "per_page": 20, "total": 2, "total_pages": 1}
    assert [b["id"] for b in api.get("/api/v1/buckets?environment=staging").data] == [bucket["id"]]
    patched = api.patch(f"/api/v1/buckets/{bucket['id']}", {"name": "Shop API", "environment": "production"})
    assert patched.status == 200 and (patched.data["name"], patched.data["environment"]) == ("Shop API", "production")
    assert api.delete(f"/api/v1/buckets/{default['id']}").status == 200
    assert api.get(f"/api/v1/buckets/{default['id']}").status == 404


@pytest.mark.parametrize(("body", "field"), [({}, "name"), ({"name": ""}, "name"), ({"name": "x", "environment": 3},
                                                                                   "environment"),
                                             ({"name": "x", "colour": "red"}, "colour")])
def test_bucket_input_is_checked(api, workers, body, field):
    reply = api.post("/api/v1/buckets", body)
    assert reply.status == 400 and reply.error["details"][0]["field"] == field


def test_traffic_triggers_need_a_bucket_of_the_account(api, bucket):
    reply = api.post("/api/v1/workflows", {"name": "W", "triggers": [{"type": "error", "bucket_id": "bkt_aaaaaaaaaaaaaaaaaaaaaaaa"}]})
    assert reply.status == 400 and reply.error["code"] == "INVALID_WORKFLOW_CONFIG"
    assert reply.error["details"] == [{"field": "triggers[0].bucket_id",
                                       "message": "no bucket 'bkt_aaaaaaaaaaaaaaaaaaaaaaaa' in this account"}]
    missing = api.post("/api/v1/workflows", {"name": "W", "triggers": [{"type": "threshold"}]})
    assert [d["field"] for d in missing.error["details"]] == ["triggers[0].bucket_id", "triggers[0].conditions"]


def test_a_watched_bucket_lists_its_workflows_and_cannot_be_deleted(api, bucket):
    wf = create_workflow(api, {"steps": []}, name="Watcher", triggers=[{"type": "error", "bucket_id": bucket["id"]}])
    create_workflow(api, {"steps": []}, name="Unrelated")
    assert [w["id"] for w in api.get(f"/api/v1/buckets/{bucket['id']}/workflows").data] == [wf["id"]]
    assert [w["id"] for w in api.get(f"/api/v1/workflows?bucket={bucket['id']}").data] == [wf["id"]]
    reply = api.delete(f"/api/v1/buckets/{bucket['id']}")
    assert reply.status == 409 and reply.error["details"] == [{"field": "workflows", "message": wf["id"]}]
    api.delete(f"/api/v1/workflows/{wf['id']}")
    assert api.delete(f"/api/v1/buckets/{bucket['id']}").status == 200


# -- ingestion -----------------------------------------------------------------------------

def test_bad_records_are_reported_by_index_and_good_ones_kept(api, bucket, tenant):
    now = time.time()
    result = ingest(api, bucket, [rec(timestamp=now * 1000), {"method": "GET"}, rec(status=503, duration=400),
                                  "nonsense"])
    assert result["accepted"] == 2 and result["execution_ids"] == []
    assert [r["index"] for r in result["rejected"]] == [1, 3]
    assert [d["field"] for d in result["rejected"][0]["details"]] == ["path", "status_code"]
    minute = int(now // 60)
    items = list(TrafficMinuteModel.query(f"{tenant.account_id}#{bucket['id']}"))
    assert [int(i.minute) for i in items] in ([minute], [minute, minute + 1])
    assert sum(int(i.count) for i in items) == 2 and sum(int(i.errors) for i in items) == 1


def test_batch_limits(api, bucket):
    over = api.post(f"/api/v1/buckets/{bucket['id']}/traffic", {"records": [rec()] * 1001})
    assert over.status == 413 and "1,000" in over.error["message"]
    for body in ({}, {"records": []}, {"records": {}}):
        reply = api.post(f"/api/v1/buckets/{bucket['id']}/traffic", body)
        assert reply.status == 400 and reply.error["details"][0]["field"] == "records"
    unknown = api.post("/api/v1/buckets/bkt_aaaaaaaaaaaaaaaaaaaaaaaa/traffic", {"records": [rec()]})
    assert unknown.status == 404 and unknown.error["code"] == "NOT_FOUND"


def test_a_batch_writes_each_minute_once_whatever_its_size(api, bucket, tenant, moto_gate):
    writes = []

    def count(event_name, request):
        if event_name.endswith("UpdateItem") and b"sluice-test-traffic" in request.body:
            writes.append(1)

    moto_gate.faults.append(count)
    try:
        now = time.time() // 60 * 60 + 30
        ingest(api, bucket, [rec(timestamp=now * 1000)] * 10)
        small = len(writes)
        ingest(api, bucket, [rec(timestamp=now * 1000)] * 1000)
    finally:
        moto_gate.faults.remove(count)
    assert small == 1 and len(writes) == 2
    [item] = TrafficMinuteModel.query(f"{tenant.account_id}#{bucket['id']}")
    assert int(item.count) == 1010 and int(item.h2) == 1010  # 20 ms falls in the 10-25 ms cell


# -- seed 000: request and error triggers ---------------------------------------------------

def test_new_user_registration(api, bucket, sink):
    """Seed 000 "New User Registration": a request trigger on POST /api/users answered 201
    posts the new user to a CRM webhook."""
    wf = create_workflow(api, {"steps": [post_to(sink, "/crm", {"event": "user_registered",
                                                                "user_data": "{{request.body}}"})]},
                         name="New User Registration",
                         triggers=[{"type": "request", "bucket_id": bucket["id"],
                                    "conditions": [{"path": "/api/users", "method": "POST", "statusCode": 201}]}])
    result = ingest(api, bucket, [
        rec(method="POST", status=201, request={"body": {"email": "ada@example.com"}}),
        rec(method="POST", status=400, request={"body": {"email": "nope"}}),
        rec(method="GET", status=201),
        rec(path="/api/users/7", method="POST", status=201),
    ])
    [execution_id] = result["execution_ids"]
    detail = finished(api, execution_id)
    assert detail["status"] == "succeeded"
    assert (detail["triggered_by"], detail["trigger_id"]) == ("request", wf["triggers"][0]["id"])
    [delivered] = wait_for(lambda: sink.to("/crm"))
    assert delivered.json == {"event": "user_registered", "user_data": {"email": "ada@example.com"}}


def test_error_trigger_with_the_template_variables(api, bucket, sink):
    """Seed 000's error trigger (status 500 under /api/*) and its template variables."""
    message = ("{{request.method}} {{request.path}} -> {{response.statusCode}} in {{timings.duration}} ms "
               "({{bucket.name}}/{{bucket.sid}}, {{environment.name}}, {{trigger.type}}, {{response.body.error}})")
    create_workflow(api, {"steps": [post_to(sink, "/alerts", {"text": message})]}, name="Errors",
                    triggers=[{"type": "error", "bucket_id": bucket["id"],
                               "conditions": [{"statusCode": 500, "path": "/api/*"}]}])
    result = ingest(api, bucket, [
        rec(path="/api/orders/9", method="PUT", status=500, duration=812, response={"body": {"error": "db down"}}),
        rec(path="/api/orders/9", status=503),
        rec(path="/health", status=500),
    ])
    assert len(result["execution_ids"]) == 1
    [alert] = wait_for(lambda: sink.to("/alerts"))
    assert alert.json == {"text": f"PUT /api/orders/9 -> 500 in 812 ms (Storefront API/{bucket['id']}, staging, error, "
                                  "db down)"}


def test_each_record_fires_and_a_batch_sent_again_starts_nothing_new(api, bucket):
    wf = create_workflow(api, {"steps": []}, name="Once", triggers=[{"type": "error", "bucket_id": bucket["id"]}])
    record = rec(status=500, timestamp=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
    first = ingest(api, bucket, [record, record, record])
    assert len(set(first["execution_ids"])) == 3  # three identical records are three errors
    again = ingest(api, bucket, [record, record, record])
    assert again["execution_ids"] == first["execution_ids"]
    for execution_id in first["execution_ids"]:
        finished(api, execution_id)
    time.sleep(0.3)  # the second batch's firings reach the worker too, and start nothing
    assert len(api.get(f"/api/v1/workflows/{wf['id']}/executions").data) == 3


def test_large_records(api, bucket, sink):
    """A record may carry bodies up to 256 KB in all; the execution it starts keeps them
    (in the payload bucket) for its templates."""
    create_workflow(api, {"steps": [post_to(sink, "/big", {"n": "{{ response.body | length }}"})]}, name="Big",
                    triggers=[{"type": "error", "bucket_id": bucket["id"]}])
    result = ingest(api, bucket, [rec(status=500, response={"body": "é" * 100_000}),
                                  rec(status=500, response={"body": "x" * 300_000})])
    assert result["accepted"] == 1 and [r["index"] for r in result["rejected"]] == [1]
    assert result["rejected"][0]["details"][0]["field"] == "record"
    [received] = wait_for(lambda: sink.to("/big"))
    assert received.json == {"n": 100_000}


def test_a_bucket_of_another_account_cannot_be_watched(api, chalice_client, workers):
    from tests.functional.conftest import new_tenant

    other = new_tenant(chalice_client, "other").api.post("/api/v1/buckets", {"name": "Theirs"}).data
    reply = api.post("/api/v1/workflows", {"name": "Spy", "triggers": [{"type": "request", "bucket_id": other["id"]}]})
    assert reply.status == 400 and reply.error["details"][0]["field"] == "triggers[0].bucket_id"
    assert api.post(f"/api/v1/buckets/{other['id']}/traffic", {"records": [rec()]}).status == 404


def test_disabled_triggers_do_not_fire(api, bucket):
    create_workflow(api, {"steps": []}, name="Off", enabled=False, triggers=[{"type": "error", "bucket_id": bucket["id"]}])
    create_workflow(api, {"steps": []}, name="Off2", triggers=[{"type": "error", "bucket_id": bucket["id"], "enabled": False}])
    assert ingest(api, bucket, [rec(status=500)])["execution_ids"] == []


# -- seed 000: thresholds ------------------------------------------------------------------

def threshold_workflow(api, bucket, sink, condition, route, body, **trigger):
    return create_workflow(api, {"steps": [post_to(sink, route, body)]}, name=f"Alert {route}",
                           triggers=[{"type": "threshold", "bucket_id": bucket["id"], "conditions": [condition],
                                      **trigger}])


def evaluate(clock, at):
    clock["now"] = at
    tick.handle(None)


def test_high_error_rate_alert_fires_on_entering_breach_once(api, bucket, sink, clock):
    """Seed 000 "High Error Rate Alert": error_rate > 10 over 5m, with the message
    "🚨 Error rate is {{metric.value}}% in {{bucket.name}}"."""
    wf = threshold_workflow(api, bucket, sink, {"metric": "error_rate", "operator": "greater_than", "value": 10,
                                                "timeWindow": "5m"},
                            "/slack", {"text": "🚨 Error rate is {{metric.value}}% in {{bucket.name}}"})
    assert wf["triggers"][0]["conditions"][0]["time_window"] == "5m"
    start = clock["now"] // 60 * 60 + 5
    evaluate(clock, start)  # no traffic: no breach
    ingest(api, bucket, [rec(status=500, timestamp=(start + 1) * 1000)] * 2
           + [rec(timestamp=(start + 1) * 1000)] * 6)
    evaluate(clock, start + 60)
    [alert] = wait_for(lambda: sink.to("/slack"))
    assert alert.json == {"text": "🚨 Error rate is 25.0% in Storefront API"}
    [execution] = api.get(f"/api/v1/workflows/{wf['id']}/executions").data
    assert execution["triggered_by"] == "threshold"
    evaluate(clock, start + 120)  # still in breach: not again
    evaluate(clock, start + 180)
    assert len(api.get(f"/api/v1/workflows/{wf['id']}/executions").data) == 1
    state = TriggerModel.get(wf["triggers"][0]["id"]).state
    assert state["announced"] is True and state["last_value"] == 25.0


def test_a_recovered_breach_fires_again_only_after_the_cooldown(api, bucket, sink, clock):
    wf = threshold_workflow(api, bucket, sink, {"metric": "error_count", "operator": "greater_than_or_equal",
                                                "value": 1, "time_window": "1m"},
                            "/pager", {"n": "{{ metric.value }}", "window": "{{ metric.timeWindow }}"}, cooldown="3m")
    start = clock["now"] // 60 * 60 + 5
    evaluate(clock, start)
    ingest(api, bucket, [rec(status=500, timestamp=(start + 1) * 1000)])
    evaluate(clock, start + 30)  # not due: a threshold is evaluated once a minute
    evaluate(clock, start + 60)  # the last whole minute had an error: fires
    evaluate(clock, start + 120)  # the window has moved past it: recovered
    ingest(api, bucket, [rec(status=500, timestamp=(start + 121) * 1000)])
    evaluate(clock, start + 180)  # breach again, 2 minutes after firing: held back by the cooldown
    assert len(wait_for(lambda: sink.to("/pager"))) == 1
    ingest(api, bucket, [rec(status=500, timestamp=(start + 181) * 1000)])
    evaluate(clock, start + 240)  # the cooldown is over and the breach holds: announced
    runs = wait_for(lambda: len(sink.to("/pager")) == 2 and sink.to("/pager"))
    assert [r.json for r in runs] == [{"n": 1, "window": "1m"}, {"n": 1, "window": "1m"}]
    assert len(api.get(f"/api/v1/workflows/{wf['id']}/executions").data) == 2


def test_slow_response_alert(api, bucket, sink, clock):
    """Seed 000 "Slow Response Alert": avg_response_time > 2000 over 10m."""
    threshold_workflow(api, bucket, sink, {"metric": "avg_response_time", "operator": "greater_than", "value": 2000,
                                           "timeWindow": "10m"},
                       "/mail", {"subject": "Slow API Performance Alert",
                                 "body": "Average response time is {{metric.value}}ms"})
    start = clock["now"] // 60 * 60 + 5
    evaluate(clock, start)
    ingest(api, bucket, [rec(duration=1500, timestamp=(start - 300) * 1000), rec(duration=3100, timestamp=start * 1000)])
    evaluate(clock, start + 60)
    [mail] = wait_for(lambda: sink.to("/mail"))
    assert mail.json == {"subject": "Slow API Performance Alert", "body": "Average response time is 2300.0ms"}


def test_a_breach_while_the_workflow_is_off_fires_once_it_is_back(api, bucket, sink, clock):
    wf = threshold_workflow(api, bucket, sink, {"metric": "error_count", "operator": "greater_than", "value": 0,
                                                "time_window": "10m"}, "/late", {"v": "{{ metric.value }}"})
    start = clock["now"] // 60 * 60 + 5
    ingest(api, bucket, [rec(status=500, timestamp=(start - 60) * 1000)])
    api.post(f"/api/v1/workflows/{wf['id']}/deactivate")
    evaluate(clock, start)
    assert api.get(f"/api/v1/workflows/{wf['id']}/executions").data == []
    api.post(f"/api/v1/workflows/{wf['id']}/activate")
    evaluate(clock, start + 60)
    [late] = wait_for(lambda: sink.to("/late"))
    assert late.json == {"v": 1}


def test_threshold_triggers_leave_the_due_index_when_disabled(api, bucket, sink):
    wf = threshold_workflow(api, bucket, sink, {"metric": "request_count", "operator": "less_than", "value": 1,
                                                "time_window": "1h"}, "/quiet", {})
    trigger_id = wf["triggers"][0]["id"]
    assert TriggerModel.get(trigger_id).fire_at is not None
    api.post(f"/api/v1/workflows/{wf['id']}/deactivate")
    assert TriggerModel.get(trigger_id).fire_at is None


def test_daily_summary_report(api, bucket, sink, clock):
    """Seed 000 "Daily Summary Report": a 09:00 schedule that names its bucket."""
    wf = create_workflow(api, {"steps": [post_to(sink, "/daily", {"subject": "Daily API Summary for {{bucket.name}}",
                                                                  "body": "Your daily API traffic summary is ready."})]},
                         name="Daily Summary Report",
                         triggers=[{"type": "schedule", "schedule": "0 9 * * *", "bucket_id": bucket["id"]}])
    fire_at = int(TriggerModel.get(wf["triggers"][0]["id"]).fire_at)
    assert time.gmtime(fire_at).tm_hour == 9 and time.gmtime(fire_at).tm_min == 0
    evaluate(clock, fire_at + 1)
    [mail] = wait_for(lambda: sink.to("/daily"))
    assert mail.json == {"subject": "Daily API Summary for Storefront API",
                         "body": "Your daily API traffic summary is ready."}
