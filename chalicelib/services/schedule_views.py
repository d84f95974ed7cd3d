"""The schedule endpoints (SPEC §6.1): views over the schedule triggers of workflow
documents. A change made here is a change of the workflow (a new revision), so the
document and these views never disagree."""

from __future__ import annotations

from typing import Any, Mapping

from chalicelib.errors import ScheduleNotFoundError, ValidationError
from chalicelib.services.workflows import WorkflowService, merge_patch
from pynamodb.exceptions import DoesNotExist

from chalicelib.store.models import TriggerModel

SCHEDULE_FIELDS = ("name", "description", "schedule_type", "cron_expression", "interval_value", "interval_unit",
                   "execution_time", "timezone", "start_at", "end_at", "overlap_policy", "enabled", "parameters")
READ_ONLY = ("id", "workflow_id", "workflow_name", "next_execution", "last_execution", "created_at", "updated_at",
             "created_by", "type")


def _fields(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError.for_field("body", "must be a JSON object")
    unknown = sorted(k for k in body if k not in SCHEDULE_FIELDS and k not in READ_ONLY)
    if unknown:
        raise ValidationError("unknown fields: " + ", ".join(unknown),
                              [{"field": k, "message": "unknown field"} for k in unknown])
    if "overlap_policy" in body and body["overlap_policy"] not in ("allow", "skip"):
        raise ValidationError.for_field("overlap_policy", "must be allow or skip")
    return {k: v for k, v in body.items() if k in SCHEDULE_FIELDS}


class ScheduleViews:
    def __init__(self, workflows: WorkflowService) -> None:
        self.workflows = workflows

    def view(self, workflow: dict[str, Any], trigger: dict[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        from chalicelib.triggers.schedules import ScheduleError, schedule_type

        try:
            kind = schedule_type(trigger)
        except ScheduleError:
            kind = None
        view = {"id": trigger["id"], "workflow_id": workflow["id"], "workflow_name": workflow["name"],
                "schedule_type": kind, "timezone": trigger.get("timezone") or "UTC",
                "overlap_policy": trigger.get("overlap_policy", "allow"), "enabled": trigger.get("enabled", True),
                "created_at": workflow.get("created_at"), "updated_at": workflow.get("updated_at"),
                "created_by": workflow.get("created_by")}
        for field in SCHEDULE_FIELDS:
            view.setdefault(field, trigger.get(field))
        if view["cron_expression"] is None and trigger.get("schedule"):
            view["cron_expression"] = trigger["schedule"]
        view.update(state.get(trigger["id"], {"next_execution": None, "last_execution": None}))
        return view

    def _schedules(self, record) -> list[dict[str, Any]]:
        return [t for t in record.document.get("triggers", []) if t.get("type") == "schedule"]

    def list_for(self, account_id: str, id_or_ref: str) -> list[dict[str, Any]]:
        record = self.workflows.get(account_id, id_or_ref)
        state = self.workflows.schedule_state(account_id, record.id)
        return [self.view(record.document, t, state) for t in self._schedules(record)]

    def list_all(self, account_id: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """The account's schedules from the triggers index (a query, not a scan)."""
        enabled = query.get("enabled")
        if enabled not in (None, "", "true", "false"):
            raise ValidationError.for_field("enabled", "must be true or false")
        workflow_id = query.get("workflow_id") or None
        if workflow_id:
            ids = [self.workflows.get(account_id, workflow_id).id]
        else:
            ids = sorted({item.workflow_id for item in TriggerModel.by_account.query(account_id)
                          if item.type == "schedule"})
        views = []
        for wid in ids:
            views += self.list_for(account_id, wid)
        if enabled:
            views = [v for v in views if bool(v["enabled"]) is (enabled == "true")]
        return views

    def _owner(self, account_id: str, schedule_id: str):
        try:
            item = TriggerModel.get(schedule_id, consistent_read=True)
        except DoesNotExist:
            item = None
        if item is None or item.account_id != account_id or item.type != "schedule":
            raise ScheduleNotFoundError(f"schedule '{schedule_id}' not found")
        return self.workflows.get(account_id, item.workflow_id)

    def get(self, account_id: str, schedule_id: str) -> dict[str, Any]:
        record = self._owner(account_id, schedule_id)
        return next(v for v in self.list_for(account_id, record.id) if v["id"] == schedule_id)

    def create(self, account_id: str, id_or_ref: str, body: Any, by: str) -> dict[str, Any]:
        fields = dict(_fields(body), type="schedule")
        record = self.workflows.get(account_id, id_or_ref)
        before = {t["id"] for t in record.document.get("triggers", [])}
        triggers = [*record.document.get("triggers", []), fields]
        updated = self.workflows.patch(account_id, record.id, {"triggers": triggers}, None, updated_by=by)
        new_id = next(t["id"] for t in updated.document["triggers"] if t["id"] not in before)
        return self.get(account_id, new_id)

    def update(self, account_id: str, schedule_id: str, body: Any, by: str) -> dict[str, Any]:
        """PUT and PATCH both merge the given fields (SPEC §6.1)."""
        changes = _fields(body)
        record = self._owner(account_id, schedule_id)
        triggers = [merge_patch(t, changes) if t["id"] == schedule_id else t for t in record.document["triggers"]]
        self.workflows.patch(account_id, record.id, {"triggers": triggers}, None, updated_by=by)
        return self.get(account_id, schedule_id)

    def delete(self, account_id: str, schedule_id: str, by: str) -> dict[str, Any]:
        record = self._owner(account_id, schedule_id)
        triggers = [t for t in record.document["triggers"] if t["id"] != schedule_id]
        self.workflows.patch(account_id, record.id, {"triggers": triggers}, None, updated_by=by)
        return {"id": schedule_id, "deleted": True}

    # The one-schedule form: /workflows/{id}/schedule is the workflow's first schedule.
    def first(self, account_id: str, id_or_ref: str) -> dict[str, Any]:
        schedules = self.list_for(account_id, id_or_ref)
        if not schedules:
            raise ScheduleNotFoundError(f"workflow '{id_or_ref}' has no schedule")
        return schedules[0]

    def upsert_first(self, account_id: str, id_or_ref: str, body: Any, by: str, *, create: bool) -> tuple[int, dict]:
        schedules = self.list_for(account_id, id_or_ref)
        if schedules:
            return 200, self.update(account_id, schedules[0]["id"], body, by)
        if not create:
            raise ScheduleNotFoundError(f"workflow '{id_or_ref}' has no schedule")
        return 201, self.create(account_id, id_or_ref, body, by)
