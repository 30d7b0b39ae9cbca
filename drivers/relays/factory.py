"""build(settings, simulated): the relay bank, and when simulated the mock pins and boards under it.

Building touches no hardware: no pin is claimed and no port opened until the hub's first `safe_state()`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from drivers.platform import Board, detect_board
from drivers.relays.bank import RelayBank
from drivers.relays.channel import RelayChannel
from drivers.relays.gpio import GpioRelay, PinBackend, make_backend
from drivers.relays.modbus import ModbusBus, ModbusModule, ModbusRelay
from drivers.relays.settings import RelaysSettings
from drivers.relays.sim_gpio import SimulatedPins
from drivers.relays.sim_modbus import SimulatedModbusBus, SimulatedRelayBoard

log = logging.getLogger(__name__)


@dataclass
class RelaySimulation:
    """The simulated hardware under a simulated bank: mock pins and Modbus boards on ptys."""

    pins: SimulatedPins
    buses: dict[str, SimulatedModbusBus] = field(default_factory=dict)  # by the port written in hub.toml

    def board(self, port: str, device_id: int) -> SimulatedRelayBoard:
        return self.buses[port].board(device_id)

    def close(self) -> None:
        for bus in self.buses.values():
            bus.close()
        self.pins.close()


@dataclass
class Relays:
    """What build() returns: the bank for the hub, and the simulation (None on real hardware)."""

    bank: RelayBank
    simulation: RelaySimulation | None = None

    async def close(self) -> None:
        """Releases pins and ports, then stops the simulators. Call `bank.safe_state()` before, at shutdown."""
        try:
            await self.bank.close()
        finally:
            if self.simulation is not None:
                self.simulation.close()


def build(settings: RelaysSettings, simulated: bool, *, board: Board | None = None) -> Relays:
    simulation = RelaySimulation(SimulatedPins()) if simulated else None
    channels: list[RelayChannel] = []
    closers: list[Callable[[], Awaitable[None]]] = []

    if settings.gpio:
        backend: PinBackend
        if simulation is not None:
            backend = simulation.pins.backend()
        else:
            kind = settings.gpio_backend
            if kind == "auto":
                kind = "jetson" if (board or detect_board()).family == "jetson" else "gpiozero"
            backend = make_backend(kind)
        channels.extend(GpioRelay(relay, backend) for relay in settings.gpio)

    for bus_settings in settings.modbus.bus:
        port = None
        if simulation is not None:
            boards = [
                SimulatedRelayBoard(module.device_id, settings.modbus.profile(module.profile))
                for module in bus_settings.module
            ]
            try:
                sim_bus = SimulatedModbusBus(boards, name=bus_settings.port)
            except OSError as exc:
                # No pty (a sandbox without /dev/ptmx): the boards show as absent, with the reason, not a crash.
                log.error("relays: cannot simulate the bus %s: %s", bus_settings.port, exc)
                port = f"(no simulated bus: {exc})"
            else:
                simulation.buses[bus_settings.port] = sim_bus.start()
                port = sim_bus.port
        bus = ModbusBus(bus_settings, port=port)
        closers.append(bus.close)
        for module_settings in bus_settings.module:
            module = ModbusModule(
                bus, module_settings, settings.modbus.profile(module_settings.profile), module_settings.profile
            )
            channels.extend(ModbusRelay(module, relay) for relay in module_settings.relay)

    bank = RelayBank(channels, stagger_s=settings.stagger_ms / 1000.0, simulated=simulated, on_close=closers)
    return Relays(bank, simulation)
