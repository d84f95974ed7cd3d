"""Schedule triggers at run time (SPEC §6.1): their next fire time, kept in a sparse,
sharded index, and firing from the minute tick, exactly once per fire time."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from pynamodb.exceptions import UpdateError

from chalicelib.ids import epoch_iso
from chalicelib.logs import logger
from chalicelib.services.triggering import TriggerStarter
from chalicelib.store.models import DUE_SHARDS, TriggerModel, due_shard
from chalicelib.triggers.schedules import TIMING_FIELDS, ScheduleError, compile_schedule

ACTIVE = ("queued", "running", "waiting")


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def next_fire(trigger: dict[str, Any], *, after: float, created: float) -> int | None:
    """The next fire time (epoch seconds) strictly after `after`, or None."""
    try:
        schedule = compile_schedule(trigger, now=_utc(after), created_at=_utc(created), check_past=False)
    except ScheduleError:
        return None
    moment = schedule.next_fire(_utc(after))
    return int(moment.timestamp()) if moment else None


def fire_times(document: dict[str, Any], previous: dict[str, Any] | None, now: float) -> dict[str, int | None]:
    """For each schedule or threshold trigger whose timing or enabled state changed (or is
    new): when the tick should next look at it (a schedule's next fire time, a threshold's
    next evaluation), None when it cannot fire (disabled trigger or workflow). Unchanged
    triggers are absent: their stored time stands."""
    before = {t["id"]: t for t in (previous or {}).get("triggers", [])}
    was_enabled = bool((previous or {}).get("enabled"))
    out = {}
    for trigger in document.get("triggers", []):
        kind = trigger.get("type")
        if kind not in ("schedule", "threshold"):
            continue
        old = before.get(trigger["id"])
        timing = TIMING_FIELDS if kind == "schedule" else ("bucket_id",)
        unchanged = (old is not None and was_enabled == bool(document["enabled"])
                     and old.get("enabled") == trigger.get("enabled")
                     and all(old.get(k) == trigger.get(k) for k in timing))
        if unchanged:
            continue
        if not (trigger.get("enabled", True) and document["enabled"]):
            out[trigger["id"]] = None
        elif kind == "schedule":
            out[trigger["id"]] = next_fire(trigger, after=now, created=now)
        else:
            out[trigger["id"]] = int(now)  # evaluated from the next tick on
    return out


class ScheduleFirer:
    """What the tick does for the triggers due in the sparse due index: schedules fire,
    threshold triggers are evaluated."""

    def __init__(self, runtime: Any, starter: TriggerStarter, thresholds: Any,
                 clock: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.starter = starter
        self.thresholds = thresholds
        self.clock = clock

    def due(self, now: float) -> Iterator[TriggerModel]:
        for shard in range(DUE_SHARDS):
            yield from TriggerModel.due.query(str(shard), TriggerModel.fire_at <= int(now), limit=100)

    def fire_due(self, until: float) -> int:
        fired = 0
        now = self.clock()
        for item in list(self.due(now)):
            if time.monotonic() > until:
                break
            try:
                if item.type == "threshold":
                    fired += bool(self.thresholds.evaluate(item, now))
                else:
                    fired += bool(self.fire(item, now))
            except Exception:
                logger.exception("trigger failed to fire", extra={"trigger_id": item.id})
        return fired

    def fire(self, item: TriggerModel, now: float) -> str | None:
        """Starts the execution of this fire time, then moves the fire time on. The
        execution's id derives from (trigger, fire time) and is created conditionally, so
        two ticks, or a tick that died half-way and its successor, start it once; a
        schedule missed through an outage fires once, then at its next time from now."""
        scheduled = int(item.fire_at)
        spec = dict(item.spec)
        created = datetime.fromisoformat(item.created_at.replace("Z", "+00:00")).timestamp()
        following = next_fire(spec, after=max(now, scheduled), created=created)
        execution_id = self._start(item, spec, scheduled, now)
        if following:
            actions = [TriggerModel.fire_at.set(following), TriggerModel.due_shard.set(due_shard(item.id))]
        else:
            actions = [TriggerModel.fire_at.remove(), TriggerModel.due_shard.remove()]
        if execution_id:
            actions.append(TriggerModel.last_execution.set(
                {"execution_id": execution_id, "status": "queued", "started_at": epoch_iso(now), "completed_at": None}))
        try:
            item.update(actions=actions, condition=TriggerModel.fire_at == scheduled)
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            return None  # another tick moved it on
        if execution_id:
            self.runtime.emit(item.account_id, "schedule.triggered", {
                "schedule_id": item.id, "workflow_id": item.workflow_id, "name": spec.get("name"),
                "execution_id": execution_id, "scheduled_time": epoch_iso(scheduled)})
        return execution_id

    def _start(self, item: TriggerModel, spec: dict, scheduled: int, now: float) -> str | None:
        if spec.get("overlap_policy") == "skip" and item.last_execution:
            last = self.runtime.executions.get(item.account_id, item.last_execution["execution_id"])
            if last is not None and last.status in ACTIVE:
                logger.info("schedule skipped: the previous run is still going", extra={"trigger_id": item.id})
                return None
        data = {"schedule_id": item.id, "name": spec.get("name"), "scheduled_time": epoch_iso(scheduled),
                "fired_at": epoch_iso(now)}
        names = self.starter.bucket_names(item.account_id, spec.get("bucket_id"))
        # A storage error propagates: the fire time stays, and the next tick tries again.
        return self.starter.start_or_skip(item.account_id, item.workflow_id, item.id, spec, kind="schedule",
                                          data=data, names=names, firing=str(scheduled))
