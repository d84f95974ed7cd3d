"""The step worker: an SQS batch of step messages, processed concurrently (a fan-out's
branches arrive together), each failure reported alone so SQS redelivers only it."""

from __future__ import annotations

import concurrent.futures
import json
import time
from typing import Any, Callable

from chalicelib.logs import logger

SAFETY_SECONDS = 5.0


def process_batch(records: list[dict[str, Any]], handle: Callable[[dict, float], None],
                  remaining_ms: int, clock: Callable[[], float] = time.time) -> dict[str, list[dict[str, str]]]:
    """Runs `handle(message, deadline)` for every record (the deadline on `clock`, the
    handler's own); returns Lambda's partial batch response naming the records that failed."""
    deadline = clock() + remaining_ms / 1000 - SAFETY_SECONDS

    def one(record: dict[str, Any]) -> None:
        handle(json.loads(record["body"]), deadline)

    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        futures = {pool.submit(one, record): record for record in records}
        for future in concurrent.futures.as_completed(futures):
            record = futures[future]
            error = future.exception()
            if error is not None:
                logger.error("step message failed", exc_info=error,
                             extra={"message_id": record.get("messageId"), "error": f"{type(error).__name__}: {error}"})
                failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def handle(event: Any) -> dict[str, list[dict[str, str]]]:
    from chalicelib.wiring import runtime

    records = event.to_dict()["Records"]
    engine = runtime()
    return process_batch(records, engine.handle, event.context.get_remaining_time_in_millis(), clock=engine.clock)
