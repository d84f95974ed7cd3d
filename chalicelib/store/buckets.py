"""API-traffic buckets and their per-minute aggregates (SPEC §6.4)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from pynamodb.exceptions import DoesNotExist

from chalicelib.store.models import BucketModel, TrafficMinuteModel

AGGREGATE_RETENTION = 2 * 24 * 3600  # seconds: the longest window (24 h) with a day to spare


def _bucket_key(bucket_id: str) -> str:
    return f"bucket#{bucket_id}"


class BucketRepository:
    def get(self, account_id: str, bucket_id: str) -> dict[str, Any] | None:
        try:
            return BucketModel.get(account_id, _bucket_key(bucket_id), consistent_read=True).document
        except DoesNotExist:
            return None

    def list(self, account_id: str) -> list[dict[str, Any]]:
        items = BucketModel.query(account_id, BucketModel.sk.startswith("bucket#"))
        return [item.document for item in items]

    def put(self, account_id: str, document: dict[str, Any], *, new: bool) -> None:
        item = BucketModel(account_id, _bucket_key(document["id"]), id=document["id"], document=document)
        item.save(condition=BucketModel.sk.does_not_exist() if new else BucketModel.sk.exists())

    def delete(self, account_id: str, bucket_id: str) -> None:
        BucketModel(account_id, _bucket_key(bucket_id)).delete()


class TrafficRepository:
    """Per-bucket per-minute aggregates: one UpdateItem per (bucket, minute) per batch,
    whatever the number of records in it."""

    def add(self, account_id: str, bucket_id: str, minutes: dict[int, dict[str, Any]]) -> int:
        expires = datetime.now(timezone.utc) + timedelta(seconds=AGGREGATE_RETENTION)
        for minute, entry in minutes.items():
            actions = [
                TrafficMinuteModel.count.add(entry["count"]),
                TrafficMinuteModel.errors.add(entry["errors"]),
                TrafficMinuteModel.duration_sum.add(entry["duration_sum"]),
                TrafficMinuteModel.expires_at.set(expires),
            ]
            actions += [getattr(TrafficMinuteModel, f"h{cell}").add(n) for cell, n in entry["cells"].items()]
            TrafficMinuteModel(f"{account_id}#{bucket_id}", minute).update(actions=actions)
        return len(minutes)

    def window(self, account_id: str, bucket_id: str, first_minute: int, last_minute: int) -> Iterator[dict[str, Any]]:
        """The aggregates of the minutes from first to last (inclusive), as plain dicts
        with their histogram under `cells`."""
        query = TrafficMinuteModel.query(f"{account_id}#{bucket_id}",
                                         TrafficMinuteModel.minute.between(first_minute, last_minute))
        for item in query:
            cells = {}
            for name, value in item.attribute_values.items():
                if name.startswith("h") and name[1:].isdigit() and value:
                    cells[int(name[1:])] = int(value)
            yield {"minute": int(item.minute), "count": int(item.count or 0), "errors": int(item.errors or 0),
                   "duration_sum": float(item.duration_sum or 0), "cells": cells}
