"""The `core.http` action (alias `webhook.send`): one HTTP request through the outbound guard."""

from __future__ import annotations

import codecs
import json
from typing import Any
from urllib.parse import urlsplit

from chalicelib import outbound
from chalicelib.actions.errors import ActionError

# What a failed step keeps of the answer; the whole body may be up to the outbound cap.
_ERROR_BODY_CHARS = 8192
_RETRYABLE_4XX = {408, 429}


def _query(query: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Query values as a user of a JSON workflow means them: true, not True; a list repeats the key."""
    pairs: list[tuple[str, str]] = []
    for name, value in (query or {}).items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            if isinstance(item, bool):
                item = "true" if item else "false"
            elif isinstance(item, (dict, list)):
                item = json.dumps(item, separators=(",", ":"))
            pairs.append((name, str(item)))
    return pairs


def _has_header(headers: dict[str, str], name: str) -> bool:
    return any(key.lower() == name.lower() for key in headers)


def _payload(input: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    has_json = input.get("json") is not None
    has_body = input.get("body") is not None
    if has_json and has_body:
        raise ActionError("INVALID_INPUT", "give either `json` or `body`, not both")
    if has_json:
        return {"json": input["json"]}
    if not has_body:
        return {}
    body = input["body"]
    if not isinstance(body, str):
        return {"json": body}
    if not _has_header(headers, "Content-Type"):
        headers["Content-Type"] = "text/plain; charset=utf-8"
    return {"data": body.encode("utf-8")}


def _media_type(content_type: str) -> tuple[str, str | None]:
    media_type, _, rest = content_type.partition(";")
    charset = None
    for parameter in rest.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    return media_type.strip().lower(), charset


def _decode(content: bytes, content_type: str) -> Any:
    media_type, charset = _media_type(content_type)
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return json.loads(content)
        except ValueError:
            pass
    try:
        codecs.lookup(charset or "utf-8")
    except LookupError:
        charset = None
    return content.decode(charset or "utf-8", errors="replace")


def _error_body(content: bytes, content_type: str) -> Any:
    if len(content) > _ERROR_BODY_CHARS:
        return _decode(content[:_ERROR_BODY_CHARS], "text/plain; " + content_type.partition(";")[2])
    return _decode(content, content_type)


def http_request(input: dict[str, Any], *, idempotency_key: str, timeout: float, allow_private: bool) -> dict[str, Any]:
    method = str(input.get("method") or "GET").upper()
    headers = dict(input.get("headers") or {})
    if not _has_header(headers, "Idempotency-Key"):
        headers["Idempotency-Key"] = idempotency_key
    payload = _payload(input, headers)
    effective_timeout = min(float(input.get("timeout") or timeout), timeout)
    try:
        response = outbound.send(method, input["url"], headers=headers, params=_query(input.get("query")),
                                 timeout=effective_timeout, allow_private=allow_private, **payload)
    except outbound.OutboundError as exc:
        raise ActionError(exc.code, exc.message, retryable=exc.retryable) from None
    content_type = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
    status = response.status_code
    if status >= 400:
        # The host only: a URL may carry a token (SPEC §8).
        where = urlsplit(response.url).hostname
        code = "HTTP_5XX" if status >= 500 else "HTTP_4XX"
        raise ActionError(code, f"{method} to {where} answered {status}",
                          retryable=status >= 500 or status in _RETRYABLE_4XX,
                          details={"status_code": status, "body": _error_body(response.body, content_type)})
    return {
        "status_code": status,
        "headers": {name.lower(): value for name, value in response.headers.items()},
        "body": _decode(response.body, content_type),
    }
