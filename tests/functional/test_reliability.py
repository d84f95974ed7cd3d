"""The runtime's delivery guarantees (SPEC §7, last bullet; §5 outbound guard): duplicate
deliveries, a worker dying mid-step, throttled writes, concurrency, large outputs. The
step queue is drained by hand through the app's own SQS handler, so that every test
decides when and what is delivered; time moves on a clock the test controls."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib import wiring
from chalicelib.local import SqsDriver
from chalicelib.services.queues import Queue
from chalicelib.store.executions import ExecutionRepository

# -- AWS as the runtime sees it ------------------------------------------------------------


# -- a loopback sink that counts every attempt's Idempotency-Key ----------------------


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        key = self.headers.get("Idempotency-Key", "")
        with self.server.lock:
            self.server.seen[key] += 1
            seen = self.server.seen[key]
        answer = json.dumps({"step": body.get("step"), "doubled": body.get("value", 0) * 2, "seen": seen}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class _SinkServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


@pytest.fixture
def sink():
    server = _SinkServer(("127.0.0.1", 0), _Sink)
    server.lock = threading.Lock()
    server.seen = collections.Counter()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/calls"
    yield server
    server.shutdown()
    server.server_close()


def call(sink, name: str, value: Any, **step: Any) -> dict[str, Any]:
    """A core.http step that POSTs {step, value} to the sink; its body comes back doubled."""
    return {"name": name, "action": "core.http",
            "input": {"method": "POST", "url": sink.url, "json": {"step": name, "value": value}}, **step}


# -- the harness: the app's step worker, driven by hand ---------------------------------


class FakeClock:
    """Wall-clock time plus whatever the test skipped forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance_to(self, moment: float) -> None:
        self.offset += max(0.0, moment - self())


class Inbox:
    """The SQS client the driver polls with: every received message is kept, so that a
    test can drop one as a dead worker would have left it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        answer = self._client.receive_message(**kwargs)
        with self._lock:
            self.received.extend(answer.get("Messages", []))
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class DuplicatingQueue(Queue):
    """Every message the runtime sends arrives twice, as SQS's at-least-once delivery may."""

    def send(self, messages):
        super().send(messages)
        super().send(messages)


class DiesWhileRecording(ExecutionRepository):
    """The worker dies once, right after `step`'s action ran and before its result is written."""

    def __init__(self, step: str) -> None:
        self.dying_step = step
        self.deaths = 0
        self.results_recorded = 0

    def record(self, account_id, execution_id, name, token, fields, *, expect_status=("running",)):
        if name == self.dying_step and token is not None and not self.deaths:
            self.deaths += 1
            raise WorkerDied(f"the worker died before recording {name}")
        written = super().record(account_id, execution_id, name, token, fields, expect_status=expect_status)
        if written and name == self.dying_step and fields.get("status") in ("succeeded", "failed"):
            self.results_recorded += 1
        return written


class WorkerDied(Exception):
    pass


@dataclass
class Harness:
    api: Any
    account_id: str
    clock: FakeClock
    inbox: Inbox
    driver: SqsDriver
    patched: list = field(default_factory=list)

    @property
    def runtime(self):
        return wiring.runtime()

    def install(self, **attributes: Any) -> None:
        """Replaces attributes of the runtime under test (restored after the test)."""
        runtime = self.runtime
        for name, value in attributes.items():
            self.patched.append((runtime, name, getattr(runtime, name)))
            setattr(runtime, name, value)

    def restore(self) -> None:
        for runtime, name, value in reversed(self.patched):
            setattr(runtime, name, value)
        self.patched.clear()

    def create(self, definition: dict[str, Any], **fields: Any) -> dict[str, Any]:
        reply = self.api.post("/api/v1/workflows", {"name": fields.pop("name", "Flow"), "definition": definition,
                                                    **fields})
        assert reply.status == 201, reply.body
        return reply.data

    def start(self, workflow: dict[str, Any], parameters: dict[str, Any] | None = None) -> str:
        view = wiring.execution_service().execute_async(self.account_id, workflow["id"],
                                                        {"parameters": parameters or {}})
        assert view["status"] == "queued", view
        return view["id"]

    def drain(self, polls: int = 2000) -> int:
        """Delivers step messages until none is visible; returns how many were received."""
        received = 0
        for _ in range(polls):
            count = self.driver.poll_once(wait_seconds=0)
            if count == 0:
                return received
            received += count
        raise AssertionError("the step queue never emptied")

    def discard(self) -> None:
        """Deletes every visible step message unprocessed."""
        while True:
            messages = self.inbox.receive_message(QueueUrl=self.driver.queue_url, MaxNumberOfMessages=10,
                                                  WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                return
            self.inbox.delete_message_batch(QueueUrl=self.driver.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])

    def queue_depth(self) -> dict[str, int]:
        attributes = self.inbox.get_queue_attributes(QueueUrl=self.driver.queue_url, AttributeNames=["All"])
        a = attributes["Attributes"]
        return {"visible": int(a["ApproximateNumberOfMessages"]),
                "in_flight": int(a["ApproximateNumberOfMessagesNotVisible"]),
                "delayed": int(a["ApproximateNumberOfMessagesDelayed"])}

    def execution(self, execution_id: str) -> dict[str, Any]:
        return wiring.execution_service().get(self.account_id, execution_id)

    def step_item(self, execution_id: str, name: str):
        return self.runtime.executions.step(self.account_id, execution_id, name)


def _harness(chalice_client, tenant) -> Harness:
    from app import app

    config = next(c for c in app.event_sources if c.name == "step_worker")
    inbox = Inbox(wiring.aws_client("sqs"))
    harness = Harness(tenant.api, tenant.account_id, FakeClock(), inbox, SqsDriver(app, config, inbox, "us-east-1"))
    harness.install(clock=harness.clock)
    return harness


@pytest.fixture
def sluice(chalice_client, tenant):
    harness = _harness(chalice_client, tenant)
    harness.discard()  # nothing left by an earlier test
    yield harness
    harness.restore()


def outcome(view: dict[str, Any]) -> tuple:
    """What must not depend on how often messages were delivered."""
    steps = [(s["name"], s["status"], s["attempts"], len(s["attempt_log"]),
              s["output"]["body"] if isinstance(s["output"], dict) and "body" in s["output"] else s["output"])
             for s in view["steps"]]
    return view["status"], view["result"], view["error"], steps


# -- 1. every message delivered twice -------------------------------------------------------

def _sequential(sink) -> dict[str, Any]:
    return {"steps": [
        call(sink, "reserve", "{{ params.n }}"),
        call(sink, "charge", "{{ reserve.output.body.doubled + 1 }}"),
        call(sink, "confirm", "{{ charge.output.body.doubled + 1 }}"),
    ], "output": {"reserve": "{{ steps.reserve.output.body }}", "charge": "{{ steps.charge.output.body }}",
                  "confirm": "{{ steps.confirm.output.body }}"}}


def _fan_out_fan_in(sink) -> dict[str, Any]:
    return {"steps": [
        call(sink, "begin", "{{ params.n }}"),
        call(sink, "left", "{{ begin.output.body.doubled + 1 }}", depends_on=["begin"]),
        call(sink, "middle", "{{ begin.output.body.doubled + 2 }}", depends_on=["begin"]),
        call(sink, "right", "{{ begin.output.body.doubled + 3 }}", depends_on=["begin"]),
        call(sink, "merge", "{{ left.output.body.doubled + middle.output.body.doubled + right.output.body.doubled }}",
             depends_on=["left", "middle", "right"]),
    ], "output": {"total": "{{ steps.merge.output.body.doubled }}"}}


def test_every_message_delivered_twice_runs_each_attempt_once(sluice, sink):
    sequential = sluice.create(_sequential(sink), name="Sequential")
    fan = sluice.create(_fan_out_fan_in(sink), name="Fan")

    def run_both() -> dict[str, dict[str, Any]]:
        ids = {"sequential": sluice.start(sequential, {"n": 5}), "fan": sluice.start(fan, {"n": 5})}
        sluice.drain()
        return {kind: sluice.execution(execution_id) for kind, execution_id in ids.items()}

    baseline = run_both()
    assert baseline["sequential"]["result"] == {
        "reserve": {"step": "reserve", "doubled": 10, "seen": 1},
        "charge": {"step": "charge", "doubled": 22, "seen": 1},
        "confirm": {"step": "confirm", "doubled": 46, "seen": 1},
    }
    assert baseline["fan"]["result"] == {"total": 2 * (22 + 24 + 26)}

    queue = DuplicatingQueue(wiring.aws_client("sqs"), wiring.runtime().step_queue.name)
    sluice.install(step_queue=queue)
    sluice.inbox.received.clear()
    doubled = run_both()

    bodies = collections.Counter(m["Body"] for m in sluice.inbox.received)
    assert bodies and all(count >= 2 and count % 2 == 0 for count in bodies.values()), bodies
    for kind, view in doubled.items():
        assert outcome(view) == outcome(baseline[kind]), kind
        assert view["status"] == "succeeded"
        for step in view["steps"]:
            assert (step["status"], step["attempts"], len(step["attempt_log"])) == ("succeeded", 1, 1), step
            assert sink.seen[f"{view['id']}:{step['name']}:1"] == 1, step["name"]
    ran = [key for key in sink.seen if key.startswith((doubled["sequential"]["id"], doubled["fan"]["id"]))]
    assert len(ran) == 3 + 5  # no key for a second attempt, nothing but these steps
    assert sluice.queue_depth() == {"visible": 0, "in_flight": 0, "delayed": 0}


# -- 2. a worker dies between the action and its record --------------------------------------

def test_a_step_whose_worker_died_is_redriven_after_its_lease(sluice, sink):
    from chalicelib.services.runtime import LEASE_GRACE

    workflow = sluice.create({"steps": [
        call(sink, "reserve", "{{ params.n }}"),
        call(sink, "charge", "{{ reserve.output.body.doubled + 1 }}", timeout=5, retry={"max_attempts": 3}),
        call(sink, "confirm", "{{ charge.output.body.doubled + 1 }}"),
    ], "output": {"charge": "{{ steps.charge.output.body }}", "confirm": "{{ steps.confirm.output.body.doubled }}"}})
    repository = DiesWhileRecording("charge")
    sluice.install(executions=repository)
    execution_id = sluice.start(workflow, {"n": 5})
    key = f"{execution_id}:charge:1"

    sluice.inbox.received.clear()
    assert sluice.driver.poll_once(wait_seconds=0) == 1
    assert repository.deaths == 1 and sink.seen[key] == 1
    assert sluice.queue_depth()["in_flight"] == 1  # reported failed: SQS would bring it back much later
    dead = sluice.inbox.received[-1]
    sluice.inbox.delete_message(QueueUrl=sluice.driver.queue_url, ReceiptHandle=dead["ReceiptHandle"])
    assert sluice.queue_depth() == {"visible": 0, "in_flight": 0, "delayed": 0}

    held = sluice.step_item(execution_id, "charge")
    assert (held.status, int(held.attempt)) == ("running", 1)
    assert held.lease_until - held.attempt_started_at == pytest.approx(5 + LEASE_GRACE)
    execution = sluice.runtime.executions.get(sluice.account_id, execution_id)
    assert execution.status == "running" and execution.due_at >= held.lease_until

    # Before the lease ends nothing is re-driven: the worker might only be slow.
    sluice.runtime.tick(until=time.monotonic() + 30)
    sluice.drain()
    assert sink.seen[key] == 1 and sluice.step_item(execution_id, "charge").status == "running"

    sluice.clock.advance_to(max(held.lease_until, execution.due_at) + 1)
    due = list(sluice.runtime.executions.due(sluice.clock()))
    assert (sluice.account_id, execution_id) in due
    assert sluice.runtime.tick(until=time.monotonic() + 30) >= 1
    sluice.drain()

    view = sluice.execution(execution_id)
    assert (view["status"], view["error"]) == ("succeeded", None)
    assert view["result"] == {"charge": {"step": "charge", "doubled": 22, "seen": 2}, "confirm": 46}
    steps = {s["name"]: s for s in view["steps"]}
    assert [(s["name"], s["status"], s["attempts"]) for s in view["steps"]] == [
        ("reserve", "succeeded", 1), ("charge", "succeeded", 1), ("confirm", "succeeded", 1)]
    assert [(e["attempt"], e["status"]) for e in steps["charge"]["attempt_log"]] == [(1, "succeeded")]
    assert sink.seen[key] == 2  # at least once: the same attempt ran again, with the same key
    assert (sink.seen[f"{execution_id}:reserve:1"], sink.seen[f"{execution_id}:confirm:1"]) == (1, 1)
    assert f"{execution_id}:charge:2" not in sink.seen
    assert repository.results_recorded == 1  # ...and its result was recorded once


# -- 3. throttled DynamoDB writes ---------------------------------------------------------------

_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs):
        yield self._body


class Throttle:
    """Answers a share of DynamoDB writes with the 400 DynamoDB gives when a table's
    throughput is exceeded; a throttled request never reaches the table."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.writes = collections.Counter()
        self.throttled = collections.Counter()

    def __call__(self, request, event_name, **kwargs):
        from botocore.awsrequest import AWSResponse

        operation = event_name.rsplit(".", 1)[-1]
        if operation not in _WRITES:
            return None
        with self.lock:
            self.writes[operation] += 1
            if self.random.random() >= self.rate:
                return None
            self.throttled[operation] += 1
        body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                           "message": "The level of configured provisioned throughput for the table was exceeded."})
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "throttled"}
        return AWSResponse(request.url, 400, headers, _Raw(body.encode()))


@contextlib.contextmanager
def throttled_writes(gate, rate: float, seed: int):
    throttle = Throttle(rate, seed)
    gate.faults.append(throttle)
    try:
        yield throttle
    finally:
        gate.faults.remove(throttle)


def test_throttled_writes_lose_no_execution(chalice_client, tenant, moto_gate):
    # Created before the throttling starts: this test is about running, not about creating.
    definition = {"steps": [
        {"name": "take", "action": "core.echo", "input": {"n": "{{ params.n }}"}},
        {"name": "double", "action": "core.transform", "input": {"data": "{{ take.output.n * 2 }}"}},
        {"name": "inc", "action": "core.transform", "input": {"data": "{{ double.output + 1 }}"}},
        {"name": "square", "action": "core.transform", "input": {"data": "{{ inc.output * inc.output }}"}},
        {"name": "wrap", "action": "core.echo", "input": {"n": "{{ params.n }}", "value": "{{ square.output }}"}},
    ]}
    reply = tenant.api.post("/api/v1/workflows", {"name": "Throttled", "definition": definition})
    assert reply.status == 201, reply.body
    workflow = reply.data

    with throttled_writes(moto_gate, rate=0.10, seed=20240611) as throttle:
        harness = _harness(chalice_client, tenant)
        try:
            ids = {n: harness.start(workflow, {"n": n}) for n in range(10)}
            harness.drain()
            views = {n: harness.execution(execution_id) for n, execution_id in ids.items()}
        finally:
            harness.restore()

    assert sum(throttle.throttled.values()) > 0, throttle.writes  # the clients in use were throttled
    for n, view in views.items():
        assert (view["status"], view["error"]) == ("succeeded", None), (n, view["error"])
        assert view["result"] == {"n": n, "value": (2 * n + 1) ** 2}
        assert [(s["status"], s["attempts"], len(s["attempt_log"])) for s in view["steps"]] == [
            ("succeeded", 1, 1)] * 5


# -- 4. many executions of a wide fan-out at once --------------------------------------------

BRANCHES = [f"p{i:02d}" for i in range(1, 21)]
# 50 executions, as the requirement states, take ~3.5 minutes in in-process moto (every
# DynamoDB request passes its gate one at a time, and a branch reads every step item of
# its execution twice); SLUICE_RELIABILITY_EXECUTIONS=10 gives a quick local run.
EXECUTIONS = int(os.environ.get("SLUICE_RELIABILITY_EXECUTIONS", "50"))


def test_concurrent_executions_of_a_wide_fan_out_run_each_step_once(sluice, sink):
    workflow = sluice.create({"steps": [
        call(sink, "begin", "{{ params.n }}"),
        *[call(sink, name, "{{ begin.output.body.doubled + %d }}" % i, depends_on=["begin"])
          for i, name in enumerate(BRANCHES, 1)],
        call(sink, "join", "{{ " + " + ".join(f"{name}.output.body.doubled" for name in BRANCHES) + " }}",
             depends_on=BRANCHES),
    ], "output": {"total": "{{ steps.join.output.body.doubled }}"}}, name="Wide")

    with ThreadPoolExecutor(max_workers=EXECUTIONS) as pool:
        ids = dict(zip(range(EXECUTIONS), pool.map(lambda n: sluice.start(workflow, {"n": n}), range(EXECUTIONS))))

    stop = threading.Event()

    def poll() -> None:
        # As Lambda's poller does, an error receiving (moto's in-process SQS is not
        # thread-safe) is followed by the next poll, not by the end of the poller.
        while not stop.is_set():
            try:
                received = sluice.driver.poll_once(wait_seconds=0)
            except Exception:
                received = 0
            if received == 0:
                stop.wait(0.02)

    pollers = [threading.Thread(target=poll, daemon=True) for _ in range(4)]
    for poller in pollers:
        poller.start()
    repository = sluice.runtime.executions
    deadline = time.monotonic() + 20 + 4 * EXECUTIONS
    try:
        while time.monotonic() < deadline:
            statuses = [repository.get(sluice.account_id, e).status for e in ids.values()]
            if all(s in ("succeeded", "failed", "cancelled", "timed_out") for s in statuses):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for poller in pollers:
            poller.join(timeout=30)

    for n, execution_id in ids.items():
        view = sluice.execution(execution_id)
        assert (view["status"], view["error"]) == ("succeeded", None), (n, view["status"], view["error"])
        branch_sum = sum(2 * (2 * n + i) for i in range(1, 21))
        assert view["result"] == {"total": 2 * branch_sum}
        steps = {s["name"]: s for s in view["steps"]}
        assert (steps["join"]["attempts"], len(steps["join"]["attempt_log"])) == (1, 1)
        assert all((s["status"], s["attempts"], len(s["attempt_log"])) == ("succeeded", 1, 1)
                   for s in view["steps"]), [(s["name"], s["status"], s["attempts"]) for s in view["steps"]]
        counts = {name: sink.seen[f"{execution_id}:{name}:1"] for name in ["begin", *BRANCHES, "join"]}
        assert counts == dict.fromkeys(counts, 1), counts
    assert len(sink.seen) == EXECUTIONS * 22


# -- 5. a large output -----------------------------------------------------------------------

def test_a_100_kb_output_is_kept_in_the_payload_bucket_and_read_back(sluice):
    from chalicelib.config import get_settings

    blob = "".join(random.Random(5).choice("abcdefghij") for _ in range(100 * 1024))
    workflow = sluice.create({"steps": [
        {"name": "make", "action": "core.echo", "input": {"blob": "{{ params.blob }}"}},
        {"name": "measure", "action": "core.transform", "input": {"data": "{{ make.output.blob | length }}"}},
    ], "output": {"blob": "{{ steps.make.output.blob }}", "length": "{{ steps.measure.output }}"}})
    execution_id = sluice.start(workflow, {"blob": blob})
    sluice.drain()

    item = sluice.step_item(execution_id, "make")
    assert item.output is None
    assert item.output_ref == f"executions/{sluice.account_id}/{execution_id}/make/output.json"
    stored = wiring.aws_client("s3").get_object(Bucket=get_settings().payload_bucket, Key=item.output_ref)
    assert json.loads(stored["Body"].read()) == {"blob": blob}

    reply = sluice.api.get(f"/api/v1/executions/{execution_id}")
    assert reply.status == 200
    view = reply.data
    assert view["status"] == "succeeded"
    assert view["result"] == {"blob": blob, "length": 100 * 1024}
    steps = {s["name"]: s for s in view["steps"]}
    assert steps["make"]["output"] == {"blob": blob} and steps["make"]["input"] == {"blob": blob}
    assert steps["measure"]["output"] == 100 * 1024


# -- 6. the outbound guard at the step level -------------------------------------------------

@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/"])
def test_link_local_destinations_fail_at_once_without_retry(sluice, sink, url):
    assert sluice.runtime.settings.allow_private_networks  # loopback is allowed here...
    workflow = sluice.create({"steps": [
        call(sink, "loopback", 1),
        {"name": "metadata", "action": "core.http", "input": {"url": url},
         "retry": {"max_attempts": 3, "initial_interval": 1}},
    ]})
    # Messages an earlier test's pollers still hold stay in flight until their visibility
    # timeout; a retry of this execution would be visible or delayed, never in flight.
    held_before = sluice.queue_depth()["in_flight"]
    execution_id = sluice.start(workflow)
    sluice.drain()

    view = sluice.execution(execution_id)
    assert view["status"] == "failed"
    assert view["error"]["code"] == "BLOCKED_DESTINATION" and view["error"]["step"] == "metadata"
    assert "link-local" in view["error"]["message"]
    steps = {s["name"]: s for s in view["steps"]}
    assert steps["loopback"]["status"] == "succeeded"  # ...link-local never is
    metadata = steps["metadata"]
    assert (metadata["status"], metadata["attempts"]) == ("failed", 1)
    assert [(e["attempt"], e["status"], e["error"]["code"]) for e in metadata["attempt_log"]] == [
        (1, "failed", "BLOCKED_DESTINATION")]
    assert metadata["duration_ms"] < 1000
    assert sluice.queue_depth() == {"visible": 0, "in_flight": held_before, "delayed": 0}  # no retry waiting
