"""The `[lighting]` section of hub.toml: circuits (groups of relays) and the rules that switch them.

```toml
[lighting]
recheck_s = 60                   # recompute at least this often, whatever the next change is

[[lighting.circuit]]
name = "đèn đường thôn"
relays = ["đèn đường 1", "đèn đường 3", "đèn đường 5"]

[[lighting.circuit.rule]]
kind = "dusk_dawn"               # on at sunset + on_offset_min, off at sunrise - off_offset_min
on_offset_min = 10
off_offset_min = 15

[[lighting.circuit]]
name = "đèn đường thôn (nửa đêm)"  # every second lamp: dark between 23:00 and 04:30 to save power
relays = ["đèn đường 2", "đèn đường 4"]

[[lighting.circuit.rule]]
kind = "dusk_dawn"

[[lighting.circuit.rule]]
kind = "half_night"              # off from `off` to `on` even though a rule above says on
off = "23:00"
on = "04:30"

[[lighting.circuit]]
name = "đèn nhà văn hóa"
relays = ["đèn hội trường"]

[[lighting.circuit.rule]]
kind = "fixed"
name = "sinh hoạt cuối tuần"
on = "18:30"
off = "21:30"
days = ["sat", "sun"]            # or Vietnamese: "t2" … "t7", "cn"
```

A circuit is on while any of its `dusk_dawn` / `fixed` rules is on and none of its `half_night` windows is
open. `days` names the day on which an interval *starts* (a dusk-to-dawn night belongs to its evening).
Times are local wall times in `hub.timezone`. Whether the relay names exist is checked by the service at
start (a typo there is a problem on the technician page, not a hub that refuses to start).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from drivers.names import MAX_NAME_LENGTH, check_name
from hub.section import Section
from hub.timeofday import WEEKDAYS, day_key, parse_time_of_day

MAX_OFFSET_MIN = 180

RuleKind = Literal["dusk_dawn", "fixed", "half_night"]


def _check_name(value: str) -> str:
    return check_name(value, "name", MAX_NAME_LENGTH)


TimeOfDay = Annotated[dt.time, BeforeValidator(parse_time_of_day)]

# Which keys each kind uses: any other rule key given for that kind is a mistake to name, not to ignore.
_KEYS: dict[str, frozenset[str]] = {
    "dusk_dawn": frozenset({"on_offset_min", "off_offset_min"}),
    "fixed": frozenset({"on", "off"}),
    "half_night": frozenset({"on", "off"}),
}
_KIND_KEYS = frozenset().union(*_KEYS.values())


class RuleSettings(Section):
    """`[[lighting.circuit.rule]]`: one rule of a circuit."""

    kind: RuleKind = Field(
        title="Rule kind",
        description="'dusk_dawn': on at sunset + on_offset_min, off at sunrise - off_offset_min (astral, for "
        "village.latitude/longitude). 'fixed': on at `on`, off at `off` (may span midnight). 'half_night': the "
        "circuit is forced off from `off` to `on` even when another rule says on (every second street lamp).",
    )
    name: str = Field(
        default="",
        max_length=MAX_NAME_LENGTH,
        title="Rule name",
        description="Recorded as the reason of every switch this rule makes. Empty: the kind. Unique in a circuit.",
    )
    days: list[str] | None = Field(
        default=None,
        title="Days",
        description="Days on which the rule's interval starts: 'mon' … 'sun' or 't2' … 't7', 'cn'. "
        "Leave out for every day.",
    )
    on_offset_min: int = Field(
        default=0,
        ge=-MAX_OFFSET_MIN,
        le=MAX_OFFSET_MIN,
        title="Minutes after sunset",
        description="dusk_dawn only: on this many minutes after sunset (negative: before).",
    )
    off_offset_min: int = Field(
        default=0,
        ge=-MAX_OFFSET_MIN,
        le=MAX_OFFSET_MIN,
        title="Minutes before sunrise",
        description="dusk_dawn only: off this many minutes before sunrise (negative: after).",
    )
    on: TimeOfDay | None = Field(
        default=None,
        title="On at",
        description="fixed: when the circuit goes on; half_night: when the forced-off window ends. 'HH:MM'.",
    )
    off: TimeOfDay | None = Field(
        default=None,
        title="Off at",
        description="fixed: when the circuit goes off; half_night: when the forced-off window starts. 'HH:MM'.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value) if value else value

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("days must not be empty; leave the key out for every day")
        return [day_key(day) for day in value]

    @model_validator(mode="after")
    def _keys_fit_kind(self) -> Self:
        errors: list[InitErrorDetails] = []
        allowed = _KEYS[self.kind]
        for key in sorted(_KIND_KEYS & self.model_fields_set - allowed):
            errors.append(_detail((key,), f"'{key}' does not apply to a {self.kind} rule", getattr(self, key)))
        if self.kind in ("fixed", "half_night"):
            for key in ("on", "off"):
                if getattr(self, key) is None:
                    errors.append(_detail((key,), f"a {self.kind} rule needs '{key}' (a time, 'HH:MM')", None))
            if self.on is not None and self.on == self.off:
                errors.append(_detail(("off",), "'on' and 'off' are the same time: the rule would never act", None))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @property
    def label(self) -> str:
        return self.name or self.kind

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(range(7)) if self.days is None else frozenset(WEEKDAYS[d] for d in self.days)


class CircuitSettings(Section):
    """`[[lighting.circuit]]`: lights or sockets switched together, by one or more relays."""

    name: str = Field(
        title="Circuit name",
        description="What the hub, the outbox and the commune call this circuit, e.g. 'đèn đường thôn'.",
        examples=["đèn đường thôn", "đèn nhà văn hóa", "ổ cắm đài và tivi"],
    )
    relays: list[str] = Field(
        title="Relays",
        description="Names of the relays (from [relays]) this circuit switches; all of them follow the circuit.",
    )
    description: str = Field(default="", title="Description", description="Free text for the technician page.")
    rule: list[RuleSettings] = Field(
        default_factory=list,
        title="Rules",
        description="When the circuit is on. No rule: off, except while a manual override says on.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("relays")
    @classmethod
    def _relays(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a circuit needs at least one relay")
        names = [_check_name(v) for v in value]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"relay {name!r} is listed twice")
            seen.add(name)
        return names

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Self:
        errors: list[InitErrorDetails] = []
        seen: dict[str, int] = {}
        for r, rule in enumerate(self.rule):
            if rule.label in seen:
                errors.append(
                    _detail(
                        ("rule", r, "name"),
                        f"rule name {rule.label!r} is already rule {seen[rule.label]} of this circuit; "
                        "give each rule its own name (it is the reason recorded for each switch)",
                        rule.name,
                    )
                )
            seen.setdefault(rule.label, r)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


class LightingSection(Section):
    """`[lighting]`: circuits and their rules; the service's timing."""

    recheck_s: float = Field(
        default=60.0,
        ge=1.0,
        le=600.0,
        title="Recheck interval (s)",
        description="The service recomputes at least this often, even when the next change is hours away.",
    )
    jump_check_s: float = Field(
        default=5.0,
        ge=0.1,
        le=60.0,
        title="Clock-jump check (s)",
        description="How often the wall clock is compared with the monotonic clock; a jump (NTP sync on a "
        "box without RTC) makes the service recompute at once.",
    )
    circuit: list[CircuitSettings] = Field(
        default_factory=list,
        title="Circuits",
        description="Street-light groups, cultural-house lights, sockets: each a [[lighting.circuit]] table.",
    )

    @model_validator(mode="after")
    def _cross_check(self) -> Self:
        # Two circuits on one relay would fight over it every time their rules disagree.
        errors: list[InitErrorDetails] = []
        circuits: dict[str, int] = {}
        owners: dict[str, int] = {}
        for c, circuit in enumerate(self.circuit):
            if circuit.name in circuits:
                errors.append(
                    _detail(
                        ("circuit", c, "name"),
                        f"circuit name {circuit.name!r} is already circuit {circuits[circuit.name]}",
                        circuit.name,
                    )
                )
            circuits.setdefault(circuit.name, c)
            for r, relay in enumerate(circuit.relays):
                if relay in owners:
                    errors.append(
                        _detail(
                            ("circuit", c, "relays", r),
                            f"relay {relay!r} already belongs to circuit {owners[relay]} "
                            f"({self.circuit[owners[relay]].name!r}); a relay can follow only one circuit",
                            relay,
                        )
                    )
                owners.setdefault(relay, c)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def relay_names(self) -> set[str]:
        return {relay for circuit in self.circuit for relay in circuit.relays}


def _detail(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    # "value_error" is the kind the hub's loader prints verbatim, at the key given by loc.
    return InitErrorDetails(
        type=PydanticCustomError("value_error", "{message}", {"message": message}), loc=loc, input=value
    )
