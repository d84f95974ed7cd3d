"""Schedule triggers fire from the tick (SPEC §6.1): once per fire time, once after an
outage, never while disabled; the write-time checks answer INVALID_SCHEDULE."""

import time
from datetime import datetime, timezone

import pytest

from chalicelib import wiring
from chalicelib.handlers import tick
from chalicelib.store.models import TriggerModel
from tests.functional.conftest import create_workflow, wait_for


@pytest.fixture
def clock():
    """A settable clock for the runtime and the schedule firer."""
    state = {"now": time.time()}
    runtime, firer = wiring.runtime(), wiring.schedules()
    saved = runtime.clock, firer.clock
    runtime.clock = firer.clock = lambda: state["now"]
    yield state
    runtime.clock, firer.clock = saved


def scheduled(api, trigger, **fields):
    wf = create_workflow(api, {"steps": [{"name": "a", "action": "core.echo", "input": {"at": "{{ params.scheduled_time }}"}}]},
                         triggers=[{"type": "schedule", **trigger}], **fields)
    return wf, wf["triggers"][0]["id"]


def executions_of(api, wf):
    return api.get(f"/api/v1/workflows/{wf['id']}/executions?limit=100").data


def iso(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_a_cron_schedule_fires_from_the_tick_and_moves_on(api, clock):
    wf, trigger_id = scheduled(api, {"cron_expression": "*/5 * * * *", "name": "every five"})
    fire_at = int(TriggerModel.get(trigger_id).fire_at)
    assert fire_at % 300 == 0 and 0 < fire_at - time.time() <= 300
    shown = api.get(f"/api/v1/workflows/{wf['id']}").data["triggers"][0]
    assert shown["next_execution"] == iso(fire_at) and shown["last_execution"] is None

    clock["now"] = fire_at + 1
    tick.handle(None)
    [execution] = executions_of(api, wf)
    assert (execution["triggered_by"], execution["trigger_id"]) == ("schedule", trigger_id)
    assert execution["parameters"]["scheduled_time"] == iso(fire_at)
    assert execution["parameters"]["schedule_id"] == trigger_id
    assert int(TriggerModel.get(trigger_id).fire_at) == fire_at + 300
    tick.handle(None)
    assert len(executions_of(api, wf)) == 1  # not due again yet


def test_two_ticks_fire_a_schedule_once(api, clock):
    wf, trigger_id = scheduled(api, {"cron_expression": "*/5 * * * *"})
    # Two ticks read the same due schedule, then both fire it.
    seen_by_one, seen_by_other = TriggerModel.get(trigger_id), TriggerModel.get(trigger_id)
    clock["now"] = int(seen_by_one.fire_at) + 1
    firer = wiring.schedules()
    first, second = firer.fire(seen_by_one, clock["now"]), firer.fire(seen_by_other, clock["now"])
    assert first is not None and second is None
    assert len(executions_of(api, wf)) == 1


def test_a_tick_that_died_after_starting_does_not_start_twice(api, clock):
    wf, trigger_id = scheduled(api, {"cron_expression": "*/5 * * * *"})
    item = TriggerModel.get(trigger_id)
    clock["now"] = int(item.fire_at) + 1
    firer = wiring.schedules()
    # The earlier tick started this fire time's execution, then died before moving it on.
    firer._start(item, dict(item.spec), int(item.fire_at), clock["now"])
    assert firer.fire(item, clock["now"]) is not None
    assert len(executions_of(api, wf)) == 1


def test_after_an_outage_a_missed_schedule_fires_once(api, clock):
    wf, trigger_id = scheduled(api, {"cron_expression": "*/5 * * * *"})
    fire_at = int(TriggerModel.get(trigger_id).fire_at)
    clock["now"] = fire_at + 3 * 3600 + 10
    tick.handle(None)
    assert len(executions_of(api, wf)) == 1
    assert int(TriggerModel.get(trigger_id).fire_at) == fire_at + 3 * 3600 + 300


def test_a_disabled_workflow_or_trigger_never_fires(api, clock):
    wf, trigger_id = scheduled(api, {"cron_expression": "*/5 * * * *"})
    api.post(f"/api/v1/workflows/{wf['id']}/deactivate")
    assert TriggerModel.get(trigger_id).fire_at is None
    clock["now"] = time.time() + 3600
    tick.handle(None)
    assert executions_of(api, wf) == []
    api.post(f"/api/v1/workflows/{wf['id']}/activate")
    assert TriggerModel.get(trigger_id).fire_at is not None
    trigger = dict(api.get(f"/api/v1/workflows/{wf['id']}").data["triggers"][0], enabled=False)
    api.patch(f"/api/v1/workflows/{wf['id']}", {"triggers": [trigger]})
    assert TriggerModel.get(trigger_id).fire_at is None
    assert executions_of(api, wf) == []


def test_a_fixed_time_fires_once(api, clock):
    at = int(time.time()) + 120
    wf, trigger_id = scheduled(api, {"execution_time": iso(at)})
    assert int(TriggerModel.get(trigger_id).fire_at) == at
    clock["now"] = at + 5
    tick.handle(None)
    assert TriggerModel.get(trigger_id).fire_at is None
    clock["now"] = at + 3600
    tick.handle(None)
    assert len(executions_of(api, wf)) == 1
    # The workflow stays editable although its fixed time has passed.
    assert api.patch(f"/api/v1/workflows/{wf['id']}", {"description": "done"}).status == 200


def test_overlap_skip_waits_for_the_previous_run(api, clock):
    wf = create_workflow(api, {"steps": [{"name": "ask", "action": "core.inquiry"}]},
                         triggers=[{"type": "schedule", "interval_value": 1, "interval_unit": "minutes",
                                    "overlap_policy": "skip"}])
    trigger_id = wf["triggers"][0]["id"]
    fire_at = int(TriggerModel.get(trigger_id).fire_at)
    clock["now"] = fire_at + 1
    tick.handle(None)
    assert len(executions_of(api, wf)) == 1
    clock["now"] = fire_at + 61
    tick.handle(None)
    assert len(executions_of(api, wf)) == 1  # the first run is still queued or waiting
    assert int(TriggerModel.get(trigger_id).fire_at) == fire_at + 120


def test_last_execution_follows_the_run(api, clock, workers):
    wf, trigger_id = scheduled(api, {"cron_expression": "*/5 * * * *"})
    clock["now"] = int(TriggerModel.get(trigger_id).fire_at) + 1
    tick.handle(None)
    last = wait_for(lambda: (t := api.get(f"/api/v1/workflows/{wf['id']}").data["triggers"][0])["last_execution"]
                    and t["last_execution"]["status"] == "succeeded" and t["last_execution"])
    assert last["execution_id"] == executions_of(api, wf)[0]["id"] and last["completed_at"]


@pytest.mark.parametrize("trigger, field, text", [
    ({"cron_expression": "0 12 ? * MON-FRI *"}, "triggers[0].cron_expression", "5-field Unix form"),
    ({"execution_time": "2020-01-01T00:00:00Z"}, "triggers[0].execution_time", "in the past"),
    ({"cron_expression": "0 9 * * *", "timezone": "Nowhere/Else"}, "triggers[0].timezone", "unknown time zone"),
    ({"interval_value": 0}, "triggers[0].interval_value", "at least 1"),
])
def test_bad_schedules_are_invalid_schedule(api, trigger, field, text):
    reply = api.post("/api/v1/workflows", {"name": "bad", "triggers": [{"type": "schedule", **trigger}]})
    assert reply.status == 400
    assert reply.error["code"] == "INVALID_SCHEDULE"
    assert reply.error["details"][0]["field"] == field and text in reply.error["details"][0]["message"]
