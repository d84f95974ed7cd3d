"""Builds the services once per cold start; the one place that wires them together."""

from __future__ import annotations

import functools

from chalicelib.services.accounts import AccountService
from chalicelib.services.workflows import WorkflowService


@functools.lru_cache(maxsize=1)
def account_service() -> AccountService:
    return AccountService()


@functools.lru_cache(maxsize=1)
def workflow_service() -> WorkflowService:
    return WorkflowService()
