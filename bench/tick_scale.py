"""The tick's reads do not grow with the number of schedules stored (SPEC §6.1): stores
100, then 10,000, then 100,000 schedules, of which 10 are due, runs one tick at each
size, and prints the DynamoDB items read and read units consumed by that tick.

    .venv/bin/python bench/tick_scale.py

Target: the 100,000 figure at most 1.2 times the 100 figure. Read units are computed from
the sizes of the items read, as DynamoDB charges a query (moto reports constants).
"""

from __future__ import annotations

import math
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from moto_env import prepare  # noqa: E402

prepare()

from engine_cost import item_size  # noqa: E402  (DynamoDB's item size rules)

SIZES = (100, 10_000, 100_000)
DUE = 10


class ReadMeter:
    def __init__(self) -> None:
        self.items = 0
        self.units = 0.0
        self.on = False

    def after_call(self, parsed, model, context=None, **kwargs):
        if not self.on or model.service_model.service_name != "dynamodb":
            return
        if model.name == "Query":
            items = parsed.get("Items", [])
            self.items += len(items)
            consistent = (context or {}).get("consistent", False)
            self.units += (1 if consistent else 0.5) * max(1, math.ceil(sum(item_size(i) for i in items) / 4096))
        elif model.name == "GetItem":
            self.items += 1 if parsed.get("Item") else 0
            self.units += max(1, math.ceil(item_size(parsed.get("Item")) / 4096))
        elif model.name == "BatchGetItem":
            for items in parsed.get("Responses", {}).values():
                self.items += len(items)
                self.units += sum(max(1, math.ceil(item_size(i) / 4096)) for i in items)


def main() -> None:
    import boto3
    from botocore import handlers
    from moto import mock_aws

    meter = ReadMeter()
    handlers.BUILTIN_HANDLERS.append(("after-call", meter.after_call))
    with mock_aws():
        from chalicelib.provision import provision

        provision(boto3.session.Session(), "bench")
        from chalicelib.ids import new_id, now_iso
        from chalicelib.services.accounts import AccountService
        from chalicelib.store.models import due_shard
        from chalicelib.store.models import TriggerModel
        from chalicelib.wiring import runtime, schedules, workflow_service

        account, _, _ = AccountService().create_account("bench")
        workflow = workflow_service().create(account.id, {"name": "tick", "definition": {"steps": []}}, "bench").document
        far = int(time.time()) + 365 * 86400
        spec = {"type": "schedule", "cron_expression": "0 0 1 1 *", "enabled": True}
        stored = 0
        print(f"{'schedules stored':>17}{'due':>6}{'fired':>7}{'items read':>12}{'read units':>12}")
        figures = {}
        for size in SIZES:
            with TriggerModel.batch_write() as batch:
                while stored < size:
                    trigger_id = new_id("trg")
                    batch.save(TriggerModel(trigger_id, account_id=account.id, workflow_id=workflow["id"], type="schedule",
                                            enabled=1, spec=spec, created_at=now_iso(), updated_at=now_iso(),
                                            fire_at=far, due_shard=due_shard(trigger_id)))
                    stored += 1
            now = int(time.time())
            for _ in range(DUE):  # ten schedules due now
                trigger_id = new_id("trg")
                TriggerModel(trigger_id, account_id=account.id, workflow_id=workflow["id"], type="schedule", enabled=1,
                             spec=spec, created_at=now_iso(), updated_at=now_iso(), fire_at=now - 30,
                             due_shard=due_shard(trigger_id)).save()
            firer = schedules()
            meter.items, meter.units, meter.on = 0, 0.0, True
            fired = firer.fire_due(until=time.monotonic() + 50)
            meter.on = False
            figures[size] = meter.units
            print(f"{size:>17}{DUE:>6}{fired:>7}{meter.items:>12}{meter.units:>12.1f}")
            runtime()  # (the executions it started are not part of the measure)
        ratio = figures[SIZES[-1]] / figures[SIZES[0]]
        print(f"\nread units at {SIZES[-1]:,} / at {SIZES[0]}: {ratio:.2f} (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})")


if __name__ == "__main__":
    main()
