"""The OpenAPI document matches the app's routes; health; the action registry."""

from tests.functional.conftest import Api


def test_openapi_paths_are_exactly_the_apps_routes(chalice_client):
    from app import app

    document = Api(chalice_client, None).get("/api/v1/openapi.json").body
    assert document["openapi"] == "3.1.0"
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    routed = {(path, method) for path, entries in app.routes.items() for method in entries}
    assert documented == routed
    for path, ops in document["paths"].items():
        for method, operation in ops.items():
            assert operation["summary"], (path, method)
            assert operation["responses"], (path, method)


def test_openapi_marks_the_public_endpoints(chalice_client):
    paths = Api(chalice_client, None).get("/api/v1/openapi.json").body["paths"]
    assert paths["/api/v1/health"]["get"]["security"] == []
    assert paths["/api/v1/openapi.json"]["get"]["security"] == []
    assert "security" not in paths["/api/v1/workflows"]["get"]
    assert paths["/api/v1/workflows"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WorkflowInput"}


def test_health_reports_version_and_storage(chalice_client):
    from chalicelib import __version__

    reply = Api(chalice_client, None).get("/api/v1/health")
    assert reply.status == 200
    assert reply.data["version"] == __version__
    assert (reply.data["status"], reply.data["storage"]) == ("ok", "ok")


def test_actions_registry_lists_every_action_with_schemas(api):
    reply = api.get("/api/v1/actions")
    assert reply.status == 200
    refs = [a["ref"] for a in reply.data]
    assert refs == ["activepieces.trigger_flow", "aws.dynamodb_put", "aws.dynamodb_query", "aws.eventbridge_put",
                    "aws.lambda_invoke", "aws.s3_put", "aws.sns_publish", "aws.sqs_send",
                    "core.condition", "core.echo", "core.fail", "core.http", "core.inquiry", "core.log",
                    "core.noop", "core.sleep", "core.transform", "document.extract", "document.parse", "email.send",
                    "jira.create_issue", "pagerduty.create_incident", "slack.post_message", "text.sentiment",
                    "text.topics", "workflow.run"]
    assert all(a["input_schema"]["type"] == "object" and a["output_schema"] is not None for a in reply.data
               if a["ref"] not in ("core.echo", "core.noop"))
    http = api.get("/api/v1/actions/core.http").data
    assert http["pack"] == "core" and http["input_schema"]["required"] == ["url"]
    assert api.get("/api/v1/actions/webhook.send").data["ref"] == "core.http"
    missing = api.get("/api/v1/actions/nope.none")
    assert missing.status == 404 and missing.error["code"] == "NOT_FOUND"
