"""Paging (SPEC §1): page / per_page for bounded collections, limit / cursor for the
unbounded ones (an opaque cursor is the last key read)."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from chalicelib.errors import ValidationError

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> "PageRequest":
        page = _positive_int(query, "page", 1)
        # `page_size` is how some clients spell it.
        name = "per_page" if "per_page" in query or "page_size" not in query else "page_size"
        per_page = _positive_int(query, name, DEFAULT_PER_PAGE)
        if per_page > MAX_PER_PAGE:
            raise ValidationError.for_field(name, f"must be at most {MAX_PER_PAGE}")
        return cls(page=page, per_page=per_page)


def _positive_int(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError.for_field(name, "must be a positive integer") from None
    if value < 1:
        raise ValidationError.for_field(name, "must be a positive integer")
    return value


def paginate(items: Sequence[Any], request: PageRequest) -> tuple[list[Any], dict[str, int]]:
    """The items of the requested page and the `meta` block describing the whole collection."""
    total = len(items)
    start = (request.page - 1) * request.per_page
    meta = {
        "page": request.page,
        "per_page": request.per_page,
        "total": total,
        "total_pages": math.ceil(total / request.per_page) if total else 0,
    }
    return list(items[start:start + request.per_page]), meta


CURSOR_LIMIT_DEFAULT = 20
CURSOR_LIMIT_MAX = 100


def cursor_limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit") or str(CURSOR_LIMIT_DEFAULT)
    try:
        size = int(raw)
    except ValueError:
        raise ValidationError.for_field("limit", "must be a positive integer") from None
    if not 1 <= size <= CURSOR_LIMIT_MAX:
        raise ValidationError.for_field("limit", f"must be from 1 to {CURSOR_LIMIT_MAX}")
    return size


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
        if not isinstance(key, dict):
            raise ValueError
        return key
    except (ValueError, UnicodeDecodeError):
        raise ValidationError.for_field("cursor", "is not a cursor this API returned") from None
