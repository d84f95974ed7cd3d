"""The Sluice application: the HTTP API and the event handlers, wired to chalicelib."""

from chalice import Chalice

from chalicelib.api import accounts, meta, workflows

app = Chalice(app_name="sluice")
app.api.binary_types = []  # every body is JSON or text; nothing is base64-encoded

for blueprint in (meta.bp, accounts.bp, workflows.bp):
    app.register_blueprint(blueprint)
