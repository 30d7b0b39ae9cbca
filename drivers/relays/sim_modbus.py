"""Simulated Modbus RTU relay boards, answering real RTU bytes on a pseudo-terminal.

The production driver opens the pty's slave path exactly as it opens /dev/ttyUSB0 on a box; the simulator
reads and answers on the master side in a thread of its own. Each board behaves as its profile says (which
functions it accepts, at which addresses, with which values), and can be scripted for tests and for the
technician page's demo mode:

    board.unplug() / board.replug()   stop / resume answering (a cut A/B pair, a board without power)
    board.stick(channel)              the relay no longer follows writes (a welded contact)
    board.drop(n)                     the next n requests go unanswered (noise on the line)
    board.power_cycle()               every relay falls back to off, as a board does when its supply blinks
    board.reply_delay_s = 0.5         a slow board
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import struct
import threading
import time
import tty
from collections.abc import Iterable
from dataclasses import dataclass

from drivers.relays import rtu
from drivers.relays.settings import ModbusProfile

log = logging.getLogger(__name__)

_SILENCE_S = 0.02  # an incomplete frame older than this is dropped, as a board does at the 3.5-character gap


@dataclass(frozen=True)
class SeenRequest:
    """One request frame addressed to a board, as it came over the wire."""

    at: float  # time.monotonic() when it was read
    frame: bytes
    function: int
    address: int
    value: int  # the value written (5, 6) or the quantity asked (1-4)
    answered: bool


class SimulatedRelayBoard:
    """A relay board's Modbus behaviour, driven by a profile. Safe to script from any thread."""

    def __init__(self, device_id: int, profile: ModbusProfile) -> None:
        self.device_id = device_id
        self.profile = profile
        self.reply_delay_s = 0.0
        self._relays = [False] * profile.channels
        self._stuck: set[int] = set()
        self._present = True
        self._drop = 0
        self._lock = threading.Lock()
        self._seen: list[SeenRequest] = []
        self._changes: list[tuple[float, int, bool]] = []

    # -- scripting ------------------------------------------------------------------------------------------

    def unplug(self) -> None:
        with self._lock:
            self._present = False

    def replug(self) -> None:
        with self._lock:
            self._present = True

    @property
    def present(self) -> bool:
        return self._present

    def stick(self, channel: int) -> None:
        with self._lock:
            self._stuck.add(self._check(channel))

    def unstick(self, channel: int) -> None:
        with self._lock:
            self._stuck.discard(channel)

    def drop(self, requests: int) -> None:
        with self._lock:
            self._drop = requests

    def power_cycle(self) -> None:
        with self._lock:
            for index in range(len(self._relays)):
                self._set(index, False)

    def relay(self, channel: int) -> bool:
        with self._lock:
            return self._relays[self._check(channel) - 1]

    def relays(self) -> list[bool]:
        with self._lock:
            return list(self._relays)

    def requests(self, function: int | None = None) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self._seen if function is None or r.function == function]

    def changes(self) -> list[tuple[float, int, bool]]:
        """(time.monotonic(), channel, state) of every relay movement."""
        with self._lock:
            return list(self._changes)

    def clear_log(self) -> None:
        with self._lock:
            self._seen.clear()
            self._changes.clear()

    # -- the protocol ---------------------------------------------------------------------------------------

    def handle(self, frame: bytes) -> bytes | None:
        """The response PDU to a request ADU (CRC already checked), or None to stay silent."""
        function = frame[1]
        address, value = struct.unpack(">HH", frame[2:6]) if len(frame) >= 8 else (0, 0)
        with self._lock:
            answer = self._present and self._drop == 0
            if self._present and self._drop > 0:
                self._drop -= 1
            self._seen.append(SeenRequest(time.monotonic(), frame, function, address, value, answer))
            if not answer:
                return None
            return self._respond(function, address, value, frame)

    def _respond(self, function: int, address: int, value: int, frame: bytes) -> bytes:
        profile = self.profile
        if function not in (profile.read_function, profile.write_function):
            return rtu.exception_pdu(function, rtu.ILLEGAL_FUNCTION)
        if function in (rtu.WRITE_SINGLE_COIL, rtu.WRITE_SINGLE_REGISTER):
            channel = address - profile.first_address + 1
            if not 1 <= channel <= profile.channels:
                return rtu.exception_pdu(function, rtu.ILLEGAL_DATA_ADDRESS)
            if function == rtu.WRITE_SINGLE_COIL:
                if value not in (rtu.COIL_ON, rtu.COIL_OFF):
                    return rtu.exception_pdu(function, rtu.ILLEGAL_DATA_VALUE)
                on = value == rtu.COIL_ON
            else:
                if value not in (profile.register_on, profile.register_off):
                    return rtu.exception_pdu(function, rtu.ILLEGAL_DATA_VALUE)
                on = value == profile.register_on
            if channel not in self._stuck:
                self._set(channel - 1, on)
            return frame[1:6]  # a single write is answered with an echo of the request
        count = value
        base = profile.read_address(1)
        first = address - base
        if count < 1 or first < 0 or first + count > profile.channels:
            return rtu.exception_pdu(function, rtu.ILLEGAL_DATA_ADDRESS)
        states = self._relays[first : first + count]
        if function in (rtu.READ_COILS, rtu.READ_DISCRETE_INPUTS):
            data = rtu.pack_bits(states)
        else:
            data = b"".join(struct.pack(">H", profile.status_on if s else profile.status_off) for s in states)
        return bytes([function, len(data)]) + data

    def _set(self, index: int, on: bool) -> None:
        if self._relays[index] != on:
            self._relays[index] = on
            self._changes.append((time.monotonic(), index + 1, on))

    def _check(self, channel: int) -> int:
        if not 1 <= channel <= self.profile.channels:
            raise ValueError(f"board {self.device_id} has channels 1..{self.profile.channels}, not {channel}")
        return channel


class SimulatedModbusBus:
    """An RS-485 line with simulated boards on it, reached through a pty at `port`."""

    def __init__(self, boards: Iterable[SimulatedRelayBoard], name: str = "modbus") -> None:
        self.boards = {board.device_id: board for board in boards}
        self.name = name
        self._master, self._slave = os.openpty()
        # Raw, so the line discipline neither echoes nor rewrites bytes before pyserial configures the port.
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"sim {name} {self.port}", daemon=True)
        self.frames_in = 0
        self.crc_errors = 0

    def board(self, device_id: int) -> SimulatedRelayBoard:
        return self.boards[device_id]

    def start(self) -> SimulatedModbusBus:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _serve(self) -> None:
        buffer = b""
        last_byte = time.monotonic()
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master], [], [], _SILENCE_S)
            now = time.monotonic()
            if not readable:
                if buffer and now - last_byte > _SILENCE_S:
                    buffer = b""  # the silence ends a frame; a partial or unknown one is dropped
                continue
            try:
                chunk = os.read(self._master, rtu.MAX_ADU)
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(_SILENCE_S)
                continue
            buffer += chunk
            last_byte = now
            buffer = self._frames(buffer)

    def _frames(self, buffer: bytes) -> bytes:
        while True:
            length = rtu.request_length(buffer)
            if length is None or length == 0 or len(buffer) < length:
                return buffer
            frame, buffer = buffer[:length], buffer[length:]
            if not rtu.crc_ok(frame):
                self.crc_errors += 1
                return b""  # a board ignores a damaged frame; everything after it is suspect too
            self.frames_in += 1
            self._dispatch(frame)

    def _dispatch(self, frame: bytes) -> None:
        address = frame[0]
        if address == rtu.BROADCAST_ADDRESS:
            for each in self.boards.values():
                each.handle(frame)  # a broadcast is obeyed and never answered
            return
        board = self.boards.get(address)
        if board is None:
            return
        reply = board.handle(frame)
        if reply is None:
            return
        if board.reply_delay_s:
            time.sleep(board.reply_delay_s)
        try:
            os.write(self._master, rtu.adu(address, reply))
        except OSError as exc:
            log.warning("simulated bus %s: cannot answer: %s", self.port, exc)
