"""The SQS queues the runtime sends to: step messages (one per step attempt, batched) and
deliveries. A delay longer than SQS allows is carried in the message and re-delayed."""

from __future__ import annotations

import json
from typing import Any

MAX_DELAY = 900  # SQS DelaySeconds limit


class Queue:
    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self.name = name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self._client.get_queue_url(QueueName=self.name)["QueueUrl"]
        return self._url

    def send(self, messages: list[tuple[dict[str, Any], float]]) -> None:
        """Sends (body, delay seconds) pairs, ten to a request. A delay is capped at 15
        minutes: longer waits are the caller's timers."""
        for start in range(0, len(messages), 10):
            chunk = messages[start:start + 10]
            entries = [
                {"Id": str(i), "MessageBody": json.dumps(body, separators=(",", ":")),
                 "DelaySeconds": max(0, min(MAX_DELAY, int(round(delay))))}
                for i, (body, delay) in enumerate(chunk)
            ]
            if len(entries) == 1:
                entry = entries[0]
                self._client.send_message(QueueUrl=self.url, MessageBody=entry["MessageBody"],
                                          DelaySeconds=entry["DelaySeconds"])
                continue
            response = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
            if response.get("Failed"):
                failed = response["Failed"][0]
                raise RuntimeError(f"SQS refused a message: {failed.get('Code')} {failed.get('Message')}")
