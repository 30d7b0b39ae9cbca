"""INA219 current/voltage monitor (TI SBOS448), as on UPS HATs: register layout and conversions.

Registers are 16 bits, sent most significant byte first. SMBus "word" transfers are least significant byte
first, so they are not used here: an I2C block read of 2 bytes gives [MSB, LSB] as the chip sends them.
The current is computed from the shunt voltage register (I = V / R), which needs no calibration register and
therefore cannot be wrong because another program reprogrammed it.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.power.i2c import SMBusLike

REG_CONFIG = 0x00
REG_SHUNT_VOLTAGE = 0x01
REG_BUS_VOLTAGE = 0x02
REG_POWER = 0x03
REG_CURRENT = 0x04
REG_CALIBRATION = 0x05

POWER_ON_CONFIG = 0x399F  # the chip's reset value: 32 V range, /8 gain, 12-bit, continuous

CONFIG_RESET = 1 << 15
CONFIG_BRNG_32V = 1 << 13
PGA_SHIFT = 11  # PG1..PG0: shunt full scale 40 mV * 2**pga
BADC_SHIFT = 7
SADC_SHIFT = 3
ADC_12BIT_32_SAMPLES = 0b1101  # 17 ms per conversion: averages out an amplifier's bursts of current
MODE_SHUNT_AND_BUS_CONTINUOUS = 0b111

SHUNT_LSB_V = 10e-6
BUS_LSB_V = 4e-3
BUS_CNVR = 1 << 1  # conversion ready
BUS_OVF = 1 << 0  # math overflow: current/power out of range

# Ours: 32 V range (a 2-cell pack is 8.4 V full, above the 16 V range's margin for 4 cells), shunt full scale
# +/-320 mV (/8), both ADCs averaging 32 samples, continuous.
CONFIG = (
    CONFIG_BRNG_32V
    | (0b11 << PGA_SHIFT)
    | (ADC_12BIT_32_SAMPLES << BADC_SHIFT)
    | (ADC_12BIT_32_SAMPLES << SADC_SHIFT)
    | MODE_SHUNT_AND_BUS_CONTINUOUS
)


def pga_of(config: int) -> int:
    """0..3: shunt full scale 40, 80, 160, 320 mV."""
    return (config >> PGA_SHIFT) & 0b11


def shunt_full_scale_counts(pga: int) -> int:
    return 4000 << pga  # 10 uV counts: 4000 = 40 mV


def decode_bus_voltage(register: int) -> tuple[float, bool, bool]:
    """Bus voltage register -> (volts, conversion ready, overflow). Bits 15..3 are the voltage in 4 mV steps;
    bit 2 is unused; bit 1 CNVR; bit 0 OVF."""
    return (register >> 3) * BUS_LSB_V, bool(register & BUS_CNVR), bool(register & BUS_OVF)


def encode_bus_voltage(volts: float, *, ready: bool = True, overflow: bool = False) -> int:
    counts = max(0, min(0x1FFF, round(volts / BUS_LSB_V)))
    return (counts << 3) | (BUS_CNVR if ready else 0) | (BUS_OVF if overflow else 0)


def decode_shunt_voltage(register: int) -> float:
    """Shunt voltage register -> volts. A two's complement number of 10 uV; at gains under /8 the unused high
    bits hold copies of the sign bit, so reading the 16 bits as signed is right at every gain."""
    signed = register - 0x10000 if register & 0x8000 else register
    return signed * SHUNT_LSB_V


def encode_shunt_voltage(volts: float, pga: int = 3) -> int:
    """What the chip puts in the register: clamped to the gain's full scale, two's complement, sign-extended."""
    limit = shunt_full_scale_counts(pga)
    counts = max(-limit, min(limit, round(volts / SHUNT_LSB_V)))
    return counts & 0xFFFF


def calibration_for(current_lsb_a: float, shunt_ohms: float) -> int:
    """Datasheet equation 1: Cal = trunc(0.04096 / (Current_LSB * R_shunt)); bit 0 is read-only zero."""
    return int(0.04096 / (current_lsb_a * shunt_ohms)) & 0xFFFE


@dataclass(frozen=True, slots=True)
class Ina219Reading:
    bus_v: float  # at VIN-, the load side of the shunt
    shunt_v: float  # VIN+ minus VIN-
    current_a: float  # shunt_v / R, sign as wired (see PowerSettings.charge_current_positive)
    overflow: bool

    @property
    def supply_v(self) -> float:
        """At VIN+, the battery side of the shunt on UPS HATs: the pack voltage without the shunt's drop."""
        return self.bus_v + self.shunt_v


class Ina219:
    def __init__(self, bus: SMBusLike, address: int = 0x40, shunt_ohms: float = 0.1) -> None:
        self.bus = bus
        self.address = address
        self.shunt_ohms = shunt_ohms

    def read_register(self, register: int) -> int:
        msb, lsb = self.bus.read_i2c_block_data(self.address, register, 2)
        return (msb << 8) | lsb

    def write_register(self, register: int, value: int) -> None:
        self.bus.write_i2c_block_data(self.address, register, [(value >> 8) & 0xFF, value & 0xFF])

    def configure(self, config: int = CONFIG) -> None:
        self.write_register(REG_CONFIG, config)

    def read(self) -> Ina219Reading:
        bus_v, _ready, overflow = decode_bus_voltage(self.read_register(REG_BUS_VOLTAGE))
        shunt_v = decode_shunt_voltage(self.read_register(REG_SHUNT_VOLTAGE))
        return Ina219Reading(bus_v=bus_v, shunt_v=shunt_v, current_a=shunt_v / self.shunt_ohms, overflow=overflow)
