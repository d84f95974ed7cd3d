"""The delivery worker: POSTs execution callbacks and event-webhook deliveries through the
outbound guard, signed `Sluice-Signature` when there is a secret, retried on a non-2xx
answer or none after 30 s, 2 min, 10 min, 30 min, 1 h and 2 h. Every webhook attempt is
logged. Nothing here ever waits inside an execution: the runtime only enqueues."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from chalicelib.logs import logger

RETRY_DELAYS = (30, 120, 600, 1800, 3600, 7200)
MAX_DELAY = 900


def handle(event: Any) -> dict[str, list[dict[str, str]]]:
    from chalicelib.handlers.worker import process_batch
    from chalicelib.wiring import deliveries

    records = event.to_dict()["Records"]
    return process_batch(records, lambda message, deadline: deliveries().deliver(message),
                         event.context.get_remaining_time_in_millis())


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str | None
    final: bool  # not worth retrying (a refused destination)
    duration_ms: int


class Deliveries:
    def __init__(self, executions: Any, webhooks: Any, log: Any, queue: Any, clock=time.time) -> None:
        self.executions = executions  # services.executions.ExecutionService
        self.webhooks = webhooks  # store.webhooks.WebhookRepository
        self.log = log  # store.webhooks.DeliveryLog
        self.queue = queue
        self.clock = clock

    def deliver(self, message: dict[str, Any]) -> None:
        not_before = message.get("not_before")
        if not_before is not None and not_before > self.clock() + 1:
            # Waits longer than SQS's 15-minute delay travel in hops.
            self.queue.send([(message, min(MAX_DELAY, not_before - self.clock()))])
            return
        if message.get("kind") == "webhook":
            self._webhook(message)
        else:
            self._callback(message)

    def _post(self, url: str, payload: dict[str, Any], secret: str | None) -> Attempt:
        from chalicelib import outbound
        from chalicelib.signing import HEADER, sign

        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Sluice-Webhooks/1"}
        if secret:
            headers[HEADER] = sign(secret, body, int(self.clock()))
        started = time.monotonic()
        try:
            response = outbound.send("POST", url, headers=headers, data=body, timeout=10.0,
                                     allow_private=self.executions.runtime.settings.allow_private_networks,
                                     max_body_bytes=4096)
        except outbound.OutboundError as failure:
            return Attempt(False, None, f"{failure.code}: {failure.message}", not failure.retryable,
                           int((time.monotonic() - started) * 1000))
        ok = 200 <= response.status_code < 300
        return Attempt(ok, response.status_code, None if ok else f"status {response.status_code}", False,
                       int((time.monotonic() - started) * 1000))

    def _next(self, message: dict[str, Any], attempt: Attempt) -> float | None:
        """Sends the message again after its next delay; when (epoch) or None (no more)."""
        number = int(message.get("attempt", 1))
        if attempt.ok or attempt.final or number > len(RETRY_DELAYS):
            return None
        delay = RETRY_DELAYS[number - 1]
        at = self.clock() + delay
        self.queue.send([(dict(message, attempt=number + 1, not_before=at), min(delay, MAX_DELAY))])
        return at

    def _callback(self, message: dict[str, Any]) -> None:
        from chalicelib.ids import derived_id, now_iso

        item = self.executions.repository.get(message["a"], message["e"])
        if item is None or not item.callback:
            return
        kind = "execution.completed" if item.status == "succeeded" else "execution.failed"
        payload = {"id": derived_id("evt", f"{item.id}:{kind}:{int(item.redrive_count or 0)}"), "type": kind,
                   "created_at": now_iso(), "data": self.executions.detail(item)}
        attempt = self._post(item.callback["url"], payload, item.callback.get("secret"))
        retry_at = self._next(message, attempt)
        logger.info("callback attempt", extra={"execution_id": item.id, "attempt": message.get("attempt", 1),
                                               "ok": attempt.ok, "error": attempt.error, "retry_at": retry_at})

    def _webhook(self, message: dict[str, Any]) -> None:
        from chalicelib.ids import derived_id, epoch_iso

        account_id, webhook_id, event = message["a"], message["w"], message["event"]
        found = self.webhooks.get(account_id, webhook_id)
        if found is None or not found[0].get("enabled", True):
            return  # deleted or disabled since: nothing more to send
        document, secret = found
        number = int(message.get("attempt", 1))
        if not self.log.claim(account_id, webhook_id, event["id"], number):
            return  # this attempt was made already (a redelivered message)
        payload = {"id": event["id"], "type": event["type"], "created_at": event["time"], "data": event["data"]}
        attempted_at = epoch_iso(self.clock())
        attempt = self._post(document["url"], payload, secret)
        # The next attempt is queued before the log is written: a failed log write must
        # not cost the retries (the redelivered message finds its claim and stops).
        retry_at = self._next(message, attempt)
        self.log.add(account_id, webhook_id, {
            "id": derived_id("dlv", f"{webhook_id}:{event['id']}"), "event_id": event["id"],
            "event_type": event["type"], "attempt": number, "status_code": attempt.status_code,
            "error": attempt.error, "duration_ms": attempt.duration_ms, "attempted_at": attempted_at,
            "succeeded": attempt.ok, "next_attempt_at": epoch_iso(retry_at) if retry_at else None,
        })
