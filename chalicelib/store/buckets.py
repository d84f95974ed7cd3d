"""API-traffic buckets and their per-minute aggregates (SPEC §6.4)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from chalicelib.store.items import AccountItems
from chalicelib.store.models import AccountItemModel, TrafficMinuteModel

AGGREGATE_RETENTION = 2 * 24 * 3600  # seconds: the longest window (24 h) with a day to spare


class BucketRepository(AccountItems):
    model = AccountItemModel
    prefix = "bucket"


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
