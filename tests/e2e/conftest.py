"""Starts the real local runtime (`python -m chalicelib.local`, what `make run` runs) in a
subprocess on free ports, and stops it with Ctrl-C (SIGINT) at the end."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import requests

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]
API_KEY = "slk_e2e-operator-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Runtime:
    process: subprocess.Popen
    base_url: str
    aws_url: str
    api_key: str


def start_runtime(api_key: str = API_KEY, timeout: float = 60.0) -> Runtime:
    port, aws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLUICE_"))}
    env.update(SLUICE_PORT=str(port), SLUICE_AWS_PORT=str(aws_port), SLUICE_LOCAL_API_KEY=api_key,
               SLUICE_TICK_SECONDS="1", PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "chalicelib.local"], cwd=PROJECT_DIR, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the local runtime exited early:\n" + process.stdout.read())
        try:
            if requests.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                return Runtime(process, base, f"http://127.0.0.1:{aws_port}", api_key)
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the local runtime did not answer within %s s:\n%s" % (timeout, process.stdout.read()))


def stop_runtime(runtime: Runtime, timeout: float = 20.0) -> tuple[int, str]:
    runtime.process.send_signal(signal.SIGINT)
    try:
        output, _ = runtime.process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        runtime.process.kill()
        output, _ = runtime.process.communicate()
        return -9, output
    return runtime.process.returncode, output


@pytest.fixture(scope="module")
def runtime():
    started = start_runtime()
    yield started
    if started.process.poll() is None:
        stop_runtime(started)


@pytest.fixture
def http(runtime):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {runtime.api_key}"
    yield session
    session.close()
