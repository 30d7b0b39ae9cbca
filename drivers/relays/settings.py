"""The `[relays]` section of hub.toml: GPIO relays, Modbus RTU buses with their modules, and board profiles.

```toml
[relays]
stagger_ms = 50

[[relays.gpio]]
name = "loa khu 1"
pin = 17
active_high = false          # most relay HATs pull the coil in on a low pin
safe_state = "off"

[[relays.modbus.bus]]
port = "/dev/ttyUSB0"
baudrate = 9600

[[relays.modbus.bus.module]]
device_id = 1
profile = "coils-8"

[[relays.modbus.bus.module.relay]]
channel = 1
name = "đèn đường"
safe_state = "on"

[relays.modbus.profiles.my-board]    # only for a board no built-in profile fits
channels = 4
write_function = 6
read_function = 3
first_address = 1
register_on = 256
register_off = 512
```

Cross-checks (a name used twice, a pin used twice, an unknown profile, a channel the board does not have)
are reported at the exact key that is wrong, so the loader can name it and its line.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from drivers.base import DriverSettings
from drivers.names import MAX_NAME_LENGTH, check_name


def _check_name(value: str) -> str:
    return check_name(value, "relay name", MAX_NAME_LENGTH)


RelayName = Annotated[
    str,
    AfterValidator(_check_name),
    Field(
        title="Relay name",
        description="What the hub calls this relay, e.g. 'loa khu 1' or 'đèn đường'. Unique over all relays.",
        examples=["loa khu 1", "đèn đường", "ổ cắm sân khấu"],
    ),
]
SafeState = Literal["on", "off"]


class GpioRelaySettings(DriverSettings):
    name: RelayName
    pin: int = Field(
        ge=0,
        le=27,
        title="GPIO pin (BCM)",
        description="Broadcom GPIO number of the 40-pin header (GPIO17 is 17, on header pin 11). "
        "On a Jetson the same BCM numbering is used.",
    )
    # No default on purpose: guessing the polarity wrong energises every relay the box means to keep off.
    active_high: bool = Field(
        title="Active high",
        description="true if the relay pulls in when the pin is high; false for the many relay HATs that "
        "pull in on a low pin (active-low). Check the board: there is no safe guess.",
    )
    safe_state: SafeState = Field(
        default="off",
        title="Safe state",
        description="State assumed at boot and applied at shutdown, before and after the hub decides anything.",
    )

    @property
    def safe_on(self) -> bool:
        return self.safe_state == "on"


WriteFunction = Literal[5, 6]
ReadFunction = Literal[1, 2, 3, 4]
READ_FUNCTION_NAMES: dict[int, str] = {
    1: "read coils",
    2: "read discrete inputs",
    3: "read holding registers",
    4: "read input registers",
}
WRITE_FUNCTION_NAMES: dict[int, str] = {5: "write single coil", 6: "write single register"}


class ModbusProfile(DriverSettings):
    """How one model of relay board speaks Modbus: data, so a new board needs a config table, not code."""

    description: str = Field(default="", title="Description", description="Which boards this profile fits.")
    channels: int = Field(ge=1, le=64, title="Channels", description="Number of relays on the board.")
    write_function: WriteFunction = Field(
        title="Write function code",
        description="5: write single coil (0xFF00 on, 0x0000 off); 6: write single register "
        "(register_on / register_off).",
    )
    read_function: ReadFunction = Field(
        title="Read function code",
        description="How the relay state is read back: 1 coils, 2 discrete inputs, 3 holding registers, "
        "4 input registers.",
    )
    first_address: int = Field(
        default=0,
        ge=0,
        le=0xFFFF,
        title="Address of channel 1",
        description="Protocol (0-based, on the wire) address written for channel 1; channel n is at "
        "first_address + n - 1. A manual that numbers coils from 1 usually means first_address = 0.",
    )
    read_first_address: int | None = Field(
        default=None,
        ge=0,
        le=0xFFFF,
        title="Read-back address of channel 1",
        description="Address read back for channel 1, if it differs from the write address.",
    )
    register_on: int = Field(
        default=1, ge=0, le=0xFFFF, title="Register value: on", description="Written with function 6 to switch on."
    )
    register_off: int = Field(
        default=0, ge=0, le=0xFFFF, title="Register value: off", description="Written with function 6 to switch off."
    )
    status_on: int = Field(
        default=1, ge=0, le=0xFFFF, title="Read-back value: on", description="Register value read back (3/4) when on."
    )
    status_off: int = Field(
        default=0, ge=0, le=0xFFFF, title="Read-back value: off", description="Register value read back (3/4) when off."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for key in ("first_address", "read_first_address"):
            base = getattr(self, key)
            if base is not None and base + self.channels - 1 > 0xFFFF:
                raise _error(key, f"{self.channels} channels from address {base} run past 65535", base)
        if self.write_function == 6 and self.register_on == self.register_off:
            raise _error("register_off", "register_on and register_off must differ", self.register_off)
        if self.read_function in (3, 4) and self.status_on == self.status_off:
            raise _error("status_off", "status_on and status_off must differ", self.status_off)
        return self

    def write_address(self, channel: int) -> int:
        return self.first_address + channel - 1

    def read_address(self, channel: int) -> int:
        base = self.first_address if self.read_first_address is None else self.read_first_address
        return base + channel - 1


_COIL_BOARDS = (
    "Boards exposing each relay as a coil: write single coil (05), read coils (01), channel 1 at "
    "address 0 (e.g. Waveshare 'Modbus RTU Relay' and most generic coil boards)."
)
_REGISTER_BOARDS = (
    "Boards with the 'command register' protocol: write single register (06) at address = channel, "
    "0x0100 switches on, 0x0200 off; read holding registers (03) give 1 or 0 (cheap R4D3B16-style boards)."
)
# Plain data, validated like a user's own [relays.modbus.profiles.*] table.
_BUILTIN_PROFILE_DATA: dict[str, dict[str, Any]] = {
    **{
        f"coils-{n}": {
            "description": _COIL_BOARDS,
            "channels": n,
            "write_function": 5,
            "read_function": 1,
            "first_address": 0,
        }
        for n in (4, 8, 16)
    },
    **{
        f"registers-{n}": {
            "description": _REGISTER_BOARDS,
            "channels": n,
            "write_function": 6,
            "read_function": 3,
            "first_address": 1,
            "register_on": 0x0100,
            "register_off": 0x0200,
            "status_on": 1,
            "status_off": 0,
        }
        for n in (4, 8, 16)
    },
}
BUILTIN_PROFILES: Mapping[str, ModbusProfile] = {
    name: ModbusProfile.model_validate(data) for name, data in _BUILTIN_PROFILE_DATA.items()
}


class ModbusRelaySettings(DriverSettings):
    channel: int = Field(ge=1, le=64, title="Channel", description="Relay number on the board, from 1.")
    name: RelayName
    safe_state: SafeState = Field(
        default="off",
        title="Safe state",
        description="State assumed at boot and applied at shutdown, before and after the hub decides anything.",
    )

    @property
    def safe_on(self) -> bool:
        return self.safe_state == "on"


class ModbusModuleSettings(DriverSettings):
    device_id: int = Field(
        ge=1, le=247, title="Device id", description="Modbus address of the board (its DIP switches or setting)."
    )
    profile: str = Field(
        title="Board profile",
        description="A built-in profile (coils-4/8/16, registers-4/8/16) or one of [relays.modbus.profiles].",
    )
    label: str = Field(default="", title="Label", description="Where the board is, e.g. 'tủ điện sân khấu'.")
    relay: list[ModbusRelaySettings] = Field(
        default_factory=list, title="Relays", description="The channels in use, each with its relay name."
    )


class ModbusBusSettings(DriverSettings):
    port: str = Field(
        title="Serial port",
        description="The RS-485 adapter, preferably its stable /dev/serial/by-id/... path.",
        examples=["/dev/ttyUSB0", "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"],
    )
    baudrate: int = Field(
        default=9600,
        ge=1200,
        le=115200,
        title="Baud rate",
        description="As set on the boards (DIP switches or a setting); 9600 is the usual factory value.",
    )
    parity: Literal["N", "E", "O"] = Field(default="N", title="Parity", description="N none, E even, O odd.")
    stopbits: Literal[1, 2] = Field(
        default=1, title="Stop bits", description="1 for most boards; Modbus asks for 2 when parity is N."
    )
    timeout_s: float = Field(
        default=0.3,
        gt=0.0,
        le=10.0,
        title="Answer timeout (s)",
        description="How long to wait for a board's answer before trying again.",
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        title="Retries",
        description="Further attempts after a request gets no answer or a read-back that disagrees.",
    )
    module: list[ModbusModuleSettings] = Field(
        default_factory=list, title="Modules", description="Relay boards on this bus."
    )


class ModbusSettings(DriverSettings):
    bus: list[ModbusBusSettings] = Field(
        default_factory=list, title="RS-485 buses", description="One entry per serial adapter."
    )
    profiles: dict[str, ModbusProfile] = Field(
        default_factory=dict,
        title="Board profiles",
        description="Extra board profiles by name, for boards no built-in profile fits.",
    )

    def profile(self, name: str) -> ModbusProfile:
        return self.profiles.get(name) or BUILTIN_PROFILES[name]

    def known_profiles(self) -> list[str]:
        return sorted({*BUILTIN_PROFILES, *self.profiles})

    @model_validator(mode="after")
    def _cross_check(self) -> Self:
        errors: list[InitErrorDetails] = []
        for name in self.profiles:
            if name in BUILTIN_PROFILES:
                errors.append(
                    _detail(
                        ("profiles", name), f"profile {name!r} is built in; give your own profile another name", name
                    )
                )
        ports: dict[str, int] = {}
        for b, bus in enumerate(self.bus):
            if bus.port in ports:
                errors.append(
                    _detail(("bus", b, "port"), f"port {bus.port!r} is already bus {ports[bus.port]}", bus.port)
                )
            ports.setdefault(bus.port, b)
            ids: dict[int, int] = {}
            for m, module in enumerate(bus.module):
                where = ("bus", b, "module", m)
                if module.device_id in ids:
                    errors.append(
                        _detail(
                            (*where, "device_id"),
                            f"device id {module.device_id} is already module {ids[module.device_id]} on {bus.port}",
                            module.device_id,
                        )
                    )
                ids.setdefault(module.device_id, m)
                if module.profile not in BUILTIN_PROFILES and module.profile not in self.profiles:
                    known = self.known_profiles()
                    guess = difflib.get_close_matches(module.profile, known, n=1)
                    hint = f"did you mean {guess[0]!r}? " if guess else ""
                    errors.append(
                        _detail(
                            (*where, "profile"),
                            f"unknown profile {module.profile!r}; {hint}known profiles: {', '.join(known)}",
                            module.profile,
                        )
                    )
                    continue
                profile = self.profile(module.profile)
                channels: dict[int, str] = {}
                for r, relay in enumerate(module.relay):
                    if relay.channel > profile.channels:
                        errors.append(
                            _detail(
                                (*where, "relay", r, "channel"),
                                f"channel {relay.channel} does not exist: profile {module.profile!r} has "
                                f"{profile.channels} channels",
                                relay.channel,
                            )
                        )
                    elif relay.channel in channels:
                        errors.append(
                            _detail(
                                (*where, "relay", r, "channel"),
                                f"channel {relay.channel} is already relay {channels[relay.channel]!r}",
                                relay.channel,
                            )
                        )
                    channels.setdefault(relay.channel, relay.name)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


class RelaysSettings(DriverSettings):
    """`[relays]`: every relay the box switches, on GPIO pins and on Modbus RTU boards."""

    stagger_ms: float = Field(
        default=50.0,
        ge=0.0,
        le=2000.0,
        title="Stagger between relays (ms)",
        description="Least time between two relays switching. Boards that click all at once brown out "
        "small power supplies.",
    )
    gpio_backend: Literal["auto", "gpiozero", "jetson"] = Field(
        default="auto",
        title="GPIO library",
        description="'auto': Jetson.GPIO on a Jetson, gpiozero elsewhere. Simulated hardware always uses "
        "gpiozero's mock pins.",
    )
    gpio: list[GpioRelaySettings] = Field(
        default_factory=list, title="GPIO relays", description="Relays wired to header pins."
    )
    modbus: ModbusSettings = Field(
        default_factory=ModbusSettings, title="Modbus RTU", description="Relay boards on RS-485 buses."
    )

    @model_validator(mode="after")
    def _unique(self) -> Self:
        errors: list[InitErrorDetails] = []
        names: dict[str, str] = {}
        pins: dict[int, str] = {}
        for i, relay in enumerate(self.gpio):
            if relay.pin in pins:
                errors.append(
                    _detail(("gpio", i, "pin"), f"pin {relay.pin} is already relay {pins[relay.pin]!r}", relay.pin)
                )
            pins.setdefault(relay.pin, relay.name)
            if relay.name in names:
                errors.append(_detail(("gpio", i, "name"), _duplicate(relay.name, names[relay.name]), relay.name))
            names.setdefault(relay.name, f"the GPIO relay on pin {relay.pin}")
        for b, bus in enumerate(self.modbus.bus):
            for m, module in enumerate(bus.module):
                for r, channel in enumerate(module.relay):
                    if channel.name in names:
                        loc = ("modbus", "bus", b, "module", m, "relay", r, "name")
                        errors.append(_detail(loc, _duplicate(channel.name, names[channel.name]), channel.name))
                    names.setdefault(
                        channel.name, f"channel {channel.channel} of device {module.device_id} on {bus.port}"
                    )
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def relay_names(self) -> list[str]:
        return [r.name for r in self.gpio] + [
            r.name for bus in self.modbus.bus for module in bus.module for r in module.relay
        ]


def _duplicate(name: str, first: str) -> str:
    return f"duplicate relay name {name!r}: already {first}"


def _detail(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    # "value_error" is the kind the hub's loader prints verbatim, at the key given by loc.
    return InitErrorDetails(
        type=PydanticCustomError("value_error", "{message}", {"message": message}), loc=loc, input=value
    )


def _error(key: str, message: str, value: Any) -> ValidationError:
    return ValidationError.from_exception_data(ModbusProfile.__name__, [_detail((key,), message, value)])
