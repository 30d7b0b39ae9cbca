"""Simulated I2C at the register level: a bus with smbus2's methods and byte semantics, an INA219 and a DS3231
register model, and a UPS HAT (battery and mains) scripted through them. The production chip drivers run
unchanged on it; nothing above the bus knows it is simulated.

Fidelity that matters to the drivers: a missing address fails as the kernel does (OSError EREMOTEIO); INA219
registers come MSB first (so an SMBus word read sees them byte-swapped, as on the real chip); DS3231 reads
auto-increment and wrap after 0x12; OSF can be cleared by writing 0 but never set by writing 1; a fresh
DS3231 powers up with OSF set.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from drivers.power import ds3231, ina219

I2C_BLOCK_MAX = 32  # smbus2 refuses longer I2C block transfers


class RegisterDevice(Protocol):
    def read(self, register: int, length: int) -> list[int]: ...

    def write(self, register: int, data: Sequence[int]) -> None: ...


class SimSMBus:
    """Implements the smbus2.SMBus methods the drivers use (drivers.power.i2c.SMBusLike) and the word ones."""

    def __init__(self) -> None:
        self._devices: dict[int, RegisterDevice] = {}
        self._faults: dict[int, int] = {}
        self._lock = threading.Lock()
        self.closed = False

    def attach(self, address: int, device: RegisterDevice) -> None:
        self._devices[address] = device

    def detach(self, address: int) -> None:
        self._devices.pop(address, None)

    def fail(self, address: int, error: int | None = errno.EREMOTEIO) -> None:
        """Make transfers to `address` fail with OSError(error) (EREMOTEIO: no ACK, e.g. a loose HAT; EBUSY: the
        kernel's driver owns the address); None heals it."""
        if error is None:
            self._faults.pop(address, None)
        else:
            self._faults[address] = error

    def _device(self, address: int) -> RegisterDevice:
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if address in self._faults:
            code = self._faults[address]
            raise OSError(code, os.strerror(code))
        device = self._devices.get(address)
        if device is None:
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))
        return device

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        with self._lock:
            return self._device(i2c_addr).read(register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        with self._lock:
            self._device(i2c_addr).write(register, [value & 0xFF])

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        with self._lock:
            low, high = self._device(i2c_addr).read(register, 2)  # SMBus words: low byte first on the wire
            return low | (high << 8)

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        with self._lock:
            self._device(i2c_addr).write(register, [value & 0xFF, (value >> 8) & 0xFF])

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        if not 0 < length <= I2C_BLOCK_MAX:
            raise ValueError(f"Desired block length over {I2C_BLOCK_MAX} bytes")
        with self._lock:
            return self._device(i2c_addr).read(register, length)

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        if len(data) > I2C_BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {I2C_BLOCK_MAX} bytes")
        with self._lock:
            self._device(i2c_addr).write(register, [b & 0xFF for b in data])

    def close(self) -> None:
        self.closed = True


class Ina219Model:
    """An INA219 measuring `current_a` (from VIN+ to VIN-, positive gives a positive shunt voltage) through a
    `shunt_ohms` shunt, with `bus_v` on VIN-. `before_read` lets a circuit model update them first."""

    def __init__(self, shunt_ohms: float = 0.1, *, before_read: Callable[[], None] | None = None) -> None:
        self.shunt_ohms = shunt_ohms
        self.bus_v = 0.0
        self.current_a = 0.0
        self.before_read = before_read
        self.config = ina219.POWER_ON_CONFIG
        self.calibration = 0

    def _shunt_register(self) -> int:
        return ina219.encode_shunt_voltage(self.current_a * self.shunt_ohms, ina219.pga_of(self.config))

    def _register(self, register: int) -> int:
        shunt = self._shunt_register()
        shunt_signed = shunt - 0x10000 if shunt & 0x8000 else shunt
        bus_range_v = 32.0 if self.config & ina219.CONFIG_BRNG_32V else 16.0
        bus_v = max(0.0, min(self.bus_v, bus_range_v))
        current = int(shunt_signed * self.calibration / 4096)
        power = abs(current) * round(bus_v / ina219.BUS_LSB_V) // 5000
        overflow = (
            abs(self.current_a * self.shunt_ohms)
            > ina219.shunt_full_scale_counts(ina219.pga_of(self.config)) * ina219.SHUNT_LSB_V
            or not -32768 <= current <= 32767
        )
        match register:
            case ina219.REG_CONFIG:
                return self.config
            case ina219.REG_SHUNT_VOLTAGE:
                return shunt
            case ina219.REG_BUS_VOLTAGE:
                return ina219.encode_bus_voltage(bus_v, ready=True, overflow=overflow)
            case ina219.REG_POWER:
                return min(power, 0xFFFF)
            case ina219.REG_CURRENT:
                return max(-32768, min(32767, current)) & 0xFFFF
            case ina219.REG_CALIBRATION:
                return self.calibration
        return 0  # there is nothing at other pointers; the chip answers zeros

    def read(self, register: int, length: int) -> list[int]:
        if self.before_read is not None:
            self.before_read()
        value = self._register(register)
        # The pointer does not move: a longer read gets the same register again.
        return [(value >> 8) & 0xFF if i % 2 == 0 else value & 0xFF for i in range(length)]

    def write(self, register: int, data: Sequence[int]) -> None:
        if len(data) < 2:
            return  # a pointer write (or a half register, which the chip ignores)
        value = (data[0] << 8) | data[1]
        if register == ina219.REG_CONFIG:
            if value & ina219.CONFIG_RESET:
                self.config, self.calibration = ina219.POWER_ON_CONFIG, 0
            else:
                self.config = value
        elif register == ina219.REG_CALIBRATION:
            self.calibration = value & 0xFFFE
        # writes to the read-only registers are ignored, as on the chip


class Ds3231Model:
    """Timekeeping registers that advance with `clock` (monotonic seconds) while the oscillator runs.

    A fresh chip holds 2000-01-01 00:00:00 with OSF set, as after its first power-up."""

    def __init__(
        self,
        *,
        start: dt.datetime | None = None,
        oscillator_stopped: bool = True,
        clock: Callable[[], float] = time.monotonic,
        temperature_c: float = 31.25,
    ) -> None:
        self.clock = clock
        self._base = start or dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        self._base_at = clock()
        self._running = True
        self._raw_time: list[int] | None = None  # registers that decode to no time (garbage) are kept as written
        self.registers = [0] * ds3231.REGISTER_COUNT
        self.registers[ds3231.REG_CONTROL] = 0x1C  # power-on: INTCN, RS2, RS1
        self.registers[ds3231.REG_STATUS] = 0x08 | (ds3231.STATUS_OSF if oscillator_stopped else 0)  # EN32kHz
        self.temperature_c = temperature_c

    # -- scripting --------------------------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        if not self._running:
            return self._base
        return self._base + dt.timedelta(seconds=self.clock() - self._base_at)

    def stop_oscillator(self) -> None:
        """Coin cell flat while the mains was off: time stands still and OSF is set."""
        self._base, self._base_at, self._running = self.now(), self.clock(), False
        self.registers[ds3231.REG_STATUS] |= ds3231.STATUS_OSF

    def start_oscillator(self) -> None:
        self._base_at, self._running = self.clock(), True

    def corrupt_time_registers(self, registers: Sequence[int]) -> None:
        self._raw_time = list(registers)

    @property
    def oscillator_stopped_flag(self) -> bool:
        return bool(self.registers[ds3231.REG_STATUS] & ds3231.STATUS_OSF)

    # -- bus side ---------------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        self.registers[0:7] = self._raw_time if self._raw_time is not None else ds3231.encode_time(self.now())
        quarters = round(self.temperature_c * 4)
        self.registers[ds3231.REG_TEMP_MSB] = (quarters >> 2) & 0xFF
        self.registers[ds3231.REG_TEMP_MSB + 1] = (quarters & 0b11) << 6

    def read(self, register: int, length: int) -> list[int]:
        self._refresh()
        return [self.registers[(register + i) % ds3231.REGISTER_COUNT] for i in range(length)]

    def write(self, register: int, data: Sequence[int]) -> None:
        self._refresh()
        touched_time = False
        for i, value in enumerate(data):
            reg = (register + i) % ds3231.REGISTER_COUNT
            if reg <= 6:
                self.registers[reg] = value
                touched_time = True
            elif reg == ds3231.REG_STATUS:
                old = self.registers[reg]
                # OSF, A2F, A1F: a 0 clears them, a 1 leaves them; EN32kHz: read/write; BSY: read-only.
                self.registers[reg] = (old & value & 0x83) | (value & 0x08) | (old & 0x04)
            elif reg in (0x11, 0x12):
                continue  # temperature is read-only
            else:
                self.registers[reg] = value
        if touched_time:
            try:
                self._base = ds3231.decode_time(self.registers[0:7])
                self._raw_time = None
            except ValueError:
                self._raw_time = self.registers[0:7]
            self._base_at = self.clock()  # writing the seconds resets the countdown chain
            self._running = True


class UpsModel:
    """A UPS HAT: a Li-ion pack behind an INA219 shunt, a charger fed by mains, and the Pi as load.

    `battery_current_a` is positive while charging. `charge_current_positive` says how the shunt is wired,
    as PowerSettings does: True puts the battery on VIN- (the bus voltage is the pack voltage), False on VIN+.
    The pack voltage changes at `discharge_v_per_s` / `charge_v_per_s` as time passes, or is set by a test.
    `mains_line` (e.g. a mock GPIO pin driver) is told of every mains change."""

    def __init__(
        self,
        ina: Ina219Model,
        *,
        battery_v: float = 8.0,
        full_v: float = 8.4,
        empty_v: float = 6.0,
        load_a: float = 0.8,
        charge_a: float = 1.0,
        discharge_v_per_s: float = 0.0,
        charge_v_per_s: float = 0.0,
        charge_current_positive: bool = True,
        mains_line: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ina = ina
        self.battery_v = battery_v
        self.full_v = full_v
        self.empty_v = empty_v
        self.load_a = load_a
        self.charge_a = charge_a
        self.discharge_v_per_s = discharge_v_per_s
        self.charge_v_per_s = charge_v_per_s
        self.charge_current_positive = charge_current_positive
        self.mains_line = mains_line
        self.clock = clock
        self.mains = True
        self._lock = threading.Lock()
        self._last = clock()
        ina.before_read = self.update
        self._set_mains_line()
        self.update()

    def lose_mains(self) -> None:
        self.update()
        self.mains = False
        self._set_mains_line()
        self.update()

    def restore_mains(self) -> None:
        self.update()
        self.mains = True
        self._set_mains_line()
        self.update()

    def set_battery_voltage(self, volts: float) -> None:
        with self._lock:
            self.battery_v = volts
        self.update()

    def _set_mains_line(self) -> None:
        if self.mains_line is not None:
            self.mains_line(self.mains)

    @property
    def battery_current_a(self) -> float:
        if not self.mains:
            return -self.load_a
        return self.charge_a if self.battery_v < self.full_v - 0.05 else 0.002  # a full pack only trickles

    def update(self) -> None:
        with self._lock:
            now = self.clock()
            elapsed, self._last = now - self._last, now
            if self.mains:
                self.battery_v = min(self.full_v, self.battery_v + self.charge_v_per_s * elapsed)
            else:
                self.battery_v = max(self.empty_v, self.battery_v - self.discharge_v_per_s * elapsed)
            current = self.battery_current_a
            if self.charge_current_positive:  # battery on VIN-: charging current runs VIN+ -> VIN-
                self.ina.current_a = current
                self.ina.bus_v = self.battery_v
            else:  # battery on VIN+: discharge current runs VIN+ -> VIN-
                self.ina.current_a = -current
                self.ina.bus_v = self.battery_v + current * self.ina.shunt_ohms
