"""The [air_quality] table of hub.toml: where the PMS5003 is read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivers.base import DriverSettings


class AirQualitySettings(DriverSettings):
    source: Literal["node", "uart", "none"] = Field(
        default="node",
        title="Sensor connection",
        description=(
            "'node': the PMS5003 is wired to the sensor node, which forwards its frames over the node link; "
            "'uart': it is wired to one of the hub's own UARTs (port below); 'none': no air-quality sensor."
        ),
    )
    port: str = Field(
        default="/dev/ttyAMA1",
        min_length=1,
        title="Serial port (source 'uart')",
        description="The hub UART the sensor's TX pin is wired to. Ignored for 'node' and when simulated.",
    )
    baudrate: Literal[9600] = Field(
        default=9600,
        title="Baud rate",
        description="Fixed by the sensor: 9600 8N1.",
    )
    stale_after_s: float = Field(
        default=10.0,
        gt=0.0,
        le=600.0,
        title="Stale after (s)",
        description=(
            "A reading older than this is not reported. The sensor sends about once a second (every 2.3 s at "
            "most in stable mode), so several missed frames in a row mean it is absent or broken."
        ),
    )
    reconnect_interval_s: float = Field(
        default=2.0,
        gt=0.0,
        le=300.0,
        title="Reconnect interval (s)",
        description="Pause between attempts to reopen a missing port (source 'uart').",
    )
