"""The `[broadcast]` section of hub.toml: the amplifier and zone relays, timing, quiet hours, and programmes and
schedules provisioned with the box.

```toml
[broadcast]
amplifier_relay = "ampli"
warmup_s = 2.0                     # amplifier on, this long, then the zone relays
amplifier_idle_off_s = 120         # amplifier off after this long with nothing to play
default_volume = 80
dedupe_window_s = 180              # the same alert twice within this: played once

[broadcast.zones]                  # zone name -> its relay ("" for a zone wired without a relay)
"khu 1" = "loa khu 1"
"khu 2" = "loa khu 2"

[[broadcast.quiet_hours]]          # nothing but emergencies
start = "22:00"
end = "04:30"

[[broadcast.programmes]]           # also settable through the local API; these are (re)loaded at every start
id = "ban-tin-sang"
name = "Bản tin buổi sáng"
zones = ["khu 1", "khu 2"]
items = [{ kind = "chime" }, { kind = "text", text = "Kính thưa bà con ..." }]

[[broadcast.schedules]]
id = "sang-chieu"
programme_id = "ban-tin-sang"
kind = "daily"
times = ["05:00", "17:00"]
```

Which relay names exist is checked by the service at start (a typo shows as a problem on the technician
page, not as a hub that refuses to start), as lighting does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from hub.broadcast.model import Programme, Schedule, TimeOfDay, check_zones, normalise
from hub.section import Section


class QuietHours(Section):
    start: TimeOfDay = Field(title="From", description="Local time quiet hours begin, 'HH:MM'.")
    end: TimeOfDay = Field(title="Until", description="Local time they end, 'HH:MM'; may be after midnight.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("quiet hours 'start' and 'end' are the same time")
        return self


class BroadcastSettings(Section):
    """`[broadcast]`: the village loudspeakers."""

    amplifier_relay: str = Field(
        default="",
        title="Amplifier relay",
        description="The relay (from [relays]) that powers the amplifier. Empty: the amplifier is always on.",
    )
    zones: dict[str, str] = Field(
        default_factory=dict,
        title="Zones",
        description="Zone name -> the relay (from [relays]) that connects its loudspeaker line; '' for a zone "
        "with no relay of its own. Programmes name these zones.",
    )
    warmup_s: float = Field(
        default=2.0,
        ge=0.0,
        le=60.0,
        title="Amplifier warm-up (s)",
        description="After the amplifier is powered, wait this long before connecting the zones (no thump).",
    )
    amplifier_idle_off_s: float = Field(
        default=120.0,
        ge=0.0,
        le=86_400.0,
        title="Amplifier idle off (s)",
        description="With nothing to play for this long, the amplifier is powered off.",
    )
    relay_timeout_s: float = Field(
        default=3.0,
        gt=0.0,
        le=60.0,
        title="Relay answer timeout (s)",
        description="How long to wait for the relay service to confirm a switch before playing anyway.",
    )
    default_volume: int = Field(default=80, ge=0, le=100, title="Default volume", description="0-100.")
    emergency_volume: int = Field(
        default=100, ge=0, le=100, title="Emergency volume", description="Volume of emergency alerts (CAP, khẩn cấp)."
    )
    voice: str = Field(default="vi", min_length=1, title="TTS voice", description="Voice for text read aloud.")
    quiet_hours: list[QuietHours] = Field(
        default_factory=list,
        title="Quiet hours",
        description="Local time windows in which nothing but emergencies plays.",
    )
    dedupe_window_s: float = Field(
        default=180.0,
        ge=0.0,
        le=86_400.0,
        title="Duplicate window (s)",
        description="The same alert (or the same announcement) arriving again within this is played once.",
    )
    start_grace_s: float = Field(
        default=60.0,
        ge=0.0,
        le=3_600.0,
        title="Start grace (s)",
        description="A scheduled time found up to this late (a busy moment, a small clock step) still plays; "
        "later than this it is missed.",
    )
    late_window_s: float = Field(
        default=1_800.0,
        ge=0.0,
        le=86_400.0,
        title="Late window (s)",
        description="A missed programme that says play_late plays if it is no later than this (the programme "
        "may set its own).",
    )
    missed_lookback_s: float = Field(
        default=7 * 86_400.0,
        ge=60.0,
        le=366 * 86_400.0,
        title="Missed lookback (s)",
        description="Missed occurrences older than this are counted, not logged one by one.",
    )
    prepare_ahead_s: float = Field(
        default=3.0,
        ge=0.0,
        le=600.0,
        title="Prepare ahead (s)",
        description="A scheduled programme is prepared (text-to-speech, amplifier warm-up) this long plus the "
        "warm-up before its time, so that it starts on time.",
    )
    jump_check_s: float = Field(
        default=2.0,
        ge=0.05,
        le=60.0,
        title="Clock check (s)",
        description="The scheduler wakes at least this often to notice a wall-clock jump (NTP sync).",
    )
    live_max_s: float = Field(
        default=3_600.0,
        gt=0.0,
        le=6 * 3_600.0,
        title="Longest live announcement (s)",
        description="A live announcement nobody stops ends by itself after this long.",
    )
    live_cuts_in: bool = Field(
        default=False,
        title="Live cuts in",
        description="true: a live announcement cuts into the current item; false: it waits for the item to end "
        "(then goes before everything but emergencies).",
    )
    background_yields_at_once: bool = Field(
        default=True,
        title="Background yields at once",
        description="Background items (music) are cut as soon as anything of a higher level comes.",
    )
    chime_before_announcements: bool = Field(
        default=True,
        title="Chime before announcements",
        description="Ad-hoc announcements and alerts start with a chime.",
    )
    stream_retry_s: float = Field(
        default=2.0, gt=0.0, le=60.0, title="Stream retry (s)", description="Wait before re-opening a dropped stream."
    )
    stream_fallback_after_s: float = Field(
        default=15.0,
        gt=0.0,
        le=600.0,
        title="Stream fallback after (s)",
        description="A stream that stays down this long is given up and its fallback item played.",
    )
    media_max_mb: int = Field(
        default=1024,
        ge=16,
        le=1_048_576,
        title="Media library size (MiB)",
        description="Uploaded audio is kept up to this size (the oldest unused goes first).",
    )
    loudness_target_lufs: float = Field(
        default=-16.0,
        ge=-40.0,
        le=-5.0,
        title="Loudness target (LUFS)",
        description="Uploads, speech and chimes are normalised to this integrated loudness (EBU R128).",
    )
    cap_language: str = Field(
        default="vi", min_length=2, title="Alert language", description="Language of CAP alert text read aloud."
    )
    emergency_zones: list[str] = Field(
        default_factory=list,
        title="Emergency zones",
        description="Zones CAP alerts play to; empty: every zone.",
    )
    programmes: list[Programme] = Field(
        default_factory=list,
        title="Programmes",
        description="Provisioned with the box; loaded into the store at every start (the API may add more).",
    )
    schedules: list[Schedule] = Field(
        default_factory=list, title="Schedules", description="Provisioned schedules of the programmes above."
    )

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for zone, relay in value.items():
            name, relay = normalise(zone).strip(), normalise(relay)
            if not name:
                raise ValueError("a zone name must not be empty")
            if name in out:
                raise ValueError(f"zone {name!r} is given twice")
            out[name] = relay
        return out

    @model_validator(mode="after")
    def _cross_check(self) -> Self:
        errors: list[InitErrorDetails] = []
        owners: dict[str, str] = {}
        for zone, relay in self.zones.items():
            if not relay:
                continue
            if relay == self.amplifier_relay:
                errors.append(_detail(("zones", zone), f"relay {relay!r} is the amplifier relay", relay))
            elif relay in owners:
                errors.append(_detail(("zones", zone), f"relay {relay!r} is already zone {owners[relay]!r}", relay))
            owners.setdefault(relay, zone)
        for z, zone in enumerate(self.emergency_zones):
            if zone not in self.zones:
                errors.append(_detail(("emergency_zones", z), f"unknown zone {zone!r}", zone))
        ids: dict[str, int] = {}
        for p, programme in enumerate(self.programmes):
            if programme.id in ids:
                errors.append(_detail(("programmes", p, "id"), f"programme id {programme.id!r} is used twice", None))
            ids.setdefault(programme.id, p)
            for zone in programme.zones:
                if zone not in self.zones:
                    try:
                        check_zones(programme, self.zones)
                    except ValueError as exc:
                        errors.append(_detail(("programmes", p, "zones"), str(exc), zone))
                    break
        schedule_ids: set[str] = set()
        for s, schedule in enumerate(self.schedules):
            if schedule.id in schedule_ids:
                errors.append(_detail(("schedules", s, "id"), f"schedule id {schedule.id!r} is used twice", None))
            schedule_ids.add(schedule.id)
            if schedule.programme_id not in ids:
                errors.append(
                    _detail(
                        ("schedules", s, "programme_id"),
                        f"no programme {schedule.programme_id!r} among [[broadcast.programmes]]",
                        schedule.programme_id,
                    )
                )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def quiet_windows(self) -> list[tuple[dt.time, dt.time]]:
        return [(q.start, q.end) for q in self.quiet_hours]

    def relay_names(self) -> list[str]:
        names = [self.amplifier_relay] if self.amplifier_relay else []
        return names + [relay for relay in self.zones.values() if relay]


def _detail(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    # "value_error" is the kind the hub's loader prints verbatim, at the key given by loc.
    return InitErrorDetails(
        type=PydanticCustomError("value_error", "{message}", {"message": message}), loc=loc, input=value
    )
