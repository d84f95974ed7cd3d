"""Workflow use cases (SPEC §2): create, change, delete, find and list workflows."""

from __future__ import annotations

import copy
import time
from typing import Any, Callable, Mapping

from chalicelib.errors import NotFoundError, ValidationError, WorkflowNotFoundError
from chalicelib.services.schedules import fire_times
from chalicelib.ids import is_id, new_id, now_iso
from chalicelib.services.workflow_document import (
    WORKFLOW_TYPES,
    build_document,
    canonical_input,
    status_of,
    summarize,
)
from chalicelib.store.workflows import StaleRevisionError, WorkflowRecord, WorkflowRepository

SORT_FIELDS = ("created_at", "updated_at", "name")
SORT_ORDERS = ("asc", "desc")
LIST_FILTERS = ("tags", "enabled", "status", "type", "pack", "pack_ref", "search", "bucket", "sort_by", "sort_order")
PAGING_PARAMS = ("page", "per_page", "page_size")
_WRITE_ATTEMPTS = 4


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, null removes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _editable(document: dict[str, Any]) -> dict[str, Any]:
    """The client-writable view of a stored document, as a PATCH applies to it."""
    return canonical_input({k: v for k, v in document.items() if k not in ("stats",)})


class WorkflowService:
    def __init__(self, repository: WorkflowRepository | None = None, buckets: Any = None) -> None:
        from chalicelib.store.buckets import BucketRepository

        self.repository = repository or WorkflowRepository()
        self.buckets = buckets or BucketRepository()
        # Called with (account_id, document before or None, document after or None) after
        # every stored change: the lifecycle events hang here.
        self.on_change: list[Callable[[str, dict | None, dict | None], None]] = []

    def _changed(self, account_id: str, before: dict | None, after: dict | None) -> None:
        for listener in self.on_change:
            listener(account_id, before, after)

    # -- reading -------------------------------------------------------------------

    def get(self, account_id: str, id_or_ref: str) -> WorkflowRecord:
        if is_id(id_or_ref, "wf"):
            record = self.repository.get(account_id, id_or_ref)
        elif "." in id_or_ref:
            record = self.repository.get_by_ref(account_id, id_or_ref)
        else:
            record = None
        if record is None:
            raise WorkflowNotFoundError(id_or_ref)
        return record

    def list(self, account_id: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """Summaries of the account's workflows that pass every filter, sorted."""
        predicates = _filters(query)
        sort_by = query.get("sort_by") or "created_at"
        if sort_by not in SORT_FIELDS:
            raise ValidationError.for_field("sort_by", "must be one of " + ", ".join(SORT_FIELDS))
        sort_order = (query.get("sort_order") or "desc").lower()
        if sort_order not in SORT_ORDERS:
            raise ValidationError.for_field("sort_order", "must be asc or desc")
        entries = self.repository.catalog(account_id).entries.values()
        chosen = [entry for entry in entries if all(predicate(entry) for predicate in predicates)]
        key = (lambda e: ((e.get("name") or "").lower(), e["id"])) if sort_by == "name" else (lambda e: (e.get(sort_by) or "", e["id"]))
        chosen.sort(key=key, reverse=sort_order == "desc")
        return [{k: v for k, v in entry.items() if k != "buckets"} for entry in chosen]

    def packs(self, account_id: str) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        for entry in self.repository.catalog(account_id).entries.values():
            counts[entry["pack"]] = counts.get(entry["pack"], 0) + 1
        return [{"name": pack, "ref": pack, "workflow_count": counts[pack]} for pack in sorted(counts)]

    def schedule_state(self, account_id: str, workflow_id: str) -> dict[str, dict[str, Any]]:
        """For each schedule trigger: `next_execution` and `last_execution` (read-only)."""
        from chalicelib.ids import epoch_iso
        from chalicelib.store.models import TriggerModel, TriggersByAccount

        state = {}
        for item in TriggerModel.by_account.query(account_id, TriggersByAccount.workflow_id == workflow_id):
            if item.type == "schedule":
                upcoming = epoch_iso(int(item.fire_at)) if item.fire_at else None
                state[item.id] = {"next_execution": upcoming, "last_execution": item.last_execution}
        return state

    def versions(self, account_id: str, id_or_ref: str) -> list[dict[str, Any]]:
        record = self.get(account_id, id_or_ref)
        revisions = self.repository.revisions(account_id, record.id)
        return [
            {"revision": doc["revision"], "version": doc.get("version"), "name": doc.get("name"),
             "created_at": doc.get("updated_at"), "created_by": doc.get("updated_by", doc.get("created_by"))}
            for doc in reversed(revisions)
        ]

    def version(self, account_id: str, id_or_ref: str, revision: str) -> dict[str, Any]:
        record = self.get(account_id, id_or_ref)
        try:
            number = int(revision)
        except ValueError:
            raise ValidationError.for_field("revision", "must be an integer") from None
        document = self.repository.revision(account_id, record.id, number)
        if document is None:
            raise NotFoundError(f"workflow '{id_or_ref}' has no revision {revision}")
        return document

    # -- writing -------------------------------------------------------------------

    def create(self, account_id: str, body: Any, created_by: str) -> WorkflowRecord:
        fields = canonical_input(body)
        document = build_document(fields)
        now = now_iso()
        document.update(
            id=new_id("wf"), created_at=now, updated_at=now, created_by=created_by, updated_by=created_by,
            activated_at=now if document["enabled"] else None, deactivated_at=None,
        )
        if "ref" not in fields:
            document["ref"] = self._free_ref(account_id, document["ref"])
        self._check_buckets(account_id, document)
        secrets = _new_secrets(document, {})
        record = self.repository.save(account_id, document, self._summary(document), previous=None,
                                      expected_revision=None, fire_times=fire_times(document, None, time.time()),
                                      secrets=secrets)
        record.issued_secrets = secrets
        self._changed(account_id, None, record.document)
        return record

    def _check_buckets(self, account_id: str, document: dict[str, Any]) -> None:
        """A traffic trigger must name one of the account's buckets."""
        from chalicelib.errors import InvalidWorkflowConfigError, detail

        problems = []
        known: dict[str, bool] = {}
        for i, trigger in enumerate(document.get("triggers", [])):
            bucket_id = trigger.get("bucket_id")
            if bucket_id is not None:
                if bucket_id not in known:
                    known[bucket_id] = isinstance(bucket_id, str) and self.buckets.get(account_id, bucket_id) is not None
                if not known[bucket_id]:
                    problems.append(detail(f"triggers[{i}].bucket_id", f"no bucket '{bucket_id}' in this account"))
        if problems:
            raise InvalidWorkflowConfigError(f"{problems[0]['field']}: {problems[0]['message']}", problems)

    def _free_ref(self, account_id: str, ref: str) -> str:
        """A derived ref that collides gets a numeric suffix; an explicit one answers 409."""
        candidate, n = ref, 1
        while self.repository.ref_taken(account_id, candidate):
            n += 1
            candidate = f"{ref}_{n}"
        return candidate

    def replace(self, account_id: str, id_or_ref: str, body: Any, if_match: int | None, updated_by: str) -> WorkflowRecord:
        fields = canonical_input(body)

        def change(current: WorkflowRecord) -> dict[str, Any]:
            new_fields = dict(fields)
            new_fields.setdefault("ref", current.ref)  # a PUT without ref keeps it
            return new_fields

        return self._change(account_id, id_or_ref, change, if_match, updated_by)

    def patch(self, account_id: str, id_or_ref: str, body: Any, if_match: int | None, updated_by: str) -> WorkflowRecord:
        patch = canonical_input(body)
        return self._change(account_id, id_or_ref, lambda current: merge_patch(_editable(current.document), patch), if_match, updated_by)

    def set_enabled(self, account_id: str, id_or_ref: str, enabled: bool | None, updated_by: str) -> WorkflowRecord:
        """activate (True), deactivate (False) or toggle (None)."""
        def change(current: WorkflowRecord) -> dict[str, Any]:
            fields = _editable(current.document)
            fields["enabled"] = (not current.document["enabled"]) if enabled is None else enabled
            return fields

        return self._change(account_id, id_or_ref, change, None, updated_by)

    def _change(self, account_id: str, id_or_ref: str, change: Callable[[WorkflowRecord], dict[str, Any]],
                if_match: int | None, updated_by: str) -> WorkflowRecord:
        for _ in range(_WRITE_ATTEMPTS):
            current = self.get(account_id, id_or_ref)
            if if_match is not None and if_match != current.revision:
                raise StaleRevisionError(if_match, current.revision)
            previous_triggers = {t["id"]: t for t in current.document.get("triggers", [])}
            document = build_document(change(current), existing_triggers=previous_triggers)
            if self._same(document, current.document):
                return current
            document = self._carry_over(document, current, updated_by)
            self._check_buckets(account_id, document)
            secrets = _new_secrets(document, previous_triggers)
            try:
                record = self.repository.save(account_id, document, self._summary(document),
                                              previous=current, expected_revision=current.revision,
                                              fire_times=fire_times(document, current.document, time.time()),
                                              secrets=secrets)
                record.issued_secrets = secrets
                self._changed(account_id, current.document, record.document)
                return record
            except StaleRevisionError:
                if if_match is not None:
                    raise StaleRevisionError(if_match) from None
                # Without If-Match the caller asked for no concurrency check: apply the
                # change again on top of the newer revision.
        raise StaleRevisionError(None)

    @staticmethod
    def _same(new: dict[str, Any], old: dict[str, Any]) -> bool:
        return all(new.get(key) == old.get(key) for key in new)

    @staticmethod
    def _carry_over(document: dict[str, Any], current: WorkflowRecord, updated_by: str) -> dict[str, Any]:
        old = current.document
        now = now_iso()
        document.update(
            id=current.id, created_at=old["created_at"], created_by=old.get("created_by"),
            updated_at=now, updated_by=updated_by,
            activated_at=old.get("activated_at"), deactivated_at=old.get("deactivated_at"),
        )
        if document["enabled"] and not old["enabled"]:
            document["activated_at"] = now
        elif not document["enabled"] and old["enabled"]:
            document["deactivated_at"] = now
        return document

    def delete(self, account_id: str, id_or_ref: str) -> WorkflowRecord:
        record = self.get(account_id, id_or_ref)
        self.repository.delete(record, retention_days=record.document.get("retention_days", 30))
        self._changed(account_id, record.document, None)
        return record

    @staticmethod
    def _summary(document: dict[str, Any]) -> dict[str, Any]:
        return summarize(dict(document, revision=document.get("revision")))


def _new_secrets(document: dict[str, Any], previous: Mapping[str, Any]) -> dict[str, str]:
    """A secret for each inbound-webhook trigger the document adds."""
    from chalicelib.services.hooks import issue_secret

    return {t["id"]: issue_secret() for t in document.get("triggers", [])
            if t.get("type") == "webhook" and (previous.get(t["id"]) or {}).get("type") != "webhook"}


def _bool_param(query: Mapping[str, str], name: str) -> bool:
    raw = query[name].lower()
    if raw not in ("true", "false", "1", "0"):
        raise ValidationError.for_field(name, "must be true or false")
    return raw in ("true", "1")


def _filters(query: Mapping[str, str]) -> list[Callable[[dict[str, Any]], bool]]:
    """One predicate per filter in the query. A query name that is neither a filter nor a
    paging parameter filters on `metadata` (`?department=support`)."""
    predicates: list[Callable[[dict[str, Any]], bool]] = []
    if query.get("tags"):
        wanted = {t.strip() for t in query["tags"].split(",") if t.strip()}
        predicates.append(lambda e: bool(wanted & set(e.get("tags") or [])))
    if query.get("enabled"):
        enabled = _bool_param(query, "enabled")
        predicates.append(lambda e: e["enabled"] is enabled)
    if query.get("status"):
        if query["status"] not in ("active", "inactive"):
            raise ValidationError.for_field("status", "must be active or inactive")
        predicates.append(lambda e: status_of(e) == query["status"])
    if query.get("type"):
        if query["type"] not in WORKFLOW_TYPES:
            raise ValidationError.for_field("type", "must be one of " + ", ".join(WORKFLOW_TYPES))
        predicates.append(lambda e: e.get("type") == query["type"])
    pack = query.get("pack") or query.get("pack_ref")
    if pack:
        predicates.append(lambda e: e.get("pack") == pack)
    if query.get("search"):
        needle = query["search"].lower()
        predicates.append(lambda e: needle in (e.get("name") or "").lower() or needle in (e.get("description") or "").lower())
    if query.get("bucket"):
        predicates.append(lambda e: query["bucket"] in (e.get("buckets") or []))
    for name, value in query.items():
        if name not in LIST_FILTERS and name not in PAGING_PARAMS:
            predicates.append(lambda e, name=name, value=value: str((e.get("metadata") or {}).get(name)) == value)
    return predicates
