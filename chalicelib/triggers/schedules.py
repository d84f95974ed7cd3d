"""When schedules fire (SPEC §6.1): 5-field Unix cron with names in an IANA time zone,
intervals, one-time fixed times, start_at / end_at. Daylight saving as classic cron does
it: a local time that does not exist fires once at the first instant after the gap; a
local time that happens twice fires once, at its first occurrence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
INTERVAL_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
AWS_FORM_HINT = ("Sluice takes the 5-field Unix form 'minute hour day-of-month month day-of-week' "
                 "(0 or 7 = Sunday), e.g. '0 12 * * MON-FRI' for AWS's '0 12 ? * MON-FRI *'")


class ScheduleError(ValueError):
    """A schedule that cannot fire as written; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise ScheduleError(field, "must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ScheduleError(field, f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ScheduleError("timezone", "must be an IANA time zone name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", f"unknown time zone {name!r}; use an IANA name such as America/New_York") from None


def check_cron(expression: Any) -> str:
    """The expression, normalised, or ScheduleError (the AWS six-field form with a hint)."""
    from croniter import croniter

    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("cron_expression", "is required")
    fields = expression.split()
    if len(fields) != 5 or "?" in expression:
        hint = AWS_FORM_HINT if (len(fields) == 6 or "?" in expression) else "it needs exactly 5 fields"
        raise ScheduleError("cron_expression", f"{expression!r} is not a 5-field cron expression: {hint}")
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised):
        raise ScheduleError("cron_expression", f"{expression!r} is not a valid cron expression")
    return normalised


def _exists(local: datetime, tz: ZoneInfo) -> bool:
    """Whether a naive local wall-clock time happens at all in `tz` (not in a DST gap)."""
    aware = local.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == local


def _instant(local: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of a naive local time: the first occurrence when it happens twice,
    the end of the gap when it does not happen."""
    if _exists(local, tz):
        return local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    start = local
    while not _exists(start - timedelta(minutes=1), tz):
        start -= timedelta(minutes=1)
    # The first missing minute, read with the offset before the change, is the change itself.
    return start.replace(tzinfo=tz, fold=0).astimezone(UTC)


def next_cron(expression: str, tz: ZoneInfo, after: datetime) -> datetime:
    """The first fire time strictly after `after` (UTC)."""
    from croniter import croniter

    local_after = after.astimezone(tz).replace(tzinfo=None)
    # Wall-clock iteration: a repeated local hour is visited once, a skipped one maps to
    # the end of its gap (several candidates there collapse into one instant).
    iterator = croniter(expression, local_after - timedelta(hours=3))
    for _ in range(10_000):
        candidate = iterator.get_next(datetime)
        instant = _instant(candidate, tz)
        if instant > after:
            return instant
    raise ScheduleError("cron_expression", "never fires")


@dataclass(frozen=True)
class Schedule:
    """A schedule's timing, checked: what `next_fire` needs."""

    kind: str                      # cron | interval | fixed_time
    timezone: str = "UTC"
    cron_expression: str | None = None
    interval_seconds: int | None = None
    execution_time: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    anchor: datetime | None = None  # when an interval counts from (creation)

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after`, or None when it will not fire again."""
        if self.start_at and after < self.start_at:
            after = self.start_at - timedelta(microseconds=1)
        if self.kind == "fixed_time":
            moment = self.execution_time
            result = moment if moment and moment > after else None
        elif self.kind == "interval":
            step = timedelta(seconds=self.interval_seconds)
            origin = self.start_at or ((self.anchor or after) + step)
            if after < origin:
                result = origin
            else:
                periods = (after - origin) // step + 1
                result = origin + periods * step
        else:
            result = next_cron(self.cron_expression, ZoneInfo(self.timezone), after)
        if result is not None and self.end_at and result > self.end_at:
            return None
        return result


def schedule_type(spec: dict[str, Any]) -> str:
    """`schedule_type`, or inferred from the field given."""
    given = spec.get("schedule_type")
    if given is not None:
        if given not in ("cron", "interval", "fixed_time"):
            raise ScheduleError("schedule_type", "must be cron, interval or fixed_time")
        return given
    for field, kind in (("cron_expression", "cron"), ("schedule", "cron"), ("interval_value", "interval"),
                        ("execution_time", "fixed_time")):
        if spec.get(field) is not None:
            return kind
    raise ScheduleError("schedule_type", "give cron_expression, interval_value or execution_time")


TIMING_FIELDS = ("schedule_type", "cron_expression", "schedule", "interval_value", "interval_unit",
                 "execution_time", "timezone", "start_at", "end_at")


def compile_schedule(spec: dict[str, Any], *, now: datetime, created_at: datetime | None = None,
                     check_past: bool = True) -> Schedule:
    """A checked Schedule from a trigger's fields (`schedule` is accepted for
    `cron_expression`, as the API-traffic product writes it). `check_past` refuses a
    fixed time that has passed: when it is written, not when it fires."""
    kind = schedule_type(spec)
    tz_name = spec.get("timezone") or "UTC"
    zone(tz_name)
    start_at = parse_time(spec["start_at"], "start_at") if spec.get("start_at") else None
    end_at = parse_time(spec["end_at"], "end_at") if spec.get("end_at") else None
    if start_at and end_at and end_at <= start_at:
        raise ScheduleError("end_at", "must be after start_at")
    if kind == "cron":
        expression = check_cron(spec.get("cron_expression") or spec.get("schedule"))
        return Schedule("cron", tz_name, cron_expression=expression, start_at=start_at, end_at=end_at)
    if kind == "interval":
        value, unit = spec.get("interval_value"), spec.get("interval_unit", "minutes")
        if unit not in INTERVAL_UNITS:
            raise ScheduleError("interval_unit", "must be minutes, hours or days")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ScheduleError("interval_value", "must be a whole number of at least 1")
        return Schedule("interval", tz_name, interval_seconds=value * INTERVAL_UNITS[unit], start_at=start_at,
                        end_at=end_at, anchor=created_at or now)
    moment = parse_time(spec.get("execution_time"), "execution_time")
    if check_past and moment <= now:
        raise ScheduleError("execution_time", f"{spec.get('execution_time')} is in the past")
    return Schedule("fixed_time", tz_name, execution_time=moment, start_at=start_at, end_at=end_at)
