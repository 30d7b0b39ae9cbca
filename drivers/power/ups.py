"""The UPS HAT as one reading: pack voltage, battery current and whether mains is present.

Wiring (PowerSettings.charge_current_positive): the INA219's shunt sits between the pack and the rest of the
HAT. If charging current reads positive, the pack is on VIN- and the bus voltage *is* the pack voltage; if it
reads negative, the pack is on VIN+ and its voltage is bus + shunt. Either way the shunt's own drop (0.1 V at
1 A through 0.1 ohm) is kept out of the battery voltage the thresholds are compared with.
"""

from __future__ import annotations

import errno
import importlib
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from drivers.power.i2c import SMBusLike, open_bus
from drivers.power.ina219 import Ina219
from drivers.power.interface import PowerSample


class MainsLine(Protocol):
    """A digital input that is True while mains is present."""

    def read(self) -> bool: ...

    def close(self) -> None: ...


class GpioMainsLine:
    """gpiozero input on a BCM pin (on the given pin factory; None: the board's own, lgpio on a Pi)."""

    def __init__(self, pin: int, *, active_high: bool = True, pin_factory: object | None = None) -> None:
        gpiozero = importlib.import_module("gpiozero")  # untyped library: only imported here
        self._device: Any = gpiozero.DigitalInputDevice(
            pin, pull_up=None, active_state=active_high, pin_factory=pin_factory
        )

    def read(self) -> bool:
        return bool(self._device.value)

    def close(self) -> None:
        self._device.close()


class ReopeningBus:
    """/dev/i2c-N opened on first use and again after a failure: a HAT reseated or an i2c-dev module loaded late
    heals without restarting the hub."""

    def __init__(self, number: int) -> None:
        self.number = number
        self._bus: SMBusLike | None = None
        self._lock = threading.Lock()

    def _get(self) -> SMBusLike:
        if self._bus is None:
            self._bus = open_bus(self.number)
        return self._bus

    def _drop(self, exc: OSError) -> None:
        if exc.errno in (errno.ENODEV, errno.EBADF, errno.ENOENT, errno.ENXIO) and self._bus is not None:
            self._bus.close()
            self._bus = None

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        with self._lock:
            try:
                return self._get().read_byte_data(i2c_addr, register, force)
            except OSError as exc:
                self._drop(exc)
                raise

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        with self._lock:
            try:
                self._get().write_byte_data(i2c_addr, register, value, force)
            except OSError as exc:
                self._drop(exc)
                raise

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        with self._lock:
            try:
                return self._get().read_i2c_block_data(i2c_addr, register, length, force)
            except OSError as exc:
                self._drop(exc)
                raise

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        with self._lock:
            try:
                self._get().write_i2c_block_data(i2c_addr, register, data, force)
            except OSError as exc:
                self._drop(exc)
                raise

    def close(self) -> None:
        with self._lock:
            if self._bus is not None:
                self._bus.close()
                self._bus = None


def describe_i2c_error(exc: OSError, what: str) -> str:
    if exc.errno == errno.EREMOTEIO:
        return f"{what}: no answer on the I2C bus (HAT not seated, wrong address?)"
    if exc.errno == errno.EBUSY:
        return f"{what}: address owned by a kernel driver"
    if exc.errno == errno.ENOENT:
        return f"{what}: no I2C bus device (enable I2C: dtparam=i2c_arm=on)"
    return f"{what}: {exc.strerror or exc}"


class Ups:
    """Blocking reads (call through asyncio.to_thread). read() never raises: a failure is a sample with an
    error, so the monitor reports an unhealthy UPS instead of crashing."""

    def __init__(
        self,
        ina: Ina219 | None,
        *,
        charge_current_positive: bool = True,
        discharge_threshold_a: float = 0.05,
        mains_line: MainsLine | None = None,
    ) -> None:
        self.ina = ina
        self.charge_current_positive = charge_current_positive
        self.discharge_threshold_a = discharge_threshold_a
        self.mains_line = mains_line
        self._configured = False

    @property
    def fitted(self) -> bool:
        return self.ina is not None

    def read(self) -> PowerSample:
        at_mono, at_wall = time.monotonic(), time.time()
        line_mains: bool | None = None
        error: str | None = None
        if self.mains_line is not None:
            try:
                line_mains = self.mains_line.read()
            except Exception as exc:  # gpiozero raises its own hierarchy
                error = f"mains GPIO: {exc}"
        if self.ina is None:
            # No UPS fitted: nothing can say mains is gone, and without a battery there is no "after".
            mains = line_mains if self.mains_line is not None else True
            return PowerSample(at_mono, at_wall, None, None, mains, error)
        try:
            if not self._configured:
                self.ina.configure()  # also after a failure: a power-cycled INA219 is back at its reset config
                self._configured = True
            reading = self.ina.read()
        except OSError as exc:
            self._configured = False
            error = describe_i2c_error(exc, f"INA219 at 0x{self.ina.address:02x}")
            return PowerSample(at_mono, at_wall, None, None, line_mains, error)
        if self.charge_current_positive:
            current, battery_v = reading.current_a, reading.bus_v
        else:
            current, battery_v = -reading.current_a, reading.supply_v
        mains = line_mains if self.mains_line is not None else current > -self.discharge_threshold_a
        if reading.overflow and error is None:
            error = "INA219 overflow: current beyond the shunt range (check shunt_ohms)"
        return PowerSample(at_mono, at_wall, round(battery_v, 3), round(current, 4), mains, error)

    def close(self) -> None:
        if self.mains_line is not None:
            self.mains_line.close()
