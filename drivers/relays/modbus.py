"""Relays on RS-485 Modbus RTU boards, through pymodbus's serial client (pyserial underneath).

Every write is confirmed by reading the coil or register back: a board that acknowledges a write but whose
relay did not follow (a welded contact, a wrong profile) is reported, not believed. A request that gets no
answer is tried again `retries` times, each waiting `timeout_s`; a board that never answers is "absent".

Each bus has one thread of its own: RS-485 is half duplex, so requests on one bus must never overlap, and
the serial client blocks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from drivers.relays.channel import DeviceStatus
from drivers.relays.interface import RelayFault, RelayKind
from drivers.relays.settings import (
    READ_FUNCTION_NAMES,
    WRITE_FUNCTION_NAMES,
    ModbusBusSettings,
    ModbusModuleSettings,
    ModbusProfile,
    ModbusRelaySettings,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Request = Callable[[ModbusSerialClient], ModbusPDU]

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
}


class ModbusBus:
    """One serial adapter and the boards on it. Nothing is opened until the first request."""

    def __init__(self, settings: ModbusBusSettings, port: str | None = None) -> None:
        self.settings = settings
        self.name = settings.port  # as in hub.toml: what the technician page shows, simulated or not
        self.port = port or settings.port  # what is opened (a pty when simulated)
        # pymodbus's own retries are off: ours also cover a read-back that disagrees, and count attempts.
        self._client = ModbusSerialClient(
            self.port,
            baudrate=settings.baudrate,
            bytesize=8,
            parity=settings.parity,
            stopbits=settings.stopbits,
            timeout=settings.timeout_s,
            retries=0,
            name=f"relays {self.port}",
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"modbus {self.port}")
        self.last_problem: str | None = None

    @property
    def retries(self) -> int:
        return self.settings.retries

    async def run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def request(self, send: Request) -> ModbusPDU | None:
        """One request, on the bus thread: the answer, or None if nothing (valid) came back in time."""
        try:
            answer = send(self._client)
        except (ModbusException, OSError) as exc:  # pyserial's SerialException is an OSError
            opened = self._client.connected
            self.last_problem = str(exc) if opened else f"cannot open {self.port}"
            return None
        self.last_problem = None
        return answer

    async def close(self) -> None:
        try:
            await self.run(self._client.close)
        finally:
            self._executor.shutdown(wait=True)


class ModbusModule:
    """One relay board: its device id, its profile, and the relay names on its channels."""

    def __init__(
        self, bus: ModbusBus, settings: ModbusModuleSettings, profile: ModbusProfile, profile_name: str
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.profile = profile
        self.names = {relay.channel: relay.name for relay in settings.relay}
        self.device = DeviceStatus(
            key=f"{bus.name} device {settings.device_id}",
            kind="modbus",
            detail={"profile": profile_name, "label": settings.label, "opened": bus.port},
        )

    @property
    def device_id(self) -> int:
        return self.settings.device_id

    def where(self, channel: int) -> str:
        return f"{self.bus.name} device {self.device_id} channel {channel}"

    async def set(self, channel: int, on: bool) -> None:
        try:
            retried = await self.bus.run(partial(self._set_blocking, channel, on))
        except RelayFault as fault:
            self.device.failed(fault.state, fault.message)
            raise
        self.device.succeeded(retried)

    async def read(self, channel: int) -> bool | None:
        try:
            state, retried = await self.bus.run(partial(self._read_blocking, channel))
        except RelayFault as fault:
            self.device.failed(fault.state, fault.message)
            raise
        self.device.succeeded(retried)
        return state if isinstance(state, bool) else None

    # -- on the bus thread --------------------------------------------------------------------------------

    def _set_blocking(self, channel: int, on: bool) -> int:
        """Write, read back, compare; again on silence or disagreement. Returns the retries it took."""
        attempts = self.bus.retries + 1
        disagreement: str | None = None
        for attempt in range(attempts):
            answer = self.bus.request(self._write_request(channel, on))
            if answer is None:
                continue
            self._check_refusal(answer, WRITE_FUNCTION_NAMES[self.profile.write_function], channel)
            state = self._read_once(channel)
            if state is None:
                continue
            if state is on:
                return attempt
            disagreement = f"{self._label(channel)}: wrote {_on_off(on)}, read back {_describe(state)}"
        if disagreement is not None:
            raise RelayFault("mismatch", f"{disagreement} ({attempts} attempts)")
        raise RelayFault("absent", self._no_answer(attempts))

    def _read_blocking(self, channel: int) -> tuple[bool | int, int]:
        attempts = self.bus.retries + 1
        for attempt in range(attempts):
            state = self._read_once(channel)
            if state is not None:
                return state, attempt
        raise RelayFault("absent", self._no_answer(attempts))

    def _read_once(self, channel: int) -> bool | int | None:
        """The channel's state: True/False, an unexpected register value as an int, None for no answer."""
        profile = self.profile
        address = profile.read_address(channel)
        device_id = self.device_id
        function = profile.read_function
        send: Request
        if function == 1:
            send = partial(_read_coils, address=address, device_id=device_id)
        elif function == 2:
            send = partial(_read_discrete_inputs, address=address, device_id=device_id)
        elif function == 3:
            send = partial(_read_holding_registers, address=address, device_id=device_id)
        else:
            send = partial(_read_input_registers, address=address, device_id=device_id)
        answer = self.bus.request(send)
        if answer is None:
            return None
        self._check_refusal(answer, READ_FUNCTION_NAMES[function], channel)
        if function in (1, 2):
            return bool(answer.bits[0]) if answer.bits else None
        if not answer.registers:
            return None
        value = answer.registers[0]
        if value == profile.status_on:
            return True
        if value == profile.status_off:
            return False
        return value

    def _write_request(self, channel: int, on: bool) -> Request:
        address = self.profile.write_address(channel)
        if self.profile.write_function == 5:
            return partial(_write_coil, address=address, value=on, device_id=self.device_id)
        value = self.profile.register_on if on else self.profile.register_off
        return partial(_write_register, address=address, value=value, device_id=self.device_id)

    def _check_refusal(self, answer: ModbusPDU, what: str, channel: int) -> None:
        if not answer.isError():
            return
        code = answer.exception_code
        # The board is there and said no: most often a profile that does not fit the board.
        raise RelayFault(
            "error",
            f"{self._label(channel)}: the board refused '{what}' with exception {code} "
            f"({EXCEPTION_NAMES.get(code, 'unknown')}); does profile {self.device.detail['profile']!r} fit it?",
        )

    def _label(self, channel: int) -> str:
        name = self.names.get(channel)
        named = f" ({name!r})" if name else ""
        return f"{self.bus.name} device {self.device_id} channel {channel}{named}"

    def _no_answer(self, attempts: int) -> str:
        problem = self.bus.last_problem
        why = f": {problem}" if problem and problem.startswith("cannot open") else ""
        return (
            f"{self.bus.name} device {self.device_id}: no answer to {attempts} attempt(s), "
            f"{self.bus.settings.timeout_s:g} s each{why}"
        )


def _write_coil(client: ModbusSerialClient, *, address: int, value: bool, device_id: int) -> ModbusPDU:
    return client.write_coil(address, value, device_id=device_id)


def _write_register(client: ModbusSerialClient, *, address: int, value: int, device_id: int) -> ModbusPDU:
    return client.write_register(address, value, device_id=device_id)


def _read_coils(client: ModbusSerialClient, *, address: int, device_id: int) -> ModbusPDU:
    return client.read_coils(address, count=1, device_id=device_id)


def _read_discrete_inputs(client: ModbusSerialClient, *, address: int, device_id: int) -> ModbusPDU:
    return client.read_discrete_inputs(address, count=1, device_id=device_id)


def _read_holding_registers(client: ModbusSerialClient, *, address: int, device_id: int) -> ModbusPDU:
    return client.read_holding_registers(address, count=1, device_id=device_id)


def _read_input_registers(client: ModbusSerialClient, *, address: int, device_id: int) -> ModbusPDU:
    return client.read_input_registers(address, count=1, device_id=device_id)


def _on_off(on: bool) -> str:
    return "on" if on else "off"


def _describe(state: bool | int) -> str:
    if isinstance(state, bool):
        return _on_off(state)
    return f"unexpected value {state} (0x{state:04X})"


class ModbusRelay:
    kind: RelayKind = "modbus"

    def __init__(self, module: ModbusModule, settings: ModbusRelaySettings) -> None:
        self.module = module
        self.settings = settings

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def where(self) -> str:
        return self.module.where(self.settings.channel)

    @property
    def safe_on(self) -> bool:
        return self.settings.safe_on

    @property
    def device(self) -> DeviceStatus:
        return self.module.device

    async def switch(self, on: bool) -> bool:
        await self.module.set(self.settings.channel, on)
        # Whether it moved is not known without a read first; counting it as moved keeps the stagger safe.
        return True

    async def read(self) -> bool | None:
        return await self.module.read(self.settings.channel)

    def pin_level(self) -> bool | None:
        return None

    async def close(self) -> None:
        """The bus is closed by its owner, once for all its boards."""
