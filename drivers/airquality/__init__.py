"""Air quality: a Plantower PMS5003 (PM1.0/PM2.5/PM10), on a hub UART or forwarded by the sensor node."""

from .factory import build
from .interface import AirQualityReading, AirQualitySensor, AirQualityUnavailable
from .node import NodeAirQuality
from .pms5003 import reading_from_frame
from .settings import AirQualitySettings
from .sim import Pms5003Simulator
from .uart import Pms5003Uart

__all__ = [
    "AirQualityReading",
    "AirQualitySensor",
    "AirQualitySettings",
    "AirQualityUnavailable",
    "NodeAirQuality",
    "Pms5003Simulator",
    "Pms5003Uart",
    "build",
    "reading_from_frame",
]
