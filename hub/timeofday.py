"""Times of day and weekdays as hub.toml and the local API write them, for every schedule (lights, loudspeakers).

One parser, so that "05:00", a TOML local time and "t2" (thứ hai, Monday) mean the same thing everywhere.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

# Monday is 0, as datetime.weekday() counts. Vietnamese names the days by number: thứ hai (t2) is Monday.
WEEKDAYS: dict[str, int] = {
    "mon": 0,
    "tue": 1,
    "wed": 2,
    "thu": 3,
    "fri": 4,
    "sat": 5,
    "sun": 6,
    "t2": 0,
    "t3": 1,
    "t4": 2,
    "t5": 3,
    "t6": 4,
    "t7": 5,
    "cn": 6,
}

_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_time_of_day(value: Any, example: str = "18:30") -> Any:
    """'HH:MM' or 'HH:MM:SS' strings, or a TOML local time (`on = 18:30:00`). Anything else is left for
    validation to refuse: an integer is not a time of day. `example` goes into the error message."""
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise ValueError("a time of day here is local wall time; leave the UTC offset out")
        return value
    if not isinstance(value, str):
        return value
    match = _TIME.match(value.strip())
    if match is None:
        raise ValueError(f"time {value!r} is not written as HH:MM (e.g. '{example}')")
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"time {value!r} is out of range: expected 00:00 to 23:59")
    return dt.time(hour, minute, second)


def day_key(day: Any) -> Any:
    """A weekday as written ('Mon', 't2', 'CN') -> its key in WEEKDAYS; ValueError naming it if unknown."""
    key = day.strip().lower() if isinstance(day, str) else day
    if key not in WEEKDAYS:
        raise ValueError(f"unknown day {day!r}; expected 'mon' … 'sun' or 't2' … 't7', 'cn'")
    return key
