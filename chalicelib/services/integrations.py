"""Integrations (SPEC §8): named connections to outside services whose config a step
merges into its input (`"integration": "<id or name>"`). Secret config values are masked
in every answer; a masked value sent back keeps the stored secret."""

from __future__ import annotations

from typing import Any, Iterable

from chalicelib.errors import IntegrationMissingError, NotFoundError, ValidationError, detail
from chalicelib.ids import is_id, new_id, now_iso
from chalicelib.secrets import MASK, mask_secrets, mask_url

INTEGRATION_TYPES = ("slack", "email", "webhook", "jira", "pagerduty", "activepieces", "aws")
# The config each type cannot work without (the action's other fields may come from a step).
REQUIRED_CONFIG = {
    "slack": ("webhook_url",), "webhook": ("url",), "jira": ("base_url",), "pagerduty": ("routing_key",),
    "activepieces": ("webhook_url",), "email": (), "aws": (),
}
FIELDS = ("name", "integration_type", "config", "workflow_id", "description")
# The actions each type of integration may configure (a prefix ends with a dot).
ACTIONS = {
    "slack": ("slack.post_message",), "email": ("email.send",), "webhook": ("core.http",),
    "jira": ("jira.create_issue",), "pagerduty": ("pagerduty.create_incident",),
    "activepieces": ("activepieces.trigger_flow",), "aws": ("aws.", "document.parse"),
}
# Where a call goes: when an integration gives one, a step cannot send its credentials
# elsewhere.
DESTINATIONS = ("url", "webhook_url", "base_url", "events_url", "queue_url", "topic_arn", "bucket", "table_name",
                "function_name", "event_bus_name", "role_arn", "region")


class IntegrationMismatch(Exception):
    pass


def with_integration(integration: dict[str, Any], action: str, rendered: dict[str, Any]) -> dict[str, Any]:
    """A step's input with its integration's config: the config fills in what the step
    does not give, and its destinations always win. Only the actions of the
    integration's type may use it (a `core.echo` must not read a Slack URL back)."""
    kind = integration["integration_type"]
    if not any(action == allowed or (allowed.endswith(".") and action.startswith(allowed))
               for allowed in ACTIONS.get(kind, ())):
        raise IntegrationMismatch(f"a {kind} integration cannot configure {action} "
                                  f"(it can: {', '.join(ACTIONS.get(kind, ()))})")
    config = integration.get("config") or {}
    merged = {**config, **rendered}
    merged.update({key: config[key] for key in DESTINATIONS if key in config})
    return merged


def shown_input(merged: dict[str, Any], integration: dict[str, Any]) -> dict[str, Any]:
    """What a step record shows of an input its integration configured: the config's URLs
    without their paths (which may carry tokens); secret keys are masked later anyway."""
    config = integration.get("config") or {}
    return {k: (mask_url(v) if k in config and isinstance(v, str) and "://" in v else v) for k, v in merged.items()}
NAME_MAX = 200


class IntegrationNotFoundError(NotFoundError):
    def __init__(self, integration_id: str) -> None:
        super().__init__(f"no integration '{integration_id}'", [detail("id", integration_id)])


def _unmask(new: Any, old: Any) -> Any:
    """A masked value sent back (a GET body PUT again) stands for the stored one."""
    if new == MASK or (isinstance(old, str) and "://" in old and new == mask_url(old)):
        return old
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _unmask(v, old.get(k)) for k, v in new.items()}
    return new


class IntegrationService:
    def __init__(self, repository: Any) -> None:
        self.repository = repository

    @staticmethod
    def view(document: dict[str, Any]) -> dict[str, Any]:
        config = mask_secrets(document.get("config") or {})
        return dict(document, config={k: (mask_url(v) if isinstance(v, str) and "://" in v and v != MASK else v)
                                      for k, v in config.items()})

    def get(self, account_id: str, integration_id: str) -> dict[str, Any]:
        found = self.repository.get(account_id, integration_id) if is_id(integration_id, "int") else None
        if found is None:
            raise IntegrationNotFoundError(integration_id)
        return found

    def list(self, account_id: str, query: Any) -> list[dict[str, Any]]:
        items = self.repository.list(account_id)
        for name in ("workflow_id", "integration_type"):
            if query.get(name):
                items = [i for i in items if i.get(name) == query[name]]
        return sorted(items, key=lambda i: (i["created_at"], i["id"]))

    def _fields(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ValidationError.for_field("body", "must be a JSON object")
        unknown = sorted(set(body) - set(FIELDS) - {"id", "created_at", "updated_at", "status"})
        if unknown:
            raise ValidationError(f"unknown field: {unknown[0]}", [detail(k, "unknown field") for k in unknown])
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
            raise ValidationError.for_field("name", f"is required: a string of at most {NAME_MAX} characters")
        kind = body.get("integration_type")
        if kind not in INTEGRATION_TYPES:
            raise ValidationError.for_field("integration_type", "must be one of " + ", ".join(INTEGRATION_TYPES))
        config = body.get("config", {})
        if not isinstance(config, dict):
            raise ValidationError.for_field("config", "must be an object")
        missing = [key for key in REQUIRED_CONFIG[kind] if not config.get(key)]
        if missing:
            raise ValidationError(f"config.{missing[0]}: is required for a {kind} integration",
                                  [detail(f"config.{key}", f"is required for a {kind} integration") for key in missing])
        workflow_id = body.get("workflow_id")
        if workflow_id is not None and not isinstance(workflow_id, str):
            raise ValidationError.for_field("workflow_id", "must be a workflow id")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise ValidationError.for_field("description", "must be a string")
        return {"name": name, "integration_type": kind, "config": config, "workflow_id": workflow_id,
                "description": description}

    def create(self, account_id: str, body: Any) -> dict[str, Any]:
        fields = self._fields(body)
        now = now_iso()
        document = {"id": new_id("int"), **fields, "created_at": now, "updated_at": now}
        self.repository.put(account_id, document, new=True)
        return document

    def replace(self, account_id: str, integration_id: str, body: Any) -> dict[str, Any]:
        current = self.get(account_id, integration_id)
        merged = {**{k: current.get(k) for k in FIELDS}, **(body if isinstance(body, dict) else {})}
        if isinstance(body, dict) and isinstance(body.get("config"), dict):
            merged["config"] = _unmask(body["config"], current.get("config") or {})
        fields = self._fields(merged if isinstance(body, dict) else body)
        document = dict(current, **fields, updated_at=now_iso())
        if not self.repository.put(account_id, document, new=False):
            raise IntegrationNotFoundError(integration_id)
        return document

    def delete(self, account_id: str, integration_id: str) -> None:
        self.get(account_id, integration_id)
        self.repository.delete(account_id, integration_id)

    # -- use by workflows ----------------------------------------------------------------

    def resolver(self, account_id: str) -> "Resolver":
        return Resolver(self.repository.list(account_id))

    def require(self, account_id: str, workflow: dict[str, Any]) -> None:
        """409 INTEGRATION_MISSING when a required integration of the workflow is not there."""
        missing = self.resolver(account_id).missing(workflow)
        if missing:
            raise IntegrationMissingError(f"required integration '{missing[0]}' is not configured",
                                          [detail("integrations", f"'{ref}' is missing") for ref in missing])


class Resolver:
    """Finds an account's integration by id or by name (a workflow may name either)."""

    def __init__(self, integrations: Iterable[dict[str, Any]]) -> None:
        self.by_ref: dict[str, dict[str, Any]] = {}
        for integration in sorted(integrations, key=lambda i: i["created_at"]):
            self.by_ref.setdefault(integration["name"], integration)
            self.by_ref[integration["id"]] = integration

    def find(self, ref: str) -> dict[str, Any] | None:
        return self.by_ref.get(ref)

    def missing(self, workflow: dict[str, Any]) -> list[str]:
        return [i["id"] for i in workflow.get("integrations", []) if i.get("required") and self.find(i["id"]) is None]

    def statuses(self, workflow: dict[str, Any]) -> list[dict[str, Any]]:
        return [dict(i, status="connected" if self.find(i["id"]) else "missing")
                for i in workflow.get("integrations", [])]
