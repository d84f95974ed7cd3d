"""The event router function: EventBridge events (the Sluice bus, S3 notifications) to
event triggers."""

from __future__ import annotations

from typing import Any

from chalicelib.logs import logger


def handle(event: Any) -> dict[str, Any]:
    from chalicelib.wiring import event_service

    raw = event.to_dict() if hasattr(event, "to_dict") else event
    matched, executions = event_service().receive_aws(raw)
    logger.info("eventbridge event handled", extra={"matched": matched, "execution_ids": executions})
    return {"matched_triggers": matched, "execution_ids": executions}
