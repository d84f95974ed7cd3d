"""Sequential keep-alive requests per second against the local runtime, for
GET /api/v1/health and for GET /api/v1/workflows with 100 stored workflows.

    .venv/bin/python bench/api_local.py              # starts its own runtime
    .venv/bin/python bench/api_local.py --url http://127.0.0.1:8000 --key slk_...

Targets: at least 500 requests/s for health and 100/s for the list.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[1]
TARGETS = {"health": 500, "list (100 workflows)": 100}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_runtime(key: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLUICE_"))}
    env.update(SLUICE_PORT=str(port), SLUICE_AWS_PORT=str(free_port()), SLUICE_LOCAL_API_KEY=key)
    process = subprocess.Popen([sys.executable, "-m", "chalicelib.local"], cwd=PROJECT_DIR, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/api/v1/health")
            if connection.getresponse().status == 200:
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the local runtime did not start")


class Client:
    """One keep-alive connection, requests sent one after another."""

    def __init__(self, url: str, key: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        self.connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()


def rate(client: Client, path: str, seconds: float) -> tuple[float, int]:
    for _ in range(20):  # warm-up
        client.call("GET", path)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        status, _ = client.call("GET", path)
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}")
        count += 1
    elapsed = time.perf_counter() - started
    return count / elapsed, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--key", default="slk_bench-operator-key")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    process = None
    url = args.url
    if url is None:
        process, url = start_runtime(args.key)
    try:
        client = Client(url, args.key)
        # A fresh account per run, so that the list holds exactly 100 workflows.
        status, body = client.call("POST", "/api/v1/accounts", {"name": f"bench-{int(time.time())}"})
        if status != 201:
            raise SystemExit(f"could not create the bench account ({status}): {body!r}")
        client = Client(url, json.loads(body)["data"]["api_key"]["key"])
        for i in range(100):
            status, body = client.call("POST", "/api/v1/workflows", {
                "name": f"Bench workflow {i}", "tags": ["bench", f"t{i % 5}"], "description": "a stored workflow",
                "definition": {"steps": [{"name": "echo", "action": "core.echo", "input": {"n": "{{ params.n }}"}}]},
            })
            assert status == 201, body
        results = {
            "health": rate(client, "/api/v1/health", args.seconds),
            "list (100 workflows)": rate(client, "/api/v1/workflows", args.seconds),
        }
        print(f"{'endpoint':<24}{'requests/s':>12}{'requests':>10}{'target':>9}  verdict")
        for name, (per_second, count) in results.items():
            target = TARGETS[name]
            verdict = "meets" if per_second >= target else "BELOW"
            print(f"{name:<24}{per_second:>12.1f}{count:>10}{target:>9}  {verdict}")
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
