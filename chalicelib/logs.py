"""Structured JSON logging for every function (powertools Logger)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

# service is given explicitly: chalice's test client sets environment variables too late.
logger = Logger(service="sluice")
