"""The error classes of the API, each with its HTTP status and error code (SPEC §1)."""

from __future__ import annotations

from typing import Any


def detail(field: str, message: str) -> dict[str, str]:
    """One entry of an error's `details`: the offending field and what is wrong with it."""
    return {"field": field, "message": message}


class SluiceError(Exception):
    status_code = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details or [])

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationError(SluiceError):
    status_code = 400
    code = "VALIDATION_ERROR"

    @classmethod
    def for_field(cls, field: str, message: str) -> "ValidationError":
        return cls(f"{field}: {message}", [detail(field, message)])


class InvalidWorkflowConfigError(SluiceError):
    status_code = 400
    code = "INVALID_WORKFLOW_CONFIG"


class InvalidParametersError(SluiceError):
    status_code = 400
    code = "INVALID_PARAMETERS"


class InvalidScheduleError(SluiceError):
    status_code = 400
    code = "INVALID_SCHEDULE"


class UnauthorizedError(SluiceError):
    status_code = 401
    code = "UNAUTHORIZED"


class ForbiddenError(SluiceError):
    status_code = 403
    code = "FORBIDDEN"


class NotFoundError(SluiceError):
    status_code = 404
    code = "NOT_FOUND"


class WorkflowNotFoundError(NotFoundError):
    code = "WORKFLOW_NOT_FOUND"

    def __init__(self, id_or_ref: str) -> None:
        super().__init__(f"workflow '{id_or_ref}' not found")


class ExecutionNotFoundError(NotFoundError):
    code = "EXECUTION_NOT_FOUND"


class ScheduleNotFoundError(NotFoundError):
    code = "SCHEDULE_NOT_FOUND"


class ConflictError(SluiceError):
    status_code = 409
    code = "CONFLICT"


class IntegrationMissingError(SluiceError):
    status_code = 409
    code = "INTEGRATION_MISSING"


class InvalidStateError(SluiceError):
    status_code = 409
    code = "INVALID_STATE"


class PayloadTooLargeError(SluiceError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class ParameterValidationError(SluiceError):
    status_code = 422
    code = "PARAMETER_VALIDATION_ERROR"


class RateLimitExceededError(SluiceError):
    status_code = 429
    code = "RATE_LIMIT_EXCEEDED"


class InternalError(SluiceError):
    status_code = 500
    code = "INTERNAL_ERROR"


class WorkflowExecutionError(SluiceError):
    status_code = 500
    code = "WORKFLOW_EXECUTION_ERROR"


class ExecutionTimeoutError(SluiceError):
    status_code = 504
    code = "EXECUTION_TIMEOUT"
