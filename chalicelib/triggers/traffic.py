"""API-traffic triggers (SPEC §6.4), without I/O: what a traffic record is, which request
and error triggers a record fires, the per-minute aggregate a batch adds to, and the
metrics a threshold trigger compares over its window."""

from __future__ import annotations

import bisect
import json
import math
import operator
import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from chalicelib.ids import epoch_iso

METRICS = (
    "error_rate", "error_count", "request_count", "response_time", "avg_response_time",
    "p95_response_time", "p99_response_time",
)
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "greater_than": operator.gt,
    "less_than": operator.lt,
    "greater_than_or_equal": operator.ge,
    "less_than_or_equal": operator.le,
    "equals": operator.eq,
}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
WINDOW = re.compile(r"^([1-9][0-9]*)([mh])$")
WINDOW_MAX_MINUTES = 24 * 60
STATUS_CLASS = re.compile(r"^[1-5]xx$", re.IGNORECASE)
RECORD_MAX_AGE = 24 * 3600  # seconds: older records cannot count towards any window
RECORD_MAX_SKEW = 300  # seconds a record's timestamp may lie in the future
RECORD_MAX_BYTES = 256 * 1024
# Upper bounds (ms) of the latency histogram's cells; one more cell holds what is above.
LATENCY_BOUNDS = (5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000,
                  7500, 10000, 15000, 30000, 60000)


def window_minutes(value: Any) -> int | None:
    """`1m`…`24h` as minutes; None when it is not such a window."""
    match = WINDOW.match(value) if isinstance(value, str) else None
    if not match:
        return None
    minutes = int(match.group(1)) * (60 if match.group(2) == "h" else 1)
    return minutes if minutes <= WINDOW_MAX_MINUTES else None


# -- write-time checks -------------------------------------------------------------------

def _status_problem(value: Any) -> str | None:
    def one(v: Any) -> bool:
        if isinstance(v, bool):
            return False
        if isinstance(v, int):
            return 100 <= v <= 599
        return isinstance(v, str) and (STATUS_CLASS.match(v) is not None or (v.isdigit() and 100 <= int(v) <= 599))

    ok = all(one(v) for v in value) and value if isinstance(value, list) else one(value)
    return None if ok else "must be a status code (201), a list of them, or a class such as 5xx"


def trigger_problems(trigger: dict[str, Any], path: str) -> list[tuple[str, str]]:
    """Problems of a request, error or threshold trigger, by field path. Normalises the
    condition aliases (`statusCode`, `timeWindow`) in place."""
    problems: list[tuple[str, str]] = []
    bucket_id = trigger.get("bucket_id")
    # A disabled trigger may wait for its bucket (a workflow made from a template, say).
    if (bucket_id is not None or trigger.get("enabled", True)) and (not isinstance(bucket_id, str) or not bucket_id):
        problems.append((f"{path}.bucket_id", "is required: the bucket whose traffic this trigger watches"))
    conditions = trigger.get("conditions", [])
    threshold = trigger.get("type") == "threshold"
    if not isinstance(conditions, list) or (threshold and not conditions):
        problems.append((f"{path}.conditions", "must be a non-empty list" if threshold else "must be a list"))
        return problems
    for i, condition in enumerate(conditions):
        where = f"{path}.conditions[{i}]"
        if not isinstance(condition, dict):
            problems.append((where, "must be an object"))
        elif threshold:
            problems += _threshold_condition(condition, where)
        else:
            problems += _record_condition(condition, where)
    if threshold and "cooldown" in trigger and window_minutes(trigger["cooldown"]) is None:
        problems.append((f"{path}.cooldown", "must be a duration from 1m to 24h, such as 15m or 1h"))
    return problems


def _record_condition(condition: dict[str, Any], where: str) -> list[tuple[str, str]]:
    problems = []
    if "statusCode" in condition and "status_code" not in condition:
        condition["status_code"] = condition.pop("statusCode")
    unknown = set(condition) - {"path", "method", "status_code"}
    if unknown:
        problems.append((f"{where}.{sorted(unknown)[0]}", "unknown field (path, method and status_code/statusCode are)"))
    if "path" in condition and (not isinstance(condition["path"], str) or not condition["path"].startswith("/")):
        problems.append((f"{where}.path", "must be a path starting with '/' ('*' matches anything)"))
    method = condition.get("method")
    if method is not None:
        methods = method if isinstance(method, list) else [method]
        if not methods or not all(isinstance(m, str) and m.upper() in METHODS for m in methods):
            problems.append((f"{where}.method", "must be an HTTP method or a list of them"))
    if "status_code" in condition:
        problem = _status_problem(condition["status_code"])
        if problem:
            problems.append((f"{where}.status_code", problem))
    return problems


def _threshold_condition(condition: dict[str, Any], where: str) -> list[tuple[str, str]]:
    problems = []
    if "timeWindow" in condition and "time_window" not in condition:
        condition["time_window"] = condition.pop("timeWindow")
    if condition.get("metric") not in METRICS:
        problems.append((f"{where}.metric", "must be one of " + ", ".join(METRICS)))
    if condition.get("operator") not in OPERATORS:
        problems.append((f"{where}.operator", "must be one of " + ", ".join(OPERATORS)))
    value = condition.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append((f"{where}.value", "must be a number"))
    if window_minutes(condition.get("time_window", "5m")) is None:
        problems.append((f"{where}.time_window", "must be a window from 1m to 24h, such as 5m or 1h"))
    return problems


# -- records ------------------------------------------------------------------------------

def _timestamp(value: Any, now: float) -> float | None:
    if value is None:
        return now
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not -1e15 < value < 1e15:  # NaN, infinities and absurd numbers included
            return None
        return value / 1000 if value > 1e11 else float(value)  # epoch milliseconds or seconds
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    return None


def normalize_record(raw: Any, now: float) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """A traffic record in canonical form (with `at`, its epoch seconds), or the problems
    that make it unusable, each naming its field."""
    if not isinstance(raw, dict):
        return None, [{"field": "record", "message": "must be an object"}]
    if len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False, default=str).encode()) > RECORD_MAX_BYTES:
        return None, [{"field": "record", "message": "must be at most 256 KB (what an execution's parameters may be)"}]
    problems = []
    method = raw.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        problems.append({"field": "method", "message": "is required and must be an HTTP method"})
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 2048:
        problems.append({"field": "path", "message": "is required and must start with '/' (at most 2048 characters)"})
    status = raw.get("status_code", raw.get("statusCode"))
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        problems.append({"field": "status_code", "message": "is required and must be an integer from 100 to 599"})
    duration = raw.get("duration_ms", raw.get("durationMs", 0))
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration < 1e9:
        problems.append({"field": "duration_ms", "message": "must be a non-negative number of milliseconds"})
    at = _timestamp(raw.get("timestamp"), now)
    if at is None:
        problems.append({"field": "timestamp", "message": "must be an ISO 8601 time or epoch milliseconds"})
    elif not now - RECORD_MAX_AGE <= at <= now + RECORD_MAX_SKEW:
        problems.append({"field": "timestamp", "message": "must be within the last 24 hours"})
    parts = {}
    for part in ("request", "response"):
        value = raw.get(part)
        value = {} if value is None else value
        if not isinstance(value, dict):
            problems.append({"field": part, "message": "must be an object"})
        parts[part] = value if isinstance(value, dict) else {}
    if problems:
        return None, problems
    request, response = parts["request"], parts["response"]
    record = {
        "method": method.upper(), "path": path, "status_code": status, "duration_ms": duration,
        "timestamp": epoch_iso(at),
        "request": {"headers": request.get("headers") or {}, "query": request.get("query") or {},
                    "body": request.get("body")},
        "response": {"headers": response.get("headers") or {}, "body": response.get("body"),
                     "size": response.get("size")},
        "at": at,
    }
    return record, []


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def _status_matches(actual: int, expected: Any) -> bool:
    if isinstance(expected, list):
        return any(_status_matches(actual, e) for e in expected)
    if isinstance(expected, str):
        if STATUS_CLASS.match(expected):
            return actual // 100 == int(expected[0])
        return expected.isdigit() and actual == int(expected)
    return actual == expected


def condition_matches(condition: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    if "path" in condition and not _glob(condition["path"]).match(record["path"]):
        return False
    if "method" in condition:
        methods = condition["method"] if isinstance(condition["method"], list) else [condition["method"]]
        if record["method"] not in {m.upper() for m in methods}:
            return False
    status = condition.get("status_code", condition.get("statusCode"))
    return status is None or _status_matches(record["status_code"], status)


def record_fires(trigger: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether a request or error trigger fires for this record: an error trigger only for
    a status of 400 or more; with conditions, when any one matches."""
    if trigger.get("type") == "error" and record["status_code"] < 400:
        return False
    conditions = trigger.get("conditions") or []
    return not conditions or any(condition_matches(c, record) for c in conditions)


def record_context(record: Mapping[str, Any]) -> dict[str, Any]:
    """The template names a record gives (SPEC §6.4): request, response and timings."""
    response = record["response"]
    return {
        "request": {"method": record["method"], "path": record["path"], **record["request"]},
        "response": {"statusCode": record["status_code"], "status_code": record["status_code"],
                     "headers": response["headers"], "body": response["body"], "size": response["size"]},
        "timings": {"duration": record["duration_ms"], "responseTime": record["duration_ms"]},
    }


# -- aggregates ---------------------------------------------------------------------------

def aggregate(records: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """A batch's additions to its per-minute aggregates: {minute: {count, errors,
    duration_sum, cells: {cell: n}}}."""
    minutes: dict[int, dict[str, Any]] = {}
    for record in records:
        entry = minutes.setdefault(int(record["at"] // 60), {"count": 0, "errors": 0, "duration_sum": 0, "cells": {}})
        entry["count"] += 1
        entry["errors"] += record["status_code"] >= 400
        entry["duration_sum"] += record["duration_ms"]
        cell = bisect.bisect_left(LATENCY_BOUNDS, record["duration_ms"])
        entry["cells"][cell] = entry["cells"].get(cell, 0) + 1
    return minutes


def _percentile(cells: Mapping[int, int], count: int, fraction: float) -> float:
    """The upper bound of the histogram cell holding the given rank (the last cell, which
    has no bound, reports the largest bound)."""
    rank = math.ceil(count * fraction)
    seen = 0
    for cell in sorted(cells):
        seen += cells[cell]
        if seen >= rank:
            return float(LATENCY_BOUNDS[min(cell, len(LATENCY_BOUNDS) - 1)])
    return float(LATENCY_BOUNDS[-1])


def window_metrics(minutes: Iterable[Mapping[str, Any]]) -> dict[str, float | None]:
    """Every metric over some per-minute aggregates. Rates and latencies of a window with
    no traffic are None: a condition on them does not hold."""
    count = errors = duration = 0
    cells: dict[int, int] = {}
    for minute in minutes:
        count += minute.get("count", 0)
        errors += minute.get("errors", 0)
        duration += minute.get("duration_sum", 0)
        for cell, n in (minute.get("cells") or {}).items():
            cells[cell] = cells.get(cell, 0) + n
    mean = round(duration / count, 2) if count else None
    return {
        "request_count": count,
        "error_count": errors,
        "error_rate": round(100.0 * errors / count, 2) if count else None,
        "response_time": mean,
        "avg_response_time": mean,
        "p95_response_time": _percentile(cells, count, 0.95) if count else None,
        "p99_response_time": _percentile(cells, count, 0.99) if count else None,
    }


def breach(conditions: list[Mapping[str, Any]], metrics_for: Callable[[int], Mapping[str, float | None]]
           ) -> dict[str, Any] | None:
    """The first condition that holds, as the `metric` template name, or None.
    `metrics_for(window_minutes)` gives the metrics over that window."""
    for condition in conditions:
        window = condition.get("time_window", "5m")
        value = metrics_for(window_minutes(window) or 5)[condition["metric"]]
        if value is not None and OPERATORS[condition["operator"]](value, condition["value"]):
            return {"name": condition["metric"], "value": value, "threshold": condition["value"],
                    "operator": condition["operator"], "time_window": window, "timeWindow": window}
    return None
