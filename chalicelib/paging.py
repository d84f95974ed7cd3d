"""Page / per_page paging of bounded collections (SPEC §1)."""

from __future__ import annotations

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
