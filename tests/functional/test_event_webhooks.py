"""Event webhooks (SPEC §8): subscriptions, every lifecycle event emitted where it
happens, signed deliveries a receiver can verify, the retry schedule and the attempt log."""

import time

import pytest

from chalicelib import signing
from tests.functional.conftest import create_workflow, execute, wait_for

SECRET = "whsec-test-0123456789"


@pytest.fixture
def subscribed(api, workers, sink):
    reply = api.post("/api/v1/webhooks", {"url": sink.url("/events"), "events": ["*"], "secret": SECRET,
                                          "description": "everything"})
    assert reply.status == 201, reply.body
    return reply.data


def events_of_type(sink, kind):
    return [r for r in sink.to("/events") if r.json["type"] == kind]


def test_subscriptions_keep_their_secret_to_themselves(api, subscribed):
    assert subscribed["id"].startswith("whk_") and subscribed["has_secret"] is True and "secret" not in subscribed
    assert api.get(f"/api/v1/webhooks/{subscribed['id']}").data == subscribed
    assert [w["id"] for w in api.get("/api/v1/webhooks").data] == [subscribed["id"]]
    patched = api.patch(f"/api/v1/webhooks/{subscribed['id']}", {"events": ["execution.failed"], "enabled": False})
    assert patched.status == 200 and patched.data["events"] == ["execution.failed"] and patched.data["enabled"] is False
    assert "secret" not in patched.data and patched.data["has_secret"] is True
    cleared = api.patch(f"/api/v1/webhooks/{subscribed['id']}", {"secret": None}).data
    assert cleared["has_secret"] is False
    assert api.delete(f"/api/v1/webhooks/{subscribed['id']}").status == 200
    assert api.get(f"/api/v1/webhooks/{subscribed['id']}").error["code"] == "NOT_FOUND"


@pytest.mark.parametrize(("body", "field"), [
    ({"events": ["*"]}, "url"),
    ({"url": "ftp://x.example/", "events": ["*"]}, "url"),
    ({"url": "https://x.example/"}, "events"),
    ({"url": "https://x.example/", "events": ["workflow.exploded"]}, "events"),
    ({"url": "https://x.example/", "events": ["*"], "secret": "short"}, "secret"),
    ({"url": "https://x.example/", "events": ["*"], "colour": "red"}, "colour"),
])
def test_subscription_input_is_checked(api, workers, body, field):
    reply = api.post("/api/v1/webhooks", body)
    assert reply.status == 400 and reply.error["details"][0]["field"] == field


def test_every_lifecycle_event_is_delivered_signed(api, subscribed, sink):
    wf = create_workflow(api, {"steps": [{"name": "one", "action": "core.echo", "input": {"x": 1}}]}, name="Life",
                         triggers=[{"type": "schedule", "cron_expression": "0 9 * * *", "name": "daily"}])
    schedule_id = wf["triggers"][0]["id"]
    api.patch(f"/api/v1/workflows/{wf['id']}", {"description": "v2"})
    api.patch(f"/api/v1/schedules/{schedule_id}", {"cron_expression": "0 10 * * *"})
    api.post(f"/api/v1/workflows/{wf['id']}/deactivate")
    api.post(f"/api/v1/workflows/{wf['id']}/activate")
    assert execute(api, wf).data["status"] == "succeeded"
    failing = create_workflow(api, {"steps": [{"name": "boom", "action": "core.fail", "input": {"message": "no"}}]},
                              name="Fails")
    execute(api, failing)
    api.delete(f"/api/v1/schedules/{schedule_id}")
    api.delete(f"/api/v1/workflows/{wf['id']}")
    expected = {"workflow.created", "workflow.updated", "workflow.activated", "workflow.deactivated",
                "workflow.deleted", "workflow.executed", "execution.step_completed", "execution.completed",
                "execution.failed", "schedule.created", "schedule.updated", "schedule.deleted"}
    received = wait_for(lambda: (got := sink.to("/events")) and {r.json["type"] for r in got} >= expected and got)
    for request in received:
        # What a receiver does: check the signature over the raw body, and that t is fresh.
        assert signing.verify(SECRET, request.body, request.header("Sluice-Signature"))
        assert set(request.json) == {"id", "type", "created_at", "data"} and request.json["id"].startswith("evt_")
    [completed] = events_of_type(sink, "execution.completed")
    assert completed.json["data"]["workflow_id"] == wf["id"] and completed.json["data"]["status"] == "succeeded"
    [failed] = events_of_type(sink, "execution.failed")
    assert failed.json["data"]["error"]["message"] == "no"
    steps = [r.json["data"] for r in events_of_type(sink, "execution.step_completed")]
    assert sorted((s["step"], s["step_status"]) for s in steps) == [("boom", "failed"), ("one", "succeeded")]
    [activated] = events_of_type(sink, "workflow.activated")
    assert activated.json["data"]["workflow_id"] == wf["id"] and activated.json["data"]["enabled"] is True
    assert {r.json["data"]["schedule_id"] for r in events_of_type(sink, "schedule.updated")} == {schedule_id}


def test_a_schedule_firing_is_schedule_triggered(api, subscribed, sink):
    from chalicelib import wiring
    from chalicelib.store.models import TriggerModel

    wf = create_workflow(api, {"steps": []}, name="Tick", triggers=[{"type": "schedule", "cron_expression": "*/5 * * * *"}])
    trigger_id = wf["triggers"][0]["id"]
    item = TriggerModel.get(trigger_id)
    execution_id = wiring.schedules().fire(item, int(item.fire_at) + 1)
    [triggered] = wait_for(lambda: events_of_type(sink, "schedule.triggered"))
    assert triggered.json["data"]["schedule_id"] == trigger_id
    assert triggered.json["data"]["execution_id"] == execution_id


def test_only_subscribed_events_are_sent(api, workers, sink):
    api.post("/api/v1/webhooks", {"url": sink.url("/failures"), "events": ["execution.failed"]})
    ok_flow = create_workflow(api, {"steps": [{"name": "a", "action": "core.noop"}]}, name="Fine")
    bad_flow = create_workflow(api, {"steps": [{"name": "a", "action": "core.fail", "input": {"message": "x"}}]},
                               name="Bad")
    execute(api, ok_flow)
    execute(api, bad_flow)
    [failure] = wait_for(lambda: sink.to("/failures"))
    assert failure.json["type"] == "execution.failed" and failure.header("Sluice-Signature") is None
    time.sleep(0.3)
    assert len(sink.to("/failures")) == 1


def test_lifecycle_events_start_event_triggers_but_never_their_own_workflow(api, workers):
    watcher = create_workflow(api, {"steps": [{"name": "seen", "action": "core.echo",
                                               "input": {"id": "{{ event.data.workflow_id }}"}}]},
                              name="Watcher", triggers=[{"type": "event", "event": "execution.completed"}])
    other = create_workflow(api, {"steps": []}, name="Other")
    execute(api, other)
    runs = wait_for(lambda: api.get(f"/api/v1/workflows/{watcher['id']}/executions").data)
    detail = wait_for(lambda: (d := api.get(f"/api/v1/executions/{runs[0]['id']}").data)["status"] == "succeeded" and d)
    assert detail["steps"][0]["output"] == {"id": other["id"]}
    time.sleep(0.5)  # the watcher's own completion must not start it again
    assert len(api.get(f"/api/v1/workflows/{watcher['id']}/executions").data) == 1


def test_two_workflows_triggered_by_each_other_stop_after_a_few_rounds(api, workers):
    from chalicelib.services.events import MAX_CHAIN

    first = create_workflow(api, {"steps": [{"name": "a", "action": "core.noop"}]}, name="Ping",
                            triggers=[{"type": "event", "event": "execution.completed"}])
    second = create_workflow(api, {"steps": [{"name": "b", "action": "core.noop"}]}, name="Pong",
                             triggers=[{"type": "event", "event": "execution.completed"}])

    def runs():
        return (len(api.get(f"/api/v1/workflows/{first['id']}/executions?limit=100").data)
                + len(api.get(f"/api/v1/workflows/{second['id']}/executions?limit=100").data))

    assert execute(api, first).data["status"] == "succeeded"
    # The manual run, then MAX_CHAIN executions each started by the previous one's completion.
    wait_for(lambda: runs() == 1 + MAX_CHAIN, timeout=60)  # five hops through the queue, on a busy machine
    time.sleep(1.0)
    assert runs() == 1 + MAX_CHAIN


def test_a_redelivered_message_posts_once(api, tenant, workers, sink):
    from chalicelib import wiring
    from chalicelib.services.events import envelope

    hook = api.post("/api/v1/webhooks", {"url": sink.url("/once"), "events": ["*"]}).data
    message = {"kind": "webhook", "a": tenant.account_id, "w": hook["id"], "attempt": 1,
               "event": envelope("workflow.created", {"workflow_id": "wf_x"}, "sluice")}
    wiring.deliveries().deliver(message)
    wiring.deliveries().deliver(message)
    assert len(sink.to("/once")) == 1
    assert [d["attempt"] for d in api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").data] == [1]


def test_retries_follow_the_schedule_and_every_attempt_is_logged(api, tenant, workers, sink):
    """The delivery worker's retry schedule under a fixed clock: 30 s, 2 min, 10 min,
    30 min, 1 h, 2 h, then it gives up; each attempt is in the log, newest first."""
    from chalicelib import wiring
    from chalicelib.handlers.deliveries import Deliveries
    from chalicelib.services.events import envelope

    hook = api.post("/api/v1/webhooks", {"url": sink.url("/down"), "events": ["*"], "secret": SECRET}).data
    sink.scripts["/down"] = [503] * 7
    now = {"t": 1_800_000_000.0}
    sent = []

    class Queue:
        def send(self, messages):
            sent.extend(messages)

    worker = Deliveries(wiring.execution_service(), wiring.webhook_service().repository, wiring.webhook_service().log,
                        Queue(), clock=lambda: now["t"])
    message = {"kind": "webhook", "a": tenant.account_id, "w": hook["id"], "attempt": 1,
               "event": envelope("workflow.created", {"workflow_id": "wf_x"}, "sluice")}
    times = []
    while message is not None:
        times.append(now["t"])
        worker.deliver(message)
        if not sent:
            break
        message, delay = sent.pop()
        assert delay == min(message["not_before"] - now["t"], 900)
        now["t"] = message["not_before"]
    assert [int(b - a) for a, b in zip(times, times[1:])] == [30, 120, 600, 1800, 3600, 7200]
    assert len(sink.to("/down")) == 7
    for request, at in zip(sink.to("/down"), times):
        assert signing.verify(SECRET, request.body, request.header("Sluice-Signature"), now=at)
        assert not signing.verify(SECRET, request.body, request.header("Sluice-Signature"), now=at + 301)

    first = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries?limit=4")
    assert [d["attempt"] for d in first.data] == [7, 6, 5, 4]
    rest = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries?limit=4&cursor={first.body['meta']['next_cursor']}")
    assert [d["attempt"] for d in rest.data] == [3, 2, 1] and rest.body["meta"]["next_cursor"] is None
    last, first_attempt = first.data[0], rest.data[-1]
    assert last["next_attempt_at"] is None and last["succeeded"] is False and last["status_code"] == 503
    assert first_attempt["next_attempt_at"] == "2027-01-15T08:00:30.000Z"
    assert first_attempt["attempted_at"] == "2027-01-15T08:00:00.000Z"
    assert set(first_attempt) == {"id", "event_id", "event_type", "attempt", "status_code", "error", "duration_ms",
                                  "attempted_at", "succeeded", "next_attempt_at"}
    assert first_attempt["event_type"] == "workflow.created" and first_attempt["error"] == "status 503"
    bad = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries?cursor=eyJ4IjoxfQ")
    assert bad.status == 400 and bad.error["details"][0]["field"] == "cursor"
