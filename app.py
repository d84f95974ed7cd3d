"""The Sluice application: the HTTP API and the event handlers, wired to chalicelib."""

import os

from chalice import Chalice, Rate

from chalicelib.api import accounts, executions, meta, schedules, workflows

app = Chalice(app_name="sluice")
app.api.binary_types = []  # every body is JSON or text; nothing is base64-encoded

for blueprint in (meta.bp, accounts.bp, workflows.bp, executions.bp, schedules.bp):
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
