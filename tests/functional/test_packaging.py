"""`make package`: chalice's template merged with infra/ gives a deployable template that
cfn-lint accepts, with the resources, the functions' settings and their own policies."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from chalicelib.provision import load_template

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_DIR / "infra"))

import merge_template  # noqa: E402
import policies  # noqa: E402


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    out = tmp_path_factory.mktemp("package")
    merge = out / "merge.json"
    merge.write_text(json.dumps(merge_template.merged_template()))
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1")
    chalice = pathlib.Path(sys.executable).with_name("chalice")
    result = subprocess.run([str(chalice), "package", "--stage", "prod", "--merge-template", str(merge), str(out / "pkg")],
                            cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "pkg" / "sam.json"


def test_the_merged_template_passes_cfn_lint(packaged):
    from cfnlint.api import lint_file

    assert [str(m) for m in lint_file(packaged)] == []


def resources(packaged):
    return json.loads(packaged.read_text())["Resources"]


def test_every_infra_resource_and_function_is_there(packaged):
    found = resources(packaged)
    assert set(load_template()["Resources"]) <= set(found)
    functions = {name for name, r in found.items() if r["Type"] == "AWS::Serverless::Function"}
    assert functions == {"APIHandler", "StepWorker", "DeliveryWorker", "Tick", "EventRouter"}
    api = found["APIHandler"]["Properties"]
    assert api["Environment"]["Variables"]["SLUICE_STAGE"] == "prod"
    assert api["Environment"]["Variables"]["SLUICE_ALLOW_PRIVATE_NETWORKS"] == "false"
    assert api["Runtime"] == f"python3.{sys.version_info.minor}"


def test_functions_find_the_payload_bucket_and_sqs_workers_report_partial_failures(packaged):
    found = resources(packaged)
    for name in ("APIHandler", "StepWorker", "DeliveryWorker", "Tick", "EventRouter"):
        assert found[name]["Properties"]["Environment"]["Variables"]["SLUICE_PAYLOAD_BUCKET"] == {"Ref": "PayloadBucket"}
    for name in ("StepWorker", "DeliveryWorker"):
        source = found[name]["Properties"]["Events"][f"{name}SqsEventSource"]["Properties"]
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert source["BatchSize"] == 10
        # The queue is named by an ARN string: the function (and its mapping) wait for it.
        assert found[name]["DependsOn"] == ("StepQueue" if name == "StepWorker" else "DeliveryQueue")
    assert found["StepWorker"]["Properties"]["Timeout"] == 900
    assert found["Tick"]["Properties"]["Events"]["TickEvent"]["Properties"]["Schedule"] == "rate(1 minute)"


def test_each_function_has_its_own_least_privilege_role(packaged):
    found = resources(packaged)
    roles = {name: r for name, r in found.items() if r["Type"] == "AWS::IAM::Role"}
    assert len(roles) == 5
    documents = [role["Properties"]["Policies"][0]["PolicyDocument"] for role in roles.values()]
    actions = [{a for s in d["Statement"] for a in s["Action"]} for d in documents]
    assert all("dynamodb:Scan" not in a and "*" not in a for a in actions)
    delivery = policies.policy("prod", "delivery_worker")
    writes = [s for s in delivery["Statement"] if {"dynamodb:PutItem", "dynamodb:UpdateItem"} & set(s["Action"])]
    assert writes == [{"Sid": "LogDeliveries", "Effect": "Allow", "Action": ["dynamodb:PutItem"],
                       "Resource": ["arn:*:dynamodb:*:*:table/sluice-prod-deliveries"]}]


def test_the_event_router_hears_s3_documents_on_the_default_bus_and_everything_on_the_sluice_bus(packaged):
    found = resources(packaged)
    s3_rule = found["EventRouter"]["Properties"]["Events"]["EventRouterEvent"]["Properties"]
    assert s3_rule["Pattern"]["source"] == ["aws.s3"]
    assert s3_rule["Pattern"]["detail"]["object"] == {"key": [{"prefix": "documents/"}]}
    assert s3_rule["Pattern"]["detail"]["bucket"] == {"name": [{"prefix": "sluice-prod-payloads-"}]}
    bus_rule = found["EventRouterBusRule"]["Properties"]
    assert bus_rule["EventBusName"] == {"Ref": "EventBus"}
    assert bus_rule["Targets"] == [{"Id": "event-router", "Arn": {"Fn::GetAtt": ["EventRouter", "Arn"]}}]
    permission = found["EventRouterBusPermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "EventRouter"}
    assert permission["SourceArn"] == {"Fn::GetAtt": ["EventRouterBusRule", "Arn"]}


def test_the_committed_policies_are_the_generated_ones():
    for path, text in policies.files().items():
        assert path.read_text() == text, f"{path.name} is stale: run python infra/policies.py"


def test_api_gateway_answers_in_the_error_envelope(packaged):
    found = resources(packaged)
    responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in found.values()
                 if r["Type"] == "AWS::ApiGateway::GatewayResponse"}
    assert set(responses) == {"MISSING_AUTHENTICATION_TOKEN", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"}
    unknown = responses["MISSING_AUTHENTICATION_TOKEN"]
    assert unknown["StatusCode"] == "404" and unknown["RestApiId"] == {"Ref": "RestAPI"}
    for properties in responses.values():
        body = properties["ResponseTemplates"]["application/json"].replace("$context.error.messageString", "\"x\"")
        assert set(json.loads(body)["error"]) == {"code", "message", "details"}
