"""Signatures of outbound deliveries (SPEC §8): `Sluice-Signature: t=<unix>,v1=<hex>`,
where v1 is HMAC-SHA256(secret, "<t>.<raw body>")."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Sluice-Signature"
TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, body: bytes, header: str, *, now: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver does: a valid v1 for this body, and a `t` at most `tolerance` old."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - t) > tolerance:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
