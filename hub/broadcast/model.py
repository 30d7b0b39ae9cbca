"""Programmes, their items, schedules and bulletin levels: what the village head sets up, validated with errors
that name what is wrong.

A *programme* is a list of items (an uploaded audio file, a text read aloud, an upstream stream relayed for a
duration, a chime) played to some zones at a volume. A *schedule* says when a programme plays: daily at given
times, on chosen weekdays, every day of a date range, or once. Both arrive as JSON from the local API (later
from cloud commands) or as tables in hub.toml, and are kept in the store.

Levels follow Circular 39/2020/TT-BTTTT (normal / priority / emergency bulletins) plus live voice and
background: emergency > live > priority > normal > background.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from collections.abc import Collection, Iterable
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from drivers.names import check_name, normalise_name
from hub import timeofday
from hub.timeofday import WEEKDAYS, day_key

MAX_NAME_LENGTH = 120
MAX_TEXT_LENGTH = 5000
MAX_ITEMS = 100
MAX_STREAM_S = 6 * 3600.0
CHIME_S = 3.0  # what a chime is assumed to last when estimating a programme's length
SPOKEN_SYLLABLES_PER_S = 3.0  # Vietnamese read aloud: about 180 syllables (space-separated words) a minute


class Level(enum.IntEnum):
    """Who goes first. Higher cuts in or waits less: see arbiter.py."""

    BACKGROUND = 0
    NORMAL = 1  # thông thường
    PRIORITY = 2  # ưu tiên
    LIVE = 3  # a live announcement from the village head's microphone
    EMERGENCY = 4  # khẩn cấp

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | Level) -> Level:
        if isinstance(value, Level):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, str):
            key = unicodedata.normalize("NFC", value.strip().lower())
            key = _LEVEL_ALIASES.get(key, key)
            try:
                return cls[key.upper()]
            except KeyError:
                pass
        names = ", ".join(level.label for level in reversed(cls))
        raise ValueError(f"unknown level {value!r}; expected one of {names}")


_LEVEL_ALIASES = {"khẩn cấp": "emergency", "ưu tiên": "priority", "thông thường": "normal", "nền": "background"}

ProgrammeLevel = Literal["background", "normal", "priority", "emergency"]  # live is for live announcements only
OnInterrupt = Literal["resume", "log"]
ScheduleKind = Literal["daily", "weekly", "dates", "once"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ModelError(ValueError):
    """A programme or schedule that cannot be accepted. `problems` lists each one as 'where: what'."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    @classmethod
    def from_validation(cls, exc: ValidationError, what: str) -> ModelError:
        problems = []
        for error in exc.errors(include_url=False):
            loc = error["loc"]
            where = ".".join(
                str(part) for i, part in enumerate(loc) if not _is_union_tag(part, loc[i - 1] if i else None)
            )
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{what}{'.' + where if where else ''}: {message}")
        return cls(problems)


def _is_union_tag(part: object, before: object) -> bool:
    # pydantic puts the union member ("text" of items.0.text.text, "function-after[...]") into an error's location
    if not isinstance(part, str):
        return False
    return "[" in part or (
        part in ("audio", "text", "stream", "chime") and (isinstance(before, int) or before == "fallback")
    )


normalise = normalise_name  # programmes and zones compare names in NFC, as relays and circuits do


def _check_name(value: str) -> str:
    return check_name(value, "name", MAX_NAME_LENGTH)


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"id {value!r} must be 1-64 letters (a-z, A-Z), digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def parse_time_of_day(value: Any) -> Any:
    """As lighting reads times of day, with seconds the finest step a schedule takes."""
    parsed = timeofday.parse_time_of_day(value, example="05:00")
    return parsed.replace(microsecond=0) if isinstance(parsed, dt.time) else parsed


TimeOfDay = Annotated[dt.time, BeforeValidator(parse_time_of_day)]
Name = Annotated[str, BeforeValidator(lambda v: _check_name(v) if isinstance(v, str) else v)]
Id = Annotated[str, BeforeValidator(lambda v: _check_id(v) if isinstance(v, str) else v)]


class _Model(BaseModel):
    # Not strict: the API sends JSON (no date or time types), hub.toml sends TOML; both are parsed the same way.
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- items -----------------------------------------------------------------------------------------------------


class AudioItem(_Model):
    kind: Literal["audio"]
    media_id: str = Field(min_length=1, max_length=200, description="An uploaded file in the media library.")
    title: str = Field(default="", max_length=MAX_NAME_LENGTH, description="Shown in the log; the file name if empty.")

    def describe(self) -> str:
        return f"audio {self.title or self.media_id}"

    def estimate_s(self, durations: dict[str, float]) -> float:
        return durations.get(self.media_id, 0.0)


class TextItem(_Model):
    kind: Literal["text"]
    text: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH, description="Read aloud by the text-to-speech engine.")
    voice: str = Field(default="", max_length=64, description="TTS voice; empty: [broadcast] voice ('vi').")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = normalise(value)
        if not value.strip():
            raise ValueError("the text to read aloud is empty")
        return value

    def describe(self) -> str:
        head = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"text {head!r}"

    def estimate_s(self, durations: dict[str, float]) -> float:
        return len(self.text.split()) / SPOKEN_SYLLABLES_PER_S


class ChimeItem(_Model):
    kind: Literal["chime"]
    chime: str = Field(default="start", min_length=1, max_length=64, description="Which chime: 'start', 'end', ...")

    def describe(self) -> str:
        return f"chime {self.chime}"

    def estimate_s(self, durations: dict[str, float]) -> float:
        return CHIME_S


FallbackItem = Annotated[AudioItem | TextItem | ChimeItem, Field(discriminator="kind")]


class StreamItem(_Model):
    kind: Literal["stream"]
    url: str = Field(description="An http(s):// or icecast:// stream, relayed live.")
    duration_s: float = Field(gt=0.0, le=MAX_STREAM_S, description="How long the stream is relayed.")
    title: str = Field(default="", max_length=MAX_NAME_LENGTH)
    fallback: FallbackItem | None = Field(
        default=None, description="Played instead when the stream stays down (e.g. a recorded bulletin)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://", "icecast://")) or len(value) > 2000:
            raise ValueError(f"stream url {value[:80]!r} must start with http://, https:// or icecast://")
        return value

    def describe(self) -> str:
        return f"stream {self.title or self.url} for {self.duration_s:g} s"

    def estimate_s(self, durations: dict[str, float]) -> float:
        return self.duration_s


Item = Annotated[AudioItem | TextItem | StreamItem | ChimeItem, Field(discriminator="kind")]


# ---- programmes ------------------------------------------------------------------------------------------------


class Programme(_Model):
    id: Id = Field(description="Stable id used by schedules, e.g. 'ban-tin-sang'.")
    name: Name = Field(description="What people call it, e.g. 'Bản tin buổi sáng'.")
    items: list[Item] = Field(min_length=1, max_length=MAX_ITEMS, description="Played in this order.")
    zones: list[Name] = Field(min_length=1, description="Zone names from [broadcast] zones.")
    volume: int | None = Field(default=None, ge=0, le=100, description="0-100; empty: [broadcast] default_volume.")
    level: ProgrammeLevel = Field(default="normal", description="background, normal, priority or emergency.")
    on_interrupt: OnInterrupt = Field(
        default="resume",
        description="When an emergency cuts in mid-item: 'resume' plays on from the cut item afterwards; "
        "'log' records the programme as interrupted and drops the rest.",
    )
    play_late: bool = Field(
        default=False,
        description="A scheduled time missed (box off, clock jump) is played late, within late_window_s.",
    )
    late_window_s: float | None = Field(
        default=None, ge=0.0, le=86_400.0, description="How late it may still play; empty: [broadcast] late_window_s."
    )
    description: str = Field(default="", max_length=1000)

    @field_validator("zones")
    @classmethod
    def _unique_zones(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for zone in value:
            if zone in seen:
                raise ValueError(f"zone {zone!r} is listed twice")
            seen.add(zone)
        return value

    @property
    def level_value(self) -> Level:
        return Level.parse(self.level)

    def estimate_s(self, durations: dict[str, float] | None = None) -> float:
        known = durations or {}
        return sum(item.estimate_s(known) for item in self.items)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_programme(data: Any) -> Programme:
    if isinstance(data, Programme):
        return data
    try:
        return Programme.model_validate(data)
    except ValidationError as exc:
        raise ModelError.from_validation(exc, "programme") from None


def check_zones(programme: Programme, known: Collection[str]) -> None:
    """Refuse zones that are not configured, naming each one and the zones there are."""
    unknown = [zone for zone in programme.zones if zone not in known]
    if unknown:
        configured = ", ".join(repr(z) for z in known) or "none (add [broadcast] zones to hub.toml)"
        raise ModelError(
            f"programme {programme.id!r}: unknown zone {zone!r}; configured zones: {configured}" for zone in unknown
        )


# ---- schedules -------------------------------------------------------------------------------------------------

_KIND_FIELDS: dict[str, frozenset[str]] = {
    "daily": frozenset({"times", "start_date", "end_date"}),
    "weekly": frozenset({"times", "days", "start_date", "end_date"}),
    "dates": frozenset({"times", "days", "start_date", "end_date"}),
    "once": frozenset({"at"}),
}
_WHEN_FIELDS = frozenset().union(*_KIND_FIELDS.values())


class Schedule(_Model):
    id: Id
    programme_id: Id
    kind: ScheduleKind = Field(
        description="'daily' at `times`; 'weekly' at `times` on `days`; 'dates' at `times` every day from "
        "`start_date` to `end_date` (optionally only on `days`); 'once' at `at`."
    )
    times: list[TimeOfDay] = Field(default_factory=list, max_length=48, description="Local times, 'HH:MM'.")
    days: list[str] = Field(default_factory=list, description="'mon' … 'sun' or 't2' … 't7', 'cn'.")
    start_date: dt.date | None = Field(default=None, description="First day (inclusive), 'YYYY-MM-DD'.")
    end_date: dt.date | None = Field(default=None, description="Last day (inclusive), 'YYYY-MM-DD'.")
    at: dt.datetime | None = Field(default=None, description="'once': local date and time, 'YYYY-MM-DDTHH:MM'.")
    enabled: bool = True
    name: str = Field(default="", max_length=MAX_NAME_LENGTH)

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: list[str]) -> list[str]:
        return [day_key(day) for day in value]

    @field_validator("times")
    @classmethod
    def _sorted_times(cls, value: list[dt.time]) -> list[dt.time]:
        if len(set(value)) != len(value):
            raise ValueError("a time is listed twice")
        return sorted(value)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Self:
        errors: list[InitErrorDetails] = []
        allowed = _KIND_FIELDS[self.kind]
        for key in sorted(_WHEN_FIELDS & self.model_fields_set - allowed):
            value = getattr(self, key)
            if value in (None, []):
                continue
            errors.append(_detail((key,), f"'{key}' does not apply to a {self.kind} schedule", value))
        if self.kind != "once" and not self.times:
            errors.append(_detail(("times",), f"a {self.kind} schedule needs 'times' (e.g. ['05:00', '17:00'])", None))
        if self.kind == "weekly" and not self.days:
            errors.append(_detail(("days",), "a weekly schedule needs 'days' (e.g. ['mon', 'thu'])", None))
        if self.kind == "dates":
            for key in ("start_date", "end_date"):
                if getattr(self, key) is None:
                    errors.append(_detail((key,), f"a dates schedule needs '{key}' ('YYYY-MM-DD')", None))
        if self.start_date and self.end_date and self.end_date < self.start_date:
            errors.append(_detail(("end_date",), "'end_date' is before 'start_date'", str(self.end_date)))
        if self.kind == "once" and self.at is None:
            errors.append(_detail(("at",), "a once schedule needs 'at' (local 'YYYY-MM-DDTHH:MM')", None))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(range(7)) if not self.days else frozenset(WEEKDAYS[d] for d in self.days)

    def at_local(self, tz: dt.tzinfo) -> dt.datetime | None:
        if self.at is None:
            return None
        return self.at.replace(tzinfo=tz) if self.at.tzinfo is None else self.at.astimezone(tz)

    def describe(self) -> str:
        times = ", ".join(t.strftime("%H:%M") for t in self.times)
        if self.kind == "once":
            return f"once at {self.at.isoformat() if self.at else '?'}"
        if self.kind == "daily":
            return f"daily at {times}"
        if self.kind == "weekly":
            return f"on {', '.join(self.days)} at {times}"
        return f"every day from {self.start_date} to {self.end_date} at {times}" + (
            f" on {', '.join(self.days)}" if self.days else ""
        )

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=False)


def parse_schedule(data: Any) -> Schedule:
    if isinstance(data, Schedule):
        return data
    try:
        return Schedule.model_validate(data)
    except ValidationError as exc:
        raise ModelError.from_validation(exc, "schedule") from None


def _detail(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("value_error", "{message}", {"message": message}), loc=loc, input=value
    )
