"""The local runtime (`make run`): moto's server with every resource of infra/, the API on
chalice's local server, and the app's event handlers driven in-process: each SQS handler
polls its queue, each schedule handler is the tick. Same handlers as in AWS."""

from __future__ import annotations

import logging
import os
import pathlib
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent
LOCAL_STAGE = "local"
FAKE_ACCOUNT = "123456789012"  # moto's account


@dataclass(frozen=True)
class LocalSettings:
    host: str
    port: int
    aws_port: int
    tick_seconds: float
    workers: int
    api_key: str | None

    @classmethod
    def from_environment(cls) -> "LocalSettings":
        return cls(
            host=os.environ.get("SLUICE_HOST", "127.0.0.1"),
            port=int(os.environ.get("SLUICE_PORT", "8000")),
            aws_port=int(os.environ.get("SLUICE_AWS_PORT", "5005")),
            tick_seconds=float(os.environ.get("SLUICE_TICK_SECONDS", "60")),
            workers=int(os.environ.get("SLUICE_WORKERS", "4")),
            api_key=os.environ.get("SLUICE_LOCAL_API_KEY") or None,
        )


def _point_aws_at(endpoint: str) -> None:
    """Every boto3 and PynamoDB client of this process talks to moto's server."""
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])


def _stage_config(stage: str):
    from chalice.cli.factory import CLIFactory

    factory = CLIFactory(str(PROJECT_DIR), environ=os.environ)
    return factory.create_config_obj(chalice_stage_name=stage)


# -- the event-source drivers -------------------------------------------------------

class _Loop(threading.Thread):
    """Runs `step` until stopped; an exception is logged and the loop goes on, as Lambda
    would invoke the next event."""

    def __init__(self, name: str, step: Callable[[], None], pause: float, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._step, self._pause, self._stopping = step, pause, stop

    def run(self) -> None:
        log = logging.getLogger("sluice.local")
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception:
                log.exception("%s failed", self.name)
            self._stopping.wait(self._pause)


def _context(name: str, timeout_ms: int = 900_000):
    from chalice.local import LambdaContext

    return LambdaContext(function_name=name, memory_size=512, max_runtime_ms=timeout_ms)


def scheduled_event(rule: str, region: str, when: float | None = None) -> dict[str, Any]:
    """The event EventBridge sends a scheduled rule's target."""
    moment = time.gmtime(when if when is not None else time.time())
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": FAKE_ACCOUNT, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", moment), "region": region,
        "resources": [f"arn:aws:events:{region}:{FAKE_ACCOUNT}:rule/{rule}"], "detail": {},
    }


class SqsDriver:
    """What Lambda's SQS event source mapping does: receive a batch, invoke the handler,
    delete what it handled; a raised error or a reported `batchItemFailures` entry leaves
    the message to come back after its visibility timeout."""

    def __init__(self, app: Any, config: Any, sqs: Any, region: str) -> None:
        self.handler = app.handler_map[config.name]
        self.name = config.name
        self.batch_size = min(config.batch_size, 10)
        self.sqs = sqs
        self.region = region
        self.queue_url = sqs.get_queue_url(QueueName=config.queue)["QueueUrl"]
        self.queue_arn = f"arn:aws:sqs:{region}:{FAKE_ACCOUNT}:{config.queue}"

    def poll_once(self, wait_seconds: int = 1) -> int:
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return 0
        event = {"Records": [self._record(message) for message in received]}
        try:
            response = self.handler(event, _context(self.name))
        except Exception:
            logging.getLogger("sluice.local").exception("%s raised: the whole batch returns to the queue", self.name)
            return len(received)
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])} if isinstance(response, dict) else set()
        done = [m for m in received if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        return len(received)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": message.get("Attributes", {}), "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }


class ScheduleDriver:
    def __init__(self, app: Any, config: Any, region: str) -> None:
        self.handler = app.handler_map[config.name]
        self.name = config.name
        self.region = region

    def fire(self) -> None:
        self.handler(scheduled_event(self.name, self.region), _context(self.name))


class EventDriver:
    """What EventBridge does for an `on_cw_event` handler: its rule on the default bus
    (where S3 sends its notifications), plus the extra rules that infra/ gives the same
    function on other buses, deliver to a queue this driver drains into the handler.
    (moto delivers `put_events` to SQS targets, not to functions.)"""

    def __init__(self, app: Any, config: Any, sqs: Any, events: Any, region: str,
                 extra_rules: list[tuple[str, dict[str, Any]]]) -> None:
        import json

        self.handler = app.handler_map[config.name]
        self.name = config.name
        self.sqs = sqs
        queue = f"local-events-{config.name}"
        self.queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
        arn = f"arn:aws:sqs:{region}:{FAKE_ACCOUNT}:{queue}"
        for i, (bus, pattern) in enumerate([("default", config.event_pattern)] + extra_rules):
            rule = f"local-{config.name}-{i}"
            events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "local", "Arn": arn}])

    def poll_once(self, wait_seconds: int = 1) -> int:
        import json

        received = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                            WaitTimeSeconds=wait_seconds).get("Messages", [])
        for message in received:
            event = json.loads(message["Body"])
            event.setdefault("account", FAKE_ACCOUNT)  # EventBridge sends it; moto leaves it out
            try:
                self.handler(event, _context(self.name))
            except Exception:
                # Lambda retries an asynchronous event twice, then drops it.
                logging.getLogger("sluice.local").exception("%s raised", self.name)
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(received)


def event_source_loops(app: Any, sqs: Any, region: str, *, tick_seconds: float, workers: int,
                       stop: threading.Event, events: Any = None,
                       extra_event_rules: list[tuple[str, dict[str, Any]]] = ()) -> list[_Loop]:
    """A loop for every event source the app declares. A kind without a local driver is
    an error, so that nothing the app relies on silently never runs locally."""
    from chalice.app import CloudWatchEventConfig, ScheduledEventConfig, SQSEventConfig

    loops: list[_Loop] = []
    for config in app.event_sources:
        if isinstance(config, SQSEventConfig):
            driver = SqsDriver(app, config, sqs, region)
            loops += [_Loop(f"{config.name}-{i}", driver.poll_once, 0.0, stop) for i in range(workers)]
        elif isinstance(config, ScheduledEventConfig):
            loops.append(_Loop(config.name, ScheduleDriver(app, config, region).fire, tick_seconds, stop))
        elif isinstance(config, CloudWatchEventConfig) and events is not None:
            driver = EventDriver(app, config, sqs, events, region, list(extra_event_rules))
            loops.append(_Loop(config.name, driver.poll_once, 0.0, stop))
        else:
            raise RuntimeError(f"the local runtime has no driver for {type(config).__name__} ({config.name})")
    return loops


def bus_rules(provisioned: Any) -> list[tuple[str, dict[str, Any]]]:
    """The rules infra/functions.yaml gives functions on the Sluice bus, as (bus, pattern)."""
    import yaml

    from chalicelib.provision import _TemplateLoader

    resources = yaml.load((PROJECT_DIR / "infra" / "functions.yaml").read_text(), Loader=_TemplateLoader)["Resources"]
    bus = next(iter(provisioned.buses.values()))
    return [(bus, r["Properties"]["EventPattern"]) for r in resources.values()
            if r.get("Type") == "AWS::Events::Rule" and r["Properties"].get("EventBusName")]


# -- the AWS emulator -----------------------------------------------------------------

def _serialise_dynamodb(app: Any) -> Any:
    """WSGI middleware: DynamoDB requests reach moto one at a time. DynamoDB applies each
    request atomically; moto does not (an UpdateItem on a new key stores the bare key
    first, and a condition is checked before the write, not with it), so concurrent
    workers could otherwise both win one conditional claim."""
    lock = threading.Lock()

    def gated(environ: dict, start_response: Any) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return gated


def _moto_server(port: int):
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class GatedMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = _serialise_dynamodb(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return GatedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)


# -- the HTTP server ----------------------------------------------------------------

def _http_server(app: Any, config: Any, host: str, port: int):
    from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer

    class QuietHandler(ChaliceRequestHandler):
        # Without this every keep-alive request stalls ~44 ms on Nagle's algorithm.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send_error_response(self, error: Any) -> None:
            # No such route: what API Gateway answers in AWS (infra/functions.yaml's
            # Gateway Responses), not chalice local's 403 (Sluice has no authorizers, so
            # its 403s only ever mean that).
            if error.CODE == 403:
                body = b'{"error": {"code": "NOT_FOUND", "message": "no such endpoint or method", "details": []}}'
                self._send_http_response(404, {"Content-Type": "application/json"}, body)
                return
            super()._send_error_response(error)

    # What chalice.local.create_local_server does, with the handler class above: requests
    # are served on threads, so current_request must be thread-local.
    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
    app.__class__ = CustomLocalChalice
    return LocalDevServer(app, config, host, port, handler_cls=QuietHandler)


# -- the runtime --------------------------------------------------------------------

class LocalRuntime:
    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self._moto = None
        self._server = None
        self._threads: list[threading.Thread] = []
        self.api_key = ""

    def start(self) -> None:
        import boto3

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        s = self.settings
        self._moto = _moto_server(s.aws_port)
        self._moto.start()
        _point_aws_at(f"http://127.0.0.1:{s.aws_port}")

        config = _stage_config(LOCAL_STAGE)
        os.environ.update(config.environment_variables)
        from chalicelib.provision import provision
        from chalicelib.services.accounts import generate_key

        provisioned = provision(boto3.session.Session(), os.environ["SLUICE_STAGE"])
        os.environ["SLUICE_PAYLOAD_BUCKET"] = provisioned.buckets["PayloadBucket"]
        self.api_key = s.api_key or generate_key()
        os.environ["SLUICE_BOOTSTRAP_KEY"] = self.api_key

        from chalicelib.wiring import account_service

        account_service().ensure_bootstrap_key(self.api_key)
        app = config.chalice_app
        self._server = _http_server(app, config, s.host, s.port)
        server_thread = threading.Thread(target=self._server.server.serve_forever, name="api", daemon=True)
        server_thread.start()
        self._threads = [server_thread]
        loops = event_source_loops(app, boto3.client("sqs"), os.environ["AWS_REGION"],
                                   tick_seconds=s.tick_seconds, workers=s.workers, stop=self.stop_event,
                                   events=boto3.client("events"), extra_event_rules=bus_rules(provisioned))
        for loop in loops:
            loop.start()
        self._threads += loops

    def stop(self) -> None:
        self.stop_event.set()
        if self._server is not None:
            self._server.server.shutdown()
            self._server.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._moto is not None:
            self._moto.stop()

    def banner(self) -> str:
        base = f"http://{self.settings.host}:{self.settings.port}"
        return "\n".join([
            f"Sluice is running on {base}",
            f"  AWS emulator (moto): http://127.0.0.1:{self.settings.aws_port}",
            f"  API key (operator + admin of account 'local'): {self.api_key}",
            "",
            "Try:",
            f"  curl -s {base}/api/v1/workflows -H 'Authorization: Bearer {self.api_key}'",
            "",
            "Ctrl-C stops everything.",
        ])


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runtime = LocalRuntime(LocalSettings.from_environment())
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        runtime.start()
    except OSError as error:
        print(f"could not start: {error}", file=sys.stderr)
        runtime.stop()
        return 1
    print(runtime.banner(), flush=True)
    stopped.wait()
    print("stopping...", flush=True)
    runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
