"""The executions repository: execution items, step runs with their claims (leases), the
due index the tick reads, and cursor-paged lists."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError
from pynamodb.expressions.condition import Condition

from chalicelib.errors import ValidationError
from chalicelib.paging import decode_cursor, encode_cursor
from chalicelib.store.models import DUE_SHARDS, ExecutionModel, StepRunModel, due_shard  # noqa: F401 (re-exported)

TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")


def execution_key(account_id: str, execution_id: str) -> str:
    return f"{account_id}#{execution_id}"


def _condition_failed(error: UpdateError) -> bool:
    return error.cause_response_code == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Page:
    items: list[ExecutionModel]
    next_cursor: str | None


class ExecutionRepository:
    # -- executions ------------------------------------------------------------------

    def create(self, item: ExecutionModel) -> None:
        try:
            item.save(condition=ExecutionModel.id.does_not_exist())
        except PutError as error:
            # A retry after a lost response finds the write it made itself.
            stored = self.get(item.account_id, item.id) if _condition_failed(error) else None
            if stored is None or stored.started_key != item.started_key:
                raise

    def get(self, account_id: str, execution_id: str) -> ExecutionModel | None:
        try:
            return ExecutionModel.get(account_id, execution_id, consistent_read=True)
        except DoesNotExist:
            return None

    @staticmethod
    def update_if(item: ExecutionModel | StepRunModel, actions: list, condition: Condition | None) -> bool:
        """Applies `actions` to the item when `condition` holds; False when it does not."""
        try:
            item.update(actions=actions, condition=condition)
            return True
        except UpdateError as error:
            if _condition_failed(error):
                return False
            raise

    def set_status(self, item: ExecutionModel, status: str, *, only_from: tuple[str, ...]) -> bool:
        return self.update_if(item, [ExecutionModel.status.set(status)], ExecutionModel.status.is_in(*only_from))

    def set_due(self, item: ExecutionModel, due_at: float | None) -> None:
        """Where the tick will find the execution again (None: nowhere)."""
        if due_at is None:
            actions = [ExecutionModel.due_at.remove(), ExecutionModel.due_shard.remove()]
        else:
            actions = [ExecutionModel.due_at.set(int(due_at)), ExecutionModel.due_shard.set(due_shard(item.id))]
        item.update(actions=actions)
        item.due_at = int(due_at) if due_at is not None else None

    def finish(self, item: ExecutionModel, *, status: str, completed_at: str, duration_ms: int,
               result: Any, result_ref: str | None, error: dict | None, retention_days: int) -> bool:
        """Records the end of the execution, once: False if it had already ended."""
        actions = [
            ExecutionModel.status.set(status), ExecutionModel.completed_at.set(completed_at),
            ExecutionModel.duration_ms.set(duration_ms), ExecutionModel.error.set(error),
            ExecutionModel.due_at.remove(), ExecutionModel.due_shard.remove(),
            ExecutionModel.expires_at.set(timedelta(days=retention_days)),
        ]
        actions.append(ExecutionModel.result.set(result) if result is not None else ExecutionModel.result.remove())
        actions.append(ExecutionModel.result_ref.set(result_ref) if result_ref else ExecutionModel.result_ref.remove())
        return self.update_if(item, actions, ~ExecutionModel.status.is_in(*TERMINAL))

    def due(self, now: float, limit_per_shard: int = 100) -> Iterator[tuple[str, str]]:
        """(account_id, execution_id) of every execution due at `now`, shard by shard: the
        reads grow with the number due, not the number stored."""
        for shard in range(DUE_SHARDS):
            for item in ExecutionModel.due.query(str(shard), ExecutionModel.due_at <= int(now), limit=limit_per_shard):
                yield item.account_id, item.id

    def page(self, account_id: str, *, workflow_id: str | None, status: str | None, triggered_by: str | None,
             start: str | None, end: str | None, limit: int, cursor: str | None) -> Page:
        """Newest first, filtered, `limit` at most: keys from a query on an index (never a
        scan), then the items by key. The cursor is the index key of the last item given."""
        if workflow_id:
            index, hash_name, hash_key = ExecutionModel.by_workflow, "workflow_key", f"{account_id}#{workflow_id}"
        else:
            index, hash_name, hash_key = ExecutionModel.by_started, "account_id", account_id
        range_condition = None
        if start and end:
            range_condition = ExecutionModel.started_key.between(start, end + "~")
        elif start:
            range_condition = ExecutionModel.started_key >= start
        elif end:
            range_condition = ExecutionModel.started_key <= end + "~"
        items: list[ExecutionModel] = []
        last_key = decode_cursor(cursor)
        if last_key is not None:
            expected = {"account_id", "id", "started_key"} | ({"workflow_key"} if hash_name == "workflow_key" else set())
            shaped = set(last_key) == expected and all(
                isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in last_key.values())
            if not shaped or last_key["account_id"]["S"] != account_id or (
                    hash_name == "workflow_key" and last_key["workflow_key"]["S"] != hash_key):
                raise ValidationError.for_field("cursor", "is not a cursor this API returned for this list")
        for _ in range(20):  # filters can thin out pages: read on, but never without bound
            keys = index.query(hash_key, range_condition, scan_index_forward=False, limit=min(100, limit * 2),
                               last_evaluated_key=last_key)
            batch = [(k.account_id, k.id, k.started_key) for k in keys]
            found = {(i.account_id, i.id): i for i in ExecutionModel.batch_get([(a, e) for a, e, _ in batch], consistent_read=True)}
            for account, execution_id, started_key in batch:
                item = found.get((account, execution_id))
                last_key = {"account_id": {"S": account}, "id": {"S": execution_id},
                            "started_key": {"S": started_key}}
                if hash_name == "workflow_key":
                    last_key["workflow_key"] = {"S": hash_key}
                if item is None or (status and item.status != status) or (triggered_by and item.triggered_by != triggered_by):
                    continue
                items.append(item)
                if len(items) == limit:
                    return Page(items, encode_cursor(last_key))
            if keys.last_evaluated_key is None:
                return Page(items, None)
            last_key = keys.last_evaluated_key
        return Page(items, encode_cursor(last_key))

    def of_workflow(self, account_id: str, workflow_id: str, cursor: dict | None, limit: int):
        """(execution ids, next cursor): a page of one workflow's executions, by index."""
        keys = ExecutionModel.by_workflow.query(f"{account_id}#{workflow_id}", limit=limit, last_evaluated_key=cursor)
        ids = [k.id for k in keys]
        return ids, keys.last_evaluated_key

    def delete_history(self, account_id: str, execution_id: str) -> None:
        """Removes an execution and its step runs."""
        with StepRunModel.batch_write() as batch:
            for step in StepRunModel.query(execution_key(account_id, execution_id), attributes_to_get=["execution_key", "name"]):
                batch.delete(step)
        ExecutionModel(account_id, execution_id).delete()

    # -- step runs -------------------------------------------------------------------

    def steps(self, account_id: str, execution_id: str) -> list[StepRunModel]:
        return list(StepRunModel.query(execution_key(account_id, execution_id), consistent_read=True))

    def step(self, account_id: str, execution_id: str, name: str) -> StepRunModel | None:
        try:
            return StepRunModel.get(execution_key(account_id, execution_id), name, consistent_read=True)
        except DoesNotExist:
            return None

    def claim(self, account_id: str, execution_id: str, name: str, *, attempt: int, token: str,
              lease_until: float, now: float, action: str, started_at: str) -> bool:
        """Takes attempt `attempt` of a step for one worker, once. It may start when the step
        never ran (attempt 1), waits for this attempt (a retry, a re-run, an approval), or
        its previous holder's lease expired (the worker died)."""
        item = StepRunModel(execution_key(account_id, execution_id), name)
        S = StepRunModel
        condition = (
            (S.status.is_in("pending", "retrying") & (S.attempt == attempt - 1))
            | ((S.status == "scheduled") & (S.attempt == attempt))
            | ((S.status == "running") & (S.attempt == attempt) & (S.lease_until < now))
        )
        if attempt == 1:
            condition = S.execution_key.does_not_exist() | condition
        actions = [
            S.status.set("running"), S.attempt.set(attempt), S.lease_token.set(token),
            S.lease_until.set(lease_until), S.attempt_started_at.set(now), S.action.set(action),
            S.started_at.set(S.started_at | started_at),
        ]
        if self.update_if(item, actions, condition):
            return True
        # A retried request whose first try succeeded (its response lost) fails its own
        # condition: the claim is ours if the stored lease token is.
        stored = self.step(account_id, execution_id, name)
        return stored is not None and stored.lease_token == token and stored.status == "running"

    def record(self, account_id: str, execution_id: str, name: str, token: str | None, fields: dict[str, Any],
               *, expect_status: tuple[str, ...] = ("running",)) -> bool:
        """Writes a step's new state, once: only while `token` still holds the claim (or, for
        a step no worker holds, while it is in `expect_status`)."""
        item = StepRunModel(execution_key(account_id, execution_id), name)
        S = StepRunModel
        condition = S.status.is_in(*expect_status)
        if token is not None:
            condition = condition & (S.lease_token == token)
        write_id = uuid.uuid4().hex
        actions = [S.write_id.set(write_id)]
        for field, value in fields.items():
            attribute = getattr(S, field)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        if self.update_if(item, actions, condition):
            return True
        # As for claims: a retry after a lost response finds its own write.
        stored = self.step(account_id, execution_id, name)
        return stored is not None and stored.write_id == write_id

    def create_step(self, account_id: str, execution_id: str, name: str, fields: dict[str, Any]) -> bool:
        """A step record written without a claim (a step skipped or waiting before it ran)."""
        item = StepRunModel(execution_key(account_id, execution_id), name, **fields)
        try:
            item.save(condition=StepRunModel.execution_key.does_not_exist())
            return True
        except PutError as error:
            if _condition_failed(error):
                return False
            raise
