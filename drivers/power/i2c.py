"""The part of smbus2's SMBus the power drivers use. The simulated bus (sim_i2c.py) implements the same methods
with the same byte semantics, so the chip drivers run unchanged on either."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class SMBusLike(Protocol):
    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None: ...

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]: ...

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None: ...

    def close(self) -> None: ...


def open_bus(number: int) -> SMBusLike:
    """/dev/i2c-<number>. Raises OSError (FileNotFoundError without i2c-dev / dtparam=i2c_arm=on)."""
    from smbus2 import SMBus

    bus: SMBusLike = SMBus(number)
    return bus
