"""API traffic (SPEC §6.4): buckets, ingesting batches of traffic records (request and
error triggers fire per matching record; aggregates grow once per batch and minute), and
the threshold triggers the minute tick evaluates."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable

from pynamodb.exceptions import UpdateError

from chalicelib.errors import ConflictError, NotFoundError, PayloadTooLargeError, ValidationError, detail
from chalicelib.ids import epoch_iso, is_id, new_id, now_iso
from chalicelib.logs import logger
from chalicelib.triggers.traffic import (
    aggregate,
    breach,
    normalize_record,
    record_context,
    record_fires,
    window_metrics,
    window_minutes,
)

BATCH_MAX = 1000
NAME_MAX = 200
ENVIRONMENT_MAX = 100
BUCKET_FIELDS = ("name", "environment", "description")


class BucketNotFoundError(NotFoundError):
    def __init__(self, bucket_id: str) -> None:
        super().__init__(f"no bucket '{bucket_id}'", [detail("bucket_id", bucket_id)])


def _bucket_fields(body: Any, *, partial: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError.for_field("body", "must be a JSON object")
    unknown = sorted(set(body) - set(BUCKET_FIELDS) - {"id", "created_at", "updated_at"})
    if unknown:
        raise ValidationError(f"unknown field: {unknown[0]}", [detail(k, "unknown field") for k in unknown])
    fields = {k: body[k] for k in BUCKET_FIELDS if k in body}
    if not partial and "name" not in fields:
        raise ValidationError.for_field("name", "is required")
    limits = {"name": NAME_MAX, "environment": ENVIRONMENT_MAX, "description": 4000}
    for key, value in fields.items():
        nullable = key != "name"
        if value is None and nullable:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > limits[key]:
            raise ValidationError.for_field(key, f"must be a non-empty string of at most {limits[key]} characters")
    return fields


class BucketService:
    def __init__(self, buckets: Any, workflows: Any) -> None:
        self.buckets = buckets
        self.workflows = workflows

    def get(self, account_id: str, bucket_id: str) -> dict[str, Any]:
        bucket = self.buckets.get(account_id, bucket_id) if is_id(bucket_id, "bkt") else None
        if bucket is None:
            raise BucketNotFoundError(bucket_id)
        return bucket

    def list(self, account_id: str, query: Any) -> list[dict[str, Any]]:
        buckets = self.buckets.list(account_id)
        if query.get("environment"):
            buckets = [b for b in buckets if b.get("environment") == query["environment"]]
        return sorted(buckets, key=lambda b: (b["created_at"], b["id"]))

    def create(self, account_id: str, body: Any) -> dict[str, Any]:
        fields = _bucket_fields(body, partial=False)
        now = now_iso()
        bucket = {"id": new_id("bkt"), "name": fields["name"], "environment": fields.get("environment") or "production",
                  "description": fields.get("description"), "created_at": now, "updated_at": now}
        self.buckets.put(account_id, bucket, new=True)
        return bucket

    def update(self, account_id: str, bucket_id: str, body: Any) -> dict[str, Any]:
        bucket = self.get(account_id, bucket_id)
        fields = _bucket_fields(body, partial=True)
        if fields.get("environment", "") is None:
            fields["environment"] = "production"
        updated = dict(bucket, **fields, updated_at=now_iso())
        if not self.buckets.put(account_id, updated, new=False):
            raise BucketNotFoundError(bucket_id)
        return updated

    def workflows_of(self, account_id: str, bucket_id: str) -> list[dict[str, Any]]:
        self.get(account_id, bucket_id)
        return self.workflows.list(account_id, {"bucket": bucket_id})

    def delete(self, account_id: str, bucket_id: str) -> None:
        """A bucket that triggers still watch cannot go: remove or change them first."""
        users = self.workflows_of(account_id, bucket_id)
        if users:
            raise ConflictError(
                f"bucket '{bucket_id}' is watched by {len(users)} workflow(s): change their triggers first",
                [detail("workflows", w["id"]) for w in users])
        self.buckets.delete(account_id, bucket_id)


class TrafficIngest:
    def __init__(self, buckets: BucketService, traffic: Any, starter: Any, payloads: Any, steps: Any,
                 clock: Callable[[], float] = time.time) -> None:
        self.buckets = buckets
        self.traffic = traffic
        self.starter = starter
        self.payloads = payloads  # records too large for a queue message
        self.steps = steps  # the step queue: the step worker starts what a batch fires
        self.clock = clock

    def ingest(self, account_id: str, bucket_id: str, body: Any) -> dict[str, Any]:
        bucket = self.buckets.get(account_id, bucket_id)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            raise ValidationError.for_field("records", "is required: a non-empty list of traffic records")
        if len(records) > BATCH_MAX:
            raise PayloadTooLargeError(f"the batch has {len(records)} records; the limit is {BATCH_MAX:,} per batch",
                                       [detail("records", f"at most {BATCH_MAX} records")])
        now = self.clock()
        accepted, rejected = [], []
        for index, raw in enumerate(records):
            record, problems = normalize_record(raw, now)
            if record is None:
                rejected.append({"index": index, "details": problems})
            else:
                accepted.append((index, record))
        if not accepted:
            return {"accepted": 0, "rejected": rejected, "execution_ids": []}
        self.traffic.add(account_id, bucket_id, aggregate(record for _, record in accepted))
        batch = hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()[:32]
        executions = self._fire(account_id, bucket, accepted, batch)
        return {"accepted": len(accepted), "rejected": rejected, "execution_ids": executions}

    def _fire(self, account_id: str, bucket: dict[str, Any], records: list[tuple[int, dict[str, Any]]],
              batch: str) -> list[str]:
        """Request and error triggers, matched in memory against every record; each
        firing goes to the step worker, so a batch of a thousand errors answers at once.
        The answer lists the ids the executions will have: they derive from (trigger,
        batch, record index), so the same batch sent again starts nothing new."""
        from chalicelib.services.triggering import NotStartable
        from chalicelib.store.models import TriggerModel, match_key

        key = match_key(account_id, {"type": "request", "bucket_id": bucket["id"]})
        triggers = []
        for item in TriggerModel.by_match.query(key):
            if item.type not in ("request", "error") or not item.enabled:
                continue
            try:
                self.starter.workflow(account_id, item.workflow_id, item.spec)  # read once per batch
            except NotStartable:
                continue
            triggers.append(item)
        executions, messages = [], []
        for index, record in records:
            fired = [item for item in triggers if record_fires(item.spec, record)]
            if not fired:
                continue
            data = {k: v for k, v in record.items() if k != "at"}
            inline, ref = self.payloads.pack(f"traffic/{account_id}/{bucket['id']}/{batch}/{index}.json", data)
            firing = f"{batch}:{index}"
            for item in fired:
                messages.append(({"k": "fire", "a": account_id, "b": bucket["id"], "t": item.id, "f": firing,
                                  "r": inline, "ref": ref}, 0))
                executions.append(self.starter.execution_id(item.id, firing))
        self.steps.send(messages)
        return executions

    def fire(self, message: dict[str, Any]) -> str | None:
        """One firing of a request or error trigger (the step worker)."""
        from pynamodb.exceptions import DoesNotExist

        from chalicelib.store.models import TriggerModel

        account_id = message["a"]
        try:
            item = TriggerModel.get(message["t"])
            bucket = self.buckets.get(account_id, message["b"])
        except (DoesNotExist, NotFoundError):
            return None  # the trigger or its bucket is gone since
        if item.type not in ("request", "error") or not item.enabled:
            return None
        data = self.payloads.load(message["r"], message["ref"])
        names = {**record_context(data), **self.starter.bucket_names(account_id, bucket["id"], bucket)}
        # A storage error propagates: the message comes back, and the derived execution id
        # keeps a second delivery from starting twice.
        return self.starter.start_or_skip(account_id, item.workflow_id, item.id, dict(item.spec), kind=item.type,
                                          data=data, names=names, firing=message["f"])


class ThresholdEvaluator:
    """Evaluated by the tick, once a minute per threshold trigger (the trigger's due time
    in the sparse due index is its next evaluation). Fires on entering breach; while the
    cooldown since the last firing lasts (default: the condition's window) a breach is
    not announced, and it is announced when the cooldown ends if it still holds."""

    def __init__(self, traffic: Any, starter: Any) -> None:
        self.traffic = traffic
        self.starter = starter

    def evaluate(self, item: Any, now: float) -> str | None:
        from chalicelib.store.models import TriggerModel, due_shard

        scheduled = int(item.fire_at)
        spec = dict(item.spec)
        state = dict(item.state or {})
        bucket_id = spec["bucket_id"]
        minute = int(now // 60)
        # A window of N minutes is the N whole minutes before this one; the current
        # minute counts from the next evaluation on, once it is complete.
        metric = breach(spec["conditions"], lambda window: window_metrics(
            self.traffic.window(item.account_id, bucket_id, minute - window, minute - 1)))
        execution_id = None
        if metric is None:
            state["announced"] = False
        elif not state.get("announced"):
            cooldown = 60 * (window_minutes(spec.get("cooldown") or metric["time_window"]) or 5)
            last = state.get("last_fired_at")
            if last is None or now - last >= cooldown:
                data = {"metric": metric, "bucket_id": bucket_id, "evaluated_at": epoch_iso(now)}
                names = {"metric": metric, **self.starter.bucket_names(item.account_id, bucket_id)}
                execution_id = self.starter.try_start(item.account_id, item.workflow_id, item.id, spec,
                                                      kind="threshold", data=data, names=names, firing=str(scheduled))
                # A firing that could not start (a disabled workflow, say) is tried again
                # at the next evaluation while the breach lasts.
                if execution_id:
                    state["announced"] = True
                    state["last_fired_at"] = now
        state["last_value"] = metric["value"] if metric else None
        state["evaluated_at"] = epoch_iso(now)
        try:
            item.update(actions=[TriggerModel.state.set(state), TriggerModel.fire_at.set((minute + 1) * 60),
                                 TriggerModel.due_shard.set(due_shard(item.id))],
                        condition=TriggerModel.fire_at == scheduled)
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            logger.info("threshold evaluated by another tick", extra={"trigger_id": item.id})
        return execution_id
