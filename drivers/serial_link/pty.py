"""The device end of a simulated serial device: a pseudo-terminal whose driver end appears at a fixed path.

The path is a symlink to the pty's slave (/dev/pts/N), as /dev/serial/by-id/... is a symlink to /dev/ttyUSB0:
the driver opens the path from its settings and never learns the pty's name. `unplug()` removes the symlink
and closes both ends, so the driver's open descriptor hangs up exactly as when a USB adapter is pulled;
`plug()` makes a new pty and puts the symlink back, as when it is plugged in again.

Ptys do not pace bytes at a baud rate: whatever is written arrives at once. Simulators that need the
timing of a real line sleep for it themselves.
"""

from __future__ import annotations

import contextlib
import os
import tty
from pathlib import Path


class PtyLine:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._master = -1
        self._slave = -1
        self.bytes_dropped = 0

    @property
    def plugged(self) -> bool:
        return self._master >= 0

    def fileno(self) -> int:
        return self._master

    def plug(self) -> None:
        if self.plugged:
            return
        master, slave = os.openpty()
        # Raw from the start: a cooked slave would echo what we send back to us and mangle CR/LF. We keep our
        # own slave descriptor open for the pty's whole life so that these settings persist, and so that our
        # reads see "nothing yet" rather than EIO while the driver has the port closed.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.path)  # atomic: the path is never half made

    def unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def read(self) -> bytes:
        """What the driver wrote since the last call; b"" if nothing (or unplugged)."""
        if self._master < 0:
            return b""
        try:
            return os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return b""

    def write(self, data: bytes) -> None:
        """Send to the driver. Bytes nobody reads are lost once the pty buffer is full, as on a real UART."""
        if self._master < 0:
            self.bytes_dropped += len(data)
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._master, view)
            except (BlockingIOError, OSError):
                self.bytes_dropped += len(view)
                return
            view = view[written:]
