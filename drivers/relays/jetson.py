"""Relays on a Jetson's 40-pin header through Jetson.GPIO (the optional `jetson` extra).

Imported only when a Jetson is configured: Jetson.GPIO is not installed elsewhere, and importing it off a
Jetson fails. No test drives this module beyond importing it; hw-tests/test_relays.py does on the box.
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast


class JetsonUnavailable(RuntimeError):
    pass


class _JetsonGPIO(Protocol):
    """The part of the Jetson.GPIO module used here (it ships no type information)."""

    BCM: int
    OUT: int
    HIGH: int
    LOW: int

    def setwarnings(self, enabled: bool) -> None: ...

    def setmode(self, mode: int) -> None: ...

    def setup(self, channel: int, direction: int, *, initial: int) -> None: ...

    def output(self, channel: int, value: int) -> None: ...

    def input(self, channel: int) -> int: ...

    def cleanup(self, channel: int) -> None: ...


def load_jetson_gpio() -> _JetsonGPIO:
    try:
        module = importlib.import_module("Jetson.GPIO")
    except ImportError as exc:
        raise JetsonUnavailable(
            f"Jetson.GPIO is not installed ({exc}); install the hub with the 'jetson' extra"
        ) from exc
    except Exception as exc:  # the library raises RuntimeError off a Jetson or without /dev/gpiochip access
        raise JetsonUnavailable(f"Jetson.GPIO cannot be used here: {type(exc).__name__}: {exc}") from exc
    return cast(_JetsonGPIO, module)


class _JetsonPin:
    def __init__(self, gpio: _JetsonGPIO, pin: int) -> None:
        self._gpio = gpio
        self._pin = pin

    def write(self, high: bool) -> None:
        self._gpio.output(self._pin, self._gpio.HIGH if high else self._gpio.LOW)

    def read(self) -> bool:
        # Jetson.GPIO reads an output channel back as the level it drives.
        return bool(self._gpio.input(self._pin))

    def close(self) -> None:
        self._gpio.cleanup(self._pin)


class JetsonPins:
    name = "Jetson.GPIO"

    def __init__(self) -> None:
        self._gpio = load_jetson_gpio()
        self._gpio.setwarnings(False)
        # BCM numbers, so one hub.toml reads the same on a Pi and a Jetson.
        self._gpio.setmode(self._gpio.BCM)

    def open_output(self, pin: int, high: bool) -> _JetsonPin:
        self._gpio.setup(pin, self._gpio.OUT, initial=self._gpio.HIGH if high else self._gpio.LOW)
        return _JetsonPin(self._gpio, pin)

    def close(self) -> None:
        pass
