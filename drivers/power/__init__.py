"""Power and clock: the UPS HAT's INA219 (battery voltage, current, mains present), events and a shutdown plan
for a low battery, the DS3231 real-time clock, and a check of the hardware watchdog."""

from drivers.power.ds3231 import Ds3231, RtcReading
from drivers.power.factory import PowerDrivers, PowerSimulation, build
from drivers.power.ina219 import Ina219, Ina219Reading
from drivers.power.interface import EventKind, PowerEvent, PowerSample
from drivers.power.monitor import PowerMonitor, PowerStateMachine
from drivers.power.rtc import RealTimeClock, RtcError
from drivers.power.settings import PowerSettings
from drivers.power.shutdown import ShutdownPlan, ShutdownResult
from drivers.power.ups import Ups
from drivers.power.watchdog import WatchdogStatus, check_watchdog

__all__ = [
    "Ds3231",
    "EventKind",
    "Ina219",
    "Ina219Reading",
    "PowerDrivers",
    "PowerEvent",
    "PowerMonitor",
    "PowerSample",
    "PowerSettings",
    "PowerSimulation",
    "PowerStateMachine",
    "RealTimeClock",
    "RtcError",
    "RtcReading",
    "ShutdownPlan",
    "ShutdownResult",
    "Ups",
    "WatchdogStatus",
    "build",
    "check_watchdog",
]
