"""The API-traffic rules of SPEC §6.4 without I/O: records, request/error matching,
aggregates, window metrics and threshold conditions."""

import pytest

from chalicelib.triggers.traffic import (
    aggregate,
    breach,
    condition_matches,
    normalize_record,
    record_context,
    record_fires,
    trigger_problems,
    window_metrics,
    window_minutes,
)

NOW = 1_800_000_000.0


def record(**fields):
    raw = {"method": "GET", "path": "/api/users", "status_code": 200, "duration_ms": 10, **fields}
    normalized, problems = normalize_record(raw, NOW)
    assert problems == []
    return normalized


@pytest.mark.parametrize(("text", "minutes"), [
    ("1m", 1), ("5m", 5), ("90m", 90), ("1h", 60), ("24h", 1440),
    ("25h", None), ("0m", None), ("5s", None), ("5", None), (5, None), ("1441m", None),
])
def test_windows(text, minutes):
    assert window_minutes(text) == minutes


@pytest.mark.parametrize(("condition", "fields", "expected"), [
    ({"path": "/api/users"}, {}, True),
    ({"path": "/api/users"}, {"path": "/api/users/7"}, False),
    ({"path": "/api/*"}, {"path": "/api/users/7"}, True),
    ({"path": "/api/*/orders"}, {"path": "/api/u/orders"}, True),
    ({"path": "/api/*/orders"}, {"path": "/api/u/orders/1"}, False),
    ({"path": "/api.v1"}, {"path": "/apixv1"}, False),  # '.' is literal
    ({"method": "POST"}, {"method": "post"}, True),
    ({"method": ["PUT", "PATCH"]}, {"method": "GET"}, False),
    ({"status_code": 201}, {"status_code": 201}, True),
    ({"statusCode": 201}, {"status_code": 200}, False),
    ({"status_code": [500, 503]}, {"status_code": 503}, True),
    ({"status_code": "5xx"}, {"status_code": 502}, True),
    ({"status_code": "5xx"}, {"status_code": 404}, False),
    ({"status_code": "404"}, {"status_code": 404}, True),
    ({"path": "/api/users", "method": "POST", "statusCode": 201},
     {"method": "POST", "status_code": 201}, True),
    ({"path": "/api/users", "method": "POST", "statusCode": 201},
     {"method": "POST", "status_code": 400}, False),
])
def test_conditions(condition, fields, expected):
    assert condition_matches(condition, record(**fields)) is expected


def test_error_triggers_need_an_error_and_any_condition_fires():
    error = {"type": "error", "conditions": [{"path": "/api/*"}]}
    assert record_fires(error, record(status_code=500)) is True
    assert record_fires(error, record(status_code=200)) is False
    assert record_fires({"type": "error"}, record(status_code=404)) is True
    request = {"type": "request", "conditions": [{"method": "POST"}, {"status_code": "4xx"}]}
    assert record_fires(request, record(status_code=404)) is True
    assert record_fires(request, record(method="POST")) is True
    assert record_fires(request, record()) is False
    assert record_fires({"type": "request"}, record()) is True


def test_records_are_normalized_and_problems_name_their_fields():
    normalized, problems = normalize_record(
        {"method": "post", "path": "/api/users", "statusCode": 201, "duration_ms": 10,
         "timestamp": int(NOW * 1000) - 5000, "request": {"body": {"email": "a@b.c"}}, "response": {"size": 12}}, NOW)
    assert problems == []
    assert normalized["method"] == "POST" and normalized["status_code"] == 201
    assert normalized["at"] == NOW - 5 and normalized["timestamp"] == "2027-01-15T07:59:55.000Z"
    assert normalized["request"] == {"headers": {}, "query": {}, "body": {"email": "a@b.c"}}
    context = record_context(normalized)
    assert context["request"]["method"] == "POST" and context["request"]["body"] == {"email": "a@b.c"}
    assert context["response"]["statusCode"] == context["response"]["status_code"] == 201
    assert context["response"]["size"] == 12
    assert context["timings"] == {"duration": 10, "responseTime": 10}

    _, problems = normalize_record({"method": "FETCH", "path": "users", "status_code": 700, "duration_ms": -1,
                                    "timestamp": "yesterday", "request": []}, NOW)
    assert [p["field"] for p in problems] == ["method", "path", "status_code", "duration_ms", "timestamp", "request"]
    _, problems = normalize_record({"method": "GET", "path": "/", "status_code": 200, "timestamp": NOW - 2 * 86400}, NOW)
    assert problems == [{"field": "timestamp", "message": "must be within the last 24 hours"}]
    assert normalize_record([], NOW) == (None, [{"field": "record", "message": "must be an object"}])
    for absurd in (10 ** 400, float("inf"), float("nan")):
        _, problems = normalize_record({"method": "GET", "path": "/", "status_code": 200, "timestamp": absurd}, NOW)
        assert [p["field"] for p in problems] == ["timestamp"]


def test_iso_timestamps_are_read_in_utc():
    normalized = record(timestamp="2027-01-15T08:00:00Z")
    assert normalized["at"] == 1_800_000_000.0 and normalized["timestamp"] == "2027-01-15T08:00:00.000Z"


def test_aggregates_group_by_minute_with_a_latency_histogram():
    minute = int(NOW // 60)
    records = [record(duration_ms=d, status_code=s, timestamp=NOW - offset)
               for d, s, offset in [(4, 200, 0), (30, 500, 0), (30, 200, 0), (2500, 503, 60)]]
    added = aggregate(records)
    assert added == {
        minute: {"count": 3, "errors": 1, "duration_sum": 64, "cells": {0: 1, 3: 2}},
        minute - 1: {"count": 1, "errors": 1, "duration_sum": 2500, "cells": {15: 1}},
    }
    metrics = window_metrics(added.values())
    assert metrics == {"request_count": 4, "error_count": 2, "error_rate": 50.0, "response_time": 641.0,
                       "avg_response_time": 641.0, "p95_response_time": 3000.0, "p99_response_time": 3000.0}


def test_percentiles_come_from_the_histogram():
    records = [record(duration_ms=20) for _ in range(95)] + [record(duration_ms=900) for _ in range(4)] + [
        record(duration_ms=120_000)]
    metrics = window_metrics(aggregate(records).values())
    assert metrics["p95_response_time"] == 25.0
    assert metrics["p99_response_time"] == 1000.0
    assert window_metrics([])["error_rate"] is None and window_metrics([])["request_count"] == 0


def test_breach_reports_the_first_condition_that_holds():
    windows = []

    def metrics_for(minutes):
        windows.append(minutes)
        return {"error_rate": 12.5, "avg_response_time": None, "request_count": 0}

    conditions = [{"metric": "avg_response_time", "operator": "greater_than", "value": 1, "time_window": "10m"},
                  {"metric": "error_rate", "operator": "greater_than", "value": 10, "time_window": "5m"}]
    assert breach(conditions, metrics_for) == {"name": "error_rate", "value": 12.5, "threshold": 10,
                                               "operator": "greater_than", "time_window": "5m", "timeWindow": "5m"}
    assert windows == [10, 5]
    assert breach([{"metric": "request_count", "operator": "less_than", "value": 1, "time_window": "1h"}],
                  metrics_for)["value"] == 0
    assert breach([{"metric": "error_rate", "operator": "equals", "value": 12, "time_window": "1m"}], metrics_for) is None


def test_trigger_checks_name_fields_and_accept_the_seed_aliases():
    threshold = {"type": "threshold", "bucket_id": "bkt_x",
                 "conditions": [{"metric": "error_rate", "operator": "greater_than", "value": 5, "timeWindow": "5m"}]}
    assert trigger_problems(threshold, "t") == []
    assert threshold["conditions"][0] == {"metric": "error_rate", "operator": "greater_than", "value": 5,
                                          "time_window": "5m"}
    bad = {"type": "threshold", "conditions": [{"metric": "latency", "operator": ">", "value": "5", "time_window": "2d"}],
           "cooldown": "forever"}
    assert [field for field, _ in trigger_problems(bad, "t")] == [
        "t.bucket_id", "t.conditions[0].metric", "t.conditions[0].operator", "t.conditions[0].value",
        "t.conditions[0].time_window", "t.cooldown"]
    assert [f for f, _ in trigger_problems({"type": "threshold", "bucket_id": "b", "conditions": []}, "t")] == [
        "t.conditions"]
    request = {"type": "request", "bucket_id": "b", "conditions": [{"statusCode": 201, "path": "/x"}]}
    assert trigger_problems(request, "t") == [] and request["conditions"][0] == {"status_code": 201, "path": "/x"}
    wrong = {"type": "error", "bucket_id": "b",
             "conditions": [{"path": "x", "method": "FETCH", "status_code": "6xx", "size": 1}]}
    assert [f for f, _ in trigger_problems(wrong, "t")] == [
        "t.conditions[0].size", "t.conditions[0].path", "t.conditions[0].method", "t.conditions[0].status_code"]
