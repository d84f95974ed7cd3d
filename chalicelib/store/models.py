"""PynamoDB models: the table layouts of infra/resources.yaml, and nothing else knows them.

Every key is scoped by account. The workflows table holds several item kinds under the
account's partition, told apart by the sort key:

    wf#<workflow id>                    the current workflow document
    rev#<workflow id>#<revision:010d>   an immutable revision of it
    ref#<ref>                           the claim that makes a ref unique in the account
    catalog                             the account's list index (compressed summaries)
"""

from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.config import get_settings

_settings = get_settings()


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
    # Run statistics are counters updated atomically by the engine, outside the document.
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


class TriggerModel(Model):
    """A trigger of a workflow, kept as its own item so that it can fire without reading
    the workflow: by id for inbound webhooks, by index for schedules and events."""

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

    by_account = TriggersByAccount()
