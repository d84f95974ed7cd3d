"""Writes the least-privilege IAM policy of every Lambda function and stage into
.chalice/ (chalice's `iam_policy_file`). A test keeps the committed files equal to this.

    python infra/policies.py
"""

from __future__ import annotations

import json
import pathlib

CHALICE_DIR = pathlib.Path(__file__).resolve().parent.parent / ".chalice"
STAGES = ("dev", "prod")
FUNCTIONS = ("api_handler", "step_worker", "delivery_worker", "tick", "event_router")

READ_ITEMS = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
WRITE_ITEMS = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"]
CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
SEND = ["sqs:SendMessage", "sqs:GetQueueUrl"]


def _statement(sid: str, actions: list[str], resources: list[str]) -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def policy(stage: str, function: str) -> dict:
    prefix = f"sluice-{stage}"
    tables = [f"arn:*:dynamodb:*:*:table/{prefix}-*", f"arn:*:dynamodb:*:*:table/{prefix}-*/index/*"]
    queue = lambda name: f"arn:*:sqs:*:*:{prefix}-{name}"  # noqa: E731
    payloads = [f"arn:*:s3:::{prefix}-payloads-*/*"]
    statements = [_statement("Logs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                             ["arn:*:logs:*:*:*"])]
    if function == "delivery_worker":
        statements += [
            _statement("ReadHistory", READ_ITEMS, tables),
            _statement("LogDeliveries", ["dynamodb:PutItem"], [f"arn:*:dynamodb:*:*:table/{prefix}-deliveries"]),
            _statement("ConsumeDeliveries", CONSUME + SEND, [queue("deliveries")]),
            _statement("ReadPayloads", ["s3:GetObject"], payloads),
        ]
    else:
        statements += [
            _statement("Tables", READ_ITEMS + WRITE_ITEMS, tables),
            _statement("SendWork", SEND, [queue("steps"), queue("deliveries")]),
            _statement("Payloads", ["s3:GetObject", "s3:PutObject"], payloads),
        ]
    if function == "step_worker":
        statements += [
            _statement("ConsumeSteps", CONSUME, [queue("steps")]),
            # Purging a deleted workflow's history removes its executions' payload objects.
            _statement("PurgePayloads", ["s3:DeleteObject"], payloads),
            _statement("ListPayloads", ["s3:ListBucket"], [f"arn:*:s3:::{prefix}-payloads-*"]),
            # email.send: from the deployment's verified identities.
            _statement("SendEmail", ["ses:SendEmail", "ses:SendRawEmail"], ["arn:*:ses:*:*:identity/*"]),
            # aws.* actions run as a role the step or the deployment names, never as this one.
            _statement("ActAsActionRoles", ["sts:AssumeRole"], ["arn:*:iam::*:role/*"]),
        ]
    if function == "api_handler":
        statements.append(_statement("OperatorKey", ["ssm:GetParameter"], [f"arn:*:ssm:*:*:parameter/sluice/{stage}/*"]))
    return {"Version": "2012-10-17", "Statement": statements}


def files() -> dict[pathlib.Path, str]:
    return {CHALICE_DIR / f"policy-{stage}-{function}.json": json.dumps(policy(stage, function), indent=2) + "\n"
            for stage in STAGES for function in FUNCTIONS}


if __name__ == "__main__":
    for path, text in files().items():
        path.write_text(text)
        print(path)
