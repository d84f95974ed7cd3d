"""Masking of secret values (keys, passwords, tokens, URLs that carry credentials) in
anything shown to users or written to logs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "********"
SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|access[_-]?key|authorization|credential|private[_-]?key"
    r"|signing[_-]?key|webhook[_-]?url|routing[_-]?key|client[_-]?secret)",
    re.IGNORECASE,
)


def is_secret_key(name: str) -> bool:
    return bool(SECRET_KEY.search(name))


def _mask_url_credentials(value: str) -> str:
    if "@" not in value or "://" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if parts.username is None and parts.password is None:
        return value
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))


def mask_secrets(value: Any) -> Any:
    """A copy of `value` with secret-looking keys' values replaced by a mask."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and is_secret_key(k) and v not in (None, "") else mask_secrets(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return _mask_url_credentials(value)
    return value


def mask_url(value: str) -> str:
    """A URL that may carry a token in its path or query (a Slack webhook, say): its
    scheme and host stay, the rest is masked."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return MASK
    if not parts.scheme or not parts.hostname:
        return MASK
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    rest = f"/{MASK}" if parts.path.strip("/") or parts.query else parts.path
    return f"{parts.scheme}://{host}{rest}"
