"""The accounts and API keys repository."""

from __future__ import annotations

from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.store.models import AccountModel, ApiKeyModel, ApiKeysByAccount


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    created_at: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at}


@dataclass(frozen=True)
class ApiKey:
    id: str
    account_id: str
    name: str
    scopes: tuple[str, ...]
    prefix: str
    created_at: str
    key_hash: str
    revoked_at: str | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "prefix": self.prefix,
            "created_at": self.created_at,
        }


def _api_key(item: ApiKeyModel) -> ApiKey:
    return ApiKey(
        id=item.id, account_id=item.account_id, name=item.name, scopes=tuple(item.scopes),
        prefix=item.prefix, created_at=item.created_at, key_hash=item.key_hash, revoked_at=item.revoked_at,
    )


def _is_condition_failure(error: PutError) -> bool:
    return error.cause_response_code == "ConditionalCheckFailedException"


class AccountRepository:
    def create_account(self, account: Account, *, if_absent: bool = False) -> bool:
        """Stores the account; with `if_absent`, an existing one is left alone and False returned."""
        item = AccountModel(account.id, name=account.name, created_at=account.created_at)
        try:
            item.save(condition=AccountModel.id.does_not_exist() if if_absent else None)
        except PutError as error:
            if if_absent and _is_condition_failure(error):
                return False
            raise
        return True

    def get_account(self, account_id: str) -> Account | None:
        try:
            item = AccountModel.get(account_id, consistent_read=True)
        except DoesNotExist:
            return None
        return Account(item.id, item.name, item.created_at)

    def create_key(self, key: ApiKey, *, if_absent: bool = False) -> bool:
        item = ApiKeyModel(
            key.key_hash, id=key.id, account_id=key.account_id, name=key.name, scopes=list(key.scopes),
            prefix=key.prefix, created_at=key.created_at,
        )
        try:
            item.save(condition=ApiKeyModel.key_hash.does_not_exist())
        except PutError as error:
            if if_absent and _is_condition_failure(error):
                return False
            raise
        return True

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """Strongly consistent, so that a revocation is effective at once."""
        try:
            return _api_key(ApiKeyModel.get(key_hash, consistent_read=True))
        except DoesNotExist:
            return None

    def keys_of(self, account_id: str) -> list[ApiKey]:
        """The account's live keys, oldest first."""
        keys = [_api_key(item) for item in ApiKeyModel.by_account.query(account_id)]
        return sorted((k for k in keys if k.revoked_at is None), key=lambda k: (k.created_at, k.id))

    def key_by_id(self, account_id: str, key_id: str) -> ApiKey | None:
        for item in ApiKeyModel.by_account.query(account_id, ApiKeysByAccount.id == key_id):
            return _api_key(item)
        return None

    def revoke_key(self, key: ApiKey, revoked_at: str) -> None:
        ApiKeyModel(key.key_hash).update(actions=[ApiKeyModel.revoked_at.set(revoked_at)])
