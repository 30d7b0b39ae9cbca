"""INA219 conversions, and the driver reading a register-level model over the simulated bus."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.power import ina219
from drivers.power.ina219 import (
    Ina219,
    decode_bus_voltage,
    decode_shunt_voltage,
    encode_bus_voltage,
    encode_shunt_voltage,
)
from drivers.power.sim_i2c import Ina219Model, SimSMBus, UpsModel
from drivers.power.ups import Ups

ADDRESS = 0x42


def test_bus_voltage_register_layout() -> None:
    # Bits 15..3: volts in 4 mV steps; bit 2 unused; bit 1 CNVR; bit 0 OVF.
    assert decode_bus_voltage(0x5DC0) == pytest.approx((12.0, False, False))
    assert decode_bus_voltage(0x5DC2) == pytest.approx((12.0, True, False))
    assert decode_bus_voltage(0x5DC3) == pytest.approx((12.0, True, True))
    assert decode_bus_voltage(0x5DC4)[0] == pytest.approx(12.0)  # the unused bit does not leak into the value
    assert decode_bus_voltage(0xFFF8)[0] == pytest.approx(32.764)
    assert encode_bus_voltage(7.4) == (1850 << 3) | ina219.BUS_CNVR
    assert encode_bus_voltage(40.0) >> 3 == 0x1FFF  # clamped to 13 bits


def test_shunt_voltage_sign_at_every_gain() -> None:
    # Datasheet table 7: two's complement in 10 uV, the sign extended over the bits a lower gain leaves unused.
    assert decode_shunt_voltage(0x7D00) == pytest.approx(0.320)
    assert decode_shunt_voltage(0x8300) == pytest.approx(-0.320)
    assert decode_shunt_voltage(0x0FA0) == pytest.approx(0.040)
    assert decode_shunt_voltage(0xF060) == pytest.approx(-0.040)
    assert decode_shunt_voltage(0xFFFF) == pytest.approx(-10e-6)
    assert encode_shunt_voltage(-0.040, pga=0) == 0xF060
    assert encode_shunt_voltage(-0.5, pga=0) == 0xF060  # clamped to the gain's full scale
    assert encode_shunt_voltage(0.5, pga=3) == 0x7D00


@given(counts=st.integers(0, 0x1FFF), ready=st.booleans(), overflow=st.booleans())
def test_bus_voltage_round_trip(counts: int, ready: bool, overflow: bool) -> None:
    volts = counts * 0.004
    register = encode_bus_voltage(volts, ready=ready, overflow=overflow)
    assert register >> 3 == counts
    assert decode_bus_voltage(register) == pytest.approx((volts, ready, overflow))


@given(data=st.data(), pga=st.integers(0, 3))
def test_shunt_voltage_round_trip(data: st.DataObject, pga: int) -> None:
    limit = 4000 << pga
    counts = data.draw(st.integers(-limit, limit))
    register = encode_shunt_voltage(counts * 10e-6, pga)
    assert 0 <= register <= 0xFFFF
    assert round(decode_shunt_voltage(register) / 10e-6) == counts


def test_driver_reads_the_chip_over_the_bus() -> None:
    bus = SimSMBus()
    chip = Ina219Model(shunt_ohms=0.1)
    bus.attach(ADDRESS, chip)
    chip.bus_v, chip.current_a = 7.4, -0.85
    driver = Ina219(bus, ADDRESS, shunt_ohms=0.1)
    driver.configure()
    assert chip.config == ina219.CONFIG
    reading = driver.read()
    assert reading.bus_v == pytest.approx(7.4, abs=0.004)
    assert reading.shunt_v == pytest.approx(-0.085, abs=10e-6)
    assert reading.current_a == pytest.approx(-0.85, abs=1e-4)
    assert not reading.overflow
    # The chip sends MSB first; an SMBus word read (LSB first) sees the register byte-swapped, as on the chip.
    register = driver.read_register(ina219.REG_BUS_VOLTAGE)
    swapped = bus.read_word_data(ADDRESS, ina219.REG_BUS_VOLTAGE)
    assert swapped == ((register & 0xFF) << 8) | (register >> 8)
    assert swapped != register


def test_gain_limits_and_overflow() -> None:
    bus = SimSMBus()
    chip = Ina219Model(shunt_ohms=0.1)
    bus.attach(ADDRESS, chip)
    driver = Ina219(bus, ADDRESS, 0.1)
    driver.configure((ina219.CONFIG & ~(0b11 << ina219.PGA_SHIFT)) | (0 << ina219.PGA_SHIFT))  # +/-40 mV
    chip.bus_v, chip.current_a = 8.0, -1.0  # -100 mV across 0.1 ohm: over the range
    reading = driver.read()
    assert reading.shunt_v == pytest.approx(-0.040)
    assert reading.overflow
    driver.write_register(ina219.REG_CONFIG, ina219.CONFIG_RESET)
    assert driver.read_register(ina219.REG_CONFIG) == ina219.POWER_ON_CONFIG


def test_calibrated_current_register_agrees_with_the_shunt() -> None:
    bus = SimSMBus()
    chip = Ina219Model(shunt_ohms=0.1)
    bus.attach(ADDRESS, chip)
    driver = Ina219(bus, ADDRESS, 0.1)
    driver.configure()
    driver.write_register(ina219.REG_CALIBRATION, ina219.calibration_for(100e-6, 0.1))  # 100 uA per bit
    assert driver.read_register(ina219.REG_CALIBRATION) == 4096
    chip.bus_v, chip.current_a = 8.0, 1.234
    current = driver.read_register(ina219.REG_CURRENT)
    assert current * 100e-6 == pytest.approx(driver.read().current_a, abs=1e-4)
    chip.current_a = -0.5
    current = driver.read_register(ina219.REG_CURRENT)
    assert current - 0x10000 == -5000  # negative currents are two's complement


@pytest.mark.parametrize("charge_positive", [True, False])
def test_battery_voltage_and_current_sign_either_wiring(charge_positive: bool) -> None:
    """The pack sits on VIN- or VIN+ of the shunt; either way the battery voltage excludes the shunt's drop and
    the current is positive while charging."""
    bus = SimSMBus()
    chip = Ina219Model(shunt_ohms=0.1)
    bus.attach(ADDRESS, chip)
    model = UpsModel(chip, battery_v=7.6, load_a=1.2, charge_a=0.9, charge_current_positive=charge_positive)
    ups = Ups(Ina219(bus, ADDRESS, 0.1), charge_current_positive=charge_positive)
    charging = ups.read()
    assert charging.battery_v == pytest.approx(7.6, abs=0.005)
    assert charging.current_a == pytest.approx(0.9, abs=1e-3)
    assert charging.mains is True
    model.lose_mains()
    discharging = ups.read()
    assert discharging.battery_v == pytest.approx(7.6, abs=0.005)
    assert discharging.current_a == pytest.approx(-1.2, abs=1e-3)
    assert discharging.mains is False


def test_missing_chip_is_a_sample_with_an_error() -> None:
    bus = SimSMBus()
    ups = Ups(Ina219(bus, ADDRESS, 0.1))
    sample = ups.read()
    assert sample.battery_v is None
    assert sample.mains is None
    assert sample.error is not None
    assert "0x42" in sample.error
    assert "no answer" in sample.error
    chip = Ina219Model()
    bus.attach(ADDRESS, chip)
    chip.bus_v = 8.1
    healed = ups.read()
    assert healed.error is None
    assert healed.battery_v == pytest.approx(8.1)
    assert chip.config == ina219.CONFIG  # reconfigured after the failure
    bus.fail(ADDRESS, errno.EBUSY)
    assert "kernel driver" in (ups.read().error or "")
