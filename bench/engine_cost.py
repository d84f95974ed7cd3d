"""What a step costs: runs a 10-step sequential workflow and a 10-wide fan-out / fan-in
100 times each against moto (in-process), counts every AWS request per executed step by
service and operation (botocore event hooks), DynamoDB capacity units, Lambda invocations
and handler time, and prints the cost per million steps at AWS list prices beside Step
Functions Standard's $25 per million state transitions.

    .venv/bin/python bench/engine_cost.py [--executions 100]

DynamoDB capacity: every request asks for ReturnConsumedCapacity, but moto answers a
constant, so the units are also computed the way DynamoDB charges them, from the item
sizes moto holds before and after each write (index writes included, transactions
double). The cost uses the computed units.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from moto_env import PROJECT_DIR, prepare  # noqa: E402

prepare(SLUICE_ALLOW_PRIVATE_NETWORKS="true")

# AWS list prices, us-east-1.
PRICES = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000166667,
    "sqs_request": 0.40 / 1e6,
    "dynamodb_write_unit": 0.625 / 1e6,
    "dynamodb_read_unit": 0.125 / 1e6,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
}
STEP_FUNCTIONS_PER_MILLION = 25.0
TARGET_PER_MILLION = 2.50
CAPACITY_OPERATIONS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                       "BatchWriteItem", "TransactWriteItems", "TransactGetItems"}


# -- DynamoDB item sizes, as DynamoDB counts them ---------------------------------------

def value_size(value: dict) -> int:
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = len(inner.lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(inner) if isinstance(inner, (bytes, bytearray)) else len(inner) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(v)) for v in inner)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
    raise ValueError(kind)


def item_size(item: dict | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


class Capacity:
    """Read and write units computed from item sizes, per AWS's rules."""

    def __init__(self, indexes: dict[str, list[dict]]) -> None:
        self.indexes = indexes  # table -> [{"keys": [...], "projection": "KEYS_ONLY"|"ALL"}]
        self.read = 0.0
        self.write = 0.0

    def charge_write(self, table: str, before: dict | None, after: dict | None, factor: int = 1) -> None:
        size = max(item_size(before), item_size(after))
        self.write += factor * max(1, math.ceil(size / 1024)) if (before or after) else factor
        for index in self.indexes.get(table, []):
            def entry(item):
                if not item or any(k not in item for k in index["keys"]):
                    return None
                if index["projection"] == "ALL":
                    return json.dumps(item, sort_keys=True)
                return json.dumps({k: item[k] for k in index["keys"]}, sort_keys=True)
            old, new = entry(before), entry(after)
            if old == new:
                continue
            if old is not None:
                self.write += factor
            if new is not None:
                self.write += factor * max(1, math.ceil(len(new) / 1024))

    def charge_read(self, sizes: list[int], consistent: bool, per_item: bool) -> None:
        factor = 1.0 if consistent else 0.5
        if per_item:
            self.read += sum(factor * max(1, math.ceil(s / 4096)) for s in sizes)
        else:
            self.read += factor * max(1, math.ceil(sum(sizes) / 4096))


class Meter:
    """Counts requests by service and operation, and capacity, from botocore's events."""

    def __init__(self, capacity: Capacity, backend) -> None:
        self.requests: Counter = Counter()
        self.reported_capacity = 0.0
        self.capacity = capacity
        self.backend = backend
        self.empty_receives = 0
        self.lock = threading.Lock()
        self.enabled = False
        self.local = threading.local()  # `.ignored` on the thread that watches for the end

    def counting(self) -> bool:
        return self.enabled and not getattr(self.local, "ignored", False)

    def _item(self, table: str, key: dict) -> dict | None:
        try:
            found = self.backend.get_table(table).get_item(self._key(table, key))
        except Exception:
            return None
        return found.to_json()["Attributes"] if found else None

    def _key(self, table: str, key: dict):
        from moto.dynamodb.models.dynamo_type import DynamoType

        schema = self.backend.get_table(table)
        hash_key = DynamoType(key[schema.hash_key_attr])
        range_key = DynamoType(key[schema.range_key_attr]) if schema.range_key_attr else None
        return hash_key, range_key

    def _writes(self, operation: str, params: dict) -> list[tuple[str, dict]]:
        if operation in ("PutItem",):
            table = params["TableName"]
            schema = self.backend.get_table(table)
            keys = [schema.hash_key_attr] + ([schema.range_key_attr] if schema.range_key_attr else [])
            return [(table, {k: params["Item"][k] for k in keys})]
        if operation in ("UpdateItem", "DeleteItem"):
            return [(params["TableName"], params["Key"])]
        if operation == "TransactWriteItems":
            out = []
            for entry in params["TransactItems"]:
                (kind, body), = entry.items()
                if kind == "ConditionCheck":
                    continue
                if kind == "Put":
                    schema = self.backend.get_table(body["TableName"])
                    keys = [schema.hash_key_attr] + ([schema.range_key_attr] if schema.range_key_attr else [])
                    out.append((body["TableName"], {k: body["Item"][k] for k in keys}))
                else:
                    out.append((body["TableName"], body["Key"]))
            return out
        return []

    def parameters(self, params, model, context, **kwargs):
        """Before the request is built: ask for consumed capacity, and remember the items a
        write is about to change (their size before the write)."""
        if model.name in CAPACITY_OPERATIONS:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        context["bench_params"] = params
        if self.counting():
            with self.lock:
                context["bench_before"] = [(table, key, self._item(table, key))
                                           for table, key in self._writes(model.name, params)]

    def after_call(self, http_response, parsed, model, **kwargs):
        if not self.counting():
            return
        service, operation = model.service_model.service_name, model.name
        context = kwargs.get("context", {})
        params = context.get("bench_params")
        with self.lock:
            if service == "sqs" and operation == "ReceiveMessage" and not parsed.get("Messages"):
                self.empty_receives += 1
                return
            self.requests[(service, operation)] += 1
            if service != "dynamodb":
                return
            consumed = parsed.get("ConsumedCapacity")
            for entry in consumed if isinstance(consumed, list) else ([consumed] if consumed else []):
                self.reported_capacity += entry.get("CapacityUnits", 0)
            if params is None:
                return
            before = context.get("bench_before", [])
            factor = 2 if operation == "TransactWriteItems" else 1
            for table, key, old in before:
                self.capacity.charge_write(table, old, self._item(table, key), factor)
            consistent = bool(params.get("ConsistentRead"))
            if operation == "GetItem":
                self.capacity.charge_read([item_size(parsed.get("Item"))], consistent, per_item=True)
            elif operation == "Query":
                self.capacity.charge_read([item_size(i) for i in parsed.get("Items", [])], consistent, per_item=False)
            elif operation == "BatchGetItem":
                for table, items in parsed.get("Responses", {}).items():
                    requested = params["RequestItems"][table].get("ConsistentRead", False)
                    self.capacity.charge_read([item_size(i) for i in items], requested, per_item=True)


def install(meter: Meter) -> None:
    from botocore import handlers
    from moto.core.models import botocore_stubber

    # DynamoDB applies each request atomically; in-process moto does not, so DynamoDB
    # requests reach it one at a time (as the local runtime does for moto's server).
    lock = threading.Lock()

    def atomic(event_name, request, **kwargs):
        if event_name.startswith("before-send.dynamodb."):
            with lock:
                return botocore_stubber(event_name=event_name, request=request, **kwargs)
        return botocore_stubber(event_name=event_name, request=request, **kwargs)

    handlers.BUILTIN_HANDLERS[handlers.BUILTIN_HANDLERS.index(("before-send", botocore_stubber))] = (
        "before-send", atomic)
    handlers.BUILTIN_HANDLERS.extend([
        ("before-parameter-build.dynamodb", meter.parameters),
        ("after-call", meter.after_call),
    ])


# -- the run --------------------------------------------------------------------------

SEQUENTIAL = {"steps": [{"name": f"s{i}", "action": "core.echo", "input": {"n": i, "who": "{{ params.who }}"}}
                        for i in range(10)]}
FAN_OUT = {"steps": [{"name": "start", "action": "core.noop"}]
           + [{"name": f"b{i}", "action": "core.echo", "input": {"n": i}, "depends_on": ["start"]} for i in range(10)]
           + [{"name": "join", "action": "core.noop", "depends_on": [f"b{i}" for i in range(10)]}]}


def run(name: str, definition: dict, executions: int, meter: Meter, pollers: int, memory_mb: int) -> dict:
    from app import app
    from chalicelib.local import SqsDriver
    from chalicelib.services.accounts import AccountService
    from chalicelib.wiring import runtime, workflow_service
    import boto3

    account, _, _ = AccountService().create_account(f"bench {name}")
    workflow = workflow_service().create(account.id, {"name": name, "definition": definition}, "bench").document
    steps_per_execution = len(definition["steps"])
    config = next(c for c in app.event_sources if c.name == "step_worker")
    driver = SqsDriver(app, config, boto3.client("sqs"), "us-east-1")
    handler = driver.handler
    timings: list[float] = []
    lock = threading.Lock()

    def timed(event, context):
        started = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            with lock:
                timings.append(time.perf_counter() - started)

    driver.handler = timed
    started_ids = []
    meter.requests.clear()
    meter.empty_receives = 0
    meter.reported_capacity = 0.0
    meter.capacity.read = meter.capacity.write = 0.0
    meter.enabled = True
    began = time.perf_counter()
    for _ in range(executions):
        started_ids.append(runtime().start(account.id, workflow, {"who": "bench"}, triggered_by="manual").id)

    def finished() -> bool:
        return all(runtime().executions.get(account.id, e).status == "succeeded" for e in started_ids)

    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                received = driver.poll_once(wait_seconds=0)
            except Exception:  # moto's in-process SQS is not thread-safe: poll again
                received = 0
            if received == 0:
                time.sleep(0.02)

    threads = [threading.Thread(target=poll) for _ in range(pollers)]
    for thread in threads:
        thread.start()
    meter.local.ignored = True  # this thread's reads only watch for the end: not the engine's cost
    while not finished():
        time.sleep(0.2)
    meter.local.ignored = False
    elapsed = time.perf_counter() - began
    stop.set()
    for thread in threads:
        thread.join()
    meter.enabled = False
    steps = executions * steps_per_execution
    return {
        "name": name, "executions": executions, "steps": steps, "elapsed": elapsed,
        "requests": Counter(meter.requests), "invocations": len(timings), "handler_seconds": sum(timings),
        "write_units": meter.capacity.write, "read_units": meter.capacity.read,
        "reported_units": meter.reported_capacity, "empty_receives": meter.empty_receives, "memory_mb": memory_mb,
    }


def costs(result: dict) -> dict[str, float]:
    steps = result["steps"]
    per = 1e6 / steps
    requests = result["requests"]
    sqs = sum(n for (service, _), n in requests.items() if service == "sqs")
    s3_put = requests.get(("s3", "PutObject"), 0)
    s3_get = requests.get(("s3", "GetObject"), 0)
    return {
        "Lambda requests": result["invocations"] * per * PRICES["lambda_request"],
        "Lambda GB-seconds": result["handler_seconds"] * result["memory_mb"] / 1024 * per * PRICES["lambda_gb_second"],
        "SQS requests": sqs * per * PRICES["sqs_request"],
        "DynamoDB writes": result["write_units"] * per * PRICES["dynamodb_write_unit"],
        "DynamoDB reads": result["read_units"] * per * PRICES["dynamodb_read_unit"],
        "S3": (s3_put * PRICES["s3_put"] + s3_get * PRICES["s3_get"]) * per,
    }


def report(result: dict) -> float:
    steps = result["steps"]
    print(f"\n== {result['name']}: {result['executions']} executions, {steps} steps, "
          f"{steps / result['elapsed']:.1f} steps/s locally ==")
    print(f"{'requests per step':<40}{'count':>10}")
    for (service, operation), count in sorted(result["requests"].items()):
        print(f"  {service + ' ' + operation:<38}{count / steps:>10.3f}")
    print(f"  {'(empty SQS receives, idle polling)':<38}{result['empty_receives'] / steps:>10.3f}  not charged per step")
    print(f"{'Lambda invocations per step':<40}{result['invocations'] / steps:>10.3f}")
    print(f"{'Lambda handler ms per step':<40}{result['handler_seconds'] * 1000 / steps:>10.2f}"
          f"  at {result['memory_mb']} MB")
    print(f"{'DynamoDB write units per step':<40}{result['write_units'] / steps:>10.3f}  (size-based)")
    print(f"{'DynamoDB read units per step':<40}{result['read_units'] / steps:>10.3f}  (size-based)")
    print(f"{'DynamoDB units moto reported per step':<40}{result['reported_units'] / steps:>10.3f}  (moto's constants)")
    breakdown = costs(result)
    total = sum(breakdown.values())
    print(f"{'cost per million steps':<40}{'USD':>10}")
    for name, value in breakdown.items():
        print(f"  {name:<38}{value:>10.3f}")
    print(f"  {'total':<38}{total:>10.3f}   Step Functions Standard: {STEP_FUNCTIONS_PER_MILLION:.2f}"
          f"  ({STEP_FUNCTIONS_PER_MILLION / total:.1f}x cheaper; target <= {TARGET_PER_MILLION:.2f}:"
          f" {'met' if total <= TARGET_PER_MILLION else 'NOT met'})")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--pollers", type=int, default=1,
                        help="concurrent SQS pollers (more = more local contention, not more AWS cost)")
    parser.add_argument("--only", choices=["sequential", "fan-out"])
    args = parser.parse_args()

    import yaml
    from moto import mock_aws
    from moto.dynamodb.models import dynamodb_backends

    from chalicelib.provision import _TemplateLoader, TEMPLATE_PATH

    template = yaml.load(TEMPLATE_PATH.read_text(), Loader=_TemplateLoader)
    indexes = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::DynamoDB::Table":
            table = resource["Properties"]["TableName"]["Fn::Sub"].replace("${Stage}", "bench")
            indexes[table] = [{"keys": [k["AttributeName"] for k in gsi["KeySchema"]],
                               "projection": gsi["Projection"]["ProjectionType"]}
                              for gsi in resource["Properties"].get("GlobalSecondaryIndexes", [])]
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    memory_mb = config["stages"]["prod"]["lambda_functions"]["step_worker"]["lambda_memory_size"]

    with mock_aws():
        meter = Meter(Capacity(indexes), dynamodb_backends["123456789012"]["us-east-1"])
        install(meter)
        import boto3
        from chalicelib.provision import provision

        provision(boto3.session.Session(), "bench")
        workloads = [("sequential", "sequential, 10 steps", SEQUENTIAL), ("fan-out", "fan-out 10 / fan-in", FAN_OUT)]
        totals = [report(run(title, definition, args.executions, meter, args.pollers, memory_mb))
                  for key, title, definition in workloads if args.only in (None, key)]
    print(f"\nworst case: {max(totals):.3f} USD per million steps (target {TARGET_PER_MILLION:.2f}, "
          f"Step Functions Standard {STEP_FUNCTIONS_PER_MILLION:.2f})")


if __name__ == "__main__":
    main()
