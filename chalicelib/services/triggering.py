"""Starting an execution from a trigger (SPEC §6): the checks every kind of trigger shares,
its `parameters` rendered from the trigger data, and an execution id derived from what
fired, so that a repeated delivery of the same firing starts nothing new."""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib.engine.templating import TemplateError, render_value
from chalicelib.errors import ParameterValidationError, PayloadTooLargeError, SluiceError, ValidationError, detail
from chalicelib.ids import derived_id
from chalicelib.logs import logger


PARAMETERS_LIMIT = 256 * 1024  # SPEC §1, as for a manual run


class NotStartable(Exception):
    """The trigger cannot fire now: it, or its workflow, is disabled or gone."""


class TriggerStarter:
    def __init__(self, runtime: Any, buckets: Any) -> None:
        self.runtime = runtime
        self.buckets = buckets

    def bucket_names(self, account_id: str, bucket_id: str | None,
                     bucket: dict[str, Any] | None = None) -> dict[str, Any]:
        """The template names of a trigger that watches a bucket: `bucket` and its
        `environment` (SPEC §6.4); none for a trigger without one."""
        if not bucket_id:
            return {}
        bucket = bucket or self.buckets.get(account_id, bucket_id) or {"id": bucket_id, "name": None}
        return {"bucket": {"id": bucket["id"], "sid": bucket["id"], "name": bucket.get("name")},
                "environment": {"name": bucket.get("environment")}}

    def workflow(self, account_id: str, workflow_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        record = self.runtime.workflows.get(account_id, workflow_id)
        if record is None:
            raise NotStartable(f"workflow {workflow_id} no longer exists")
        if not record.document["enabled"]:
            raise NotStartable(f"workflow '{record.document['ref']}' is disabled")
        if not spec.get("enabled", True):
            raise NotStartable("the trigger is disabled")
        return record.document

    def parameters(self, workflow: dict[str, Any], spec: dict[str, Any], trigger: dict[str, Any]) -> dict[str, Any]:
        """The trigger's `parameters` rendered against its data (default: the data itself),
        checked against the workflow's param_schema."""
        data = trigger["data"]
        template = spec.get("parameters")
        if template is None:
            parameters = data if isinstance(data, dict) else {"data": data}
        else:
            names = {k: v for k, v in trigger.items() if k not in ("type", "id", "data")}
            context = {**(data if isinstance(data, dict) else {}), **names,
                       "trigger": {"type": trigger["type"], "id": trigger["id"], "data": data},
                       "context": {"event": trigger.get("event")}}
            try:
                parameters = render_value(template, context)
            except TemplateError as error:
                raise ValidationError(f"the trigger's parameters did not render: {error.message}",
                                      [detail("parameters", error.message)]) from None
            if not isinstance(parameters, dict):
                raise ValidationError.for_field("parameters", "the trigger's parameters must render to an object")
        size = len(json.dumps(parameters, separators=(",", ":"), ensure_ascii=False, default=str).encode())
        if size > PARAMETERS_LIMIT:
            raise PayloadTooLargeError(f"the execution's parameters would be {size} bytes; the limit is 256 KB")
        schema = workflow.get("param_schema")
        if schema is not None:
            from chalicelib.schemas import value_problems

            problems = value_problems(schema, parameters, "parameters")
            if problems:
                raise ParameterValidationError(f"{problems[0]['field']}: {problems[0]['message']}", problems)
        return parameters

    @staticmethod
    def execution_id(trigger_id: str, firing: str) -> str:
        """The id of the execution one firing of a trigger starts, known before it does."""
        return derived_id("ex", f"{trigger_id}:{firing}")

    def start(self, account_id: str, workflow_id: str, trigger_id: str, spec: dict[str, Any], *,
              kind: str, data: Any, names: dict[str, Any] | None = None, firing: str,
              workflow: dict[str, Any] | None = None, depth: int = 0) -> str:
        """Starts the workflow for one firing of a trigger and returns the execution id.
        `firing` identifies the firing (a fire time, an event id, a record): the same
        firing always yields the same execution. `names` are the extra template names
        the trigger gives (event, request, metric, bucket...). `workflow`, when the caller
        has checked it already (`self.workflow`), saves reading it again."""
        workflow = workflow or self.workflow(account_id, workflow_id, spec)
        trigger = {"type": kind, "id": trigger_id, "data": data, **(names or {})}
        parameters = self.parameters(workflow, spec, trigger)
        execution_id = self.execution_id(trigger_id, firing)
        try:
            self.runtime.start(account_id, workflow, parameters, triggered_by=kind, trigger_id=trigger_id,
                               trigger=trigger, execution_id=execution_id, depth=depth)
        except PutError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            logger.info("trigger firing seen before", extra={"trigger_id": trigger_id, "execution_id": execution_id})
        return execution_id

    def start_or_skip(self, account_id: str, workflow_id: str, trigger_id: str, spec: dict[str, Any], **kwargs: Any
                      ) -> str | None:
        """`start` for a firing nobody waits on: one that cannot start (a disabled trigger
        or workflow, bad parameters) is logged and skipped. A storage error propagates,
        so that the caller's delivery (a queue message, a tick) is tried again."""
        try:
            return self.start(account_id, workflow_id, trigger_id, spec, **kwargs)
        except NotStartable as reason:
            logger.info("trigger not fired", extra={"trigger_id": trigger_id, "reason": str(reason)})
        except SluiceError as error:
            logger.warning("trigger not fired: bad parameters", extra={"trigger_id": trigger_id, "error": error.message})
        return None

    def try_start(self, account_id: str, workflow_id: str, trigger_id: str, spec: dict[str, Any], **kwargs: Any
                  ) -> str | None:
        """`start_or_skip` where nothing could try again: one trigger's failure must not stop
        the others of the same firing (an event's, say), so nothing is raised."""
        try:
            return self.start_or_skip(account_id, workflow_id, trigger_id, spec, **kwargs)
        except Exception:
            logger.exception("trigger failed to fire", extra={"trigger_id": trigger_id})
            return None
