"""Settings read once from the environment."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    payload_bucket: str
    event_bus: str
    allow_private_networks: bool
    # The deployment's first operator key: its raw value comes from the environment
    # (the local runtime) or from an SSM SecureString parameter (AWS).
    bootstrap_key: str | None
    bootstrap_key_parameter: str | None
    bootstrap_account_name: str
    email_from: str | None  # email.send's default sender (an SES-verified identity)
    actions_role_arn: str | None  # the role aws.* actions assume when a step names none

    def table_name(self, suffix: str) -> str:
        return f"sluice-{self.stage}-{suffix}"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings are read on first use, not at import: chalice's test client and the
    local runtime both set the environment after the code is imported."""
    stage = os.environ.get("SLUICE_STAGE", "dev")
    return Settings(
        stage=stage,
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        payload_bucket=os.environ.get("SLUICE_PAYLOAD_BUCKET", ""),
        event_bus=os.environ.get("SLUICE_EVENT_BUS", f"sluice-{stage}"),
        allow_private_networks=_flag("SLUICE_ALLOW_PRIVATE_NETWORKS", False),
        bootstrap_key=os.environ.get("SLUICE_BOOTSTRAP_KEY") or None,
        bootstrap_key_parameter=os.environ.get("SLUICE_BOOTSTRAP_KEY_PARAMETER") or None,
        bootstrap_account_name=os.environ.get("SLUICE_BOOTSTRAP_ACCOUNT", "local"),
        email_from=os.environ.get("SLUICE_EMAIL_FROM") or None,
        actions_role_arn=os.environ.get("SLUICE_ACTIONS_ROLE_ARN") or None,
    )
