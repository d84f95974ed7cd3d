"""What every in-process benchmark does before it imports Sluice: fake credentials, a
`bench` stage, and no endpoint that could send a request anywhere but to moto."""

from __future__ import annotations

import os
import pathlib
import sys

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[1]


def prepare(**settings: str) -> None:
    sys.path.insert(0, str(PROJECT_DIR))
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1", SLUICE_STAGE="bench",
        SLUICE_PAYLOAD_BUCKET="sluice-bench-payloads-123456789012-us-east-1", **settings,
    )
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]
