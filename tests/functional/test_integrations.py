"""Integrations (SPEC §8): CRUD at both path forms, secrets masked in every answer, a
workflow's integrations shown connected / missing, 409 INTEGRATION_MISSING, and a step's
`integration` merged into its input."""

import pytest

from tests.functional.conftest import create_workflow, execute

SLACK = {"name": "Slack Notifications", "integration_type": "slack",
         "config": {"webhook_url": "https://hooks.slack.com/services/T000/B000/XXXX", "channel": "#invoices"}}


@pytest.fixture
def slack(api, workers):
    reply = api.post("/api/v1/integrations", SLACK)
    assert reply.status == 201, reply.body
    return reply.data


def test_secrets_are_masked_in_every_answer(api, slack):
    assert slack["id"].startswith("int_")
    assert slack["config"] == {"webhook_url": "********", "channel": "#invoices"}
    assert api.get(f"/api/v1/integrations/{slack['id']}").data["config"]["webhook_url"] == "********"
    assert api.get(f"/api/v1/integrations?id={slack['id']}").data["config"]["webhook_url"] == "********"
    listed = api.get("/api/v1/integrations").data
    assert [i["config"]["webhook_url"] for i in listed] == ["********"]
    jira = api.post("/api/v1/integrations", {"name": "Jira", "integration_type": "jira", "config": {
        "base_url": "https://acme.atlassian.net", "email": "bot@acme.io", "api_token": "t0ken"}}).data
    assert jira["config"] == {"base_url": "https://acme.atlassian.net", "email": "bot@acme.io", "api_token": "********"}


def test_update_at_both_forms_keeps_a_masked_secret(api, tenant, slack):
    shown = api.get(f"/api/v1/integrations/{slack['id']}").data
    reply = api.put(f"/api/v1/integrations/{slack['id']}", dict(shown, config=dict(shown["config"], channel="#ops")))
    assert reply.status == 200 and reply.data["config"] == {"webhook_url": "********", "channel": "#ops"}
    from chalicelib.wiring import integration_service

    stored = integration_service().get(tenant.account_id, slack["id"])
    assert stored["config"]["webhook_url"] == SLACK["config"]["webhook_url"]
    renamed = api.put(f"/api/v1/integrations?id={slack['id']}", {"name": "Alerts"})
    assert renamed.status == 200 and renamed.data["name"] == "Alerts" and renamed.data["config"]["channel"] == "#ops"
    assert api.delete(f"/api/v1/integrations?id={slack['id']}").status == 200
    assert api.get(f"/api/v1/integrations/{slack['id']}").status == 404
    assert api.delete(f"/api/v1/integrations/{slack['id']}").error["code"] == "NOT_FOUND"


@pytest.mark.parametrize(("body", "field"), [
    ({"integration_type": "slack", "config": {"webhook_url": "x"}}, "name"),
    ({"name": "x", "integration_type": "fax"}, "integration_type"),
    ({"name": "x", "integration_type": "slack", "config": {}}, "config.webhook_url"),
    ({"name": "x", "integration_type": "pagerduty", "config": {}}, "config.routing_key"),
    ({"name": "x", "integration_type": "email", "config": []}, "config"),
    ({"name": "x", "integration_type": "email", "colour": 1}, "colour"),
])
def test_integration_input_is_checked(api, workers, body, field):
    reply = api.post("/api/v1/integrations", body)
    assert reply.status == 400 and reply.error["details"][0]["field"] == field


def test_filters(api, slack):
    email = api.post("/api/v1/integrations", {"name": "Mail", "integration_type": "email", "workflow_id": "wf_x"}).data
    assert [i["id"] for i in api.get("/api/v1/integrations?integration_type=email").data] == [email["id"]]
    assert [i["id"] for i in api.get("/api/v1/integrations?workflow_id=wf_x").data] == [email["id"]]
    assert api.get("/api/v1/integrations").body["meta"]["total"] == 2


def test_a_workflow_shows_its_integrations_and_needs_the_required_ones(api, workers):
    wf = create_workflow(api, {"steps": [{"name": "a", "action": "core.noop"}]}, name="Needs",
                         integrations=[{"id": "Zendesk", "required": True}, {"id": "Salesforce", "required": False}])
    assert [i["status"] for i in wf["integrations"]] == ["missing", "missing"]
    reply = execute(api, wf)
    assert reply.status == 409 and reply.error["code"] == "INTEGRATION_MISSING"
    assert reply.error["details"] == [{"field": "integrations", "message": "'Zendesk' is missing"}]
    zendesk = api.post("/api/v1/integrations", {"name": "Zendesk", "integration_type": "webhook",
                                                 "config": {"url": "https://acme.zendesk.com/api"}}).data
    shown = api.get(f"/api/v1/workflows/{wf['id']}").data["integrations"]
    assert shown == [{"id": "Zendesk", "required": True, "status": "connected"},
                     {"id": "Salesforce", "required": False, "status": "missing"}]
    assert execute(api, wf).status == 200
    # By id as well as by name.
    by_id = create_workflow(api, {"steps": []}, name="By id", integrations=[{"id": zendesk["id"], "required": True}])
    assert by_id["integrations"][0]["status"] == "connected"


def test_a_step_merges_its_integration_config_into_its_input(api, workers, sink):
    hook = api.post("/api/v1/integrations", {"name": "crm", "integration_type": "webhook", "config": {
        "url": sink.url("/crm"), "method": "POST", "headers": {"Authorization": "Bearer s3cret"}}}).data
    wf = create_workflow(api, {"steps": [{"name": "send", "action": "webhook.send", "integration": hook["id"],
                                          "input": {"body": {"user": "{{ params.user }}"}}}]}, name="CRM")
    reply = execute(api, wf, {"user": "ada"})
    assert reply.status == 200 and reply.data["status"] == "succeeded", reply.body
    [received] = sink.to("/crm")
    assert received.json == {"user": "ada"} and received.header("Authorization") == "Bearer s3cret"
    step = reply.data["steps"][0]
    # The integration's URL may carry a token in its path: the record keeps its host only.
    assert step["input"]["headers"] == {"Authorization": "********"}
    assert step["input"]["url"] == sink.url("/********")
    shown = api.get(f"/api/v1/integrations/{hook['id']}").data["config"]
    assert shown == {"url": sink.url("/********"), "method": "POST", "headers": {"Authorization": "********"}}


def test_an_integration_configures_only_its_own_kind_of_action(api, workers, sink):
    slack = api.post("/api/v1/integrations", {"name": "slack", "integration_type": "slack",
                                              "config": {"webhook_url": sink.url("/T000/B000/secret")}}).data
    echo = create_workflow(api, {"steps": [{"name": "leak", "action": "core.echo", "integration": "slack",
                                            "input": {}}]}, name="Leak")
    step = execute(api, echo).data["steps"][0]
    assert step["error"]["code"] == "INVALID_INPUT" and step["output"] is None
    assert "slack integration cannot configure core.echo" in step["error"]["message"]
    # A step cannot send the integration's credentials somewhere else.
    redirect = create_workflow(api, {"steps": [{"name": "post", "action": "slack.post_message", "integration": slack["id"],
                                                "input": {"text": "hi", "webhook_url": sink.url("/elsewhere")}}]},
                               name="Redirect")
    assert execute(api, redirect).data["status"] == "succeeded"
    assert sink.to("/elsewhere") == [] and [r.json for r in sink.to("/T000/B000/secret")] == [{"text": "hi"}]


def test_a_masked_url_sent_back_keeps_the_stored_one(api, tenant, workers, sink):
    from chalicelib.wiring import integration_service

    hook = api.post("/api/v1/integrations", {"name": "h", "integration_type": "webhook",
                                             "config": {"url": "https://hooks.example.com/T1/B2/token"}}).data
    assert hook["config"]["url"] == "https://hooks.example.com/********"
    api.put(f"/api/v1/integrations/{hook['id']}", {"config": dict(hook["config"], method="PUT")})
    stored = integration_service().get(tenant.account_id, hook["id"])["config"]
    assert stored == {"url": "https://hooks.example.com/T1/B2/token", "method": "PUT"}


def test_a_skipped_step_does_not_need_its_integration(api, workers):
    wf = create_workflow(api, {"steps": [{"name": "send", "action": "webhook.send", "integration": "nowhere",
                                          "when": "{{ false }}", "input": {"url": "https://example.com"}}]},
                         name="Skipped")
    assert execute(api, wf).data["steps"][0]["status"] == "skipped"


def test_a_step_whose_integration_is_gone_fails_without_retrying(api, workers):
    wf = create_workflow(api, {"steps": [{"name": "send", "action": "webhook.send", "integration": "nowhere",
                                          "retry": {"max_attempts": 3}, "input": {"url": "https://example.com"}}]},
                         name="Gone")
    reply = execute(api, wf)
    assert reply.data["status"] == "failed"
    step = reply.data["steps"][0]
    assert step["error"]["code"] == "INTEGRATION_MISSING" and step["attempts"] == 1
