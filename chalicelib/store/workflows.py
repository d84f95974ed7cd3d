"""The workflows repository: current documents, immutable revisions, unique refs, the
account's catalog and the trigger items, always written together in one transaction."""

from __future__ import annotations

import functools
import json
import time
import zlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterator

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.config import get_settings
from chalicelib.errors import ConflictError
from chalicelib.store.models import (
    TriggerModel,
    WorkflowCatalogModel,
    WorkflowModel,
    WorkflowRefModel,
    WorkflowRevisionModel,
    WorkflowStatsModel,
    due_shard,
    match_key,
)

CATALOG_MAX_BYTES = 350_000  # below DynamoDB's 400 KB item limit, with room for keys


class StaleRevisionError(ConflictError):
    def __init__(self, expected: int | None, current: int | None = None) -> None:
        message = f"revision {expected} is stale"
        if current is not None:
            message += f"; the current revision is {current}"
        super().__init__(message + ": read the workflow again and retry")
        self.expected = expected


class RefTakenError(ConflictError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"a workflow with ref '{ref}' already exists", [{"field": "ref", "message": "already exists"}])
        self.ref = ref


class _CatalogConflict(Exception):
    """Another write changed the catalog between our read and our write: retry."""


@dataclass
class WorkflowRecord:
    """A stored workflow: its document (with id, revision and stats filled in)."""

    account_id: str
    document: dict[str, Any]
    # The secrets of inbound-webhook triggers this write created: shown once, in its answer.
    issued_secrets: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.document["id"]

    @property
    def ref(self) -> str:
        return self.document["ref"]

    @property
    def revision(self) -> int:
        return self.document["revision"]


def _wf_key(workflow_id: str) -> str:
    return f"wf#{workflow_id}"


def _rev_prefix(workflow_id: str) -> str:
    return f"rev#{workflow_id}#"


def _rev_key(workflow_id: str, revision: int) -> str:
    return f"{_rev_prefix(workflow_id)}{revision:010d}"


def _ref_key(ref: str) -> str:
    return f"ref#{ref}"


@functools.lru_cache(maxsize=1)
def _connection() -> Connection:
    # TransactWrite needs an explicit connection; host=None lets botocore honour
    # AWS_ENDPOINT_URL(_DYNAMODB), which is how the local runtime points it at moto.
    return Connection(region=get_settings().region)


def _stats_key(workflow_id: str) -> str:
    return f"stats#{workflow_id}"


def _stats(item: WorkflowStatsModel | None) -> dict[str, Any]:
    if item is None:
        return {"runs_total": 0, "runs_succeeded": 0, "runs_failed": 0, "average_duration_ms": 0, "last_run_at": None}
    # Cancelled and timed-out runs count in runs_total, not in the average duration.
    finished = int(item.runs_succeeded) + int(item.runs_failed)
    return {
        "runs_total": int(item.runs_total),
        "runs_succeeded": int(item.runs_succeeded),
        "runs_failed": int(item.runs_failed),
        "average_duration_ms": round(int(item.duration_total_ms) / finished) if finished else 0,
        "last_run_at": item.last_run_at,
    }


def _record(item: WorkflowModel, stats: WorkflowStatsModel | None) -> WorkflowRecord:
    document = dict(item.document)
    document["id"] = item.id
    document["revision"] = int(item.revision)
    document["stats"] = _stats(stats)
    return WorkflowRecord(account_id=item.account_id, document=document)


def _stored_document(document: dict[str, Any]) -> dict[str, Any]:
    """What the item's `document` holds: everything but the fields kept as attributes."""
    return {k: v for k, v in document.items() if k not in ("id", "revision", "stats")}


class Catalog:
    """The account's workflow summaries, keyed by workflow id."""

    def __init__(self, account_id: str, entries: dict[str, dict], version: int | None) -> None:
        self.account_id = account_id
        self.entries = entries
        self.version = version

    def to_item(self) -> WorkflowCatalogModel:
        blob = zlib.compress(json.dumps(self.entries, separators=(",", ":")).encode(), 6)
        if len(blob) > CATALOG_MAX_BYTES:
            raise ConflictError("the account has reached the limit of workflows it can hold; delete some first")
        item = WorkflowCatalogModel(self.account_id, "catalog", entries=blob)
        if self.version is not None:
            item.catalog_version = self.version  # the write is conditional on it
        return item


class WorkflowRepository:
    def get(self, account_id: str, workflow_id: str) -> WorkflowRecord | None:
        try:
            item = WorkflowModel.get(account_id, _wf_key(workflow_id), consistent_read=True)
        except DoesNotExist:
            return None
        try:
            stats = WorkflowStatsModel.get(account_id, _stats_key(workflow_id), consistent_read=True)
        except DoesNotExist:
            stats = None
        return _record(item, stats)

    def get_by_ref(self, account_id: str, ref: str) -> WorkflowRecord | None:
        try:
            claim = WorkflowRefModel.get(account_id, _ref_key(ref), consistent_read=True)
        except DoesNotExist:
            return None
        return self.get(account_id, claim.workflow_id)

    def ref_taken(self, account_id: str, ref: str) -> bool:
        try:
            WorkflowRefModel.get(account_id, _ref_key(ref), consistent_read=True, attributes_to_get=["sk"])
            return True
        except DoesNotExist:
            return False

    def catalog(self, account_id: str) -> Catalog:
        try:
            item = WorkflowCatalogModel.get(account_id, "catalog", consistent_read=True)
        except DoesNotExist:
            return Catalog(account_id, {}, None)
        return Catalog(account_id, json.loads(zlib.decompress(item.entries)), int(item.catalog_version))

    def save(
        self,
        account_id: str,
        document: dict[str, Any],
        summary: dict[str, Any],
        *,
        previous: WorkflowRecord | None,
        expected_revision: int | None,
        fire_times: dict[str, int | None] | None = None,
        secrets: dict[str, str] | None = None,
    ) -> WorkflowRecord:
        """Stores `document` as the next revision (the first when `previous` is None).
        `expected_revision` is the revision the change was computed from; a newer stored
        revision raises StaleRevisionError. `fire_times` are the new due times of triggers
        (None: not due), `secrets` those of new inbound-webhook triggers."""
        for attempt in range(8):
            catalog = self.catalog(account_id)
            catalog.entries[document["id"]] = summary
            try:
                self._write(account_id, document, catalog, previous, expected_revision, fire_times or {}, secrets or {})
                break
            except _CatalogConflict:
                time.sleep(0.01 * (attempt + 1))
        else:
            raise ConflictError("the workflow could not be saved because of concurrent changes; retry")
        stored = self.get(account_id, document["id"])
        assert stored is not None
        return stored

    def _write(self, account_id, document, catalog, previous, expected_revision, fire_times, secrets) -> None:
        workflow_id = document["id"]
        new_revision = 1 if previous is None else expected_revision + 1
        stored_doc = _stored_document(document)
        steps: list[str] = []  # what each transaction item is, to explain a cancellation
        with _transaction(steps, document, expected_revision) as tx:
            if previous is None:
                item = WorkflowModel(account_id, _wf_key(workflow_id), id=workflow_id, ref=document["ref"], document=stored_doc)
                tx.save(item)
            else:
                item = WorkflowModel(account_id, _wf_key(workflow_id))
                item.revision = expected_revision
                tx.update(item, actions=[WorkflowModel.document.set(stored_doc), WorkflowModel.ref.set(document["ref"])],
                          condition=WorkflowModel.id.exists())
            steps.append("workflow")
            revision_doc = dict(document, revision=new_revision)
            revision_doc.pop("stats", None)
            tx.save(
                WorkflowRevisionModel(account_id, _rev_key(workflow_id, new_revision), workflow_id=workflow_id,
                                      revision=new_revision, document=revision_doc, created_at=document["updated_at"]),
                condition=WorkflowRevisionModel.sk.does_not_exist(),
            )
            steps.append("revision")
            if previous is None or previous.ref != document["ref"]:
                tx.save(WorkflowRefModel(account_id, _ref_key(document["ref"]), workflow_id=workflow_id),
                        condition=WorkflowRefModel.sk.does_not_exist())
                steps.append("ref")
                if previous is not None:
                    tx.delete(WorkflowRefModel(account_id, _ref_key(previous.ref)))
                    steps.append("old_ref")
            tx.save(catalog.to_item())
            steps.append("catalog")
            self._write_triggers(tx, steps, account_id, document, previous, fire_times, secrets)

    @staticmethod
    def _fire_actions(trigger_id: str, fire_at: int | None) -> list:
        if fire_at is None:
            return [TriggerModel.fire_at.remove(), TriggerModel.due_shard.remove()]
        return [TriggerModel.fire_at.set(fire_at), TriggerModel.due_shard.set(due_shard(trigger_id))]

    def _write_triggers(self, tx, steps, account_id, document, previous, fire_times, secrets) -> None:
        now = document["updated_at"]
        old = {t["id"]: t for t in (previous.document.get("triggers", []) if previous else [])}
        for trigger in document.get("triggers", []):
            spec = {k: v for k, v in trigger.items() if k not in ("id",)}
            timing = self._fire_actions(trigger["id"], fire_times[trigger["id"]]) if trigger["id"] in fire_times else []
            key = match_key(account_id, trigger)
            if trigger["id"] in old:
                if old[trigger["id"]] != trigger or timing:
                    tx.update(TriggerModel(trigger["id"]), actions=[
                        TriggerModel.spec.set(spec), TriggerModel.type.set(trigger["type"]),
                        TriggerModel.enabled.set(1 if trigger["enabled"] else 0), TriggerModel.updated_at.set(now),
                        TriggerModel.match_key.set(key) if key else TriggerModel.match_key.remove(),
                    ] + timing + ([TriggerModel.secret.set(secrets[trigger["id"]])] if trigger["id"] in secrets else []))
                    steps.append("trigger")
            else:
                fire_at = fire_times.get(trigger["id"])
                item = TriggerModel(trigger["id"], account_id=account_id, workflow_id=document["id"],
                                    type=trigger["type"], enabled=1 if trigger["enabled"] else 0, spec=spec,
                                    created_at=now, updated_at=now, match_key=key, secret=secrets.get(trigger["id"]))
                if fire_at is not None:
                    item.fire_at, item.due_shard = fire_at, due_shard(trigger["id"])
                tx.save(item, condition=TriggerModel.id.does_not_exist())
                steps.append("trigger")
        kept = {t["id"] for t in document.get("triggers", [])}
        for trigger_id in old.keys() - kept:
            tx.delete(TriggerModel(trigger_id))
            steps.append("trigger")

    def delete(self, record: WorkflowRecord, retention_days: int) -> None:
        """Removes the workflow, its ref, its catalog entry and its triggers at once; its
        revisions expire with the executions that may still point at them."""
        account_id = record.account_id
        for attempt in range(8):
            catalog = self.catalog(account_id)
            catalog.entries.pop(record.id, None)
            steps: list[str] = []
            try:
                with _transaction(steps, record.document, record.revision) as tx:
                    item = WorkflowModel(account_id, _wf_key(record.id))
                    item.revision = record.revision
                    tx.delete(item)
                    steps.append("workflow")
                    tx.delete(WorkflowRefModel(account_id, _ref_key(record.ref)))
                    steps.append("old_ref")
                    tx.delete(WorkflowStatsModel(account_id, _stats_key(record.id)))
                    steps.append("stats")
                    tx.save(catalog.to_item())
                    steps.append("catalog")
                    for trigger in record.document.get("triggers", []):
                        tx.delete(TriggerModel(trigger["id"]))
                        steps.append("trigger")
                break
            except _CatalogConflict:
                time.sleep(0.01 * (attempt + 1))
        else:
            raise ConflictError("the workflow could not be deleted because of concurrent changes; retry")
        expires_at = timedelta(days=retention_days)  # from now
        for revision in self._revision_items(account_id, record.id, attributes=["account_id", "sk"]):
            revision.update(actions=[WorkflowRevisionModel.expires_at.set(expires_at)])

    def record_run(self, account_id: str, workflow_id: str, *, succeeded: bool, failed: bool,
                   duration_ms: int | None, finished_at: str) -> None:
        """Counts an ended run, atomically, in the workflow's small stats item; only runs
        that succeeded or failed add to the duration behind the average."""
        S = WorkflowStatsModel
        actions = [S.runs_total.add(1), S.last_run_at.set(finished_at)]
        if (succeeded or failed) and duration_ms is not None:
            actions.append(S.duration_total_ms.add(duration_ms))
        if succeeded:
            actions.append(S.runs_succeeded.add(1))
        if failed:
            actions.append(S.runs_failed.add(1))
        try:
            S(account_id, _stats_key(workflow_id)).update(actions=actions)
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise

    def _revision_items(self, account_id: str, workflow_id: str, attributes=None) -> Iterator[WorkflowRevisionModel]:
        return WorkflowRevisionModel.query(
            account_id, WorkflowRevisionModel.sk.startswith(_rev_prefix(workflow_id)),
            consistent_read=True, attributes_to_get=attributes,
        )

    def revisions(self, account_id: str, workflow_id: str) -> list[dict[str, Any]]:
        """Every revision's document, oldest first."""
        return [item.document for item in self._revision_items(account_id, workflow_id)]

    def revision(self, account_id: str, workflow_id: str, revision: int) -> dict[str, Any] | None:
        try:
            item = WorkflowRevisionModel.get(account_id, _rev_key(workflow_id, revision), consistent_read=True)
        except DoesNotExist:
            return None
        # A deleted workflow's revisions stay readable until their TTL removes them: the
        # executions pinned to them are still inspected, cancelled and finished.
        return item.document


class _transaction:
    """A TransactWrite whose cancellation is turned into the project's errors, using
    `steps` (what each item of the transaction is) to tell which condition failed."""

    def __init__(self, steps: list[str], document: dict[str, Any], expected_revision: int | None) -> None:
        self._steps = steps
        self._document = document
        self._expected = expected_revision
        self._tx = TransactWrite(connection=_connection())

    def __enter__(self) -> TransactWrite:
        return self._tx.__enter__()

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self._tx.__exit__(exc_type, exc, tb)
        except TransactWriteError as error:
            self._raise_for(error)
        return False

    def _raise_for(self, error: TransactWriteError) -> None:
        reasons = error.cancellation_reasons or []
        for step, reason in zip(self._steps, reasons):
            if reason is None:
                continue
            if reason.code == "TransactionConflict" or step == "catalog":
                raise _CatalogConflict() from error
            if reason.code != "ConditionalCheckFailed":
                continue
            if step == "workflow":
                raise StaleRevisionError(self._expected) from error
            if step == "ref":
                raise RefTakenError(self._document["ref"]) from error
        if error.cause_response_code in ("TransactionConflictException", "ThrottlingException"):
            raise _CatalogConflict() from error
        raise error
