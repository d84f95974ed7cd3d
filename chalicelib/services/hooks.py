"""Inbound webhooks (SPEC §6.2): a call to `/api/v1/hooks/{trigger_id}` authenticated by
the trigger's secret, as a token or as an HMAC-SHA256 signature of the raw body, starts
the workflow with `{body, headers, query, method}` as its trigger data."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any, Mapping
from urllib.parse import parse_qs

from pynamodb.exceptions import DoesNotExist

from chalicelib.errors import InvalidStateError, NotFoundError, UnauthorizedError, ValidationError, detail
from chalicelib.ids import is_id
from chalicelib.services.triggering import NotStartable, TriggerStarter
from chalicelib.store.models import TriggerModel

TOKEN_HEADER = "x-sluice-token"
SIGNATURE_HEADER = "x-sluice-signature"
# Never copied into the trigger data: the credential itself, and the caller's API key.
HIDDEN_HEADERS = frozenset({TOKEN_HEADER, SIGNATURE_HEADER, "authorization", "x-api-key", "cookie"})


def issue_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def hook_url(trigger_id: str) -> str:
    return f"/api/v1/hooks/{trigger_id}"


def signature(secret: str, body: bytes) -> str:
    """The `X-Sluice-Signature` value a sender computes: `sha256=<hex>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def authentic(secret: str | None, body: bytes, headers: Mapping[str, str]) -> bool:
    """True when the call carries the trigger's secret as a token or a valid signature.
    Both compare in constant time."""
    if not secret:
        return False
    token = headers.get(TOKEN_HEADER)
    if token is not None:
        return hmac.compare_digest(token.encode(), secret.encode())
    given = headers.get(SIGNATURE_HEADER)
    if given is not None:
        return hmac.compare_digest(given.strip().lower().encode(), signature(secret, body).encode())
    return False


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """JSON bodies as JSON, form bodies as an object (a repeated field as a list), any
    other body as text; an empty body is null."""
    if not raw.strip():
        return None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    text = raw.decode("utf-8", errors="replace")
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            raise ValidationError("malformed JSON", [detail("body", "is not valid JSON")]) from None
    if media == "application/x-www-form-urlencoded":
        return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(text, keep_blank_values=True).items()}
    return text


class InboundWebhooks:
    def __init__(self, starter: TriggerStarter) -> None:
        self.starter = starter

    @staticmethod
    def _find(trigger_id: str) -> TriggerModel | None:
        """A strongly consistent read: a rotated secret stops working at once."""
        if not is_id(trigger_id, "trg"):
            return None
        try:
            return TriggerModel.get(trigger_id, consistent_read=True)
        except DoesNotExist:
            return None

    def _trigger(self, trigger_id: str) -> TriggerModel:
        item = self._find(trigger_id)
        if item is None or item.type != "webhook":
            raise NotFoundError(f"no inbound webhook '{trigger_id}'", [detail("trigger_id", trigger_id)])
        return item

    def receive(self, trigger_id: str, *, raw_body: bytes, headers: Mapping[str, str],
                query: Mapping[str, str], method: str) -> str:
        """Starts the trigger's workflow and returns the execution id. A missing or wrong
        credential is a 401 before anything else is looked at or started."""
        item = self._trigger(trigger_id)
        lowered = {k.lower(): v for k, v in headers.items()}
        if not authentic(item.secret, raw_body, lowered):
            raise UnauthorizedError(f"a valid {TOKEN_HEADER} or {SIGNATURE_HEADER} header is required")
        data = {
            "body": parse_body(raw_body, lowered.get("content-type")),
            "headers": {k: v for k, v in lowered.items() if k not in HIDDEN_HEADERS},
            "query": dict(query),
            "method": method,
        }
        spec = dict(item.spec)
        try:
            return self.starter.start(item.account_id, item.workflow_id, item.id, spec, kind="webhook", data=data,
                                      firing=secrets.token_hex(16))
        except NotStartable as reason:
            raise InvalidStateError(f"the webhook cannot start its workflow: {reason}") from None

    def rotate(self, account_id: str, workflow_id: str, trigger_id: str) -> dict[str, str]:
        """Replaces the trigger's secret; the old one stops working at once."""
        item = self._find(trigger_id)
        if item is None or item.account_id != account_id or item.workflow_id != workflow_id:
            raise NotFoundError(f"workflow {workflow_id} has no trigger '{trigger_id}'", [detail("trigger_id", trigger_id)])
        if item.type != "webhook":
            raise ValidationError.for_field("trigger_id", "only an inbound webhook trigger has a secret")
        secret = issue_secret()
        item.update(actions=[TriggerModel.secret.set(secret)], condition=TriggerModel.type == "webhook")
        return {"trigger_id": trigger_id, "url": hook_url(trigger_id), "secret": secret}
