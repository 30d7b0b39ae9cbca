"""Typed settings of the hub, one model per `hub.toml` table.

Every field has a title, a description and a default where a safe default exists (Frigate's habit): the
descriptions are the documentation of `hub.example.toml` and of the technician page's settings view.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, Strict, field_validator, model_validator
from pydantic_core import PydanticCustomError

from drivers.airquality.settings import AirQualitySettings
from drivers.audio.settings import AudioSettings
from drivers.power.settings import PowerSettings
from drivers.relays.settings import RelaysSettings
from drivers.serial_link.settings import SensorNodeSettings
from hub.broadcast.settings import BroadcastSettings
from hub.camera.settings import CameraSettings
from hub.lighting.settings import LightingSection
from hub.live.settings import LiveSettings
from hub.portal.settings import PortalSettings
from hub.section import Section
from hub.sensors.settings import SensorsSettings
from hub.updates.settings import OtaSettings

DEFAULT_CONFIG_PATH = Path("/etc/village-hub/hub.toml")
DEFAULT_DATA_DIR = Path("/var/lib/village-hub")
DEFAULT_SECRETS_PATH = Path("/etc/village-hub/secrets.toml")

# TOML has no path type: a path is a string, converted here even though sections are strict.
PathStr = Annotated[Path, Strict(False)]


class HubSection(Section):
    id: str = Field(
        title="Hub id",
        description="Unique id of this box at the commune cloud, e.g. 'xa-quang-luu-thon-3'.",
        min_length=3,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9-]*[a-z0-9]$",
    )
    data_dir: PathStr = Field(
        default=DEFAULT_DATA_DIR,
        title="Data directory",
        description="Where the SQLite store and downloaded media live. Must be writable by the service user.",
    )
    secrets_file: PathStr = Field(
        default=DEFAULT_SECRETS_PATH,
        title="Secrets file",
        description="TOML file with cloud_token and technician_password_hash, mode 0600, service user only.",
    )
    timezone: str = Field(
        default="Asia/Ho_Chi_Minh",
        title="Time zone",
        description="IANA time zone in which schedules are written.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. 'Asia/Ho_Chi_Minh')") from None
        return value

    hardware: Literal["auto", "simulated", "real"] = Field(
        default="auto",
        title="Hardware backend",
        description="'auto' uses real hardware on a Raspberry Pi or Jetson and simulated hardware elsewhere.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", title="Log level")


class VillageSection(Section):
    name: str = Field(default="", title="Village name", description="Shown on the portal and the technician page.")
    code: str = Field(default="", title="Village code", description="Administrative code given by the commune.")
    latitude: float = Field(
        default=21.0285,
        ge=-90.0,
        le=90.0,
        title="Latitude",
        description="Decimal degrees, for sunset/sunrise.",
    )
    longitude: float = Field(
        default=105.8542,
        ge=-180.0,
        le=180.0,
        title="Longitude",
        description="Decimal degrees, east positive.",
    )


class StoreSection(Section):
    outbox_max_records: int = Field(
        default=500_000,
        ge=100,
        le=50_000_000,
        title="Outbox record cap",
        description="When the outbox holds this many undelivered records, the lowest class is evicted oldest-first.",
    )
    outbox_max_mb: int = Field(
        default=512,
        ge=1,
        le=65_536,
        title="Outbox size cap (MiB)",
        description="Cap on the payload bytes of undelivered records; eviction as for the record cap.",
    )
    group_commit_ms: float = Field(
        default=0.0,
        ge=0.0,
        le=1000.0,
        title="Group commit window (ms)",
        description="How long the writer waits for more records before one durable commit serves them all.",
    )


class SyncSection(Section):
    cloud_url: HttpUrl | None = Field(
        default=None,
        title="Commune cloud URL",
        description="Base URL of the commune cloud, e.g. 'https://cloud.xa-quangluu.vn'. Empty: stay offline.",
    )
    batch_size: int = Field(default=500, ge=1, le=1000, title="Records per upload batch")
    timeout_s: float = Field(default=20.0, gt=0.0, le=600.0, title="HTTP timeout per request (s)")
    backoff_base_s: float = Field(default=1.0, gt=0.0, le=60.0, title="First retry delay cap (s)")
    backoff_max_s: float = Field(default=300.0, gt=0.0, le=3600.0, title="Longest retry delay cap (s)")
    idle_poll_s: float = Field(
        default=5.0,
        gt=0.0,
        le=3600.0,
        title="Idle poll (s)",
        description="Upload check when nothing woke it.",
    )
    ca_bundle: PathStr | None = Field(
        default=None,
        title="CA bundle",
        description="PEM file of CAs trusted for the cloud; empty: the system's.",
    )
    pin_sha256: list[str] = Field(
        default_factory=list,
        title="Pinned cloud keys",
        description="SHA-256 of the cloud certificate's public key (SubjectPublicKeyInfo), base64 or hex; any one "
        "must match. Empty: no pinning (the CA check alone).",
    )
    allow_insecure_http: bool = Field(
        default=False,
        title="Allow plain HTTP",
        description="Allow an http:// cloud_url to a host other than loopback. Never in the field: the token would "
        "travel in clear text.",
    )

    @field_validator("pin_sha256")
    @classmethod
    def _pins_parse(cls, value: list[str]) -> list[str]:
        from hub.sync.pins import parse_pin  # a leaf module: no cycle through hub.sync

        for pin in value:
            parse_pin(pin)
        return value

    @model_validator(mode="after")
    def _no_clear_text(self) -> SyncSection:
        from hub.sync.pins import insecure_url_problem

        problem = insecure_url_problem(self.cloud_url, self.allow_insecure_http)
        if problem:
            raise PydanticCustomError("insecure_cloud_url", "cloud_url: {problem}", {"problem": problem})
        return self


class CommandsSection(Section):
    enabled: bool = Field(
        default=True,
        title="Take commands from the cloud",
        description="Long-poll the commune cloud for commands (schedules, announcements, alerts, overrides).",
    )
    poll_wait_s: float = Field(
        default=25.0,
        gt=0.0,
        le=30.0,
        title="Long-poll wait (s)",
        description="How long the cloud may hold a poll open when it has no command (4G carriers drop idle "
        "connections after a few minutes).",
    )
    media_max_mb: int = Field(
        default=100, ge=1, le=2048, title="Largest announcement file (MB)", description="Bigger media is refused."
    )
    dispatch_timeout_s: float = Field(
        default=60.0,
        gt=0.0,
        le=900.0,
        title="Command timeout (s)",
        description="How long one command may take on the hub before it is reported failed.",
    )
    keep_commands: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        title="Commands kept",
        description="Finished commands kept on the box for the technician page (the newest ones).",
    )


class ManagementSection(Section):
    host: str = Field(
        default="127.0.0.1",
        title="Management listener address",
        description="Address of the technician page and local API. Never the public Wi-Fi address.",
    )
    port: int = Field(default=8080, ge=1, le=65535, title="Management listener port")


class SupervisorSection(Section):
    restart_initial_s: float = Field(default=1.0, gt=0.0, le=60.0, title="First restart delay (s)")
    restart_max_s: float = Field(default=60.0, gt=0.0, le=3600.0, title="Longest restart delay (s)")
    stable_after_s: float = Field(
        default=60.0,
        gt=0.0,
        le=3600.0,
        title="Stable after (s)",
        description="A service running this long has its restart delay reset to the first one.",
    )
    heartbeat_timeout_s: float = Field(
        default=20.0,
        gt=0.0,
        le=600.0,
        title="Heartbeat timeout (s)",
        description="A critical service silent this long stops the systemd watchdog from being fed.",
    )


class TelemetrySection(Section):
    vitals_interval_s: float = Field(
        default=300.0,
        ge=5.0,
        le=86_400.0,
        title="Vitals interval (s)",
        description="CPU, memory, disk report.",
    )


class Settings(Section):
    # Sections of hardware live with their drivers (drivers/<family>/settings.py) and are gathered here.
    hub: HubSection
    village: VillageSection = VillageSection()
    store: StoreSection = StoreSection()
    sync: SyncSection = SyncSection()
    commands: CommandsSection = Field(default_factory=CommandsSection, title="Commands from the cloud")
    management: ManagementSection = ManagementSection()
    supervisor: SupervisorSection = SupervisorSection()
    telemetry: TelemetrySection = TelemetrySection()
    relays: RelaysSettings = Field(default_factory=RelaysSettings, title="Relays (GPIO and Modbus RTU)")
    sensor_node: SensorNodeSettings | None = Field(
        default=None,
        title="Sensor node",
        description="The MicroPython node on a serial link (soil, door, valve, air). Leave out if there is none.",
    )
    air_quality: AirQualitySettings = Field(default_factory=AirQualitySettings, title="Air-quality sensor")
    lighting: LightingSection = Field(default_factory=LightingSection, title="Lighting circuits and their rules")
    sensors: SensorsSettings = Field(default_factory=SensorsSettings, title="Sensors, air-quality index, irrigation")
    audio: AudioSettings = Field(default_factory=AudioSettings, title="Audio out (loudspeakers)")
    broadcast: BroadcastSettings = Field(
        default_factory=BroadcastSettings,
        title="Loudspeaker broadcasting",
        description="Amplifier and zone relays, timing, quiet hours, and programmes provisioned with the box.",
    )
    camera: CameraSettings = Field(
        default_factory=CameraSettings,
        title="Cameras",
        description="Security cameras: detection, events, clips and retention. No [[camera.cameras]]: no service.",
    )
    power: PowerSettings | None = Field(
        default=None,
        title="UPS and real-time clock",
        description="The UPS HAT's monitor and the RTC on I2C. Leave out if the box has no UPS.",
    )
    live: LiveSettings = Field(
        default_factory=LiveSettings,
        title="Live sessions (WebRTC)",
        description="Live camera view and live announcement from the cloud: STUN/TURN servers, limits, video size.",
    )
    portal: PortalSettings | None = Field(
        default=None,
        title="Public Wi-Fi captive portal",
        description="Access point, DHCP/DNS, the firewall table and the splash page. Leave out if there is no Wi-Fi.",
    )
    ota: OtaSettings = Field(
        default_factory=OtaSettings,
        title="Over-the-air updates",
        description="Signed releases installed into A/B slots in a maintenance window, committed once healthy.",
    )

    @model_validator(mode="after")
    def _portal_apart_from_management(self) -> Settings:
        # The firewall drops the management port from the Wi-Fi side: the portal cannot share it.
        portal = self.portal
        if portal is not None and portal.port == self.management.port:
            raise PydanticCustomError(
                "portal_on_management_port",
                "portal.port must differ from management.port ({port}): that port is closed to the Wi-Fi side",
                {"port": self.management.port},
            )
        return self

    @model_validator(mode="after")
    def _air_quality_has_its_link(self) -> Settings:
        explicit = "source" in self.air_quality.model_fields_set
        if explicit and self.air_quality.source == "node" and self.sensor_node is None:
            raise PydanticCustomError(
                "air_quality_without_node",
                "air_quality.source = 'node' needs a [sensor_node] table (or source = 'uart' / 'none')",
            )
        return self


class Secrets(Section):
    cloud_token: str | None = Field(default=None, min_length=16, title="Cloud token")
    technician_password_hash: str | None = Field(default=None, title="Technician password hash")
