"""Relays on GPIO pins: gpiozero on a Raspberry Pi (and its MockFactory when simulated), Jetson.GPIO on a Jetson.

Both libraries sit behind the same two-method pin interface, in electrical levels; the relay's polarity
(active-high or active-low) is applied here, once, for both.

Pin writes are a register or ioctl write of a few microseconds, so they run on the event loop: a thread
hop would cost more than the write and blur the stagger the bank measures out.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

from drivers.relays.channel import DeviceStatus
from drivers.relays.interface import RelayFault, RelayKind
from drivers.relays.settings import GpioRelaySettings

log = logging.getLogger(__name__)


# gpiozero ships no type information; these are the few parts of it used here, typed.
class _GpiozeroPinState(Protocol):
    @property
    def state(self) -> float: ...


class _GpiozeroOutput(Protocol):
    value: Any

    @property
    def pin(self) -> _GpiozeroPinState: ...

    def close(self) -> None: ...


class OutputPin(Protocol):
    def write(self, high: bool) -> None: ...

    def read(self) -> bool: ...

    def close(self) -> None: ...


class PinBackend(Protocol):
    name: str

    def open_output(self, pin: int, high: bool) -> OutputPin:
        """Claim `pin` as an output, driven to `high` from the first instant (no glitch to the other level)."""
        ...

    def close(self) -> None: ...


class _GpiozeroPin:
    def __init__(self, device: _GpiozeroOutput) -> None:
        self._device = device

    def write(self, high: bool) -> None:
        self._device.value = high

    def read(self) -> bool:
        return bool(self._device.pin.state)

    def close(self) -> None:
        self._device.close()


class GpiozeroPins:
    """gpiozero devices on the given pin factory; None lets gpiozero pick the board's own (lgpio on a Pi)."""

    name = "gpiozero"

    def __init__(self, factory: object | None = None) -> None:
        self.factory = factory

    def open_output(self, pin: int, high: bool) -> OutputPin:
        gpiozero = importlib.import_module("gpiozero")
        # active_high=True keeps gpiozero's value equal to the electrical level; polarity is ours to apply.
        device: _GpiozeroOutput = gpiozero.DigitalOutputDevice(
            pin, active_high=True, initial_value=high, pin_factory=self.factory
        )
        return _GpiozeroPin(device)

    def close(self) -> None:
        """Devices are closed one by one; the factory belongs to whoever made it (the simulation)."""


class UnavailablePins:
    """Stands in for a GPIO library that could not be loaded: every relay on it reports the reason."""

    name = "unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def open_output(self, pin: int, high: bool) -> OutputPin:
        raise RuntimeError(self.reason)

    def close(self) -> None:
        pass


class GpioRelay:
    """One relay on one pin. The pin is claimed on the first switch, at the level that switch asks for."""

    kind: RelayKind = "gpio"

    def __init__(self, settings: GpioRelaySettings, backend: PinBackend) -> None:
        self.settings = settings
        self._backend = backend
        self._pin: OutputPin | None = None
        self._device = DeviceStatus(key=f"GPIO{settings.pin}", kind="gpio", detail={"library": backend.name})

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def where(self) -> str:
        return f"GPIO{self.settings.pin}"

    @property
    def safe_on(self) -> bool:
        return self.settings.safe_on

    @property
    def device(self) -> DeviceStatus:
        return self._device

    def level_for(self, on: bool) -> bool:
        return on if self.settings.active_high else not on

    async def switch(self, on: bool) -> bool:
        level = self.level_for(on)
        try:
            if self._pin is None:
                self._pin = self._backend.open_output(self.settings.pin, level)
                moved = True
            else:
                moved = self._pin.read() != level
                self._pin.write(level)
            actual = self._pin.read()
        except Exception as exc:  # any library error is this relay's fault report, not the hub's crash
            message = f"{self.where} ({self.name!r}): cannot drive the pin: {type(exc).__name__}: {exc}"
            self._device.failed("error", message)
            raise RelayFault("error", message) from exc
        if actual != level:
            message = f"{self.where} ({self.name!r}): drove {_lvl(level)}, pin reads {_lvl(actual)}"
            self._device.failed("mismatch", message)
            raise RelayFault("mismatch", message)
        self._device.succeeded()
        return moved

    async def read(self) -> bool | None:
        level = self.pin_level()
        if level is None:
            return None
        return level if self.settings.active_high else not level

    def pin_level(self) -> bool | None:
        if self._pin is None:
            return None
        try:
            return self._pin.read()
        except Exception:  # a closed or lost pin has no level to show
            return None

    async def close(self) -> None:
        if self._pin is not None:
            pin, self._pin = self._pin, None
            try:
                pin.close()
            except Exception as exc:
                log.warning("%s: closing the pin failed: %s", self.where, exc)


def _lvl(level: bool) -> str:
    return "high" if level else "low"


def make_backend(kind: str, factory: object | None = None) -> PinBackend:
    """'gpiozero' or 'jetson'; a library that cannot be loaded gives a backend that reports why."""
    if kind == "jetson":
        from drivers.relays.jetson import JetsonPins, JetsonUnavailable

        try:
            return JetsonPins()
        except JetsonUnavailable as exc:
            return UnavailablePins(str(exc))
    return GpiozeroPins(factory)
