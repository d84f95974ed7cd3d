"""Inbound webhooks (SPEC §6.2): a secret shown once, token or HMAC signature, 401 that
starts nothing, 202 with the execution id, trigger data {body, headers, query, method},
and a rotation that retires the old secret at once."""

import hashlib
import hmac
import json

import pytest

from tests.functional.conftest import create_workflow, wait_for

ECHO = {"steps": [{"name": "echo", "action": "core.echo",
                   "input": {"body": "{{ trigger.data.body }}", "method": "{{ trigger.data.method }}",
                             "query": "{{ trigger.data.query }}", "kind": "{{ trigger.type }}"}}]}


@pytest.fixture
def hooked(api, workers):
    reply = api.post("/api/v1/workflows", {"name": "Hooked", "definition": ECHO, "triggers": [{"type": "webhook"}]})
    assert reply.status == 201, reply.body
    return reply.data


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def executions(api, wf):
    return api.get(f"/api/v1/workflows/{wf['id']}/executions?limit=100").data


def test_the_secret_is_shown_once_with_the_url(api, hooked, workers):
    trigger = hooked["triggers"][0]
    assert trigger["url"] == f"/api/v1/hooks/{trigger['id']}"
    assert trigger["secret"].startswith("whsec_") and len(trigger["secret"]) > 40
    again = api.get(f"/api/v1/workflows/{hooked['id']}").data["triggers"][0]
    assert again["url"] == trigger["url"] and "secret" not in again
    # Changing the workflow, the trigger included, keeps the secret and does not show it.
    patched = api.patch(f"/api/v1/workflows/{hooked['id']}", {"description": "x"}).data["triggers"][0]
    assert "secret" not in patched
    shown = api.get(f"/api/v1/workflows/{hooked['id']}").data
    replaced = api.put(f"/api/v1/workflows/{hooked['id']}",
                       dict(shown, triggers=[dict(again, parameters={"b": "{{ body }}"})])).data["triggers"][0]
    assert replaced["id"] == trigger["id"] and "secret" not in replaced
    reply = api.post(trigger["url"], {"x": 1}, key="", headers={"X-Sluice-Token": trigger["secret"]})
    assert reply.status == 202


def test_a_token_starts_the_workflow_with_the_request_as_trigger_data(api, hooked):
    trigger = hooked["triggers"][0]
    reply = api.post(f"{trigger['url']}?source=shop", {"order": 42}, key="",
                     headers={"X-Sluice-Token": trigger["secret"], "X-Shop": "s1"})
    assert reply.status == 202, reply.body
    assert reply.data["status"] == "queued" and reply.data["execution_id"].startswith("ex_")
    detail = wait_for(lambda: (d := api.get(f"/api/v1/executions/{reply.data['execution_id']}").data)
                      and d["status"] == "succeeded" and d)
    assert detail["triggered_by"] == "webhook" and detail["trigger_id"] == trigger["id"]
    assert detail["steps"][0]["output"] == {"body": {"order": 42}, "method": "POST", "query": {"source": "shop"},
                                            "kind": "webhook"}
    # The trigger data keeps the sender's headers but never the credential.
    headers = detail["parameters"]["headers"]
    assert headers["x-shop"] == "s1" and "x-sluice-token" not in headers and "authorization" not in headers


def test_a_signature_over_the_raw_body_authenticates(api, hooked):
    trigger = hooked["triggers"][0]
    body = b'{"b": 1,   "a": 2}'
    reply = api.post(trigger["url"], raw=body, key="", headers={"X-Sluice-Signature": sign(trigger["secret"], body)})
    assert reply.status == 202, reply.body
    # Re-serialising the JSON changes the bytes: that signature does not match.
    reply = api.post(trigger["url"], raw=json.dumps({"b": 1, "a": 2}), key="",
                     headers={"X-Sluice-Signature": sign(trigger["secret"], body)})
    assert reply.status == 401


@pytest.mark.parametrize("headers", [
    {},
    {"X-Sluice-Token": "whsec_wrong"},
    {"X-Sluice-Signature": "sha256=" + "0" * 64},
    {"X-Sluice-Signature": "not-a-signature"},
])
def test_a_missing_or_wrong_credential_is_401_and_starts_nothing(api, hooked, headers):
    reply = api.post(hooked["triggers"][0]["url"], {"x": 1}, key="", headers=headers)
    assert reply.status == 401 and reply.error["code"] == "UNAUTHORIZED"
    assert executions(api, hooked) == []


def test_an_api_key_is_not_a_webhook_credential(api, hooked):
    reply = api.post(hooked["triggers"][0]["url"], {"x": 1})
    assert reply.status == 401
    assert executions(api, hooked) == []


def test_form_and_text_bodies(api, hooked):
    trigger = hooked["triggers"][0]
    token = {"X-Sluice-Token": trigger["secret"]}
    form = api.post(trigger["url"], raw="a=1&b=x&b=y", key="",
                    headers={**token, "Content-Type": "application/x-www-form-urlencoded"})
    text = api.post(trigger["url"], raw="hello", key="", headers={**token, "Content-Type": "text/plain"})
    bad = api.post(trigger["url"], raw="{nope", key="", headers=token)
    assert (form.status, text.status, bad.status) == (202, 202, 400)
    assert bad.error["details"] == [{"field": "body", "message": "is not valid JSON"}]
    outputs = [wait_for(lambda e=e: (d := api.get(f"/api/v1/executions/{e}").data)["status"] == "succeeded" and d)
               ["steps"][0]["output"]["body"] for e in (form.data["execution_id"], text.data["execution_id"])]
    assert outputs == [{"a": "1", "b": ["x", "y"]}, "hello"]


def test_rotation_retires_the_old_secret(api, hooked):
    trigger = hooked["triggers"][0]
    reply = api.post(f"/api/v1/workflows/{hooked['id']}/triggers/{trigger['id']}/rotate-secret")
    assert reply.status == 200
    assert reply.data["trigger_id"] == trigger["id"] and reply.data["url"] == trigger["url"]
    new = reply.data["secret"]
    assert new != trigger["secret"] and new.startswith("whsec_")
    assert api.post(trigger["url"], {}, key="", headers={"X-Sluice-Token": trigger["secret"]}).status == 401
    assert api.post(trigger["url"], {}, key="", headers={"X-Sluice-Token": new}).status == 202


def test_rotation_needs_a_webhook_trigger_of_that_workflow(api, hooked):
    other = create_workflow(api, ECHO, name="Other", triggers=[{"type": "schedule", "cron_expression": "0 9 * * *"}])
    schedule_id = other["triggers"][0]["id"]
    wrong_workflow = api.post(f"/api/v1/workflows/{other['id']}/triggers/{hooked['triggers'][0]['id']}/rotate-secret")
    not_a_hook = api.post(f"/api/v1/workflows/{other['id']}/triggers/{schedule_id}/rotate-secret")
    assert wrong_workflow.status == 404
    assert not_a_hook.status == 400 and not_a_hook.error["details"][0]["field"] == "trigger_id"


def test_unknown_hook_is_404(api, workers):
    assert api.post("/api/v1/hooks/trg_aaaaaaaaaaaaaaaaaaaaaaaa", {}, key="", headers={"X-Sluice-Token": "x"}).status == 404
    assert api.post("/api/v1/hooks/nonsense", {}, key="", headers={"X-Sluice-Token": "x"}).status == 404


def test_a_disabled_trigger_or_workflow_does_not_start(api, hooked):
    trigger = hooked["triggers"][0]
    token = {"X-Sluice-Token": trigger["secret"]}
    api.post(f"/api/v1/workflows/{hooked['id']}/deactivate")
    reply = api.post(trigger["url"], {}, key="", headers=token)
    assert reply.status == 409 and reply.error["code"] == "INVALID_STATE"
    api.post(f"/api/v1/workflows/{hooked['id']}/activate")
    api.patch(f"/api/v1/workflows/{hooked['id']}", {"triggers": [dict(trigger, enabled=False)]})
    assert api.post(trigger["url"], {}, key="", headers=token).status == 409
    assert executions(api, hooked) == []


def test_parameters_are_checked_against_the_param_schema(api, workers):
    wf = create_workflow(api, ECHO, name="Typed", triggers=[{"type": "webhook", "parameters": {"n": "{{ body.n }}"}}],
                         param_schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    trigger = wf["triggers"][0]
    token = {"X-Sluice-Token": trigger["secret"]}
    bad = api.post(trigger["url"], {"n": "seven"}, key="", headers=token)
    assert bad.status == 422 and bad.error["details"][0]["field"] == "parameters.n"
    good = api.post(trigger["url"], {"n": 7}, key="", headers=token)
    assert good.status == 202
    assert api.get(f"/api/v1/executions/{good.data['execution_id']}").data["parameters"] == {"n": 7}


def test_a_large_body_starts_an_execution_that_keeps_it(api, hooked):
    trigger = hooked["triggers"][0]
    text = "é" * 110_000  # 220 KB of UTF-8: the trigger and parameters go to the payload bucket
    reply = api.post(trigger["url"], raw=json.dumps({"text": text}, ensure_ascii=False).encode(), key="",
                     headers={"X-Sluice-Token": trigger["secret"]})
    assert reply.status == 202, reply.body
    detail = wait_for(lambda: (d := api.get(f"/api/v1/executions/{reply.data['execution_id']}").data)
                      and d["status"] == "succeeded" and d)
    assert detail["steps"][0]["output"]["body"] == {"text": text}
    over = api.post(trigger["url"], raw=json.dumps({"text": "é" * 140_000}, ensure_ascii=False).encode(), key="",
                    headers={"X-Sluice-Token": trigger["secret"]})
    assert over.status == 413 and over.error["code"] == "PAYLOAD_TOO_LARGE"
