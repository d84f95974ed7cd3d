"""Resource ids and timestamps in the formats of SPEC §1."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timezone

ID_PREFIXES = frozenset({"acc", "wf", "ex", "trg", "int", "whk", "tpl", "bkt", "key", "evt", "doc", "dlv", "xsc"})
ID_LENGTH = 24  # characters of the lowercase base32 alphabet after the prefix


def _base32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def new_id(prefix: str) -> str:
    """`<prefix>_` and 24 random characters of `[a-z2-7]` (120 bits)."""
    if prefix not in ID_PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{_base32(secrets.token_bytes(15))}"


def derived_id(prefix: str, seed: str) -> str:
    """A stable id of the same shape, for resources that must be created idempotently."""
    if prefix not in ID_PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{_base32(hashlib.sha256(seed.encode()).digest())[:ID_LENGTH]}"


def is_id(value: str, prefix: str) -> bool:
    head, sep, tail = value.partition("_")
    return (
        sep == "_"
        and head == prefix
        and len(tail) == ID_LENGTH
        and all(c in "abcdefghijklmnopqrstuvwxyz234567" for c in tail)
    )


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a `Z`, millisecond precision: 2026-05-01T12:00:00.123Z."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_iso(seconds: float) -> str:
    """`iso` of a Unix time."""
    return iso(datetime.fromtimestamp(seconds, timezone.utc))


def now_iso() -> str:
    return iso(utc_now())
