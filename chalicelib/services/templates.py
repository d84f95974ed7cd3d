"""Workflow templates (SPEC §8): the built-in ones, the ones an account saves from its
workflows, and workflows made from either (the template's document with `overrides`
deep-merged: objects merge, lists replace)."""

from __future__ import annotations

import copy
from typing import Any, Mapping

from chalicelib.errors import NotFoundError, ValidationError, detail
from chalicelib.ids import is_id, new_id, now_iso
from chalicelib.services.workflows import merge_patch
from chalicelib.templates import CATEGORIES, built_in

TRAFFIC_TRIGGERS = ("request", "error", "threshold")
# What a saved template keeps of a workflow: the document a user writes, not its identity.
TEMPLATE_FIELDS = ("type", "tags", "param_schema", "out_schema", "definition", "triggers", "integrations",
                   "configuration", "metadata", "retention_days", "version")


class TemplateNotFoundError(NotFoundError):
    def __init__(self, template_id: str) -> None:
        super().__init__(f"no template '{template_id}'", [detail("template_id", template_id)])


def _text(body: Mapping[str, Any], name: str, *, required: bool, limit: int) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValidationError.for_field(name, f"{'is required: ' if required else 'must be '}a string of at most "
                                              f"{limit} characters")
    return value


class TemplateService:
    def __init__(self, repository: Any, workflows: Any) -> None:
        self.repository = repository
        self.workflows = workflows
        self._built_in = {t["id"]: t for t in built_in()}

    def list(self, account_id: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
        category = query.get("category")
        if category and category not in CATEGORIES:
            raise ValidationError.for_field("category", "must be one of " + ", ".join(CATEGORIES))
        saved = sorted(self.repository.list(account_id), key=lambda t: (t["created_at"], t["id"]))
        return [t for t in [*self._built_in.values(), *saved] if not category or t["category"] == category]

    def get(self, account_id: str, template_id: str) -> dict[str, Any]:
        found = self._built_in.get(template_id)
        if found is None and is_id(template_id, "tpl"):
            found = self.repository.get(account_id, template_id)
        if found is None:
            raise TemplateNotFoundError(template_id)
        return found

    def save(self, account_id: str, body: Any, created_by: str) -> dict[str, Any]:
        """`POST /templates`: the named workflow's document as a new template."""
        if not isinstance(body, dict):
            raise ValidationError.for_field("body", "must be a JSON object")
        name = _text(body, "name", required=True, limit=200)
        description = _text(body, "description", required=False, limit=4000)
        category = body.get("category", "general")
        if category not in CATEGORIES:
            raise ValidationError.for_field("category", "must be one of " + ", ".join(CATEGORIES))
        if not isinstance(body.get("workflow_id"), str):
            raise ValidationError.for_field("workflow_id", "is required: the workflow to save as a template")
        document = self.workflows.get(account_id, body["workflow_id"]).document
        workflow = {k: copy.deepcopy(document[k]) for k in TEMPLATE_FIELDS if document.get(k) is not None}
        # A template's triggers are new ones in every workflow made from it.
        workflow["triggers"] = [{k: v for k, v in t.items() if k != "id"} for t in workflow.get("triggers", [])]
        template = {"id": new_id("tpl"), "name": name, "description": description, "category": category,
                    "built_in": False, "integrations": [i["id"] for i in workflow.get("integrations", [])],
                    "workflow": dict(workflow, name=name, description=description),
                    "source_workflow_id": document["id"], "created_at": now_iso(), "created_by": created_by}
        self.repository.put(account_id, template, new=True)
        return template

    def instantiate(self, account_id: str, body: Any, created_by: str):
        """`POST /workflows/from-template`: a new workflow from the template's document,
        `overrides` deep-merged onto it. `bucket_id` gives the template's traffic triggers
        their bucket (and enables them)."""
        if not isinstance(body, dict):
            raise ValidationError.for_field("body", "must be a JSON object")
        if not isinstance(body.get("template_id"), str):
            raise ValidationError.for_field("template_id", "is required")
        template = self.get(account_id, body["template_id"])
        overrides = body.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise ValidationError.for_field("overrides", "must be an object (a partial workflow document)")
        document = merge_patch(copy.deepcopy(template["workflow"]), overrides)
        for key in ("name", "description"):
            if body.get(key) is not None:
                document[key] = _text(body, key, required=False, limit=200 if key == "name" else 4000)
        bucket_id = body.get("bucket_id")
        if bucket_id is not None:
            if not isinstance(bucket_id, str):
                raise ValidationError.for_field("bucket_id", "must be a bucket id")
            for trigger in document.get("triggers", []):
                if trigger.get("type") in TRAFFIC_TRIGGERS and not trigger.get("bucket_id"):
                    trigger.update(bucket_id=bucket_id, enabled=True)
        document["metadata"] = dict(document.get("metadata") or {}, template_id=template["id"])
        return self.workflows.create(account_id, document, created_by=created_by)
