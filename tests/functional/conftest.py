"""Fixtures for the functional tests: moto with every resource of infra/, the chalice test
client, and a fresh account (with an admin key) for each test."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib.provision import provision


def reset_cached_clients() -> None:
    from pynamodb.models import Model

    from chalicelib.store import models, workflows
    from chalicelib import wiring

    for value in vars(models).values():
        if isinstance(value, type) and issubclass(value, Model) and value is not Model:
            value._connection = None
    workflows._connection.cache_clear()
    for value in vars(wiring).values():
        if hasattr(value, "cache_clear") and value.__module__ == wiring.__name__:
            value.cache_clear()


class MotoGate:
    """Stands in for moto's botocore stubber (a `before-send` handler). DynamoDB applies
    each request atomically, moto does not (an UpdateItem on a new key stores the bare key
    first; a condition is checked before the write, not with it), so DynamoDB requests
    reach moto one at a time, as the local runtime's gate does for moto's server. Tests
    add `faults` (throttling, say) that answer a request before moto sees it: botocore
    keeps the first answer of its `before-send` handlers, so a separate handler could not
    keep a request from moto."""

    def __init__(self, stubber) -> None:
        self.stubber = stubber
        self.lock = threading.Lock()
        self.faults: list = []

    def __call__(self, event_name: str, request, **kwargs):
        if not event_name.startswith("before-send.dynamodb."):
            return self.stubber(event_name=event_name, request=request, **kwargs)
        for fault in list(self.faults):
            answer = fault(event_name=event_name, request=request)
            if answer is not None:
                return answer
        with self.lock:
            return self.stubber(event_name=event_name, request=request, **kwargs)


@pytest.fixture(scope="module")
def moto_gate():
    """The gate in place of moto's entry in botocore's built-in handlers while a module
    runs; cached clients are dropped so that every client is created with it."""
    from botocore import handlers
    from moto.core.models import botocore_stubber

    gate = MotoGate(botocore_stubber)
    original, replacement = ("before-send", botocore_stubber), ("before-send", gate)
    default_session = boto3.DEFAULT_SESSION
    handlers.BUILTIN_HANDLERS[handlers.BUILTIN_HANDLERS.index(original)] = replacement
    boto3.DEFAULT_SESSION = None
    reset_cached_clients()
    try:
        yield gate
    finally:
        handlers.BUILTIN_HANDLERS[handlers.BUILTIN_HANDLERS.index(replacement)] = original
        boto3.DEFAULT_SESSION = default_session
        reset_cached_clients()


@pytest.fixture(scope="module")
def aws(moto_gate):
    """A moto account provisioned from infra/resources.yaml, shared by one test module;
    tests stay apart because each one works in an account of its own."""
    with mock_aws():
        reset_cached_clients()
        yield provision(boto3.session.Session(), "test")
    reset_cached_clients()


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def data(self) -> Any:
        return self.body["data"]

    @property
    def error(self) -> dict[str, Any]:
        return self.body["error"]


class Api:
    """The chalice test client with an API key and JSON in and out."""

    def __init__(self, client: Client, key: str | None) -> None:
        self.client = client
        self.key = key

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | str | None = None,
                headers: dict[str, str] | None = None, key: str | None = None) -> Reply:
        sent = {"Content-Type": "application/json"}
        used_key = key if key is not None else self.key
        if used_key:
            sent["Authorization"] = f"Bearer {used_key}"
        sent.update(headers or {})
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(self.client.http, method.lower())(path, headers=sent, body=payload)
        text = response.body.decode() if isinstance(response.body, bytes) else response.body
        return Reply(response.status_code, json.loads(text) if text else None, dict(response.headers))

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def as_key(self, key: str | None) -> "Api":
        return Api(self.client, key)


@pytest.fixture(scope="module")
def chalice_client(aws):
    from app import app

    with Client(app) as client:
        yield client


@dataclass
class Tenant:
    account_id: str
    key: str
    api: Api


def new_tenant(client: Client, name: str = "tenant") -> Tenant:
    from chalicelib.services.accounts import AccountService

    account, _, raw = AccountService().create_account(name)
    return Tenant(account.id, raw, Api(client, raw))


@pytest.fixture
def tenant(chalice_client) -> Tenant:
    return new_tenant(chalice_client)


@pytest.fixture
def api(tenant) -> Api:
    return tenant.api


@pytest.fixture(scope="module")
def workers(chalice_client, aws):
    """The app's SQS handlers (step worker, delivery worker) polling their queues and the
    event router fed by the buses, on threads, as Lambda's event sources would; the tick
    is driven by each test."""
    from app import app
    from chalicelib.local import bus_rules, event_source_loops

    stop = threading.Event()
    loops = [loop for loop in event_source_loops(app, boto3.client("sqs"), "us-east-1", tick_seconds=3600,
                                                 workers=2, stop=stop, events=boto3.client("events"),
                                                 extra_event_rules=bus_rules(aws)) if loop.name != "tick"]
    for loop in loops:
        loop.start()
    yield loops
    stop.set()
    for loop in loops:
        loop.join(timeout=10)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Polls `predicate` until it returns something truthy; fails the test after `timeout`."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(interval)


def create_workflow(api: Api, definition: dict, **fields) -> dict:
    reply = api.post("/api/v1/workflows", {"name": fields.pop("name", "Flow"), "definition": definition, **fields})
    assert reply.status == 201, reply.body
    return reply.data


def execute(api: Api, workflow: dict, parameters: dict | None = None, **options) -> Reply:
    body = {"parameters": parameters or {}}
    if options:
        body["execution_options"] = options
    return api.post(f"/api/v1/workflows/{workflow['id']}/execute", body)


# -- a local HTTP sink ---------------------------------------------------------------

@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class _SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _route(self):
        sink: Sink = self.server.sink
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route = urlsplit(self.path).path
        status = sink.arrive(Received(self.command, route, dict(self.headers.items()), body))
        payload = json.dumps({"route": route, "status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _route


class Sink:
    """Records every request in arrival order. A route answers the statuses scripted for
    it, one per request, then 200; `/slow/...` answers after `slow_seconds`; `/meet/...`
    answers only once two requests are inside it at the same time (500 if the other one
    never comes)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.scripts: dict[str, list[int]] = {}
        self.slow_seconds = 0.3
        self._meeting = threading.Barrier(2, timeout=5)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _SinkHandler)
        self._server.daemon_threads = True
        self._server.sink = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{route}"

    def arrive(self, request: Received) -> int:
        with self._lock:
            self.received.append(request)
            script = self.scripts.get(request.path)
            status = script.pop(0) if script else 200
        if request.path.startswith("/slow/"):
            time.sleep(self.slow_seconds)
        if request.path.startswith("/meet/"):
            try:
                self._meeting.wait()
            except threading.BrokenBarrierError:
                return 500
        return status

    def to(self, route: str) -> list[Received]:
        return [r for r in self.received if r.path == route]

    def routes(self) -> list[str]:
        return [r.path for r in self.received]


@pytest.fixture
def sink():
    server = Sink()
    server._thread.start()
    yield server
    server._server.shutdown()
    server._server.server_close()
