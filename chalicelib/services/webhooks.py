"""Event webhooks (SPEC §8): subscriptions to lifecycle events, and their delivery log."""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlsplit

from chalicelib.errors import NotFoundError, ValidationError, detail
from chalicelib.ids import is_id, new_id, now_iso
from chalicelib.paging import cursor_limit
from chalicelib.services.events import LIFECYCLE_EVENTS

FIELDS = ("url", "events", "secret", "description", "enabled")
URL_MAX = 2048
SECRET_MIN, SECRET_MAX = 8, 256


class WebhookNotFoundError(NotFoundError):
    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"no webhook '{webhook_id}'", [detail("id", webhook_id)])


def _check(fields: dict[str, Any]) -> None:
    url = fields.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or len(url) > URL_MAX:
        raise ValidationError.for_field("url", "is required: an http(s) URL")
    events = fields.get("events")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValidationError.for_field("events", "is required: a list of event types (or ['*'])")
    unknown = [e for e in events if e != "*" and e not in LIFECYCLE_EVENTS]
    if unknown:
        raise ValidationError(f"events: unknown event type '{unknown[0]}'",
                              [detail("events", f"'{e}' is not one of " + ", ".join(LIFECYCLE_EVENTS)) for e in unknown])
    secret = fields.get("secret")
    if secret is not None and (not isinstance(secret, str) or not SECRET_MIN <= len(secret) <= SECRET_MAX):
        raise ValidationError.for_field("secret", f"must be a string of {SECRET_MIN} to {SECRET_MAX} characters")
    if fields.get("description") is not None and not isinstance(fields["description"], str):
        raise ValidationError.for_field("description", "must be a string")
    if not isinstance(fields.get("enabled", True), bool):
        raise ValidationError.for_field("enabled", "must be a boolean")


def _fields(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError.for_field("body", "must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS) - {"id", "created_at", "updated_at", "has_secret"})
    if unknown:
        raise ValidationError(f"unknown field: {unknown[0]}", [detail(k, "unknown field") for k in unknown])
    return {k: body[k] for k in FIELDS if k in body}


def view(document: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """The secret is write-only: an answer says whether there is one, never what it is."""
    return dict(document, has_secret=secret is not None)


class WebhookService:
    def __init__(self, repository: Any, log: Any) -> None:
        self.repository = repository
        self.log = log

    def _get(self, account_id: str, webhook_id: str) -> tuple[dict[str, Any], str | None]:
        found = self.repository.get(account_id, webhook_id) if is_id(webhook_id, "whk") else None
        if found is None:
            raise WebhookNotFoundError(webhook_id)
        return found

    def get(self, account_id: str, webhook_id: str) -> dict[str, Any]:
        return view(*self._get(account_id, webhook_id))

    def list(self, account_id: str) -> list[dict[str, Any]]:
        return [view(doc, secret) for doc, secret in sorted(self.repository.list(account_id),
                                                             key=lambda pair: (pair[0]["created_at"], pair[0]["id"]))]

    def create(self, account_id: str, body: Any) -> dict[str, Any]:
        fields = _fields(body)
        _check(fields)
        secret = fields.pop("secret", None)
        now = now_iso()
        document = {"id": new_id("whk"), "url": fields["url"], "events": list(dict.fromkeys(fields["events"])),
                    "description": fields.get("description"), "enabled": fields.get("enabled", True),
                    "created_at": now, "updated_at": now}
        self.repository.put(account_id, document, secret, new=True)
        return view(document, secret)

    def update(self, account_id: str, webhook_id: str, body: Any) -> dict[str, Any]:
        """PATCH: the given fields replace theirs; `"secret": null` removes the secret."""
        document, secret = self._get(account_id, webhook_id)
        fields = _fields(body)
        merged = {**{k: document.get(k) for k in FIELDS if k != "secret"}, **fields}
        _check({k: v for k, v in merged.items() if not (k == "secret" and v is None)})
        if "secret" in fields:
            secret = fields.pop("secret")
        updated = dict(document, **{k: v for k, v in fields.items()}, updated_at=now_iso())
        updated["events"] = list(dict.fromkeys(updated["events"]))
        if not self.repository.put(account_id, updated, secret, new=False):
            raise WebhookNotFoundError(webhook_id)
        return view(updated, secret)

    def delete(self, account_id: str, webhook_id: str) -> None:
        self._get(account_id, webhook_id)
        self.repository.delete(account_id, webhook_id)

    def deliveries(self, account_id: str, webhook_id: str, query: Mapping[str, str]) -> tuple[list, dict]:
        self._get(account_id, webhook_id)
        limit = cursor_limit(query)
        records, next_cursor = self.log.page(account_id, webhook_id, limit, query.get("cursor") or None)
        return records, {"limit": limit, "next_cursor": next_cursor}
