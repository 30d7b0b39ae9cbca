"""build(settings, simulated) -> the power drivers hub/ uses (and, if simulated, the simulation to script)."""

from __future__ import annotations

import datetime as dt
import importlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.power.ds3231 import Ds3231
from drivers.power.i2c import SMBusLike
from drivers.power.ina219 import Ina219
from drivers.power.monitor import PowerMonitor, PowerStateMachine
from drivers.power.rtc import SYSFS_RTC, RealTimeClock
from drivers.power.settings import PowerSettings
from drivers.power.shutdown import ShutdownPlan
from drivers.power.sim_i2c import Ds3231Model, Ina219Model, SimSMBus, UpsModel
from drivers.power.ups import GpioMainsLine, MainsLine, ReopeningBus, Ups


@dataclass
class PowerSimulation:
    """The simulated hardware behind simulated drivers: script it (mains lost, battery voltage ...)."""

    bus: SimSMBus
    ina219: Ina219Model | None
    ups: UpsModel | None
    rtc: Ds3231Model | None
    pin_factory: Any  # gpiozero MockFactory when mains is sensed on a GPIO


@dataclass
class PowerDrivers:
    monitor: PowerMonitor
    rtc: RealTimeClock
    plan: ShutdownPlan
    simulation: PowerSimulation | None = None


def build(
    settings: PowerSettings,
    simulated: bool,
    *,
    prepare_shutdown: Callable[[], Awaitable[None]] | None = None,
    bus: SMBusLike | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PowerDrivers:
    """On the box: /dev/i2c-<i2c_bus> (opened lazily, reopened after failures). Simulated: a register-level
    bus with a UPS on mains with a charged pack, and an RTC holding the current time. `prepare_shutdown` is
    awaited before the shutdown command runs (stop audio, flush the store)."""
    simulation: PowerSimulation | None = None
    pin_factory: Any = None
    if simulated:
        sim_bus = SimSMBus()
        if settings.mains_detect == "gpio":
            pin_factory = importlib.import_module("gpiozero.pins.mock").MockFactory()
        ina_model = ups_model = rtc_model = None
        if settings.ina219_address is not None:
            ina_model = Ina219Model(settings.shunt_ohms)
            mains_line = _mock_mains_line(pin_factory, settings) if pin_factory is not None else None
            ups_model = UpsModel(
                ina_model,
                battery_v=8.3,
                charge_current_positive=settings.charge_current_positive,
                mains_line=mains_line,
                clock=clock,
            )
            sim_bus.attach(settings.ina219_address, ina_model)
        if settings.rtc_address is not None:
            rtc_model = Ds3231Model(start=dt.datetime.now(dt.UTC), oscillator_stopped=False, clock=clock)
            sim_bus.attach(settings.rtc_address, rtc_model)
        simulation = PowerSimulation(sim_bus, ina_model, ups_model, rtc_model, pin_factory)
        bus = sim_bus
    elif bus is None:
        bus = ReopeningBus(settings.i2c_bus)

    line: MainsLine | None = None
    if settings.mains_detect == "gpio":
        assert settings.mains_gpio is not None  # the settings validator made sure
        line = GpioMainsLine(settings.mains_gpio, active_high=settings.mains_gpio_active_high, pin_factory=pin_factory)
    ina = Ina219(bus, settings.ina219_address, settings.shunt_ohms) if settings.ina219_address is not None else None
    ups = Ups(
        ina,
        charge_current_positive=settings.charge_current_positive,
        discharge_threshold_a=settings.discharge_threshold_a,
        mains_line=line,
    )
    plan = ShutdownPlan(settings.shutdown_command, settings.shutdown_delay_s, prepare=prepare_shutdown)
    machine = PowerStateMachine(
        low_v=settings.battery_low_v, ok_v=settings.battery_ok_v, confirm=settings.confirm_samples
    )
    monitor = PowerMonitor(ups, machine, interval_s=settings.sample_interval_s, plan=plan, simulated=simulated)
    chip = Ds3231(bus, settings.rtc_address) if settings.rtc_address is not None else None
    rtc = RealTimeClock(chip, kernel_dir=Path(SYSFS_RTC / settings.rtc_sysfs), simulated=simulated)
    return PowerDrivers(monitor=monitor, rtc=rtc, plan=plan, simulation=simulation)


def _mock_mains_line(factory: Any, settings: PowerSettings) -> Callable[[bool], None]:
    """Drive the mock GPIO input as the HAT's power-good line would."""
    pin = factory.pin(settings.mains_gpio)

    def drive(mains: bool) -> None:
        high = mains if settings.mains_gpio_active_high else not mains
        if high:
            pin.drive_high()
        else:
            pin.drive_low()

    return drive
