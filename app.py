"""The Sluice application: the HTTP API and the event handlers, wired to chalicelib."""

import os

from chalice import Chalice, Rate

from chalicelib.api import (
    accounts, buckets, documents, executions, http, integrations, meta, schedules, templates, triggers, webhooks,
    workflows,
)

app = Chalice(app_name="sluice")
app.api.binary_types = []  # every body is JSON or text; nothing is base64-encoded

app.register_middleware(http.envelope_framework_errors, "http")  # Chalice's own 405 / 415 answers
for blueprint in (meta.bp, accounts.bp, workflows.bp, executions.bp, schedules.bp, triggers.bp, buckets.bp,
                  integrations.bp, webhooks.bp, documents.bp, templates.bp):
    app.register_blueprint(blueprint)

# Queue names follow the stage, as in infra/resources.yaml (`chalice package` imports
# this module with the stage's environment).
STAGE = os.environ.get("SLUICE_STAGE", "dev")


@app.on_sqs_message(queue=f"sluice-{STAGE}-steps", batch_size=10, name="step_worker")
def step_worker(event):
    from chalicelib.handlers import worker

    return worker.handle(event)


@app.on_sqs_message(queue=f"sluice-{STAGE}-deliveries", batch_size=10, name="delivery_worker")
def delivery_worker(event):
    from chalicelib.handlers import deliveries

    return deliveries.handle(event)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="tick")
def tick(event):
    from chalicelib.handlers import tick as minute_tick

    return minute_tick.handle(event)


# S3's "Object Created" notifications of the documents bucket (default bus). Events on the
# Sluice bus reach the same function through the rule in infra/functions.yaml (chalice's
# decorator only knows the default bus).
DOCUMENT_EVENTS = {
    "source": ["aws.s3"],
    "detail-type": ["Object Created"],
    "detail": {"bucket": {"name": [{"prefix": f"sluice-{STAGE}-payloads-"}]},
               "object": {"key": [{"prefix": "documents/"}]}},
}


@app.on_cw_event(DOCUMENT_EVENTS, name="event_router")
def event_router(event):
    from chalicelib.handlers import events

    return events.handle(event)
