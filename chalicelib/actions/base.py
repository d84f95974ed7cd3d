"""What an action receives and what it may return besides an output: the suspensions
that let a step wait without holding a worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ActionContext:
    account_id: str
    execution_id: str
    workflow_id: str
    step: str
    attempt: int
    timeout: float                 # seconds this attempt may still take
    allow_private_networks: bool
    now: Callable[[], float]

    @property
    def idempotency_key(self) -> str:
        """The same for every delivery of one attempt, different for the next attempt."""
        return f"{self.execution_id}:{self.step}:{self.attempt}"


@dataclass(frozen=True)
class Sleep:
    """Wake the step (it then succeeds) at `until` (epoch seconds)."""

    until: float


@dataclass(frozen=True)
class AwaitResponse:
    """Wait for a person to approve (with an optional response) or reject."""

    message: str | None = None
    approvers: tuple[str, ...] = ()
    timeout: float | None = None
    schema: Any = None


@dataclass(frozen=True)
class StartChild:
    """Run another workflow as a child execution; its result is this step's output."""

    workflow: str
    parameters: dict[str, Any] = field(default_factory=dict)


Suspension = (Sleep, AwaitResponse, StartChild)
