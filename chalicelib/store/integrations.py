"""Integrations (SPEC §8): items of the account's partition of the workflows table."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.store.models import IntegrationModel


def _key(integration_id: str) -> str:
    return f"int#{integration_id}"


class IntegrationRepository:
    def get(self, account_id: str, integration_id: str) -> dict[str, Any] | None:
        try:
            return IntegrationModel.get(account_id, _key(integration_id), consistent_read=True).document
        except DoesNotExist:
            return None

    def list(self, account_id: str) -> list[dict[str, Any]]:
        return [item.document for item in IntegrationModel.query(account_id, IntegrationModel.sk.startswith("int#"))]

    def put(self, account_id: str, document: dict[str, Any], *, new: bool) -> bool:
        """False when the integration is not (new) or no longer (existing) as expected."""
        condition = IntegrationModel.sk.does_not_exist() if new else IntegrationModel.sk.exists()
        try:
            IntegrationModel(account_id, _key(document["id"]), document=document).save(condition=condition)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete(self, account_id: str, integration_id: str) -> None:
        IntegrationModel(account_id, _key(integration_id)).delete()
