"""The `[live]` section of hub.toml: WebRTC live sessions (live camera view, live announcement).

```toml
[live]
max_s = 300                      # a session ends by itself after this long
width = 640                      # live view, encoded at this size and rate unless the operator asks otherwise
height = 360
fps = 15
max_sessions = 2                 # a Pi 4 encodes about two 640x360 streams beside its other work
ice_transport_policy = "all"     # "relay": only through the TURN server (never a direct path)

[[live.ice_servers]]             # boxes sit behind 4G carrier NAT: a TURN server makes the path
urls = ["stun:stun.example.vn:3478"]

[[live.ice_servers]]
urls = ["turn:turn.example.vn:3478?transport=udp"]
username = "hub"
credential = "secret"
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from hub.section import Section

ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


class IceServer(Section):
    urls: list[str] = Field(
        min_length=1,
        title="Server URLs",
        description="stun:host:port, turn:host:port?transport=udp|tcp or turns:host:port.",
    )
    username: str | None = Field(default=None, title="TURN user name", description="Needed by TURN servers.")
    credential: str | None = Field(default=None, title="TURN password", description="Needed by TURN servers.")

    @field_validator("urls", mode="before")
    @classmethod
    def _one_url(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value  # RTCIceServer allows a single URL as a string

    @field_validator("urls")
    @classmethod
    def _schemes(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.lower().startswith(ICE_SCHEMES):
                raise ValueError(f"{url!r} must start with stun:, stuns:, turn: or turns:")
        return value


class LiveSettings(Section):
    enabled: bool = Field(
        default=True, title="Live sessions", description="Answer live.start from the cloud (live view, live voice)."
    )
    ice_servers: list[IceServer] = Field(
        default_factory=list,
        title="STUN/TURN servers",
        description="Used to find a path to the operator through the carrier's NAT; a session may name its own.",
    )
    ice_transport_policy: Literal["all", "relay"] = Field(
        default="all",
        title="ICE transport policy",
        description="'relay': media goes only through a TURN server (when direct paths are blocked or unwanted).",
    )
    max_s: float = Field(
        default=300.0, gt=0.0, le=3600.0, title="Longest session (s)", description="A session ends after this."
    )
    width: int = Field(default=640, ge=160, le=1920, title="Live view width", description="Encoded frame width.")
    height: int = Field(default=360, ge=90, le=1080, title="Live view height", description="Encoded frame height.")
    fps: float = Field(default=15.0, gt=0.0, le=30.0, title="Live view rate (frames/s)", description="Encoded rate.")
    max_sessions: int = Field(
        default=2, ge=1, le=16, title="Sessions at once", description="Each camera view costs one encoder's CPU."
    )
    no_picture_s: float = Field(
        default=20.0,
        gt=0.0,
        le=600.0,
        title="No-picture timeout (s)",
        description="A camera view whose camera has sent no frame for this long is ended, freeing its encoder.",
    )
    connect_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=300.0,
        title="Connect timeout (s)",
        description="A session whose peer has not connected within this is ended.",
    )
