"""The executions repository: execution items, step runs with their claims (leases), the
due index the tick reads, and cursor-paged lists."""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.condition import Condition

from chalicelib.errors import ValidationError
from chalicelib.store.models import ExecutionModel, StepRunModel

DUE_SHARDS = 16
TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")


def execution_key(account_id: str, execution_id: str) -> str:
    return f"{account_id}#{execution_id}"


def due_shard(execution_id: str) -> str:
    return str(zlib.crc32(execution_id.encode()) % DUE_SHARDS)


def _condition_failed(error: UpdateError) -> bool:
    return error.cause_response_code == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Page:
    items: list[ExecutionModel]
    next_cursor: str | None


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
        if not isinstance(key, dict):
            raise ValueError
        return key
    except (ValueError, UnicodeDecodeError):
        raise ValidationError.for_field("cursor", "is not a cursor this API returned") from None


class ExecutionRepository:
    # -- executions ------------------------------------------------------------------

    def create(self, item: ExecutionModel) -> None:
        item.save(condition=ExecutionModel.id.does_not_exist())

    def get(self, account_id: str, execution_id: str) -> ExecutionModel | None:
        try:
            return ExecutionModel.get(account_id, execution_id, consistent_read=True)
        except DoesNotExist:
            return None

    def update_if(self, item: ExecutionModel, actions: list, condition: Condition | None) -> bool:
        """Applies `actions` when `condition` holds; False when it does not."""
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
        """Newest first, filtered, `limit` at most, from a query on an index (never a scan)."""
        if workflow_id:
            index, hash_key = ExecutionModel.by_workflow, f"{account_id}#{workflow_id}"
        else:
            index, hash_key = ExecutionModel.by_started, account_id
        range_condition = None
        if start and end:
            range_condition = ExecutionModel.started_key.between(start, end + "~")
        elif start:
            range_condition = ExecutionModel.started_key >= start
        elif end:
            range_condition = ExecutionModel.started_key <= end + "~"
        filters = []
        if status:
            filters.append(ExecutionModel.status == status)
        if triggered_by:
            filters.append(ExecutionModel.triggered_by == triggered_by)
        filter_condition = None
        for condition in filters:
            filter_condition = condition if filter_condition is None else filter_condition & condition
        items: list[ExecutionModel] = []
        last_key = _decode_cursor(cursor)
        for _ in range(20):  # a filter can thin out pages: read on, but never without bound
            results = index.query(hash_key, range_condition, filter_condition=filter_condition,
                                  scan_index_forward=False, limit=limit - len(items), last_evaluated_key=last_key)
            items.extend(results)
            last_key = results.last_evaluated_key
            if len(items) >= limit or not last_key:
                break
        return Page(items, _encode_cursor(last_key))

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
        return self.update_if_step(item, actions, condition)

    def record(self, account_id: str, execution_id: str, name: str, token: str | None, fields: dict[str, Any],
               *, expect_status: tuple[str, ...] = ("running",)) -> bool:
        """Writes a step's new state, once: only while `token` still holds the claim (or, for
        a step no worker holds, while it is in `expect_status`)."""
        item = StepRunModel(execution_key(account_id, execution_id), name)
        S = StepRunModel
        condition = S.status.is_in(*expect_status)
        if token is not None:
            condition = condition & (S.lease_token == token)
        actions = []
        for field, value in fields.items():
            attribute = getattr(S, field)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        return self.update_if_step(item, actions, condition)

    def create_step(self, account_id: str, execution_id: str, name: str, fields: dict[str, Any]) -> bool:
        """A step record written without a claim (a step skipped or waiting before it ran)."""
        item = StepRunModel(execution_key(account_id, execution_id), name, **fields)
        try:
            item.save(condition=StepRunModel.execution_key.does_not_exist())
            return True
        except Exception as error:  # PutError
            if getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException":
                return False
            raise

    @staticmethod
    def update_if_step(item: StepRunModel, actions: list, condition: Condition) -> bool:
        try:
            item.update(actions=actions, condition=condition)
            return True
        except UpdateError as error:
            if _condition_failed(error):
                return False
            raise
