"""The node's real hardware, through MicroPython's `machine` module. Imported only on the microcontroller
(by main.py); type-checked against the esp32 and rp2 stubs by scripts/check-micropython.

Wiring (PROTOCOL.md section 8 has the table):
- hub link: a hardware UART at 115200 8N1 to the hub's UART (or a USB-serial adapter), not the USB REPL;
- PMS5003: a second UART at 9600 8N1 (the sensor's fixed rate), sensor TX to node RX only;
- soil probes: capacitive probes' analogue outputs on ADC pins, read as read_u16() (0..65535);
- door: a reed switch to GND with the internal pull-up: closed door = 0, open door *or cut wire* = 1;
- valve: a GPIO driving the valve's relay/MOSFET, high = open, with an external pull-down so that the
  valve stays closed while the pin floats during reset and boot.
"""

import binascii
import gc
import sys
import time

import machine

from . import protocol as p
from .node import Board, NodeConfig


class Pins:
    def __init__(
        self,
        hub_uart: int,
        hub_tx: int,
        hub_rx: int,
        air_uart: int,
        air_tx: int,
        air_rx: int,
        soil: list[int],
        door: int,
        valve: int,
    ) -> None:
        self.hub_uart = hub_uart
        self.hub_tx = hub_tx
        self.hub_rx = hub_rx
        self.air_uart = air_uart
        self.air_tx = air_tx
        self.air_rx = air_rx
        self.soil = soil
        self.door = door
        self.valve = valve


# if/else on sys.platform (not an early return): mypy --platform then checks exactly one branch per port.
def default_pins() -> Pins:
    if sys.platform == "esp32":
        # ADC1 pins only (ADC2 is unusable while Wi-Fi runs); 34/35 are input-only, fine for probes.
        pins = Pins(2, 17, 16, 1, 4, 5, soil=[32, 33, 34, 35], door=27, valve=26)
    else:
        # rp2 (Raspberry Pi Pico): GP26-28 are the ADC inputs.
        pins = Pins(0, 0, 1, 1, 4, 5, soil=[26, 27, 28], door=15, valve=16)
    return pins


def _adc(pin: int) -> machine.ADC:
    if sys.platform == "esp32":
        # 11 dB attenuation: the probes' 0-3 V output range.
        adc = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)
    else:
        adc = machine.ADC(machine.Pin(pin))
    return adc


class MachineBoard(Board):
    def __init__(self, pins: Pins) -> None:
        # Valve first, driven low, so nothing below can leave it open.
        self._valve = machine.Pin(pins.valve, machine.Pin.OUT, value=0)
        self._door = machine.Pin(pins.door, machine.Pin.IN, machine.Pin.PULL_UP)
        self._soil = [_adc(pin) for pin in pins.soil]
        self._hub = machine.UART(
            pins.hub_uart,
            baudrate=115200,
            tx=machine.Pin(pins.hub_tx),
            rx=machine.Pin(pins.hub_rx),
            rxbuf=1024,
        )
        self._air = machine.UART(
            pins.air_uart, baudrate=9600, tx=machine.Pin(pins.air_tx), rx=machine.Pin(pins.air_rx), rxbuf=256
        )

    def soil_probes(self) -> int:
        return len(self._soil)

    def read_soil(self, index: int) -> int:
        return self._soil[index].read_u16()

    def read_door(self) -> bool:
        return self._door.value() == 1

    def set_valve(self, open: bool) -> None:
        self._valve.value(1 if open else 0)

    def read_hub(self) -> bytes:
        waiting = self._hub.any()
        return (self._hub.read(waiting) or b"") if waiting else b""

    def write_hub(self, data: bytes) -> None:
        self._hub.write(data)

    def read_air(self) -> bytes:
        waiting = self._air.any()
        return (self._air.read(waiting) or b"") if waiting else b""

    def mem_free(self) -> int:
        return gc.mem_free()


class Clock:
    """Milliseconds since boot as an int that never wraps: time.ticks_ms() wraps (after about 12.4 days on the
    ESP32), so the node logic is fed the sum of ticks_diff steps instead."""

    def __init__(self) -> None:
        self._last = time.ticks_ms()
        self._ms = 0

    def now(self) -> int:
        ticks = time.ticks_ms()
        self._ms += time.ticks_diff(ticks, self._last)
        self._last = ticks
        return self._ms


def node_id() -> str:
    return binascii.hexlify(machine.unique_id()).decode()


def node_config() -> NodeConfig:
    return NodeConfig(node_id(), capabilities=p.CAP_SOIL | p.CAP_DOOR | p.CAP_AIR | p.CAP_VALVE)
