"""A serial device read and written by the event loop, without a thread and without ever blocking it.

pyserial opens the device (path checks, termios raw mode and baud rate, an exclusive lock so that a second
process cannot interleave on the line); from then on the loop watches the file descriptor, which pyserial
opened non-blocking. A read error or end-of-file (a USB adapter unplugged, a pty whose other end closed) is
reported once through `on_lost` and the port closes itself: the owner opens a new one to reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import serial

# A peer that does not read (a frozen node) must not make us buffer without end: frames are re-sent anyway.
MAX_PENDING_WRITE = 8192


class PortError(OSError):
    """The device could not be opened (missing, busy, not a tty, no permission)."""


class SerialPort:
    def __init__(
        self,
        path: str,
        baudrate: int,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.path = path
        self.baudrate = baudrate
        self._on_data = on_data
        self._on_lost = on_lost
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._pending = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.tx_dropped = 0

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    async def open(self) -> None:
        # Opening can stall on some USB-serial drivers (modem-control waits): keep it off the loop.
        try:
            port = await asyncio.to_thread(self._open_blocking)
        except (OSError, serial.SerialException, ValueError) as exc:
            raise PortError(f"cannot open {self.path}: {exc}") from exc
        self._serial = port
        self._fd = port.fileno()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)

    def _open_blocking(self) -> serial.Serial:
        port = serial.Serial(self.path, self.baudrate, timeout=0, write_timeout=0, exclusive=True)
        # Bytes that arrived while nobody listened belong to exchanges that are over.
        port.reset_input_buffer()
        return port

    def write(self, data: bytes) -> bool:
        """Queue data for the device; False if it was dropped (port closed, or the peer stopped reading)."""
        if self._serial is None:
            return False
        if self._pending:
            if len(self._pending) + len(data) > MAX_PENDING_WRITE:
                self.tx_dropped += len(data)
                return False
            self._pending.extend(data)
            return True
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._lost(f"write failed: {exc}")
            return False
        self.bytes_out += written
        if written < len(data):
            self._pending.extend(data[written:])
            assert self._loop is not None
            self._loop.add_writer(self._fd, self._writable)
        return True

    def close(self) -> None:
        port, self._serial = self._serial, None
        if port is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._pending.clear()
        with contextlib.suppress(OSError, serial.SerialException):
            port.close()
        self._fd = -1

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(f"read failed: {exc}")
            return
        if not data:
            self._lost("device hung up")
            return
        self.bytes_in += len(data)
        self._on_data(data)

    def _writable(self) -> None:
        try:
            written = os.write(self._fd, self._pending)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(f"write failed: {exc}")
            return
        self.bytes_out += written
        del self._pending[:written]
        if not self._pending and self._loop is not None:
            self._loop.remove_writer(self._fd)

    def _lost(self, reason: str) -> None:
        if self._serial is None:
            return
        self.close()
        self._on_lost(reason)
