"""The sensor node's logic: answers the hub, watches the door, keeps the valve bounded and fails safe.

No hardware module is imported here. The hardware comes in as a `Board`: `hw.MachineBoard` on the
microcontroller (machine.Pin/ADC/UART), a scripted board in the hub's simulator. Time comes in as `now_ms`, a
millisecond count that never wraps (hw.Clock accumulates time.ticks_diff on the node), so the timers here are
plain subtractions.

Safety rules (spec section 7):
- the valve is closed at boot and opens only on SET_VALVE within a session, always with a deadline;
- if no intact frame arrives from the hub for `failsafe_ms`, an open valve is closed (REASON_FAILSAFE);
- a HELLO of another major version ends the session and closes the valve: that hub cannot manage it.
"""

from . import FIRMWARE_VERSION, pms5003
from . import protocol as p


class Board:
    """What the node logic needs from the hardware. Subclasses implement every method."""

    def soil_probes(self) -> int:
        raise NotImplementedError

    def read_soil(self, index: int) -> int:
        """Raw ADC reading of probe `index`, scaled to 0..65535."""
        raise NotImplementedError

    def read_door(self) -> bool:
        """True when the cabinet door is open (or its switch wire is cut)."""
        raise NotImplementedError

    def set_valve(self, open: bool) -> None:
        raise NotImplementedError

    def read_hub(self) -> bytes:
        """Whatever bytes the hub link received since the last call, without waiting."""
        raise NotImplementedError

    def write_hub(self, data: bytes) -> None:
        raise NotImplementedError

    def read_air(self) -> bytes:
        """Whatever bytes the air-quality sensor's UART received since the last call, without waiting."""
        raise NotImplementedError

    def mem_free(self) -> int:
        return 0


class NodeConfig:
    """Constants of one node. Limits are the node's own: the hub's wishes are clamped to them."""

    def __init__(
        self,
        node_id: str,
        firmware: str = FIRMWARE_VERSION,
        capabilities: int = p.CAP_SOIL | p.CAP_DOOR | p.CAP_AIR | p.CAP_VALVE,
        failsafe_default_ms: int = 30_000,
        failsafe_min_ms: int = 200,
        failsafe_max_ms: int = 3_600_000,
        max_valve_ms: int = 2 * 3_600_000,
        door_debounce_ms: int = 50,
        event_retry_ms: int = 250,
        event_max_tries: int = 8,
        event_queue: int = 8,
        major: int = p.PROTOCOL_MAJOR,
        minor: int = p.PROTOCOL_MINOR,
    ) -> None:
        self.node_id = node_id
        self.firmware = firmware
        self.capabilities = capabilities
        self.failsafe_default_ms = failsafe_default_ms
        self.failsafe_min_ms = failsafe_min_ms
        self.failsafe_max_ms = failsafe_max_ms
        self.max_valve_ms = max_valve_ms
        self.door_debounce_ms = door_debounce_ms
        self.event_retry_ms = event_retry_ms
        self.event_max_tries = event_max_tries
        self.event_queue = event_queue
        self.major = major
        self.minor = minor


class _PendingEvent:
    def __init__(self, seq: int, wire: bytes) -> None:
        self.seq = seq
        self.wire = wire
        self.tries = 0
        self.sent_ms = 0


_HUB_REQUESTS = (p.HEARTBEAT, p.READ_SENSORS, p.SET_VALVE, p.GET_STATUS)
_U32 = 0xFFFFFFFF


class Node:
    def __init__(self, board: Board, config: NodeConfig, now_ms: int) -> None:
        self.board = board
        self.config = config
        self.boot_ms = now_ms
        self.decoder = p.FrameDecoder()
        self.air = pms5003.PmsStream()
        self.session = False
        self.failsafe_ms = config.failsafe_default_ms
        self.last_hub_ms = now_ms
        # Closed at boot whatever the pin did before the reset (a watchdog reset lands here too).
        board.set_valve(False)
        self.valve_open = False
        self.valve_deadline_ms = 0
        self.valve_reason = p.REASON_BOOT
        self.valve_commands = 0  # SET_VALVE requests carried out (not duplicates)
        has_door = bool(config.capabilities & p.CAP_DOOR)
        self.door_open = board.read_door() if has_door else False
        self._door_raw = self.door_open
        self._door_since_ms = now_ms
        self.air_frame = b""
        self.air_at_ms = 0
        # Duplicate detection: a retransmitted SET_VALVE (same seq as the last request) is answered from here.
        self._last_type = -1
        self._last_seq = -1
        self._last_response = b""
        self._event_seq = 0
        self._events: list[_PendingEvent] = []
        self.duplicates = 0
        self.failsafe_trips = 0
        self.events_dropped = 0
        self.unexpected = 0

    # -- main loop ------------------------------------------------------------------------------------------------
    def step(self, now_ms: int) -> None:
        """One pass of the main loop: read both UARTs, then run the timers."""
        data = self.board.read_hub()
        if data:
            self.receive(data, now_ms)
        if self.config.capabilities & p.CAP_AIR:
            air = self.board.read_air()
            if air:
                self.receive_air(air, now_ms)
        self.tick(now_ms)

    def receive(self, data: bytes, now_ms: int) -> None:
        for frame in self.decoder.feed(data):
            self._handle(frame, now_ms)

    def receive_air(self, data: bytes, now_ms: int) -> None:
        for frame in self.air.feed(data):
            self.air_frame = frame
            self.air_at_ms = now_ms

    def tick(self, now_ms: int) -> None:
        if self.config.capabilities & p.CAP_DOOR:
            self._sample_door(now_ms)
        if self.valve_open:
            if now_ms - self.last_hub_ms >= self.failsafe_ms:
                self.failsafe_trips += 1
                self._close_valve(p.REASON_FAILSAFE, now_ms)
            elif now_ms >= self.valve_deadline_ms:
                self._close_valve(p.REASON_MAX_DURATION, now_ms)
        self._send_events(now_ms)

    # -- requests from the hub ------------------------------------------------------------------------------------
    def _handle(self, frame: p.Frame, now_ms: int) -> None:
        t = frame.type
        if t == p.EVENT_ACK:
            self.last_hub_ms = now_ms
            if self._events and self._events[0].seq == frame.seq:
                self._events.pop(0)
            return
        if t & (p.RESPONSE | p.EVENT):
            # Not something a hub sends (an echo of our own frames on a looped-back line, for one): ignore it.
            self.unexpected += 1
            return
        # Any intact request proves the hub alive, including one this node cannot serve.
        self.last_hub_ms = now_ms
        if t == p.HELLO:
            self._write(self._hello(frame, now_ms), frame.seq)
            return
        if t == p.SET_VALVE and self.session and t == self._last_type and frame.seq == self._last_seq:
            # A retransmission (our answer was lost): answer again, do not act again. Only SET_VALVE is replayed:
            # the other requests only read, and a fresh answer is better than a stale copy.
            self.duplicates += 1
            self.board.write_hub(self._last_response)
            return
        reply = self._serve(frame, now_ms)
        wire = p.encode_message(reply, frame.seq)
        if self.session:
            # Every request moves the key, so a seq reused 256 requests later is never taken for a duplicate.
            self._last_type = t
            self._last_seq = frame.seq
            self._last_response = wire
        self.board.write_hub(wire)

    def _hello(self, frame: p.Frame, now_ms: int) -> p.Message:
        try:
            hello = p.Hello.decode(frame.payload)
        except p.PayloadError:
            return p.Error(p.HELLO, p.ERR_BAD_PAYLOAD)
        cfg = self.config
        self._last_type = -1
        self._last_seq = -1
        if hello.major == cfg.major:
            self.session = True
            self.failsafe_ms = min(max(hello.failsafe_ms, cfg.failsafe_min_ms), cfg.failsafe_max_ms)
        else:
            self.session = False
            if self.valve_open:
                self._close_valve(p.REASON_FAILSAFE, now_ms)
        return p.HelloAck(
            cfg.major,
            cfg.minor,
            cfg.capabilities,
            self.board.soil_probes() if cfg.capabilities & p.CAP_SOIL else 0,
            self.failsafe_ms,
            cfg.max_valve_ms,
            cfg.firmware,
            cfg.node_id,
        )

    def _serve(self, frame: p.Frame, now_ms: int) -> p.Message:
        t = frame.type
        if t not in _HUB_REQUESTS:
            return p.Error(t, p.ERR_UNKNOWN_TYPE)
        if not self.session:
            return p.Error(t, p.ERR_NO_SESSION)
        try:
            message = p.decode_message(frame)
        except p.PayloadError:
            return p.Error(t, p.ERR_BAD_PAYLOAD)
        if t == p.HEARTBEAT:
            return p.HeartbeatAck(self.uptime_ms(now_ms), self.flags(now_ms))
        if t == p.READ_SENSORS:
            return self._sensors(now_ms)
        if t == p.SET_VALVE and isinstance(message, p.SetValve):
            return self._set_valve(message, now_ms)
        return self._status(now_ms)

    def _sensors(self, now_ms: int) -> p.Sensors:
        caps = self.config.capabilities
        soil = [self.board.read_soil(i) for i in range(self.board.soil_probes())] if caps & p.CAP_SOIL else []
        if caps & p.CAP_AIR and self.air_frame:
            age = min(now_ms - self.air_at_ms, _U32)
            return p.Sensors(self.flags(now_ms), soil, self.air_frame, age)
        return p.Sensors(self.flags(now_ms), soil)

    def _set_valve(self, command: p.SetValve, now_ms: int) -> p.Message:
        if not self.config.capabilities & p.CAP_VALVE:
            return p.Error(p.SET_VALVE, p.ERR_UNSUPPORTED)
        if command.open:
            if not 0 < command.max_open_ms <= self.config.max_valve_ms:
                return p.Error(p.SET_VALVE, p.ERR_BAD_VALUE)
            self.valve_commands += 1
            self.board.set_valve(True)
            self.valve_open = True
            self.valve_deadline_ms = now_ms + command.max_open_ms
            self.valve_reason = p.REASON_COMMAND
        else:
            self.valve_commands += 1
            self._close_valve(p.REASON_COMMAND, now_ms)
        return p.Valve(self.valve_open, self.valve_remaining_ms(now_ms), self.valve_reason)

    def _status(self, now_ms: int) -> p.Status:
        d = self.decoder
        counters = [
            d.frames,
            d.crc_errors,
            d.cobs_errors + d.length_errors + d.overruns,
            self.duplicates,
            self.failsafe_trips,
            self.air.frames,
            self.air.errors(),
            self.events_dropped,
            self.board.mem_free(),
        ]
        return p.Status(
            self.uptime_ms(now_ms),
            self.valve_open,
            self.valve_remaining_ms(now_ms),
            self.valve_reason,
            self.door_open,
            self.failsafe_ms,
            [value & _U32 for value in counters],
        )

    # -- state ----------------------------------------------------------------------------------------------------
    def uptime_ms(self, now_ms: int) -> int:
        return (now_ms - self.boot_ms) & _U32

    def valve_remaining_ms(self, now_ms: int) -> int:
        return min(max(self.valve_deadline_ms - now_ms, 0), _U32) if self.valve_open else 0

    def flags(self, now_ms: int) -> int:
        flags = 0
        if self.valve_open:
            flags |= p.FLAG_VALVE_OPEN
        if self.door_open:
            flags |= p.FLAG_DOOR_OPEN
        # The sensor sends a frame every 0.2-2.3 s: no intact frame for 10 s means it is absent or broken.
        if self.air_frame and now_ms - self.air_at_ms < 10_000:
            flags |= p.FLAG_AIR_OK
        return flags

    def _close_valve(self, reason: int, now_ms: int) -> None:
        self.board.set_valve(False)
        self.valve_open = False
        self.valve_reason = reason
        if reason != p.REASON_COMMAND:  # the hub asked for a commanded close and knows of it already
            self._queue_event(p.EVENT_VALVE_CLOSED, reason, now_ms)

    def _sample_door(self, now_ms: int) -> None:
        raw = self.board.read_door()
        if raw != self._door_raw:
            self._door_raw = raw
            self._door_since_ms = now_ms
        elif raw != self.door_open and now_ms - self._door_since_ms >= self.config.door_debounce_ms:
            self.door_open = raw
            self._queue_event(p.EVENT_DOOR, 1 if raw else 0, now_ms)

    # -- events to the hub ----------------------------------------------------------------------------------------
    def _queue_event(self, kind: int, value: int, now_ms: int) -> None:
        if len(self._events) >= self.config.event_queue:
            self._events.pop(0)
            self.events_dropped += 1
        self._event_seq = (self._event_seq + 1) & 0xFF
        message = p.Event(kind, value, self.uptime_ms(now_ms))
        self._events.append(_PendingEvent(self._event_seq, p.encode_message(message, self._event_seq)))

    def _send_events(self, now_ms: int) -> None:
        # One event in flight at a time, in order; only within a session (no hub is listening otherwise).
        if not self.session or not self._events:
            return
        head = self._events[0]
        if head.tries and now_ms - head.sent_ms < self.config.event_retry_ms:
            return
        if head.tries >= self.config.event_max_tries:
            # The hub will still see the state in the next heartbeat; the edge itself is lost.
            self._events.pop(0)
            self.events_dropped += 1
            return
        head.tries += 1
        head.sent_ms = now_ms
        self.board.write_hub(head.wire)

    def pending_events(self) -> int:
        return len(self._events)

    def _write(self, message: p.Message, seq: int) -> None:
        self.board.write_hub(p.encode_message(message, seq))
