"""The minute tick: everything that happens because time passed (timers, deadlines,
re-driving the work of dead workers)."""

from __future__ import annotations

import time
from typing import Any

from chalicelib.logs import logger

BUDGET_SECONDS = 50.0  # the rule fires every minute: finish before the next one


def handle(event: Any) -> dict[str, int]:
    from chalicelib.wiring import runtime, schedules

    until = time.monotonic() + BUDGET_SECONDS
    fired = schedules().fire_due(until=until)
    reconciled = runtime().tick(until=until)
    logger.info("tick", extra={"fired": fired, "reconciled": reconciled})
    return {"fired": fired, "reconciled": reconciled}
