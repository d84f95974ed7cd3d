"""Accounts, API keys, scopes and authentication (SPEC §1)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from chalicelib.config import get_settings
from chalicelib.errors import ForbiddenError, NotFoundError, UnauthorizedError, ValidationError, detail
from chalicelib.ids import derived_id, new_id, now_iso
from chalicelib.logs import logger
from chalicelib.store.accounts import Account, AccountRepository, ApiKey

SCOPES = ("read", "write", "execute", "admin", "operator")
# admin manages the account's keys and may do everything else inside the account.
IMPLIED_SCOPES = {"admin": frozenset({"read", "write", "execute", "admin"})}
KEY_PREFIX = "slk_"
NAME_MAX = 200


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def effective_scopes(scopes: tuple[str, ...] | list[str]) -> frozenset[str]:
    granted: set[str] = set()
    for scope in scopes:
        granted |= IMPLIED_SCOPES.get(scope, {scope})
    return frozenset(granted)


@dataclass(frozen=True)
class Caller:
    """Who is making a request: the key's account and what it may do."""

    account_id: str
    key_id: str
    scopes: frozenset[str]
    key_name: str = ""

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ForbiddenError(f"this API key lacks the '{scope}' scope")


class AccountService:
    def __init__(self, repository: AccountRepository | None = None) -> None:
        self.repository = repository or AccountRepository()

    def authenticate(self, raw_key: str | None) -> Caller:
        if not raw_key:
            raise UnauthorizedError("an API key is required: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'")
        presented = hash_key(raw_key)
        key = self.repository.key_by_hash(presented)
        if key is None and self._is_bootstrap_key(raw_key):
            self.ensure_bootstrap_key(raw_key)
            key = self.repository.key_by_hash(presented)
        if key is None or key.revoked_at is not None or not hmac.compare_digest(key.key_hash, presented):
            raise UnauthorizedError("the API key is not valid")
        return Caller(account_id=key.account_id, key_id=key.id, scopes=effective_scopes(key.scopes), key_name=key.name)

    def _is_bootstrap_key(self, raw_key: str) -> bool:
        configured = bootstrap_key()
        return configured is not None and hmac.compare_digest(hash_key(configured), hash_key(raw_key))

    def ensure_bootstrap_key(self, raw_key: str) -> tuple[Account, ApiKey]:
        """Creates, once, the deployment's first key (operator, and admin of its own account).
        Idempotent and safe to race: ids derive from the key, writes are conditional, and a
        revoked bootstrap key stays revoked."""
        key_hash = hash_key(raw_key)
        name = get_settings().bootstrap_account_name
        now = now_iso()
        account = Account(id=bootstrap_account_id(), name=name, created_at=now)
        self.repository.create_account(account, if_absent=True)
        key = ApiKey(
            id=derived_id("key", key_hash), account_id=account.id, name="bootstrap operator key",
            scopes=("operator", "admin"), prefix=raw_key[:8], created_at=now, key_hash=key_hash,
        )
        self.repository.create_key(key, if_absent=True)
        return self.repository.get_account(account.id) or account, key

    def create_account(self, name: str) -> tuple[Account, ApiKey, str]:
        """A new account and its first admin key (returned once, in full)."""
        account = Account(id=new_id("acc"), name=name, created_at=now_iso())
        self.repository.create_account(account)
        key, raw = self._new_key(account.id, "default admin key", ("admin",))
        return account, key, raw

    def create_key(self, caller: Caller, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
        if "operator" in scopes and "operator" not in caller.scopes:
            raise ForbiddenError("only an operator key can grant the 'operator' scope")
        return self._new_key(caller.account_id, name, tuple(scopes))

    def _new_key(self, account_id: str, name: str, scopes: tuple[str, ...]) -> tuple[ApiKey, str]:
        raw = generate_key()
        key = ApiKey(
            id=new_id("key"), account_id=account_id, name=name, scopes=scopes, prefix=raw[:8],
            created_at=now_iso(), key_hash=hash_key(raw),
        )
        self.repository.create_key(key)
        return key, raw

    def list_keys(self, caller: Caller) -> list[ApiKey]:
        return self.repository.keys_of(caller.account_id)

    def revoke_key(self, caller: Caller, key_id: str) -> ApiKey:
        key = self.repository.key_by_id(caller.account_id, key_id)
        if key is None or key.revoked_at is not None:
            raise NotFoundError(f"API key '{key_id}' not found")
        self.repository.revoke_key(key, now_iso())
        return key


def parse_name(body: dict, field: str = "name") -> str:
    name = body.get(field)
    if not isinstance(name, str) or not name.strip():
        raise ValidationError.for_field(field, "is required and must be a non-empty string")
    if len(name) > NAME_MAX:
        raise ValidationError.for_field(field, f"must be at most {NAME_MAX} characters")
    return name


def parse_scopes(body: dict) -> list[str]:
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not scopes:
        raise ValidationError.for_field("scopes", "is required: a non-empty list of " + ", ".join(SCOPES))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValidationError(
            f"scopes: unknown scope {unknown[0]!r}",
            [detail("scopes", f"unknown scope {s!r}; allowed: {', '.join(SCOPES)}") for s in unknown],
        )
    return list(dict.fromkeys(scopes))


@functools.lru_cache(maxsize=1)
def _parameter_value(parameter: str) -> str | None:
    import boto3  # only deployments that keep the key in SSM pay for this import
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("ssm", region_name=get_settings().region)
    try:
        return client.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    except (ClientError, BotoCoreError) as error:
        # No operator key configured (or not readable): there is simply no bootstrap key.
        logger.warning("bootstrap key parameter unreadable", extra={"parameter": parameter, "error": str(error)})
        return None


def bootstrap_account_id() -> str:
    """The deployment's own account: the operator key's, and the one that receives events
    from the bus that name no account."""
    return derived_id("acc", f"bootstrap:{get_settings().bootstrap_account_name}")


def bootstrap_key() -> str | None:
    """The configured first operator key: the environment (local runtime) or, in AWS, an
    SSM SecureString read once per cold start."""
    settings = get_settings()
    if settings.bootstrap_key:
        return settings.bootstrap_key
    if settings.bootstrap_key_parameter:
        return _parameter_value(settings.bootstrap_key_parameter)
    return None
