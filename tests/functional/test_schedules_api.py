"""The schedule endpoints (SPEC §6.1) in their three forms, over the same trigger items
as the workflow document: a change through either is seen through the other."""

import pytest

from tests.functional.conftest import create_workflow, new_tenant


@pytest.fixture
def wf(api):
    return create_workflow(api, {"steps": [{"name": "a", "action": "core.noop"}]}, name="Feedback Analysis")


def test_create_get_and_list_a_schedule(api, wf):
    body = {"name": "Daily Feedback Analysis", "description": "nightly", "schedule_type": "cron",
            "cron_expression": "0 0 * * *", "parameters": {"source": "daily_report"}, "enabled": True,
            "timezone": "UTC"}
    created = api.post(f"/api/v1/workflows/{wf['id']}/schedules", body)
    assert created.status == 201 and created.body["message"] == "Schedule created successfully"
    schedule = created.data
    assert schedule["id"].startswith("trg_")
    assert {k: schedule[k] for k in body} == body
    assert (schedule["workflow_id"], schedule["workflow_name"]) == (wf["id"], "Feedback Analysis")
    assert schedule["next_execution"].endswith("T00:00:00.000Z") and schedule["last_execution"] is None
    assert api.get(f"/api/v1/schedules/{schedule['id']}").data == schedule
    assert api.get(f"/api/v1/workflows/{wf['id']}/schedules").data == [schedule]
    listed = api.get("/api/v1/schedules")
    assert [s["id"] for s in listed.data] == [schedule["id"]] and listed.body["meta"]["total"] == 1
    assert [s["id"] for s in api.get(f"/api/v1/schedules?workflow_id={wf['ref']}").data] == [schedule["id"]]
    assert api.get("/api/v1/schedules?enabled=false").data == []
    # The workflow document carries it, as a new revision.
    document = api.get(f"/api/v1/workflows/{wf['id']}").data
    assert document["revision"] == 2 and document["triggers"][0]["id"] == schedule["id"]


def test_the_type_is_inferred_from_the_field_given(api, wf):
    interval = api.post(f"/api/v1/workflows/{wf['id']}/schedules", {"interval_value": 30, "interval_unit": "minutes"}).data
    assert interval["schedule_type"] == "interval"
    fixed = api.post(f"/api/v1/workflows/{wf['id']}/schedules", {"execution_time": "2099-06-01T12:00:00Z"}).data
    assert fixed["schedule_type"] == "fixed_time" and fixed["next_execution"] == "2099-06-01T12:00:00.000Z"


def test_put_and_patch_both_merge(api, wf):
    schedule = api.post(f"/api/v1/workflows/{wf['id']}/schedules",
                        {"name": "n", "cron_expression": "0 0 * * *", "parameters": {"a": 1}}).data
    put = api.put(f"/api/v1/schedules/{schedule['id']}", {"cron_expression": "0 2 * * *"}).data
    assert (put["cron_expression"], put["name"], put["parameters"]) == ("0 2 * * *", "n", {"a": 1})
    assert put["next_execution"].endswith("T02:00:00.000Z")
    patched = api.patch(f"/api/v1/schedules/{schedule['id']}", {"parameters": {"b": 2}, "enabled": False}).data
    assert (patched["parameters"], patched["enabled"], patched["next_execution"]) == ({"a": 1, "b": 2}, False, None)
    # Seen through the workflow document too.
    trigger = api.get(f"/api/v1/workflows/{wf['id']}").data["triggers"][0]
    assert (trigger["cron_expression"], trigger["enabled"]) == ("0 2 * * *", False)


def test_a_change_through_the_document_is_seen_through_the_schedule(api, wf):
    schedule = api.post(f"/api/v1/workflows/{wf['id']}/schedules", {"cron_expression": "0 0 * * *"}).data
    trigger = dict(api.get(f"/api/v1/workflows/{wf['id']}").data["triggers"][0], cron_expression="30 6 * * 1-5")
    api.patch(f"/api/v1/workflows/{wf['id']}", {"triggers": [trigger]})
    assert api.get(f"/api/v1/schedules/{schedule['id']}").data["cron_expression"] == "30 6 * * 1-5"


def test_delete_a_schedule(api, wf):
    schedule = api.post(f"/api/v1/workflows/{wf['id']}/schedules", {"cron_expression": "0 0 * * *"}).data
    reply = api.delete(f"/api/v1/schedules/{schedule['id']}")
    assert reply.status == 200 and reply.data == {"id": schedule["id"], "deleted": True}
    assert api.get(f"/api/v1/schedules/{schedule['id']}").status == 404
    assert api.get(f"/api/v1/workflows/{wf['id']}").data["triggers"] == []


def test_the_one_schedule_form(api, wf):
    assert api.get(f"/api/v1/workflows/{wf['id']}/schedule").status == 404
    created = api.post(f"/api/v1/workflows/{wf['id']}/schedule", {"cron_expression": "0 9 * * 1-5",
                                                                   "timezone": "America/New_York"})
    assert created.status == 201 and created.data["timezone"] == "America/New_York"
    updated = api.put(f"/api/v1/workflows/{wf['id']}/schedule", {"cron_expression": "0 10 * * 1-5", "enabled": True})
    assert updated.status == 200 and updated.data["cron_expression"] == "0 10 * * 1-5"
    assert updated.data["id"] == created.data["id"]
    assert api.get(f"/api/v1/workflows/{wf['id']}/schedule").data["id"] == created.data["id"]
    assert api.delete(f"/api/v1/workflows/{wf['id']}/schedule").status == 200
    assert api.get(f"/api/v1/workflows/{wf['id']}/schedule").status == 404
    assert api.put(f"/api/v1/workflows/{wf['id']}/schedule", {"cron_expression": "0 10 * * *"}).status == 404


@pytest.mark.parametrize("body, code, field", [
    ({"cron_expression": "0 12 ? * MON-FRI *"}, "INVALID_SCHEDULE", "triggers[0].cron_expression"),
    ({"execution_time": "2001-01-01T00:00:00Z"}, "INVALID_SCHEDULE", "triggers[0].execution_time"),
    ({}, "INVALID_SCHEDULE", "triggers[0].schedule_type"),
    ({"cron_expression": "0 0 * * *", "colour": "red"}, "VALIDATION_ERROR", "colour"),
    ({"cron_expression": "0 0 * * *", "overlap_policy": "queue"}, "VALIDATION_ERROR", "overlap_policy"),
])
def test_bad_schedules_are_400_and_store_nothing(api, wf, body, code, field):
    reply = api.post(f"/api/v1/workflows/{wf['id']}/schedules", body)
    assert reply.status == 400 and reply.error["code"] == code
    assert reply.error["details"][0]["field"] == field
    assert api.get(f"/api/v1/workflows/{wf['id']}").data["revision"] == 1


def test_another_account_sees_no_schedule(api, wf, chalice_client):
    schedule = api.post(f"/api/v1/workflows/{wf['id']}/schedules", {"cron_expression": "0 0 * * *"}).data
    other = new_tenant(chalice_client, "other").api
    reply = other.get(f"/api/v1/schedules/{schedule['id']}")
    assert reply.status == 404 and reply.error["code"] == "SCHEDULE_NOT_FOUND"
    assert other.get("/api/v1/schedules").data == []
    assert other.patch(f"/api/v1/schedules/{schedule['id']}", {"enabled": False}).status == 404
