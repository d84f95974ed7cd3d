"""Custom event types an account registers (SPEC §6.3)."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.store.models import EventTypeModel


def _key(name: str) -> str:
    return f"evtype#{name}"


class EventTypeRepository:
    def get(self, account_id: str, name: str) -> dict[str, Any] | None:
        try:
            return EventTypeModel.get(account_id, _key(name)).document
        except DoesNotExist:
            return None

    def list(self, account_id: str) -> list[dict[str, Any]]:
        return [item.document for item in EventTypeModel.query(account_id, EventTypeModel.sk.startswith("evtype#"))]

    def create(self, account_id: str, document: dict[str, Any]) -> bool:
        """Stores a new type; False when the account has one of that name already."""
        try:
            EventTypeModel(account_id, _key(document["name"]), document=document).save(
                condition=EventTypeModel.sk.does_not_exist())
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
