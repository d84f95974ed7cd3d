"""The workflows API (SPEC §2) end to end through the chalice test client and moto."""

import json

import pytest

from tests.functional.conftest import new_tenant

INCIDENT = {
    "ref": "slack.incident_workflow",
    "pack_ref": "slack",
    "label": "Incident Response Workflow",
    "description": "Automated incident response with notifications",
    "version": "1.0.0",
    "param_schema": {
        "type": "object",
        "properties": {"severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
                       "channel": {"type": "string"}},
        "required": ["severity", "channel"],
    },
    "out_schema": {"type": "object", "properties": {"incident_id": {"type": "string"}}},
    "definition": {"tasks": [
        {"name": "notify_team", "action": "core.log",
         "input": {"message": "Incident: {{ severity }} in {{ channel }}"}},
    ]},
    "tags": ["incident", "approval"],
    "enabled": True,
}


def create(api, **fields):
    body = {"name": "Workflow", **fields}
    reply = api.post("/api/v1/workflows", body)
    assert reply.status == 201, reply.body
    return reply.data


def test_create_answers_201_with_the_whole_document(api):
    reply = api.post("/api/v1/workflows", INCIDENT)
    assert reply.status == 201
    assert reply.body["message"] == "Workflow created successfully"
    wf = reply.data
    assert wf["id"].startswith("wf_") and len(wf["id"]) == 27
    assert wf["ref"] == "slack.incident_workflow"
    assert wf["pack"] == "slack"
    assert wf["name"] == "Incident Response Workflow"
    assert wf["revision"] == 1
    assert wf["status"] == "active" and wf["enabled"] is True
    assert wf["type"] == "custom"
    assert wf["retention_days"] == 30
    assert wf["definition"] == {"steps": INCIDENT["definition"]["tasks"]}
    assert wf["stats"] == {"runs_total": 0, "runs_succeeded": 0, "runs_failed": 0,
                           "average_duration_ms": 0, "last_run_at": None}
    assert wf["created_at"].endswith("Z") and wf["created_at"] == wf["updated_at"] == wf["activated_at"]
    assert wf["created_by"].startswith("key_")
    assert reply.headers["ETag"] == '"1"'


def test_defaults_and_derived_ref(api):
    wf = create(api, name="Daily Report: Sales & Ops!")
    assert wf["ref"] == "default.daily_report_sales_ops"
    assert wf["pack"] == "default"
    assert wf["version"] == "1.0.0"
    assert wf["tags"] == [] and wf["configuration"] == {} and wf["metadata"] == {}
    assert wf["definition"] == {"steps": []}
    assert wf["triggers"] == [] and wf["integrations"] == []


def test_a_derived_ref_that_is_taken_gets_a_suffix_but_an_explicit_one_is_409(api):
    assert create(api, name="Same")["ref"] == "default.same"
    assert create(api, name="Same")["ref"] == "default.same_2"
    reply = api.post("/api/v1/workflows", {"name": "Other", "ref": "default.same"})
    assert reply.status == 409
    assert reply.error["code"] == "CONFLICT"
    assert reply.error["details"] == [{"field": "ref", "message": "already exists"}]


def test_get_by_id_and_by_ref(api):
    wf = create(api, **INCIDENT)
    by_id = api.get(f"/api/v1/workflows/{wf['id']}")
    by_ref = api.get("/api/v1/workflows/slack.incident_workflow")
    assert by_id.status == by_ref.status == 200
    assert by_id.data == by_ref.data == wf


@pytest.mark.parametrize("missing", ["wf_aaaaaaaaaaaaaaaaaaaaaaaa", "nope.nothing", "garbage"])
def test_unknown_workflow_is_404(api, missing):
    reply = api.get(f"/api/v1/workflows/{missing}")
    assert reply.status == 404
    assert reply.error == {"code": "WORKFLOW_NOT_FOUND", "message": f"workflow '{missing}' not found", "details": []}


def test_tenant_isolation(chalice_client, api):
    wf = create(api, name="Private")
    other = new_tenant(chalice_client, "other").api
    for method, path in [("GET", f"/api/v1/workflows/{wf['id']}"), ("GET", f"/api/v1/workflows/{wf['ref']}"),
                         ("DELETE", f"/api/v1/workflows/{wf['id']}"), ("POST", f"/api/v1/workflows/{wf['id']}/toggle"),
                         ("GET", f"/api/v1/workflows/{wf['id']}/versions")]:
        reply = other.request(method, path)
        assert reply.status == 404, (method, path)
        assert reply.error["code"] == "WORKFLOW_NOT_FOUND"
    assert other.patch(f"/api/v1/workflows/{wf['id']}", {"name": "x"}).status == 404
    listed = other.get("/api/v1/workflows")
    assert listed.data == [] and listed.body["meta"]["total"] == 0
    # The same ref is free in another account.
    assert other.post("/api/v1/workflows", {"name": "Private"}).data["ref"] == "default.private"
    assert api.get(f"/api/v1/workflows/{wf['id']}").data["name"] == "Private"


def test_list_filters_combine(api):
    create(api, name="Incident Response", description="pages on-call", tags=["incident", "ops"], pack="ops", type="incident_response")
    create(api, name="Approval Flow", description="manager approval", tags=["approval"], enabled=False, type="approval")
    create(api, name="Nightly ETL", description="loads the INCIDENT table", tags=["data"], pack="data",
           metadata={"department": "analytics"})

    def names(query):
        reply = api.get(f"/api/v1/workflows?{query}")
        assert reply.status == 200, reply.body
        return sorted(w["name"] for w in reply.data)

    assert names("tags=incident,approval") == ["Approval Flow", "Incident Response"]
    assert names("enabled=false") == ["Approval Flow"]
    assert names("enabled=true") == ["Incident Response", "Nightly ETL"]
    assert names("status=inactive") == ["Approval Flow"]
    assert names("type=incident_response") == ["Incident Response"]
    assert names("pack=ops") == ["Incident Response"]
    assert names("pack_ref=data") == ["Nightly ETL"]
    assert names("search=incident") == ["Incident Response", "Nightly ETL"]
    assert names("search=INCIDENT&enabled=true&tags=data") == ["Nightly ETL"]
    assert names("department=analytics") == ["Nightly ETL"]
    assert names("search=nothing-matches") == []


def test_list_items_are_summaries(api):
    create(api, **INCIDENT)
    item = api.get("/api/v1/workflows").data[0]
    assert set(item) == {"id", "ref", "pack", "name", "description", "version", "revision", "type", "tags",
                         "enabled", "status", "metadata", "created_at", "updated_at", "activated_at", "created_by"}


def test_list_sorting_and_paging(api):
    for name in ["b", "C", "a", "e", "d"]:
        create(api, name=name)
    by_name = api.get("/api/v1/workflows?sort_by=name&sort_order=asc&per_page=2")
    assert [w["name"] for w in by_name.data] == ["a", "b"]
    assert by_name.body["meta"] == {"page": 1, "per_page": 2, "total": 5, "total_pages": 3}
    last = api.get("/api/v1/workflows?sort_by=name&sort_order=asc&per_page=2&page=3")
    assert [w["name"] for w in last.data] == ["e"]
    beyond = api.get("/api/v1/workflows?per_page=2&page=4")
    assert beyond.data == [] and beyond.body["meta"]["total"] == 5
    newest_first = api.get("/api/v1/workflows")
    assert [w["name"] for w in newest_first.data] == ["d", "e", "a", "C", "b"]
    oldest_first = api.get("/api/v1/workflows?sort_by=created_at&sort_order=asc")
    assert [w["name"] for w in oldest_first.data] == ["b", "C", "a", "e", "d"]


@pytest.mark.parametrize("query, field", [
    ("per_page=101", "per_page"), ("per_page=0", "per_page"), ("page=x", "page"), ("page=-1", "page"),
    ("sort_by=size", "sort_by"), ("sort_order=up", "sort_order"), ("enabled=maybe", "enabled"),
    ("status=sleeping", "status"),
])
def test_bad_list_query_is_400(api, query, field):
    reply = api.get(f"/api/v1/workflows?{query}")
    assert reply.status == 400
    assert reply.error["code"] == "VALIDATION_ERROR"
    assert reply.error["details"][0]["field"] == field


def test_put_replaces_keeps_ref_and_bumps_revision(api):
    wf = create(api, **INCIDENT)
    reply = api.put(f"/api/v1/workflows/{wf['id']}", {"name": "Renamed", "description": "new", "tags": ["x"]})
    assert reply.status == 200
    assert reply.body["message"] == "Workflow updated successfully"
    updated = reply.data
    assert updated["revision"] == 2
    assert updated["ref"] == "slack.incident_workflow"
    assert updated["name"] == "Renamed" and updated["tags"] == ["x"]
    assert updated["param_schema"] is None  # a PUT replaces: what is not sent is reset
    assert updated["created_at"] == wf["created_at"] and updated["updated_at"] > wf["updated_at"]


def test_put_can_change_the_ref_and_frees_the_old_one(api):
    wf = create(api, name="Mover")
    moved = api.put(f"/api/v1/workflows/{wf['id']}", {"name": "Mover", "ref": "ops.mover"}).data
    assert moved["ref"] == "ops.mover" and moved["pack"] == "ops"
    assert api.get("/api/v1/workflows/default.mover").status == 404
    assert api.get("/api/v1/workflows/ops.mover").data["id"] == wf["id"]
    assert create(api, name="Mover")["ref"] == "default.mover"


def test_patch_merges(api):
    wf = create(api, name="Patchy", configuration={"a": 1, "b": {"c": 2}}, tags=["one"])
    reply = api.patch(f"/api/v1/workflows/{wf['ref']}", {"configuration": {"b": {"d": 3}, "a": None}, "description": "d"})
    assert reply.status == 200
    patched = reply.data
    assert patched["configuration"] == {"b": {"c": 2, "d": 3}}
    assert patched["description"] == "d" and patched["tags"] == ["one"] and patched["name"] == "Patchy"
    assert patched["revision"] == 2


def test_if_match_guards_against_stale_writes(api):
    wf = create(api, name="Guarded")
    assert api.patch(f"/api/v1/workflows/{wf['id']}", {"description": "v2"}, headers={"If-Match": '"1"'}).status == 200
    stale = api.patch(f"/api/v1/workflows/{wf['id']}", {"description": "lost"}, headers={"If-Match": "1"})
    assert stale.status == 409
    assert stale.error["code"] == "CONFLICT"
    assert stale.error["message"] == "revision 1 is stale; the current revision is 2: read the workflow again and retry"
    stale_put = api.put(f"/api/v1/workflows/{wf['id']}", {"name": "lost"}, headers={"If-Match": "1"})
    assert stale_put.status == 409
    assert api.get(f"/api/v1/workflows/{wf['id']}").data["description"] == "v2"
    assert api.put(f"/api/v1/workflows/{wf['id']}", {"name": "kept"}, headers={"If-Match": "2"}).data["revision"] == 3
    bad = api.patch(f"/api/v1/workflows/{wf['id']}", {"name": "x"}, headers={"If-Match": "abc"})
    assert bad.status == 400 and bad.error["details"][0]["field"] == "If-Match"


def test_an_unchanged_write_keeps_the_revision(api):
    wf = create(api, name="Same")
    again = api.patch(f"/api/v1/workflows/{wf['id']}", {"name": "Same"}).data
    assert again["revision"] == 1
    assert api.post(f"/api/v1/workflows/{wf['id']}/activate").data["revision"] == 1


def test_activate_deactivate_toggle(api):
    wf = create(api, name="Switch")
    off = api.post(f"/api/v1/workflows/{wf['id']}/deactivate")
    assert off.status == 200 and off.body["message"] == "Workflow deactivated successfully"
    assert (off.data["enabled"], off.data["status"], off.data["revision"]) == (False, "inactive", 2)
    assert off.data["deactivated_at"] == off.data["updated_at"]
    on = api.post(f"/api/v1/workflows/{wf['id']}/activate").data
    assert (on["enabled"], on["status"], on["revision"]) == (True, "active", 3)
    assert on["activated_at"] == on["updated_at"] > wf["activated_at"]
    toggled = api.post(f"/api/v1/workflows/{wf['ref']}/toggle").data
    assert (toggled["enabled"], toggled["status"]) == (False, "inactive")
    assert [w["status"] for w in api.get("/api/v1/workflows").data] == ["inactive"]


def test_versions_keep_every_revision(api):
    wf = create(api, name="History", description="first")
    api.patch(f"/api/v1/workflows/{wf['id']}", {"description": "second"})
    api.patch(f"/api/v1/workflows/{wf['id']}", {"version": "1.1.0"})
    versions = api.get(f"/api/v1/workflows/{wf['id']}/versions")
    assert versions.status == 200
    assert [(v["revision"], v["version"]) for v in versions.data] == [(3, "1.1.0"), (2, "1.0.0"), (1, "1.0.0")]
    assert versions.body["meta"] == {"page": 1, "per_page": 20, "total": 3, "total_pages": 1}
    first = api.get(f"/api/v1/workflows/{wf['id']}/versions/1")
    assert first.status == 200
    assert (first.data["revision"], first.data["description"]) == (1, "first")
    assert api.get(f"/api/v1/workflows/{wf['id']}/versions/9").status == 404
    assert api.get(f"/api/v1/workflows/{wf['id']}/versions/x").status == 400


def test_delete_removes_workflow_ref_triggers_and_list_entry(api):
    wf = create(api, name="Doomed", triggers=[{"type": "event", "event": "document.uploaded"}])
    reply = api.delete(f"/api/v1/workflows/{wf['id']}")
    assert reply.status == 200
    assert reply.data == {"id": wf["id"], "ref": "default.doomed", "deleted": True}
    assert reply.body["message"] == "Workflow 'default.doomed' deleted successfully"
    assert api.get(f"/api/v1/workflows/{wf['id']}").status == 404
    assert api.get("/api/v1/workflows/default.doomed").status == 404
    assert api.get("/api/v1/workflows").data == []
    from chalicelib.store.models import TriggerModel
    assert TriggerModel.count(wf["triggers"][0]["id"]) == 0
    assert api.delete(f"/api/v1/workflows/{wf['id']}").status == 404


def test_deleted_workflows_revisions_expire_with_their_retention(tenant, api):
    import time
    from chalicelib.store.models import WorkflowRevisionModel

    wf = create(api, name="Expiring", retention_days=7)
    api.delete(f"/api/v1/workflows/{wf['id']}")
    revision = WorkflowRevisionModel.get(tenant.account_id, f"rev#{wf['id']}#0000000001")
    assert abs(int(revision.expires_at.timestamp()) - (time.time() + 7 * 86400)) < 60


def test_triggers_get_ids_and_trigger_items(tenant, api):
    from chalicelib.store.models import TriggerModel

    wf = create(api, name="Triggered", triggers=[
        {"type": "schedule", "cron_expression": "0 9 * * 1-5", "timezone": "America/New_York"},
        {"type": "event", "event": "document.uploaded", "enabled": False},
    ])
    ids = [t["id"] for t in wf["triggers"]]
    assert all(i.startswith("trg_") for i in ids) and len(set(ids)) == 2
    assert [t["enabled"] for t in wf["triggers"]] == [True, False]
    item = TriggerModel.get(ids[0])
    assert (item.account_id, item.workflow_id, item.type, item.enabled) == (tenant.account_id, wf["id"], "schedule", 1)
    assert item.spec["cron_expression"] == "0 9 * * 1-5"
    # A PUT that keeps the first trigger (by id) and drops the second.
    kept = dict(wf["triggers"][0], timezone="Europe/Berlin")
    updated = api.patch(f"/api/v1/workflows/{wf['id']}", {"triggers": [kept]}).data
    assert [t["id"] for t in updated["triggers"]] == [ids[0]]
    assert TriggerModel.get(ids[0]).spec["timezone"] == "Europe/Berlin"
    assert TriggerModel.count(ids[1]) == 0
    assert [t.id for t in TriggerModel.by_account.query(tenant.account_id)] == [ids[0]]


def test_packs(api):
    create(api, name="a", pack="slack")
    create(api, name="b", pack="slack")
    create(api, name="c")
    packs = api.get("/api/v1/packs")
    assert packs.data == [{"name": "default", "ref": "default", "workflow_count": 1},
                          {"name": "slack", "ref": "slack", "workflow_count": 2}]
    assert packs.body["meta"]["total"] == 2
    slack = api.get("/api/v1/packs/slack/workflows")
    assert sorted(w["ref"] for w in slack.data) == ["slack.a", "slack.b"]
    assert slack.body["meta"]["total"] == 2
    missing = api.get("/api/v1/packs/nope/workflows")
    assert missing.status == 404 and missing.error["code"] == "NOT_FOUND"


def test_seed_003_create_shape_is_accepted(api):
    body = {
        "name": "Customer Feedback Analysis",
        "description": "Analyzes customer feedback and generates insights",
        "type": "feedback_analysis",
        "configuration": {"nlp_service": "default", "sentiment_analysis": True, "response_threshold": 0.7},
        "integrations": [{"id": "int_zendesk", "required": True}, {"id": "int_salesforce", "required": False}],
        "metadata": {"department": "customer_success", "priority": "medium", "version": "1.0"},
    }
    wf = api.post("/api/v1/workflows", body).data
    assert wf["type"] == "feedback_analysis"
    assert wf["integrations"] == [{"id": "int_zendesk", "required": True, "status": "missing"},
                                  {"id": "int_salesforce", "required": False, "status": "missing"}]
    assert wf["configuration"] == body["configuration"] and wf["metadata"] == body["metadata"]


def test_a_get_body_can_be_put_back(api):
    wf = create(api, **INCIDENT)
    back = api.put(f"/api/v1/workflows/{wf['id']}", wf)
    assert back.status == 200
    assert back.data["revision"] == 1  # nothing changed


# -- bad input ---------------------------------------------------------------------

@pytest.mark.parametrize("body, code, field", [
    ({}, "VALIDATION_ERROR", "name"),
    ({"name": ""}, "VALIDATION_ERROR", "name"),
    ({"name": "x" * 201}, "VALIDATION_ERROR", "name"),
    ({"name": "x", "tags": "a,b"}, "VALIDATION_ERROR", "tags"),
    ({"name": "x", "enabled": "yes"}, "VALIDATION_ERROR", "enabled"),
    ({"name": "x", "type": "bogus"}, "VALIDATION_ERROR", "type"),
    ({"name": "x", "version": "1.0"}, "VALIDATION_ERROR", "version"),
    ({"name": "x", "ref": "no_dot"}, "VALIDATION_ERROR", "ref"),
    ({"name": "x", "ref": "a.b", "pack": "c"}, "VALIDATION_ERROR", "ref"),
    ({"name": "x", "pack": "Bad Pack"}, "VALIDATION_ERROR", "pack"),
    ({"name": "x", "retention_days": 0}, "VALIDATION_ERROR", "retention_days"),
    ({"name": "x", "configuration": []}, "VALIDATION_ERROR", "configuration"),
    ({"name": "x", "integrations": [{"required": True}]}, "VALIDATION_ERROR", "integrations[0].id"),
    ({"name": "x", "colour": "red"}, "VALIDATION_ERROR", "colour"),
    ({"name": "x", "param_schema": {"type": "nonsense"}}, "INVALID_WORKFLOW_CONFIG", "param_schema.type"),
    ({"name": "x", "out_schema": {"required": "name"}}, "INVALID_WORKFLOW_CONFIG", "out_schema.required"),
    ({"name": "x", "triggers": [{"type": "telepathy"}]}, "INVALID_WORKFLOW_CONFIG", "triggers[0].type"),
    ({"name": "x", "definition": {"steps": [{"name": "a", "action": "nope.nothing"}]}},
     "INVALID_WORKFLOW_CONFIG", "definition.steps[0].action"),
    ({"name": "x", "definition": {"steps": [{"name": "a", "action": "core.noop", "on_success": "ghost"}]}},
     "INVALID_WORKFLOW_CONFIG", "definition.steps[0].on_success"),
    ({"name": "x", "definition": {"steps": [
        {"name": "a", "action": "core.noop"}, {"name": "b", "action": "core.noop"},
        {"name": "c", "action": "core.noop", "depends_on": ["a", "d"]},
        {"name": "d", "action": "core.noop", "depends_on": ["c"]}]}},
     "INVALID_WORKFLOW_CONFIG", "definition.steps[2].depends_on"),
    ({"name": "x", "definition": {"steps": [{"name": "a", "action": "core.noop"}, {"name": "a", "action": "core.echo"}]}},
     "INVALID_WORKFLOW_CONFIG", "definition.steps[1].name"),
    ({"name": "x", "definition": {"steps": [{"name": "a", "action": "core.noop"},
                                            {"name": "b", "action": "core.noop", "retry": {"max_attempts": 0}}]}},
     "INVALID_WORKFLOW_CONFIG", "definition.steps[1].retry.max_attempts"),
    ({"name": "x", "definition": {"steps": [{"name": "a", "action": "core.noop", "timeout": 901}]}},
     "INVALID_WORKFLOW_CONFIG", "definition.steps[0].timeout"),
    ({"name": "x", "definition": {"steps": [{"name": "a", "action": "core.echo", "input": {"u": "{{ params.x "}}]}},
     "INVALID_WORKFLOW_CONFIG", "definition.steps[0].input.u"),
])
def test_bad_documents_are_400_naming_the_field(api, body, code, field):
    reply = api.post("/api/v1/workflows", body)
    assert reply.status == 400, reply.body
    assert reply.error["code"] == code
    assert field in [d["field"] for d in reply.error["details"]]
    assert api.get("/api/v1/workflows").data == []  # nothing half-written


def test_a_bad_update_leaves_the_stored_workflow_untouched(api):
    wf = create(api, name="Stable")
    reply = api.put(f"/api/v1/workflows/{wf['id']}", {"name": "Stable", "definition": {"steps": [{"name": "a"}]}})
    assert reply.status == 400
    assert reply.error["details"] == [{"field": "definition.steps[0].action", "message": "is required"}]
    assert api.get(f"/api/v1/workflows/{wf['id']}").data == wf


@pytest.mark.parametrize("raw", ["{not json", '{"name": "x",}', "[1, 2", "\u00ff\u00fe"])
def test_malformed_json_is_400(api, raw):
    reply = api.post("/api/v1/workflows", raw=raw)
    assert reply.status == 400
    assert reply.error["code"] == "VALIDATION_ERROR"
    assert reply.error["details"] == [{"field": "body", "message": "is not valid JSON"}]


def test_a_json_array_body_is_400(api):
    reply = api.post("/api/v1/workflows", [1, 2])
    assert reply.status == 400 and reply.error["details"] == [{"field": "body", "message": "must be a JSON object"}]


def test_a_document_over_256_kb_is_413(api):
    body = {"name": "big", "metadata": {"blob": "x" * (256 * 1024)}}
    reply = api.post("/api/v1/workflows", body)
    assert reply.status == 413
    assert reply.error["code"] == "PAYLOAD_TOO_LARGE"
    assert "256 KB" in reply.error["message"]


def test_a_document_just_under_the_limit_is_stored_whole(api):
    blob = "y" * (250 * 1024)
    wf = create(api, name="big", metadata={"blob": blob})
    assert api.get(f"/api/v1/workflows/{wf['id']}").data["metadata"]["blob"] == blob
    assert len(json.dumps(wf)) > 250 * 1024


def test_a_patch_that_grows_the_document_past_256_kb_is_413_and_changes_nothing(api):
    wf = create(api, name="growing", metadata={"a": "x" * (200 * 1024)})
    reply = api.patch(f"/api/v1/workflows/{wf['id']}", {"configuration": {"b": "y" * (100 * 1024)}})
    assert reply.status == 413
    assert reply.error["code"] == "PAYLOAD_TOO_LARGE" and "256 KB" in reply.error["message"]
    assert api.get(f"/api/v1/workflows/{wf['id']}").data["revision"] == 1
