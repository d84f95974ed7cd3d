"""PynamoDB models: the table layouts of infra/resources.yaml, and nothing else knows them.

Every key is scoped by account. The workflows table holds several item kinds under the
account's partition, told apart by the sort key:

    wf#<workflow id>                    the current workflow document
    stats#<workflow id>                 its run counters, updated atomically by the runtime
    rev#<workflow id>#<revision:010d>   an immutable revision of it
    ref#<ref>                           the claim that makes a ref unique in the account
    catalog                             the account's list index (compressed summaries)
"""

from __future__ import annotations

import zlib

from pynamodb.attributes import (
    BinaryAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.config import get_settings
from chalicelib.triggers.traffic import LATENCY_BOUNDS

_settings = get_settings()

DUE_SHARDS = 16  # the sparse due indexes (executions, schedules) spread over this many partitions


def due_shard(key: str) -> str:
    """The due-index partition of an item: stable, and even across keys."""
    return str(zlib.crc32(key.encode()) % DUE_SHARDS)


class _Meta:
    region = _settings.region


class AccountModel(Model):
    class Meta(_Meta):
        table_name = _settings.table_name("accounts")

    id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    created_at = UnicodeAttribute()


class ApiKeysByAccount(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_account"
        projection = AllProjection()

    account_id = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class ApiKeyModel(Model):
    """An API key, found by the SHA-256 of its value; the value itself is never stored."""

    class Meta(_Meta):
        table_name = _settings.table_name("api-keys")

    key_hash = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute()
    account_id = UnicodeAttribute()
    name = UnicodeAttribute()
    scopes = ListAttribute(of=UnicodeAttribute)
    prefix = UnicodeAttribute()
    created_at = UnicodeAttribute()
    # A revoked key stays as a tombstone so that a configured bootstrap key, once
    # revoked, is never silently re-created.
    revoked_at = UnicodeAttribute(null=True)

    by_account = ApiKeysByAccount()


class _WorkflowsTable(_Meta):
    table_name = _settings.table_name("workflows")


class WorkflowModel(Model):
    class Meta(_WorkflowsTable):
        pass

    account_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    ref = UnicodeAttribute()
    # The user-visible revision doubles as the optimistic lock.
    revision = VersionAttribute()
    document = JSONAttribute()


class WorkflowStatsModel(Model):
    """A workflow's run counters (`stats#<workflow id>`), apart from the document: counting
    a run writes a small item and never changes the workflow's revision."""

    class Meta(_WorkflowsTable):
        pass

    account_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    runs_total = NumberAttribute(default=0)
    runs_succeeded = NumberAttribute(default=0)
    runs_failed = NumberAttribute(default=0)
    duration_total_ms = NumberAttribute(default=0)
    last_run_at = UnicodeAttribute(null=True)


class WorkflowRevisionModel(Model):
    class Meta(_WorkflowsTable):
        pass

    account_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    workflow_id = UnicodeAttribute()
    revision = NumberAttribute()
    document = JSONAttribute()
    created_at = UnicodeAttribute()
    # Set when the workflow is deleted: kept as long as the executions pinned to it.
    expires_at = TTLAttribute(null=True)


class WorkflowRefModel(Model):
    class Meta(_WorkflowsTable):
        pass

    account_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    workflow_id = UnicodeAttribute()


class WorkflowCatalogModel(Model):
    """Summaries of all of an account's workflows in one item, so that a list with its
    filters, sorting and totals costs one read instead of one per workflow."""

    class Meta(_WorkflowsTable):
        pass

    account_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="catalog")
    entries = BinaryAttribute(legacy_encoding=False)
    catalog_version = VersionAttribute()


class TriggersByAccount(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_account"
        projection = AllProjection()

    account_id = UnicodeAttribute(hash_key=True)
    workflow_id = UnicodeAttribute(range_key=True)


class TriggersDue(GlobalSecondaryIndex):
    class Meta:
        index_name = "due"
        projection = AllProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    fire_at = NumberAttribute(range_key=True)


class TriggersByMatch(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_match"
        projection = AllProjection()

    match_key = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


def match_key(account_id: str, trigger: dict) -> str | None:
    """What an event or a traffic record finds a trigger by: its event type, or its
    bucket. Other triggers have none (they stay out of the sparse index)."""
    if trigger.get("type") == "event" and isinstance(trigger.get("event"), str):
        return f"{account_id}#event#{trigger['event']}"
    if trigger.get("type") in ("request", "error", "threshold") and isinstance(trigger.get("bucket_id"), str):
        return f"{account_id}#bucket#{trigger['bucket_id']}"
    return None


class TriggerModel(Model):
    """A trigger of a workflow, kept as its own item so that it can fire without reading
    the workflow: by id for inbound webhooks, by index for schedules, thresholds, events
    and traffic."""

    class Meta(_Meta):
        table_name = _settings.table_name("triggers")

    id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    workflow_id = UnicodeAttribute()
    type = UnicodeAttribute()
    enabled = NumberAttribute()  # 1/0, so that it can key a sparse index later
    spec = JSONAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()

    # Schedules: the next fire time (epoch seconds) while the schedule can fire, and its
    # shard, both absent otherwise (a sparse index); the last execution it started.
    # Threshold triggers use the same index for their next evaluation.
    fire_at = NumberAttribute(null=True)
    due_shard = UnicodeAttribute(null=True)
    last_execution = JSONAttribute(null=True)
    match_key = UnicodeAttribute(null=True)
    # Inbound webhooks: the shared secret (never part of the workflow document).
    secret = UnicodeAttribute(null=True)
    # Threshold triggers: {in_breach, last_fired_at} between evaluations.
    state = JSONAttribute(null=True)

    by_account = TriggersByAccount()
    due = TriggersDue()
    by_match = TriggersByMatch()


class WebhookModel(Model):
    """An event-webhook subscription (`whk#<id>` in the workflows table); its secret is
    write-only."""

    class Meta(_WorkflowsTable):
        pass

    account_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    document = JSONAttribute()
    secret = UnicodeAttribute(null=True)


class DeliveryAttemptModel(Model):
    """One attempt to deliver one event to one subscription."""

    class Meta(_Meta):
        table_name = _settings.table_name("deliveries")

    webhook_key = UnicodeAttribute(hash_key=True)  # <account>#<webhook id>
    attempt_key = UnicodeAttribute(range_key=True)  # <attempted_at>#<delivery id>#<attempt>
    record = JSONAttribute()
    expires_at = TTLAttribute(null=True)


class AccountItemModel(Model):
    """One JSON document of an account, kept in its partition of the workflows table:
    `int#<id>` (integrations; their config holds secrets), `bucket#<id>` (API-traffic
    buckets), `evtype#<name>` (custom event types), `doc#<id>` (documents), `xsc#<id>`
    (extraction schemas), `tpl#<id>` (saved templates)."""

    class Meta(_WorkflowsTable):
        pass

    account_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    document = JSONAttribute()


class TrafficMinuteModel(Model):
    """One bucket's traffic in one minute: counts, latency sum and histogram (`h0`..`hN`,
    top-level so that one UpdateItem can ADD to each)."""

    class Meta(_Meta):
        table_name = _settings.table_name("traffic")

    bucket_key = UnicodeAttribute(hash_key=True)  # <account>#<bucket>
    minute = NumberAttribute(range_key=True)  # epoch seconds // 60
    count = NumberAttribute(default=0)
    errors = NumberAttribute(default=0)
    duration_sum = NumberAttribute(default=0)
    expires_at = TTLAttribute(null=True)
    for _cell in range(len(LATENCY_BOUNDS) + 1):
        vars()[f"h{_cell}"] = NumberAttribute(null=True)
    del _cell


class ExecutionsByStarted(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_started"
        projection = KeysOnlyProjection()

    account_id = UnicodeAttribute(hash_key=True)
    started_key = UnicodeAttribute(range_key=True)


class ExecutionsByWorkflow(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_workflow"
        projection = KeysOnlyProjection()

    workflow_key = UnicodeAttribute(hash_key=True)
    started_key = UnicodeAttribute(range_key=True)


class ExecutionsDue(GlobalSecondaryIndex):
    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    due_at = NumberAttribute(range_key=True)


class ExecutionModel(Model):
    """An execution: what started it, the pinned revision, its status and result. Large
    parameters and results live in the payload bucket (`*_ref`)."""

    class Meta(_Meta):
        table_name = _settings.table_name("executions")

    account_id = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    workflow_id = UnicodeAttribute()
    workflow_key = UnicodeAttribute()
    workflow_ref = UnicodeAttribute()
    workflow_name = UnicodeAttribute()
    workflow_revision = NumberAttribute()
    status = UnicodeAttribute()
    triggered_by = UnicodeAttribute()
    trigger_id = UnicodeAttribute(null=True)
    trigger = JSONAttribute(null=True)
    trigger_ref = UnicodeAttribute(null=True)
    redrive_count = NumberAttribute(default=0)
    parameters = JSONAttribute(null=True)
    parameters_ref = UnicodeAttribute(null=True)
    variables = JSONAttribute(null=True)
    result = JSONAttribute(null=True)
    result_ref = UnicodeAttribute(null=True)
    error = JSONAttribute(null=True)
    started_at = UnicodeAttribute()
    started_key = UnicodeAttribute()
    completed_at = UnicodeAttribute(null=True)
    duration_ms = NumberAttribute(null=True)
    deadline_at = NumberAttribute(null=True)
    parent_execution_id = UnicodeAttribute(null=True)
    parent_step = UnicodeAttribute(null=True)
    depth = NumberAttribute(default=0)  # how many workflow.run levels above this execution
    callback = JSONAttribute(null=True)
    due_shard = UnicodeAttribute(null=True)
    due_at = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True)

    by_started = ExecutionsByStarted()
    by_workflow = ExecutionsByWorkflow()
    due = ExecutionsDue()


class StepRunModel(Model):
    """One step of one execution, from its first claim on. Steps that never started have
    no item. Large inputs and outputs live in the payload bucket (`*_ref`)."""

    class Meta(_Meta):
        table_name = _settings.table_name("step-runs")

    execution_key = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(range_key=True)
    status = UnicodeAttribute()
    attempt = NumberAttribute()
    action = UnicodeAttribute(null=True)
    lease_token = UnicodeAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    started_at = UnicodeAttribute(null=True)
    attempt_started_at = NumberAttribute(null=True)
    completed_at = UnicodeAttribute(null=True)
    duration_ms = NumberAttribute(null=True)
    seq = NumberAttribute(null=True)
    input = JSONAttribute(null=True)
    input_ref = UnicodeAttribute(null=True)
    output = JSONAttribute(null=True)
    output_ref = UnicodeAttribute(null=True)
    error = JSONAttribute(null=True)
    attempt_log = JSONAttribute(null=True)
    published = JSONAttribute(null=True)
    wake_at = NumberAttribute(null=True)
    next_attempt_at = NumberAttribute(null=True)
    approval = JSONAttribute(null=True)
    approved = NumberAttribute(null=True)
    child_execution_id = UnicodeAttribute(null=True)
    child = JSONAttribute(null=True)  # {workflow_id, parameters}: enough to start the child again
    compensation = JSONAttribute(null=True)
    write_id = UnicodeAttribute(null=True)  # the last record write, to recognise it after a lost response
    expires_at = TTLAttribute(null=True)
