"""The workflow document (SPEC §2): accepted input, defaults, write-time checks, summaries."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from chalicelib.actions.registry import REGISTRY
from chalicelib.engine.definition import normalize_definition, validate_definition
from chalicelib.errors import (
    InvalidScheduleError,
    InvalidWorkflowConfigError,
    PayloadTooLargeError,
    ValidationError,
    detail,
)
from chalicelib.ids import new_id

WORKFLOW_TYPES = (
    "custom", "notification", "approval", "integration", "data_processing",
    "document_processing", "feedback_analysis", "reporting", "incident_response",
)
TRIGGER_TYPES = ("schedule", "webhook", "event", "request", "error", "threshold")
MAX_TRIGGERS = 50
DOCUMENT_LIMIT = 256 * 1024
NAME_MAX = 200
DESCRIPTION_MAX = 4000
TAG_MAX = 100
MAX_TAGS = 50
RETENTION_DAYS_DEFAULT = 30
RETENTION_DAYS_MAX = 3650

PACK = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
REF = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}\.[a-z0-9_][a-z0-9_.-]{0,199}$")
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)

# Fields a client may send; server-assigned ones are accepted (a GET's body can be PUT
# back) and ignored.
WRITABLE_FIELDS = (
    "ref", "pack", "name", "description", "version", "type", "tags", "enabled",
    "param_schema", "out_schema", "definition", "triggers", "integrations",
    "configuration", "metadata", "retention_days",
)
READ_ONLY_FIELDS = frozenset({
    "id", "revision", "status", "stats", "created_at", "updated_at", "activated_at",
    "deactivated_at", "created_by", "updated_by",
})
INPUT_ALIASES = {"label": "name", "pack_ref": "pack"}


def slugify(name: str) -> str:
    """Lowercase, runs of anything but [a-z0-9] become `_`."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return slug[:150] or "workflow"


def canonical_input(body: Any) -> dict[str, Any]:
    """The writable fields of a request body under their canonical names. `status`
    (`active` / `inactive`) is accepted as another way to say `enabled`."""
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object", [detail("body", "must be a JSON object")])
    fields: dict[str, Any] = {}
    unknown = []
    for key, value in body.items():
        canonical = INPUT_ALIASES.get(key, key)
        if canonical in WRITABLE_FIELDS:
            if canonical != key and canonical in body:
                continue
            fields[canonical] = value
        elif key not in READ_ONLY_FIELDS:
            unknown.append(key)
    if unknown:
        raise ValidationError(
            "unknown fields: " + ", ".join(sorted(unknown)),
            [detail(key, "unknown field") for key in sorted(unknown)],
        )
    status = body.get("status")
    if status is not None and "enabled" not in fields:
        if status not in ("active", "inactive"):
            raise ValidationError.for_field("status", "must be 'active' or 'inactive'")
        fields["enabled"] = status == "active"
    return fields


def build_document(
    fields: dict[str, Any],
    *,
    existing_triggers: Mapping[str, dict[str, Any]] | None = None,
    action_exists: Callable[[str], bool] = REGISTRY.__contains__,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A complete, checked workflow document from canonical input fields, with defaults.
    Raises ValidationError for missing or ill-typed fields and InvalidWorkflowConfigError
    for a well-formed document that is wrong (definition, schemas, triggers)."""
    errors: list[dict[str, str]] = []
    doc: dict[str, Any] = {}

    name = fields.get("name")
    if name is None:
        errors.append(detail("name", "is required"))
    elif not isinstance(name, str) or not name.strip():
        errors.append(detail("name", "must be a non-empty string"))
    elif len(name) > NAME_MAX:
        errors.append(detail("name", f"must be at most {NAME_MAX} characters"))
    else:
        doc["name"] = name

    description = fields.get("description")
    if description is not None and not isinstance(description, str):
        errors.append(detail("description", "must be a string"))
    elif description is not None and len(description) > DESCRIPTION_MAX:
        errors.append(detail("description", f"must be at most {DESCRIPTION_MAX} characters"))
    doc["description"] = description if isinstance(description, str) else None

    doc["pack"], doc["ref"] = _pack_and_ref(fields, doc.get("name"), errors)

    version = fields.get("version", "1.0.0")
    if not isinstance(version, str) or not SEMVER.match(version):
        errors.append(detail("version", "must be a semantic version such as 1.0.0"))
    doc["version"] = version

    wf_type = fields.get("type", "custom")
    if wf_type not in WORKFLOW_TYPES:
        errors.append(detail("type", "must be one of " + ", ".join(WORKFLOW_TYPES)))
    doc["type"] = wf_type

    doc["tags"] = _tags(fields.get("tags", []), errors)

    enabled = fields.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.append(detail("enabled", "must be a boolean"))
    doc["enabled"] = enabled

    for key in ("configuration", "metadata"):
        value = fields.get(key, {})
        if value is None:
            value = {}
        if not isinstance(value, dict):
            errors.append(detail(key, "must be an object"))
        doc[key] = value

    retention = fields.get("retention_days", RETENTION_DAYS_DEFAULT)
    if not isinstance(retention, int) or isinstance(retention, bool) or not 1 <= retention <= RETENTION_DAYS_MAX:
        errors.append(detail("retention_days", f"must be an integer from 1 to {RETENTION_DAYS_MAX}"))
    doc["retention_days"] = retention

    doc["integrations"] = _integrations(fields.get("integrations", []), errors)

    for key in ("param_schema", "out_schema"):
        value = fields.get(key)
        if value is not None and not isinstance(value, (dict, bool)):
            errors.append(detail(key, "must be a JSON Schema object"))
        doc[key] = value

    definition = fields.get("definition")
    if definition is None:
        definition = {"steps": []}
    doc["definition"] = normalize_definition(definition)

    triggers = fields.get("triggers", [])
    if triggers is None:
        triggers = []
    if not isinstance(triggers, list):
        errors.append(detail("triggers", "must be a list"))
        triggers = []
    elif len(triggers) > MAX_TRIGGERS:
        errors.append(detail("triggers", f"at most {MAX_TRIGGERS} triggers are allowed"))
        triggers = []

    if errors:
        raise ValidationError(_summary(errors), errors)

    problems = validate_definition(doc["definition"], action_exists)
    problems += _schema_problems(doc)
    schedule_problems: list[tuple[str, str]] = []
    existing = existing_triggers or {}
    moment = now or datetime.now(timezone.utc)
    doc["triggers"] = [
        _trigger(trigger, f"triggers[{i}]", existing, problems, schedule_problems, moment)
        for i, trigger in enumerate(triggers)
    ]
    if problems:
        config_errors = [detail(field, message) for field, message in problems + schedule_problems]
        raise InvalidWorkflowConfigError(_summary(config_errors), config_errors)
    if schedule_problems:
        errors = [detail(field, message) for field, message in schedule_problems]
        raise InvalidScheduleError(_summary(errors), errors)
    size = len(json.dumps(doc, separators=(",", ":"), default=str).encode())
    if size > DOCUMENT_LIMIT:
        # A PATCH can grow a document past the limit that its request body kept to.
        raise PayloadTooLargeError(f"the workflow document would be {size} bytes; the limit is 256 KB")
    return doc


def _summary(errors: list[dict[str, str]]) -> str:
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first['field']}: {first['message']}{more}"


def _pack_and_ref(fields: dict[str, Any], name: str | None, errors: list) -> tuple[str, str]:
    pack = fields.get("pack")
    ref = fields.get("ref")
    if pack is not None and (not isinstance(pack, str) or not PACK.match(pack)):
        errors.append(detail("pack", "must match [a-z0-9][a-z0-9_-]* (at most 100 characters)"))
        pack = None
    if ref is not None:
        if not isinstance(ref, str) or not REF.match(ref):
            errors.append(detail("ref", "must be '<pack>.<name>' in lowercase letters, digits, '_', '-' and '.'"))
            return pack or "default", ""
        ref_pack = ref.split(".", 1)[0]
        if pack is not None and pack != ref_pack:
            errors.append(detail("ref", f"must start with the pack '{pack}.'"))
        return pack or ref_pack, ref
    pack = pack or "default"
    return pack, f"{pack}.{slugify(name)}" if name else ""


def _tags(tags: Any, errors: list) -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= TAG_MAX for t in tags):
        errors.append(detail("tags", f"must be a list of non-empty strings of at most {TAG_MAX} characters"))
        return []
    if len(tags) > MAX_TAGS:
        errors.append(detail("tags", f"at most {MAX_TAGS} tags are allowed"))
    return list(dict.fromkeys(tags))


def _integrations(integrations: Any, errors: list) -> list[dict[str, Any]]:
    if integrations is None:
        return []
    if not isinstance(integrations, list):
        errors.append(detail("integrations", "must be a list of {id, required}"))
        return []
    out = []
    for i, item in enumerate(integrations):
        path = f"integrations[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            errors.append(detail(f"{path}.id", "is required and must be a string"))
            continue
        required = item.get("required", False)
        if not isinstance(required, bool):
            errors.append(detail(f"{path}.required", "must be a boolean"))
        out.append({"id": item["id"], "required": required})
    return out


def _schema_problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    from chalicelib.schemas import schema_problems

    return [problem for key in ("param_schema", "out_schema") if doc.get(key) is not None
            for problem in schema_problems(doc[key], key)]


def _trigger(trigger: Any, path: str, existing: Mapping[str, dict[str, Any]], problems: list,
             schedule_problems: list, now: datetime) -> dict[str, Any]:
    if not isinstance(trigger, dict):
        problems.append((path, "must be an object"))
        return {}
    # Read-only fields shown on triggers (a GET body can be PUT back) are not stored.
    trigger = {k: v for k, v in trigger.items() if k not in TRIGGER_READ_ONLY}
    trigger_type = trigger.get("type")
    if trigger_type not in TRIGGER_TYPES:
        problems.append((f"{path}.type", "must be one of " + ", ".join(TRIGGER_TYPES)))
    enabled = trigger.setdefault("enabled", True)
    if not isinstance(enabled, bool):
        problems.append((f"{path}.enabled", "must be a boolean"))
    if "parameters" in trigger and not isinstance(trigger["parameters"], (dict, str)):
        problems.append((f"{path}.parameters", "must be an object (or a template)"))
    # Ids are server-assigned: a known id keeps the trigger's identity, anything else
    # (a copied document, say) gets a new one.
    if trigger.get("id") not in existing:
        trigger["id"] = new_id("trg")
    if trigger_type == "schedule":
        from chalicelib.triggers.schedules import TIMING_FIELDS, ScheduleError, compile_schedule

        before = existing.get(trigger["id"])
        changed = before is None or any(before.get(k) != trigger.get(k) for k in TIMING_FIELDS)
        try:
            compile_schedule(trigger, now=now, check_past=changed)
        except ScheduleError as error:
            schedule_problems.append((f"{path}.{error.field}", error.message))
    elif trigger_type == "event":
        problems += _event_trigger_problems(trigger, path)
    elif trigger_type in ("request", "error", "threshold"):
        from chalicelib.triggers.traffic import trigger_problems

        problems += trigger_problems(trigger, path)
    return trigger


EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
TRIGGER_READ_ONLY = ("next_execution", "last_execution", "url", "secret")


def _event_trigger_problems(trigger: dict[str, Any], path: str) -> list[tuple[str, str]]:
    from chalicelib.triggers.filters import filter_problems

    if "event_type" in trigger and "event" not in trigger:
        trigger["event"] = trigger.pop("event_type")
    problems = []
    if not isinstance(trigger.get("event"), str) or not EVENT_TYPE.match(trigger["event"]):
        problems.append((f"{path}.event", "is required: an event type such as document.uploaded"))
    if trigger.get("filters") is not None:
        problems += filter_problems(trigger["filters"], f"{path}.filters")
    return problems


def status_of(doc: dict[str, Any]) -> str:
    return "active" if doc.get("enabled") else "inactive"


SUMMARY_FIELDS = (
    "id", "ref", "pack", "name", "description", "version", "revision", "type", "tags",
    "enabled", "status", "metadata", "created_at", "updated_at", "activated_at", "created_by",
)


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """The list view of a workflow, plus `buckets` (the API-traffic buckets its triggers
    watch) for the `bucket` filter."""
    summary = {key: doc.get(key) for key in SUMMARY_FIELDS}
    summary["status"] = status_of(doc)
    summary["buckets"] = sorted({
        t["bucket_id"] for t in doc.get("triggers", []) if isinstance(t.get("bucket_id"), str)
    })
    return summary
