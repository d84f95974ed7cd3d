"""Large JSON values (step inputs and outputs, parameters, results) in the payload bucket:
items keep values up to 32 KB inline and a reference to anything larger."""

from __future__ import annotations

import json
from typing import Any

INLINE_LIMIT = 32 * 1024


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class PayloadStore:
    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self._bucket = bucket

    def pack(self, key: str, value: Any) -> tuple[Any, str | None]:
        """(value, None) when it fits in an item; (None, reference) after storing it."""
        if value is None:
            return None, None
        encoded = _dumps(value)
        if len(encoded.encode()) <= INLINE_LIMIT:
            return value, None
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=encoded.encode(), ContentType="application/json")
        return None, key

    def load(self, inline: Any, reference: str | None) -> Any:
        if reference is None:
            return inline
        body = self._s3.get_object(Bucket=self._bucket, Key=reference)["Body"].read()
        return json.loads(body)

    def delete_prefix(self, prefix: str) -> int:
        """Removes every object under `prefix` (an execution's payloads); how many."""
        removed = 0
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True})
                removed += len(keys)
        return removed
