"""Relays: loudspeaker amplifier and zone relays, street lights and sockets, on GPIO pins or Modbus RTU boards.

How the hub uses them:

    relays = build(settings.relays, simulated)              # touches no hardware yet
    await relays.bank.safe_state()                           # at boot, before anything else
    await relays.bank.apply({"loa khu 1": True}, reason="phát thanh 07:00")
    relays.bank.states(); relays.bank.health()
    await relays.bank.safe_state(); await relays.close()     # at shutdown
"""

from drivers.relays.bank import RelayBank
from drivers.relays.factory import Relays, RelaySimulation, build
from drivers.relays.interface import (
    ApplyResult,
    RelayDriver,
    RelayFault,
    RelayOutcome,
    RelayState,
    UnknownRelayError,
)
from drivers.relays.settings import (
    BUILTIN_PROFILES,
    GpioRelaySettings,
    ModbusBusSettings,
    ModbusModuleSettings,
    ModbusProfile,
    ModbusRelaySettings,
    ModbusSettings,
    RelaysSettings,
)
from drivers.relays.sim_gpio import SimulatedPins
from drivers.relays.sim_modbus import SeenRequest, SimulatedModbusBus, SimulatedRelayBoard

__all__ = [
    "BUILTIN_PROFILES",
    "ApplyResult",
    "GpioRelaySettings",
    "ModbusBusSettings",
    "ModbusModuleSettings",
    "ModbusProfile",
    "ModbusRelaySettings",
    "ModbusSettings",
    "RelayBank",
    "RelayDriver",
    "RelayFault",
    "RelayOutcome",
    "RelaySimulation",
    "RelayState",
    "Relays",
    "RelaysSettings",
    "SeenRequest",
    "SimulatedModbusBus",
    "SimulatedPins",
    "SimulatedRelayBoard",
    "UnknownRelayError",
    "build",
]
