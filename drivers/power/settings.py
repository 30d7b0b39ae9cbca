"""The `[power]` table of hub.toml: the UPS HAT's monitor (INA219), the real-time clock (DS3231) and what to do
when the battery runs low."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivers.base import DriverSettings


class PowerSettings(DriverSettings):
    i2c_bus: int = Field(
        default=1,
        ge=0,
        le=255,
        title="I2C bus",
        description="Number N of /dev/i2c-N the UPS HAT and the RTC are on (1 on a Raspberry Pi's header).",
    )
    ina219_address: int | None = Field(
        default=0x40,
        ge=0x40,
        le=0x4F,
        title="INA219 address",
        description=(
            "I2C address of the UPS HAT's current/voltage monitor: 0x40-0x4F set by its A0/A1 pins (Waveshare "
            "UPS HAT: 0x42, UPS HAT (C): 0x43). Empty: no UPS fitted, mains is then assumed present."
        ),
    )
    shunt_ohms: float = Field(
        default=0.1,
        gt=0.0,
        le=10.0,
        title="Shunt resistor (ohm)",
        description="The resistor the INA219 measures current across (0.1 on Waveshare HATs; printed R100).",
    )
    charge_current_positive: bool = Field(
        default=True,
        title="Charging current is positive",
        description="How the shunt is wired: true if current into the battery (charging) reads positive.",
    )
    mains_detect: Literal["current", "gpio"] = Field(
        default="current",
        title="Mains detection",
        description=(
            "'current': mains is absent while the battery is discharging (current below minus the threshold "
            "below); 'gpio': a GPIO input wired to the HAT's power-good/charger line."
        ),
    )
    discharge_threshold_a: float = Field(
        default=0.05,
        gt=0.0,
        le=5.0,
        title="Discharge threshold (A)",
        description=(
            "'current' detection: a battery current below minus this means the box runs on battery. Above the "
            "few mA a full battery trickles, below what the Pi alone draws (0.3 A and more)."
        ),
    )
    mains_gpio: int | None = Field(
        default=None,
        ge=0,
        le=63,
        title="Mains GPIO (BCM)",
        description="'gpio' detection: BCM number of the input that shows mains.",
    )
    mains_gpio_active_high: bool = Field(
        default=True,
        title="Mains GPIO active high",
        description="'gpio' detection: true if the input is high while mains is present.",
    )
    battery_low_v: float = Field(
        default=6.4,
        gt=0.0,
        le=60.0,
        title="Battery low (V)",
        description=(
            "Pack voltage under which the battery counts as low and, on battery, the shutdown is armed. Default "
            "for a 2-cell Li-ion pack (3.2 V per cell under load); a 1-cell HAT needs about 3.3."
        ),
    )
    battery_ok_v: float = Field(
        default=7.0,
        gt=0.0,
        le=60.0,
        title="Battery recovered (V)",
        description=(
            "Pack voltage above which a low battery counts as recovered. Higher than 'battery low' (hysteresis): "
            "the voltage of a loaded battery wanders, and an amplifier at full volume pulls it down."
        ),
    )
    confirm_samples: int = Field(
        default=3,
        ge=1,
        le=100,
        title="Samples to confirm a battery change",
        description="Consecutive samples past a threshold before battery low / recovered is declared.",
    )
    sample_interval_s: float = Field(
        default=2.0,
        ge=0.01,
        le=300.0,
        title="Sample interval (s)",
        description="How often the UPS is read. Mains loss is reported within one interval.",
    )
    shutdown_command: list[str] = Field(
        default=["systemctl", "poweroff"],
        min_length=1,
        title="Shutdown command",
        description="Program and arguments run to power the box off cleanly (no shell).",
    )
    shutdown_delay_s: float = Field(
        default=60.0,
        ge=0.0,
        le=3600.0,
        title="Shutdown delay (s)",
        description=(
            "Time between 'battery low while on battery' and the shutdown command: for the hub to finish what "
            "it does, and for mains to come back (which cancels the shutdown)."
        ),
    )
    rtc_address: int | None = Field(
        default=0x68,
        ge=0x03,
        le=0x77,
        title="DS3231 address",
        description="I2C address of the real-time clock (0x68 on every DS3231). Empty: no RTC fitted.",
    )
    rtc_sysfs: str = Field(
        default="rtc0",
        pattern=r"^rtc\d+$",
        title="Kernel RTC",
        description=(
            "When the kernel owns the DS3231 (dtoverlay=i2c-rtc,ds3231: i2cdetect shows UU), its time is read "
            "from /sys/class/rtc/<this> instead."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> PowerSettings:
        if self.battery_ok_v <= self.battery_low_v:
            raise ValueError(
                f"battery_ok_v ({self.battery_ok_v}) must be above battery_low_v ({self.battery_low_v}): "
                "without a gap between them the state flaps"
            )
        if self.mains_detect == "gpio" and self.mains_gpio is None:
            raise ValueError("mains_detect = 'gpio' needs mains_gpio (the BCM pin number)")
        return self
