"""The device end of a simulated serial device: a pseudo-terminal whose driver end appears at a fixed path.

The path is a symlink to the pty's slave (/dev/pts/N), as /dev/serial/by-id/... is a symlink to /dev/ttyUSB0:
the driver opens the path from its settings and never learns the pty's name. `unplug()` removes the symlink
and closes both ends, so the driver's open descriptor hangs up exactly as when a USB adapter is pulled;
`plug()` makes a new pty and puts the symlink back, as when it is plugged in again.

Ptys do not pace bytes at a baud rate: whatever is written arrives at once. Simulators that need the
timing of a real line sleep for it themselves.

`PtySimulator` is the common body of such simulators: the line, a thread running the device's `_loop`, and
the temporary directory the path lives in when none is given.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import tty
from pathlib import Path
from typing import Self


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


class PtySimulator:
    """A simulated serial device on a `PtyLine` at `path` (default: `device` in a fresh temporary directory whose
    name starts with `tmp_prefix`), run by a daemon thread named `thread_name`.

    Subclasses implement `_loop`, which runs until `_stop` is set, and hold `lock` whenever they touch the line
    or the device's state. `lock` is a threading.Lock unless the subclass passes another (an RLock)."""

    def __init__(
        self,
        path: Path | None,
        *,
        tmp_prefix: str,
        device: str,
        thread_name: str,
        lock: threading.Lock | threading.RLock | None = None,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=tmp_prefix)
            path = Path(self._tmp.name) / device
        self.path = path
        self.line = PtyLine(path)
        self.lock = threading.Lock() if lock is None else lock
        self._thread_name = thread_name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> Self:
        with self.lock:
            self.line.plug()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self._thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        with self.lock:
            self.line.unplug()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ------------------------------------------------------------------------------------------------
    def unplug(self) -> None:
        with self.lock:
            self.line.unplug()

    def replug(self) -> None:
        with self.lock:
            self.line.plug()
