"""Plain JSON documents of one kind in an account's partition of the workflows table,
keyed `<prefix>#<key>`: integrations, buckets, event types, documents, extraction schemas,
templates."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError
from pynamodb.models import Model


class AccountItems:
    """Documents of one kind in the account's partition, keyed `<prefix>#<id>`."""

    model: type[Model]
    prefix: str
    key_field = "id"  # the document field its sort key is made of

    def get(self, account_id: str, item_id: str) -> dict[str, Any] | None:
        try:
            return self.model.get(account_id, f"{self.prefix}#{item_id}", consistent_read=True).document
        except DoesNotExist:
            return None

    def list(self, account_id: str) -> list[dict[str, Any]]:
        return [item.document for item in self.model.query(account_id, self.model.sk.startswith(f"{self.prefix}#"))]

    def put(self, account_id: str, document: dict[str, Any], *, new: bool | None = None) -> bool:
        """new=True: only if absent; new=False: only if present; None: either."""
        condition = {True: self.model.sk.does_not_exist(), False: self.model.sk.exists(), None: None}[new]
        try:
            self.model(account_id, f"{self.prefix}#{document[self.key_field]}", document=document).save(condition=condition)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete(self, account_id: str, item_id: str) -> None:
        self.model(account_id, f"{self.prefix}#{item_id}").delete()
