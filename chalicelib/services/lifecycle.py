"""The lifecycle events of SPEC §8, emitted where they happen: to the account's event
triggers (§6.3) and, through the deliveries queue, to its webhook subscriptions. Emitting
never fails or slows the change that caused it beyond one queue send: the account's
subscriptions and whether it has triggers for a type are cached for a few seconds per
worker, so a step costs nothing more when nobody listens."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from chalicelib.logs import logger
from chalicelib.services.events import envelope

CACHE_SECONDS = 10.0


class _TtlCache:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._values: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._values.get(key)
            if hit and hit[0] > self.clock():
                return hit[1]
        value = load()
        with self._lock:
            if len(self._values) > 10_000:
                self._values.clear()
            self._values[key] = (self.clock() + self.seconds, value)
        return value


def _workflow_data(document: dict[str, Any]) -> dict[str, Any]:
    return {"workflow_id": document["id"], "ref": document.get("ref"), "name": document.get("name"),
            "revision": document.get("revision"), "enabled": document.get("enabled")}


def _schedules(document: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in (document or {}).get("triggers", []) if t.get("type") == "schedule"}


class Lifecycle:
    def __init__(self, webhooks: Any, queue: Callable[[], Any], steps: Callable[[], Any], router: Callable[[], Any],
                 cache_seconds: float = CACHE_SECONDS) -> None:
        self.webhooks = webhooks  # store.webhooks.WebhookRepository
        self._queue = queue  # the deliveries queue, resolved on first use
        self._steps = steps  # the step queue: event triggers are matched by the step worker
        self._router = router  # services.events.EventService, resolved on first use
        self._subscriptions = _TtlCache(cache_seconds)
        self._triggers = _TtlCache(cache_seconds)

    def emit(self, account_id: str, event_type: str, data: dict[str, Any], event_id: str | None = None, *,
             fresh: bool = False, depth: int = 0) -> None:
        """`event_id` for an event that may also arrive another way (a document: the API and
        S3 both say so); `fresh` to match triggers now, in this request, rather than trust
        the cache and leave the matching to the step worker; `depth`, how many triggered
        executions led here (a chain of them stops at services.events.MAX_CHAIN)."""
        try:
            self._emit(account_id, event_type, data, event_id, fresh, depth)
        except Exception:
            logger.exception("lifecycle event not emitted", extra={"event_type": event_type})

    def _emit(self, account_id: str, event_type: str, data: dict[str, Any], event_id: str | None,
              fresh: bool, depth: int) -> None:
        from chalicelib.store.models import TriggerModel, match_key

        event = envelope(event_type, data, "sluice", event_id=event_id)
        subscriptions = self._subscriptions.get(account_id, lambda: [doc for doc, _ in self.webhooks.list(account_id)])
        messages = [({"kind": "webhook", "a": account_id, "w": doc["id"], "event": event, "attempt": 1}, 0)
                    for doc in subscriptions
                    if doc.get("enabled", True) and (event_type in doc["events"] or "*" in doc["events"])]
        if messages:
            self._queue().send(messages)
        key = match_key(account_id, {"type": "event", "event": event_type})
        if fresh:
            self._router().route(account_id, event, depth=depth)
        elif self._triggers.get(key, lambda: next(iter(TriggerModel.by_match.query(key, limit=1)), None) is not None):
            self._steps().send([({"k": "event", "a": account_id, "ev": event, "d": depth}, 0)])

    # -- what the workflow writes emit ---------------------------------------------------

    def workflow_changed(self, account_id: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        """workflow.created / .updated / .activated / .deactivated / .deleted, and the
        schedule.created / .updated / .deleted that the change made."""
        if before is None and after is not None:
            self.emit(account_id, "workflow.created", _workflow_data(after))
        elif after is None and before is not None:
            self.emit(account_id, "workflow.deleted", _workflow_data(before))
        elif before is not None and after is not None:
            toggled = before.get("enabled") != after.get("enabled")
            others = any(before.get(k) != after.get(k) for k in after
                         if k not in ("enabled", "revision", "updated_at", "updated_by", "activated_at",
                                      "deactivated_at", "stats", "status"))
            if others or not toggled:
                self.emit(account_id, "workflow.updated", _workflow_data(after))
            if toggled:
                self.emit(account_id, "workflow.activated" if after["enabled"] else "workflow.deactivated",
                          _workflow_data(after))
        old, new = _schedules(before), _schedules(after)
        workflow_id = (after or before or {}).get("id")
        for schedule_id in new.keys() - old.keys():
            self.emit(account_id, "schedule.created", self._schedule_data(schedule_id, new[schedule_id], workflow_id))
        for schedule_id in old.keys() & new.keys():
            if old[schedule_id] != new[schedule_id]:
                self.emit(account_id, "schedule.updated", self._schedule_data(schedule_id, new[schedule_id], workflow_id))
        for schedule_id in old.keys() - new.keys():
            self.emit(account_id, "schedule.deleted", self._schedule_data(schedule_id, old[schedule_id], workflow_id))

    @staticmethod
    def _schedule_data(schedule_id: str, trigger: dict[str, Any], workflow_id: str | None) -> dict[str, Any]:
        return {"schedule_id": schedule_id, "workflow_id": workflow_id, "name": trigger.get("name"),
                "enabled": trigger.get("enabled", True)}
