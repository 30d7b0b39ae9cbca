"""The simulated sensor node: the firmware's own logic (vhnode.node.Node) on the far end of a pseudo-terminal.

Only the `machine` layer is replaced: `SimBoard` stands where vhnode.hw.MachineBoard stands on the
microcontroller, with scripted probe values, a door switch, a valve whose every change is recorded, a PMS5003
producing real frames on the node's air UART, and the hub link on a pty (`PtyLine`) whose path the hub's driver
opens like any serial device. A thread runs the firmware's main loop (`Node.step`) every couple of
milliseconds, as main.py does on the node.

Scriptable for tests and demos: probe values, door, air values, cutting the wire (`go_silent`), losing or
corrupting the node's next answers, injecting bytes, unplugging/replugging the port, rebooting the node.
`pace_baud` makes the node take the time real bytes take on a line at that rate (ptys deliver at once).
"""

from __future__ import annotations

import random
import select
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from drivers.micropython.vhnode import FIRMWARE_VERSION, pms5003
from drivers.micropython.vhnode import protocol as p
from drivers.micropython.vhnode.node import Node, NodeConfig
from drivers.micropython.vhnode.scripted import ScriptedPins

from .pty import PtyLine, PtySimulator

DEFAULT_AIR = [5, 12, 18, 5, 12, 18, 1500, 450, 90, 8, 2, 1]  # a clean morning (FIELDS order)
LOOP_PERIOD_S = 0.002


class SimBoard(ScriptedPins):
    """The node's hardware, simulated. Every attribute is guarded by the simulator's lock."""

    def __init__(self, line: PtyLine, soil: Sequence[int], air_interval_s: float) -> None:
        super().__init__(list(soil))
        self.line = line
        self.valve_changes: list[tuple[float, bool]] = []  # (monotonic time, open) for every pin write that changed it
        self.air_values = list(DEFAULT_AIR)
        self.air_enabled = True
        self.air_interval_s = air_interval_s
        self._next_air = 0.0
        self.air_extra = bytearray()  # bytes to put on the air UART before the next frame (garbage)
        self.silent = False  # the wire is cut: nothing in, nothing out
        self.drop_next = 0  # node frames to lose on the way to the hub
        self.corrupt_next = 0  # node frames to damage (one flipped bit) on the way to the hub
        self.lose_types: set[int] = set()  # message types the node sends that never reach the hub
        self.pace_baud: int | None = None
        self.frames_out = 0

    def set_valve(self, open: bool) -> None:
        if open != self.valve:
            self.valve_changes.append((time.monotonic(), open))
        super().set_valve(open)

    def read_hub(self) -> bytes:
        data = self.line.read()
        if self.silent:
            return b""
        if data and self.pace_baud:
            time.sleep(len(data) * 10 / self.pace_baud)  # 8N1: ten bit times per byte to arrive
        return data

    def write_hub(self, data: bytes) -> None:
        if self.silent:
            return
        self.frames_out += 1
        if self.lose_types and any(f.type in self.lose_types for f in p.FrameDecoder().feed(data)):
            return
        if self.drop_next:
            self.drop_next -= 1
            return
        if self.corrupt_next:
            self.corrupt_next -= 1
            damaged = bytearray(data)
            # Flip one bit inside the frame (not a delimiter): the hub must see a bad CRC or bad stuffing.
            at = random.randrange(1, len(damaged) - 1)  # noqa: S311 - noise, not cryptography
            damaged[at] ^= 1 << random.randrange(8)  # noqa: S311
            data = bytes(damaged)
        if self.pace_baud:
            time.sleep(len(data) * 10 / self.pace_baud)
        self.line.write(data)

    def read_air(self) -> bytes:
        if not self.air_enabled:
            return b""
        now = time.monotonic()
        if now < self._next_air:
            return b""
        self._next_air = now + self.air_interval_s
        out = bytes(self.air_extra) + pms5003.encode_frame(self.air_values)
        self.air_extra.clear()
        return out


class NodeSimulator(PtySimulator):
    """A sensor node on a pty at `path` (default: a fresh temporary directory), run by a thread."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        soil: Sequence[int] = (21000, 23000, 30000, 42000),
        node_id: str = "sim-node-1",
        firmware: str = FIRMWARE_VERSION + "+sim",
        capabilities: int = p.CAP_SOIL | p.CAP_DOOR | p.CAP_AIR | p.CAP_VALVE,
        protocol_major: int = p.PROTOCOL_MAJOR,
        protocol_minor: int = p.PROTOCOL_MINOR,
        air_interval_s: float = 1.0,
        failsafe_min_ms: int = 200,
        pace_baud: int | None = None,
    ) -> None:
        super().__init__(
            path,
            tmp_prefix="village-hub-node-",
            device="ttyNODE",
            thread_name="node-simulator",
            lock=threading.RLock(),
        )
        self.config = NodeConfig(
            node_id,
            firmware=firmware,
            capabilities=capabilities,
            failsafe_min_ms=failsafe_min_ms,
            major=protocol_major,
            minor=protocol_minor,
        )
        self.board = SimBoard(self.line, soil, air_interval_s)
        self.board.pace_baud = pace_baud
        self._t0 = time.monotonic()
        self.node = Node(self.board, self.config, self._now_ms())
        self.boots = 1

    def _now_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    def _loop(self) -> None:
        while not self._stop.is_set():
            fd = self.line.fileno()
            if fd >= 0:
                try:
                    select.select([fd], [], [], LOOP_PERIOD_S)
                except (OSError, ValueError):  # unplugged under our feet
                    time.sleep(LOOP_PERIOD_S)
            else:
                time.sleep(LOOP_PERIOD_S)
            with self.lock:
                self.node.step(self._now_ms())

    # -- scripting ------------------------------------------------------------------------------------------------
    def set_soil(self, values: Sequence[int]) -> None:
        with self.lock:
            if len(values) != len(self.board.soil):
                raise ValueError(f"this node has {len(self.board.soil)} probes")
            self.board.soil = [int(v) for v in values]

    def set_door(self, open: bool) -> None:
        with self.lock:
            self.board.door = open

    def set_air(self, **values: int) -> None:
        """PMS5003 words by name (pms5003.FIELDS), e.g. set_air(pm2_5=55, pm10=80)."""
        with self.lock:
            for name, value in values.items():
                self.board.air_values[pms5003.FIELDS.index(name)] = value

    def set_air_enabled(self, enabled: bool) -> None:
        with self.lock:
            self.board.air_enabled = enabled

    def inject_air(self, data: bytes) -> None:
        """Bytes to put on the node's air UART before the sensor's next frame (noise, a cut frame)."""
        with self.lock:
            self.board.air_extra.extend(data)

    def go_silent(self) -> None:
        """Cut the wire both ways; the node keeps running (and its fail-safe timer with it)."""
        with self.lock:
            self.board.silent = True

    def resume(self) -> None:
        with self.lock:
            self.board.silent = False

    def drop_responses(self, count: int) -> None:
        with self.lock:
            self.board.drop_next += count

    def lose_frames_of_type(self, *types: int) -> None:
        """Lose every frame of these types from now on (e.g. protocol.EVENT); no argument: lose none."""
        with self.lock:
            self.board.lose_types = set(types)

    def corrupt_responses(self, count: int) -> None:
        with self.lock:
            self.board.corrupt_next += count

    def inject(self, data: bytes) -> None:
        """Raw bytes from the node to the hub (garbage, a truncated frame)."""
        with self.lock:
            self.line.write(data)

    def reboot(self) -> None:
        """A reset (watchdog, brown-out): the session is gone and the valve closes."""
        with self.lock:
            self.node = Node(self.board, self.config, self._now_ms())
            self.boots += 1

    # -- observation ----------------------------------------------------------------------------------------------
    @property
    def valve_open(self) -> bool:
        with self.lock:
            return self.board.valve

    @property
    def valve_reason(self) -> str:
        with self.lock:
            return p.REASON_NAMES[self.node.valve_reason]

    @property
    def valve_commands(self) -> int:
        with self.lock:
            return self.node.valve_commands

    @property
    def failsafe_trips(self) -> int:
        with self.lock:
            return self.node.failsafe_trips

    @property
    def session(self) -> bool:
        with self.lock:
            return self.node.session
