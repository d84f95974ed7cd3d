"""Test-wide environment: fake AWS credentials and the stage, set before anything imports
the application (its models bind table names on import)."""

import os

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    SLUICE_STAGE="test",
    SLUICE_ALLOW_PRIVATE_NETWORKS="true",
    SLUICE_PAYLOAD_BUCKET="sluice-test-payloads-123456789012-us-east-1",
)
for _name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL") or n in ("AWS_PROFILE", "SLUICE_BOOTSTRAP_KEY", "SLUICE_BOOTSTRAP_KEY_PARAMETER")]:
    del os.environ[_name]
