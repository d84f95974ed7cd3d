"""Event-webhook subscriptions (items of the account's partition of the workflows table)
and the log of their delivery attempts (the deliveries table)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.errors import ValidationError
from chalicelib.paging import decode_cursor, encode_cursor
from chalicelib.store.models import DeliveryAttemptModel, WebhookModel

LOG_RETENTION = timedelta(days=30)


def _key(webhook_id: str) -> str:
    return f"whk#{webhook_id}"


class WebhookRepository:
    def get(self, account_id: str, webhook_id: str) -> tuple[dict[str, Any], str | None] | None:
        """(document, secret) or None."""
        try:
            item = WebhookModel.get(account_id, _key(webhook_id), consistent_read=True)
        except DoesNotExist:
            return None
        return item.document, item.secret

    def list(self, account_id: str) -> list[tuple[dict[str, Any], str | None]]:
        return [(item.document, item.secret)
                for item in WebhookModel.query(account_id, WebhookModel.sk.startswith("whk#"))]

    def put(self, account_id: str, document: dict[str, Any], secret: str | None, *, new: bool) -> bool:
        condition = WebhookModel.sk.does_not_exist() if new else WebhookModel.sk.exists()
        try:
            WebhookModel(account_id, _key(document["id"]), document=document, secret=secret).save(condition=condition)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete(self, account_id: str, webhook_id: str) -> None:
        WebhookModel(account_id, _key(webhook_id)).delete()


class DeliveryLog:
    def claim(self, account_id: str, webhook_id: str, event_id: str, attempt: int) -> bool:
        """True the first time only: a redelivered queue message must not POST again."""
        item = DeliveryAttemptModel(f"{account_id}#{webhook_id}#claims", f"{event_id}#{attempt:02d}", record={},
                                    expires_at=datetime.now(timezone.utc) + LOG_RETENTION)
        try:
            item.save(condition=DeliveryAttemptModel.attempt_key.does_not_exist())
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def add(self, account_id: str, webhook_id: str, record: dict[str, Any]) -> None:
        key = f"{record['attempted_at']}#{record['id']}#{record['attempt']:02d}"
        DeliveryAttemptModel(f"{account_id}#{webhook_id}", key, record=record,
                             expires_at=datetime.now(timezone.utc) + LOG_RETENTION).save()

    def page(self, account_id: str, webhook_id: str, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        """Newest attempts first. A cursor is the key of the last attempt given, and only
        good for this subscription's list."""
        partition = f"{account_id}#{webhook_id}"
        start = decode_cursor(cursor)
        if start is not None and (set(start) != {"webhook_key", "attempt_key"}
                                  or start["webhook_key"] != {"S": partition}
                                  or not isinstance(start["attempt_key"], dict)
                                  or not isinstance(start["attempt_key"].get("S"), str)):
            raise ValidationError.for_field("cursor", "is not a cursor this API returned for this list")
        query = DeliveryAttemptModel.query(partition, scan_index_forward=False, limit=limit, last_evaluated_key=start)
        records = [item.record for item in query]
        return records, encode_cursor(query.last_evaluated_key) if len(records) == limit else None
