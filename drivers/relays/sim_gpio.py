"""Simulated GPIO: gpiozero's MockFactory, whose pins hold the electrical level the relays drive.

The production GPIO code runs unchanged on it (it only gets this factory instead of the board's). Tests and
the technician page read each pin's level, whether it is claimed as an output, and its history of changes.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple, Protocol, cast

from drivers.relays.gpio import GpiozeroPins


class _PinState(NamedTuple):
    timestamp: float
    state: bool


class MockPinView(Protocol):
    """The parts of gpiozero's MockPin read here (gpiozero ships no type information)."""

    states: list[_PinState]  # (seconds since the previous entry, level); the first entry is (0.0, initial)
    _last_change: float

    @property
    def state(self) -> bool: ...

    @property
    def function(self) -> str: ...

    def clear_states(self) -> None: ...

    def drive_high(self) -> None:
        """Only while the pin is an input: what the outside world (a pull-up, a floating line) puts on it."""
        ...

    def drive_low(self) -> None: ...


class SimulatedPins:
    def __init__(self) -> None:
        mock = importlib.import_module("gpiozero.pins.mock")
        self.factory: Any = mock.MockFactory()

    def backend(self) -> GpiozeroPins:
        return GpiozeroPins(self.factory)

    def pin(self, number: int) -> MockPinView:
        return cast(MockPinView, self.factory.pin(number))

    def level(self, number: int) -> bool:
        """The electrical level on the pin: True = high (3.3 V)."""
        return bool(self.pin(number).state)

    def is_output(self, number: int) -> bool:
        return self.pin(number).function == "output"

    def history(self, number: int) -> list[tuple[float, bool]]:
        """(time.monotonic(), level) of each change since the pin was created or last cleared; the first
        entry is the level it started at.

        MockPin keeps each entry's time relative to the one before; the absolute times are anchored on the
        time of its last change, which it also keeps.
        """
        pin = self.pin(number)
        states = list(pin.states)
        t = pin._last_change - sum(s.timestamp for s in states[1:])
        out: list[tuple[float, bool]] = []
        for entry in states:
            t += entry.timestamp
            out.append((t, bool(entry.state)))
        return out

    def clear_history(self) -> None:
        for number in self.pins():
            self.pin(number).clear_states()

    def pins(self) -> list[int]:
        """Numbers of the pins created so far (a pin exists once something asked for it)."""
        names = [str(info.name) for info in self.factory.pins]
        return sorted(int(name[4:]) for name in names if name.startswith("GPIO") and name[4:].isdigit())

    def close(self) -> None:
        self.factory.close()
