"""A simulated PMS5003 on a pseudo-terminal: real 32-byte frames at the sensor's pace, scriptable.

The hub's driver opens `path` as it would /dev/ttyAMA1. Scriptable: the PM values, garbage or cut frames on
the line, corrupted checksums, a silent sensor (fan stopped, sleep mode) and unplugging/replugging the port.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from drivers.serial_link.pty import PtyLine

from .pms5003 import FIELDS, encode_frame

DEFAULT_VALUES = [8, 14, 20, 8, 14, 20, 1800, 520, 110, 9, 2, 1]  # FIELDS order


class Pms5003Simulator:
    def __init__(self, path: Path | None = None, *, interval_s: float = 1.0) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="village-hub-pms-")
            path = Path(self._tmp.name) / "ttyPMS"
        self.path = path
        self.interval_s = interval_s
        self.line = PtyLine(path)
        self._lock = threading.Lock()
        self._values = list(DEFAULT_VALUES)
        self._before_next = bytearray()
        self._corrupt_next = 0
        self._silent = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_sent = 0

    def start(self) -> Pms5003Simulator:
        with self._lock:
            self.line.plug()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="pms5003-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        with self._lock:
            self.line.unplug()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Pms5003Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
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
        with self._lock:
            for name, value in values.items():
                self._values[FIELDS.index(name)] = value

    def inject(self, data: bytes) -> None:
        """Bytes to send just before the next frame: garbage, a cut frame."""
        with self._lock:
            self._before_next.extend(data)

    def corrupt_next(self, count: int = 1) -> None:
        with self._lock:
            self._corrupt_next += count

    def go_silent(self) -> None:
        with self._lock:
            self._silent = True

    def resume(self) -> None:
        with self._lock:
            self._silent = False

    def unplug(self) -> None:
        with self._lock:
            self.line.unplug()

    def replug(self) -> None:
        with self._lock:
            self.line.plug()
