"""A simulated PMS5003 on a pseudo-terminal: real 32-byte frames at the sensor's pace, scriptable.

The hub's driver opens `path` as it would /dev/ttyAMA1. Scriptable: the PM values, garbage or cut frames on
the line, corrupted checksums, a silent sensor (fan stopped, sleep mode) and unplugging/replugging the port.
"""

from __future__ import annotations

from pathlib import Path

from drivers.serial_link.pty import PtySimulator

from .pms5003 import FIELDS, encode_frame

DEFAULT_VALUES = [8, 14, 20, 8, 14, 20, 1800, 520, 110, 9, 2, 1]  # FIELDS order


class Pms5003Simulator(PtySimulator):
    def __init__(self, path: Path | None = None, *, interval_s: float = 1.0) -> None:
        super().__init__(path, tmp_prefix="village-hub-pms-", device="ttyPMS", thread_name="pms5003-simulator")
        self.interval_s = interval_s
        self._values = list(DEFAULT_VALUES)
        self._before_next = bytearray()
        self._corrupt_next = 0
        self._silent = False
        self.frames_sent = 0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self.lock:
                if self._silent:
                    continue
                frame = bytearray(encode_frame(self._values))
                if self._corrupt_next:
                    self._corrupt_next -= 1
                    frame[-1] ^= 0x01  # the check code no longer matches
                self.line.write(bytes(self._before_next) + bytes(frame))
                self._before_next.clear()
                self.frames_sent += 1

    # -- scripting ------------------------------------------------------------------------------------------------
    def set_values(self, **values: int) -> None:
        """Words by name (pms5003.FIELDS), e.g. set_values(pm2_5=55, pm10=80)."""
        with self.lock:
            for name, value in values.items():
                self._values[FIELDS.index(name)] = value

    def inject(self, data: bytes) -> None:
        """Bytes to send just before the next frame: garbage, a cut frame."""
        with self.lock:
            self._before_next.extend(data)

    def corrupt_next(self, count: int = 1) -> None:
        with self.lock:
            self._corrupt_next += count

    def go_silent(self) -> None:
        with self.lock:
            self._silent = True

    def resume(self) -> None:
        with self.lock:
            self._silent = False
