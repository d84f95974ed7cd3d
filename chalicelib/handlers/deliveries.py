"""The delivery worker: POSTs execution callbacks through the outbound guard, signed when
the caller gave a secret, retried on failure after 30 s, 2 min, 10 min, 30 min, 1 h, 2 h."""

from __future__ import annotations

import json
import time
from typing import Any

from chalicelib.logs import logger

RETRY_DELAYS = (30, 120, 600, 1800, 3600, 7200)
MAX_DELAY = 900


def handle(event: Any) -> dict[str, list[dict[str, str]]]:
    from chalicelib.handlers.worker import process_batch
    from chalicelib.wiring import callbacks

    records = event.to_dict()["Records"]
    return process_batch(records, lambda message, deadline: callbacks().deliver(message),
                         event.context.get_remaining_time_in_millis())


class CallbackSender:
    def __init__(self, executions, queue, clock=time.time) -> None:
        self.executions = executions  # ExecutionService
        self.queue = queue
        self.clock = clock

    def deliver(self, message: dict[str, Any]) -> None:
        not_before = message.get("not_before")
        if not_before is not None and not_before > self.clock() + 1:
            # Waits longer than SQS's 15-minute delay travel in hops.
            self.queue.send([(message, min(MAX_DELAY, not_before - self.clock()))])
            return
        from chalicelib import outbound
        from chalicelib.ids import derived_id, now_iso
        from chalicelib.signing import HEADER, sign

        item = self.executions.repository.get(message["a"], message["e"])
        if item is None or not item.callback:
            return
        kind = "execution.completed" if item.status == "succeeded" else "execution.failed"
        payload = {"id": derived_id("evt", f"{item.id}:{kind}:{int(item.redrive_count or 0)}"), "type": kind,
                   "created_at": now_iso(), "data": self.executions.detail(item)}
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json"}
        if item.callback.get("secret"):
            headers[HEADER] = sign(item.callback["secret"], body)
        attempt = int(message.get("attempt", 1))
        try:
            response = outbound.send("POST", item.callback["url"], headers=headers, data=body, timeout=10.0,
                                     allow_private=self.executions.runtime.settings.allow_private_networks,
                                     max_body_bytes=4096)
            ok, error = 200 <= response.status_code < 300, f"status {response.status_code}"
            final = False
        except outbound.OutboundError as failure:
            ok, error, final = False, f"{failure.code}: {failure.message}", not failure.retryable
        if ok:
            logger.info("callback delivered", extra={"execution_id": item.id, "attempt": attempt})
            return
        if final or attempt > len(RETRY_DELAYS):
            logger.warning("callback abandoned", extra={"execution_id": item.id, "attempt": attempt, "error": error})
            return
        delay = RETRY_DELAYS[attempt - 1]
        logger.info("callback will be retried", extra={"execution_id": item.id, "attempt": attempt, "error": error,
                                                       "delay": delay})
        retry = dict(message, attempt=attempt + 1, not_before=self.clock() + delay)
        self.queue.send([(retry, min(delay, MAX_DELAY))])
