"""Schedule timing with a fixed clock (SPEC §6.1), across both DST changes of 2026 in New
York (8 March, 1 November) and Berlin (29 March, 25 October)."""

from datetime import datetime, timezone

import pytest

from chalicelib.triggers.schedules import ScheduleError, compile_schedule, next_cron, zone

UTC = timezone.utc


def at(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def fires(expression, tz, after, n=1):
    out, moment = [], at(after)
    for _ in range(n):
        moment = next_cron(expression, zone(tz), moment)
        out.append(moment.strftime("%Y-%m-%dT%H:%MZ"))
    return out


def test_new_york_spring_forward_a_skipped_time_fires_once_just_after_the_gap():
    # 02:30 does not exist on 8 March: it fires at 03:00 EDT (07:00Z), then 02:30 EDT next day.
    assert fires("30 2 * * *", "America/New_York", "2026-03-07T12:00Z", 3) == [
        "2026-03-08T07:00Z", "2026-03-09T06:30Z", "2026-03-10T06:30Z"]


def test_new_york_spring_forward_every_half_hour_fires_once_in_the_gap():
    assert fires("*/30 * * * *", "America/New_York", "2026-03-08T06:15Z", 4) == [
        "2026-03-08T06:30Z", "2026-03-08T07:00Z", "2026-03-08T07:30Z", "2026-03-08T08:00Z"]


def test_new_york_fall_back_a_repeated_time_fires_once_at_its_first_occurrence():
    # 01:30 happens at 05:30Z (EDT) and 06:30Z (EST) on 1 November: only the first fires.
    assert fires("30 1 * * *", "America/New_York", "2026-10-31T12:00Z", 3) == [
        "2026-11-01T05:30Z", "2026-11-02T06:30Z", "2026-11-03T06:30Z"]
    assert fires("30 1 * * *", "America/New_York", "2026-11-01T06:00Z") == ["2026-11-02T06:30Z"]


def test_new_york_fall_back_hourly_does_not_repeat_the_hour():
    assert fires("0 * * * *", "America/New_York", "2026-11-01T04:30Z", 3) == [
        "2026-11-01T05:00Z", "2026-11-01T07:00Z", "2026-11-01T08:00Z"]


def test_berlin_spring_forward_and_fall_back():
    assert fires("0 2 * * *", "Europe/Berlin", "2026-03-28T12:00Z", 2) == ["2026-03-29T01:00Z", "2026-03-30T00:00Z"]
    assert fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00Z", 2) == ["2026-10-25T00:30Z", "2026-10-26T01:30Z"]


@pytest.mark.parametrize("expression", ["0 9 * * MON-FRI", "0 9 * * 1-5"])
def test_weekdays_by_name_and_number(expression):
    # Friday 20 November 2026, after 09:00 UTC: the next weekday is Monday.
    assert fires(expression, "UTC", "2026-11-20T10:00Z", 2) == ["2026-11-23T09:00Z", "2026-11-24T09:00Z"]


def test_last_day_of_month_and_sunday_as_7():
    assert fires("0 0 L * *", "UTC", "2026-02-10T00:00Z") == ["2026-02-28T00:00Z"]
    assert fires("0 0 * * 7", "UTC", "2026-11-21T00:00Z") == ["2026-11-22T00:00Z"]
    assert fires("0 0 * * 0", "UTC", "2026-11-21T00:00Z") == ["2026-11-22T00:00Z"]


@pytest.mark.parametrize("expression", ["0 12 ? * MON-FRI *", "0 0 12 * * ?", "0 0 12 * * MON"])
def test_the_aws_six_field_form_is_refused_with_a_hint(expression):
    with pytest.raises(ScheduleError) as raised:
        compile_schedule({"cron_expression": expression}, now=at("2026-01-01T00:00Z"))
    assert raised.value.field == "cron_expression"
    assert "5-field Unix form" in raised.value.message and "'0 12 * * MON-FRI'" in raised.value.message


@pytest.mark.parametrize("spec, field", [
    ({"cron_expression": "61 * * * *"}, "cron_expression"), ({"cron_expression": "* * *"}, "cron_expression"),
    ({"cron_expression": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"interval_value": 0, "interval_unit": "minutes"}, "interval_value"),
    ({"interval_value": 5, "interval_unit": "seconds"}, "interval_unit"),
    ({"schedule_type": "hourly"}, "schedule_type"), ({}, "schedule_type"),
    ({"execution_time": "2025-12-31T23:59:00Z"}, "execution_time"),
    ({"execution_time": "tomorrow"}, "execution_time"),
    ({"cron_expression": "0 9 * * *", "start_at": "2026-02-01T00:00Z", "end_at": "2026-01-01T00:00Z"}, "end_at"),
])
def test_bad_schedules_name_the_field(spec, field):
    with pytest.raises(ScheduleError) as raised:
        compile_schedule(spec, now=at("2026-01-01T00:00Z"))
    assert raised.value.field == field


def test_an_interval_first_fires_one_interval_after_creation():
    schedule = compile_schedule({"interval_value": 15, "interval_unit": "minutes"}, now=at("2026-05-01T12:00Z"))
    assert schedule.next_fire(at("2026-05-01T12:00Z")) == at("2026-05-01T12:15Z")
    assert schedule.next_fire(at("2026-05-01T12:20Z")) == at("2026-05-01T12:30Z")
    # After an outage, the next fire is the next period, not every missed one.
    assert schedule.next_fire(at("2026-05-01T18:07Z")) == at("2026-05-01T18:15Z")


def test_an_interval_with_start_at_starts_there():
    schedule = compile_schedule({"interval_value": 2, "interval_unit": "hours", "start_at": "2026-05-02T08:00:00Z"},
                                now=at("2026-05-01T12:00Z"))
    assert schedule.next_fire(at("2026-05-01T12:00Z")) == at("2026-05-02T08:00Z")
    assert schedule.next_fire(at("2026-05-02T08:00Z")) == at("2026-05-02T10:00Z")


def test_a_fixed_time_fires_once():
    schedule = compile_schedule({"execution_time": "2026-06-01T12:00:00Z"}, now=at("2026-05-01T00:00Z"))
    assert schedule.kind == "fixed_time"
    assert schedule.next_fire(at("2026-05-01T00:00Z")) == at("2026-06-01T12:00Z")
    assert schedule.next_fire(at("2026-06-01T12:00Z")) is None


def test_end_at_stops_a_schedule():
    schedule = compile_schedule({"cron_expression": "0 0 * * *", "end_at": "2026-05-03T00:00:00Z"},
                                now=at("2026-05-01T00:00Z"))
    assert schedule.next_fire(at("2026-05-01T12:00Z")) == at("2026-05-02T00:00Z")
    assert schedule.next_fire(at("2026-05-02T00:00Z")) == at("2026-05-03T00:00Z")
    assert schedule.next_fire(at("2026-05-03T00:00Z")) is None


def test_the_schedule_field_of_the_api_traffic_form_is_a_cron_expression():
    schedule = compile_schedule({"type": "schedule", "schedule": "0 9 * * MON-FRI"}, now=at("2026-11-20T10:00Z"))
    assert schedule.cron_expression == "0 9 * * MON-FRI"
    assert schedule.next_fire(at("2026-11-20T10:00Z")) == at("2026-11-23T09:00Z")
