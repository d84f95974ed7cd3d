"""The error an action raises to fail its step: a step error code, and whether a retry may help."""

from __future__ import annotations

from typing import Any


class ActionError(Exception):
    def __init__(self, code: str, message: str, *, retryable: bool = False,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.details = details if details is not None else {}

    def __repr__(self) -> str:
        return f"ActionError({self.code!r}, {self.message!r}, retryable={self.retryable})"
