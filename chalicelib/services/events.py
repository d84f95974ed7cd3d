"""Events (SPEC §6.3): the registry of event types, and the router that matches an event
against the account's event triggers, whether it came from `POST /api/v1/events`, from the
Sluice bus, or from S3 (an object created under `documents/<account id>/`)."""

from __future__ import annotations

import posixpath
import re
from typing import Any, Mapping

from chalicelib.errors import ConflictError, ValidationError, detail
from chalicelib.ids import derived_id, is_id, new_id, now_iso
from chalicelib.logs import logger
from chalicelib.services.workflow_document import EVENT_TYPE
from chalicelib.triggers.filters import matches

DOCUMENTS_PREFIX = "documents/"
ACCOUNT_RESOURCE = re.compile(r"^sluice:account:(acc_[a-z2-7]+)$")
SOURCE_MAX = 256
MAX_CHAIN = 5  # lifecycle events of executions that lifecycle events started, and so on
DESCRIPTION_MAX = 1000


def _object(properties: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {k: {"type": v} for k, v in properties.items()}, **extra}


_DOCUMENT = {"document_id": "string", "bucket": "string", "key": "string", "file_name": "string",
             "file_type": "string", "size": "integer", "content_type": "string"}
_WORKFLOW = {"workflow_id": "string", "ref": "string", "name": "string", "revision": "integer"}
_EXECUTION = {"execution_id": "string", "workflow_id": "string", "status": "string", "triggered_by": "string"}
_SCHEDULE = {"schedule_id": "string", "workflow_id": "string", "name": "string"}

LIFECYCLE_EVENTS = (
    "workflow.created", "workflow.updated", "workflow.activated", "workflow.deactivated", "workflow.deleted",
    "workflow.executed", "execution.step_completed", "execution.completed", "execution.failed",
    "schedule.created", "schedule.updated", "schedule.deleted", "schedule.triggered",
)
# Lifecycle events about an execution, which must not start their own workflow again.
SELF_EVENTS = frozenset({"workflow.executed", "execution.step_completed", "execution.completed", "execution.failed"})

BUILT_IN_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "document.uploaded": ("A document was stored in the documents bucket", _object(_DOCUMENT)),
    "document.processed": ("A document was parsed", _object({**_DOCUMENT, "status": "string", "pages": "integer"})),
    "extraction.completed": ("Fields were extracted from a document",
                             _object({"document_id": "string", "fields": "object", "missing": "array"})),
    "chat.message": ("A chat message arrived", _object({"message": "string", "user": "string", "channel": "string"})),
    **{f"workflow.{what}": (f"A workflow was {what}", _object(_WORKFLOW))
       for what in ("created", "updated", "activated", "deactivated", "deleted", "executed")},
    "execution.step_completed": ("A step of an execution finished", _object({**_EXECUTION, "step": "string"})),
    "execution.completed": ("An execution succeeded", _object(_EXECUTION)),
    "execution.failed": ("An execution failed", _object({**_EXECUTION, "error": "object"})),
    **{f"schedule.{what}": (f"A schedule was {what}", _object(_SCHEDULE))
       for what in ("created", "updated", "deleted", "triggered")},
}


def envelope(event_type: str, data: Any, source: str, *, event_id: str | None = None,
             time: str | None = None) -> dict[str, Any]:
    return {"id": event_id or new_id("evt"), "type": event_type, "source": source, "time": time or now_iso(),
            "data": data}


class EventService:
    def __init__(self, starter: Any, event_types: Any, documents: Any = None) -> None:
        self.starter = starter
        self.event_types = event_types
        self.documents = documents  # services.documents.DocumentService: what S3 events are about

    # -- the registry --------------------------------------------------------------------

    def types(self, account_id: str) -> list[dict[str, Any]]:
        built_in = [{"name": name, "description": description, "schema": schema, "built_in": True}
                    for name, (description, schema) in BUILT_IN_TYPES.items()]
        custom = sorted(self.event_types.list(account_id), key=lambda t: t["name"])
        return built_in + [dict(t, built_in=False) for t in custom]

    def register(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        from chalicelib.schemas import schema_problems

        name = body.get("name")
        if not isinstance(name, str) or not EVENT_TYPE.match(name):
            raise ValidationError.for_field("name", "is required: dotted lowercase words such as invoice.paid")
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > DESCRIPTION_MAX):
            raise ValidationError.for_field("description", f"must be a string of at most {DESCRIPTION_MAX} characters")
        schema = body.get("schema", {"type": "object"})
        if not isinstance(schema, (dict, bool)):
            raise ValidationError.for_field("schema", "must be a JSON Schema object")
        problems = schema_problems(schema, "schema")
        if problems:
            raise ValidationError(f"{problems[0][0]}: {problems[0][1]}", [detail(f, m) for f, m in problems])
        if name in BUILT_IN_TYPES:
            raise ConflictError(f"'{name}' is a built-in event type", [detail("name", "is built in")])
        document = {"name": name, "description": description, "schema": schema, "created_at": now_iso()}
        if not self.event_types.put(account_id, document, new=True):
            raise ConflictError(f"the event type '{name}' exists already", [detail("name", "exists already")])
        return dict(document, built_in=False)

    def _schema(self, account_id: str, event_type: str) -> Any:
        if event_type in BUILT_IN_TYPES:
            return BUILT_IN_TYPES[event_type][1]
        custom = self.event_types.get(account_id, event_type)
        return custom["schema"] if custom else None

    # -- publishing and routing ----------------------------------------------------------

    def publish(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /api/v1/events`: checks the event (its data against its type's schema,
        when the type is registered) and routes it at once."""
        from chalicelib.schemas import value_problems

        event_type = body.get("type")
        if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type):
            raise ValidationError.for_field("type", "is required: an event type such as document.uploaded")
        data = body.get("data", {})
        if not isinstance(data, dict):
            raise ValidationError.for_field("data", "must be an object")
        source = body.get("source", "api")
        if not isinstance(source, str) or not source or len(source) > SOURCE_MAX:
            raise ValidationError.for_field("source", f"must be a non-empty string of at most {SOURCE_MAX} characters")
        schema = self._schema(account_id, event_type)
        if schema is not None:
            problems = value_problems(schema, data, "data")
            if problems:
                raise ValidationError(f"{problems[0]['field']}: {problems[0]['message']}", problems)
        event = envelope(event_type, data, source)
        matched, executions = self.route(account_id, event)
        return {"id": event["id"], "matched_triggers": matched, "execution_ids": executions}

    def route(self, account_id: str, event: dict[str, Any], depth: int = 0) -> tuple[list[str], list[str]]:
        """Starts every enabled event trigger of the account whose type and filters match.
        The execution id derives from (trigger, event id): a redelivered event starts
        nothing new. `depth` is how many triggered executions led to this event: past
        MAX_CHAIN nothing starts (two workflows triggered by each other's completion
        would otherwise go on forever)."""
        from chalicelib.store.models import TriggerModel, match_key

        matched, executions = [], []
        if depth >= MAX_CHAIN:
            logger.warning("event not routed: too long a chain of triggered executions",
                           extra={"event_id": event["id"], "event_type": event["type"], "depth": depth})
            return matched, executions
        key = match_key(account_id, {"type": "event", "event": event["type"]})
        for item in TriggerModel.by_match.query(key):
            spec = dict(item.spec)
            if not item.enabled:
                continue
            if event["type"] in SELF_EVENTS and item.workflow_id == (event["data"] or {}).get("workflow_id"):
                continue  # a workflow's own execution events never start it again (no loops)
            trigger = {"type": "event", "id": item.id, "data": event["data"]}
            context = {"context": {"event": event}, "event": event, "trigger": trigger}
            if not matches(spec.get("filters"), event["data"], context):
                continue
            execution_id = self.starter.try_start(account_id, item.workflow_id, item.id, spec, kind="event",
                                                  data=event["data"], names={"event": event}, firing=event["id"],
                                                  depth=depth + 1 if event["type"] in LIFECYCLE_EVENTS else 0)
            if execution_id:
                matched.append(item.id)
                executions.append(execution_id)
        logger.info("event routed", extra={"event_id": event["id"], "event_type": event["type"],
                                           "matched": len(matched)})
        return matched, executions

    def receive_aws(self, event: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """One EventBridge event: an S3 "Object Created" under `documents/` is a
        `document.uploaded` of the account its key names; anything else on the bus is an
        event of type detail-type with data detail, for the account named in its
        resources (`sluice:account:<id>`) or else the deployment's own account."""
        translated = from_eventbridge(event)
        if translated is None:
            logger.info("event ignored", extra={"source": event.get("source"), "detail_type": event.get("detail-type")})
            return [], []
        account_id, envelope_ = translated
        data = envelope_["data"]
        if envelope_["type"] == "document.uploaded" and self.documents is not None and data.get("document_id"):
            # An object of the documents API: its record knows more (file name, knowledge base).
            from chalicelib.services.documents import event_data

            record = self.documents.arrived(account_id, data["document_id"], data.get("size"))
            if record is not None:
                envelope_ = dict(envelope_, data=event_data(record))
        return self.route(account_id, envelope_)


def from_eventbridge(event: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    from chalicelib.services.accounts import bootstrap_account_id

    event_id = derived_id("evt", f"eventbridge:{event.get('id')}")
    detail_ = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    if event.get("source") == "aws.s3":
        key = (detail_.get("object") or {}).get("key", "")
        parts = key.split("/")
        if event.get("detail-type") != "Object Created" or not key.startswith(DOCUMENTS_PREFIX) or len(parts) < 3 \
                or not is_id(parts[1], "acc"):
            return None
        from chalicelib.services.documents import uploaded_event_id

        file_name = posixpath.basename(key)
        extension = posixpath.splitext(file_name)[1].lstrip(".").lower()
        bucket = (detail_.get("bucket") or {}).get("name")
        # documents/<account>/<document id>/<name>: the documents API's; else one derived from the key.
        document_id = parts[2] if len(parts) >= 4 and is_id(parts[2], "doc") else derived_id("doc", f"{bucket}/{key}")
        event_id = uploaded_event_id(bucket, key)
        data = {"document_id": document_id, "bucket": bucket, "key": key, "file_name": file_name, "file_type": extension or None,
                "size": (detail_.get("object") or {}).get("size"), "etag": (detail_.get("object") or {}).get("etag")}
        return parts[1], envelope("document.uploaded", data, "aws.s3", event_id=event_id, time=event.get("time"))
    event_type = event.get("detail-type")
    if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type):
        return None
    account_id = next((m.group(1) for m in map(ACCOUNT_RESOURCE.match, event.get("resources") or [])
                       if m and is_id(m.group(1), "acc")), None) or bootstrap_account_id()
    return account_id, envelope(event_type, detail_, str(event.get("source") or "eventbridge"),
                                event_id=event_id, time=event.get("time"))
