"""The [sensor_node] table of hub.toml: where the node is wired and how the link is timed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivers.base import DriverSettings


class SensorNodeSettings(DriverSettings):
    port: str = Field(
        default="/dev/serial0",
        min_length=1,
        title="Serial port",
        description=(
            "Device the sensor node is wired to: the Pi's UART (/dev/serial0), or a USB-serial adapter, best named "
            "by its stable /dev/serial/by-id/... path. Ignored when the hardware is simulated."
        ),
    )
    baudrate: Literal[9600, 19200, 38400, 57600, 115200, 230400] = Field(
        default=115200,
        title="Baud rate",
        description="Line speed, 8N1. Must match the node's firmware (115200 unless rebuilt).",
    )
    response_timeout_s: float = Field(
        default=0.2,
        gt=0.0,
        le=10.0,
        title="Response timeout (s)",
        description="How long to wait for the node's answer before sending the request again.",
    )
    retries: int = Field(
        default=3,
        ge=0,
        le=10,
        title="Retries",
        description="Retransmissions of a request without an answer before the node counts as not answering.",
    )
    heartbeat_interval_s: float = Field(
        default=1.0,
        gt=0.0,
        le=60.0,
        title="Heartbeat interval (s)",
        description="How often the hub checks the link; each heartbeat also keeps the node's fail-safe from tripping.",
    )
    failsafe_timeout_s: float = Field(
        default=30.0,
        ge=0.2,
        le=3600.0,
        title="Valve fail-safe timeout (s)",
        description=(
            "The node closes the irrigation valve when it has heard nothing from the hub for this long (hub crashed, "
            "cable cut). Sent to the node at every handshake; the node keeps it within its own limits."
        ),
    )
    reconnect_interval_s: float = Field(
        default=2.0,
        gt=0.0,
        le=300.0,
        title="Reconnect interval (s)",
        description="Pause between attempts to reopen a missing port or to handshake with a silent node.",
    )
    max_valve_open_s: float = Field(
        default=3600.0,
        gt=0.0,
        le=7200.0,
        title="Longest valve opening (s)",
        description="Upper bound the hub accepts for one opening; the node also enforces its own (2 h).",
    )

    @model_validator(mode="after")
    def _failsafe_outlasts_heartbeats(self) -> SensorNodeSettings:
        # The fail-safe must survive a heartbeat whose answers were all lost, or a healthy but noisy link would
        # keep closing the valve.
        budget = self.heartbeat_interval_s + (self.retries + 1) * self.response_timeout_s
        if self.failsafe_timeout_s < 2 * budget:
            raise ValueError(
                f"failsafe_timeout_s={self.failsafe_timeout_s} must be at least twice heartbeat_interval_s plus the "
                f"retry budget ((retries+1) x response_timeout_s), i.e. >= {2 * budget:g}"
            )
        return self
