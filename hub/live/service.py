"""Live sessions over WebRTC: a camera's live view for an operator, and an operator's voice on the loudspeakers.

Signalling rides on the cloud's command inbox (docs/protocol.md, "WebRTC live sessions"): the operator's
offer arrives as command `live.start` (complete, not trickled: its candidates are in it), and this service's
answer — the hub's SDP with its own candidates — is the command's result. So the hub, behind carrier NAT,
never has to accept a connection; STUN/TURN servers from `[live]` (or the command) make the media path.

Commands (bus, and the cloud's command kinds of the same names):
  live.start {session, mode: "camera"|"announce", camera?, zones?, offer: {sdp, type}, max_s?, width?,
              height?, fps?, ice_servers?, ice_transport_policy?, who?} -> {session, mode, answer: {sdp, type}}
  live.stop {session, who?} -> {session, stopped, reason}
  live.list {} -> {sessions: [...]}
A session ends when the operator stops it, when the peer leaves (connection failed/closed, or the voice
track ended), when it has not connected within `connect_timeout_s`, when a viewed camera has sent no frame for
`no_picture_s`, or after `max_s`. Records:
`live.started` and `live.ended` (operations class) in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.bus import CommandError, EventBus
from hub.camera.settings import CameraEntry, CameraSettings
from hub.live.settings import IceServer, LiveSettings
from hub.service import Service
from hub.store import RecordClass, Store

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection

    from hub.live.announce import LiveAudioStream
    from hub.live.camera_track import CameraTrack, Overlay

log = logging.getLogger(__name__)

SIM_CLIP = "camera/camera-sim/demo.mp4"  # the camera service's demo clip (hub/camera/service.py), shared
ENDED_KEPT = 20
WHO = "cloud operator"


class Offer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    sdp: str = Field(min_length=10, max_length=100_000)
    type: Literal["offer"]


class StartArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    session: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._:-]+$")
    mode: Literal["camera", "announce"]
    camera: str | None = None
    zones: list[str] | None = None
    offer: Offer
    max_s: float | None = Field(default=None, gt=0.0, le=3600.0)
    width: int | None = Field(default=None, ge=160, le=1920)
    height: int | None = Field(default=None, ge=90, le=1080)
    fps: float | None = Field(default=None, gt=0.0, le=30.0)
    ice_servers: list[IceServer] | None = None
    ice_transport_policy: Literal["all", "relay"] | None = None
    who: str = Field(default="", max_length=200)


class StopArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    session: str = Field(min_length=1, max_length=80)
    who: str = Field(default="", max_length=200)


def _refusal(exc: ValidationError, command: str) -> CommandError:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "args"
        parts.append(f"{where}: {error['msg']}")
    return CommandError(f"{command}: " + "; ".join(parts))


@dataclass(eq=False)
class Session:
    id: str
    mode: str
    who: str
    max_s: float
    pc: RTCPeerConnection
    camera: str | None = None
    zones: list[str] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    track: CameraTrack | None = None
    audio: LiveAudioStream | None = None
    broadcast_job: str | None = None
    started_wall: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    connected_mono: float | None = None
    state: str = "new"  # the peer connection's state
    peer: str | None = None
    ended_reason: str | None = None
    ended_wall: float | None = None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    supervisor: asyncio.Task[None] | None = None

    @property
    def duration_s(self) -> float:
        end = self.ended_wall or time.time()
        return max(0.0, end - self.started_wall)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "session": self.id,
            "mode": self.mode,
            "who": self.who,
            "camera": self.camera,
            "zones": self.zones,
            "state": self.state,
            "peer": self.peer,
            "started_at": self.started_wall,
            "duration_s": round(self.duration_s, 1),
            "max_s": self.max_s,
            "ended_reason": self.ended_reason,
        }
        if self.mode == "camera":
            out["video"] = {"width": self.width, "height": self.height, "fps": self.fps}
            if self.track is not None:
                out["video"] |= self.track.stats()
        if self.audio is not None:
            out["audio_s"] = round(self.audio.seconds_received, 1)
            out["audio_skipped_s"] = round(self.audio.seconds_skipped, 2)
            out["broadcast_job"] = self.broadcast_job
        return out


class LiveService(Service):
    name = "live"

    def __init__(
        self,
        settings: LiveSettings,
        cameras: CameraSettings,
        store: Store,
        bus: EventBus,
        data_dir: Path,
        *,
        simulated: bool = False,
        overlay: Overlay | None = None,
    ) -> None:
        """`overlay`: drawn on every live-view frame (the benchmark stamps capture times with it)."""
        super().__init__()
        self.overlay = overlay
        self.settings = settings
        self.cameras: dict[str, CameraEntry] = {c.name: c for c in cameras.cameras}
        self.store = store
        self.bus = bus
        self.data_dir = data_dir
        self.simulated = simulated
        self.sessions: dict[str, Session] = {}
        self.ended: list[dict[str, Any]] = []
        self.counts = {"started": 0, "ended": 0, "refused": 0}
        self.last_error: str | None = None

    # ---- lifecycle --------------------------------------------------------------------------------------

    async def run(self) -> None:
        withdraw = [
            self.bus.serve("live.start", self._start_command),
            self.bus.serve("live.stop", self._stop_command),
            self.bus.serve("live.list", self._list_command),
        ]
        logged = self.bus.subscribe("broadcast.logged")
        try:
            while True:
                self.beat()
                with contextlib.suppress(TimeoutError):
                    message = await asyncio.wait_for(logged.get(), 1.0)
                    await self._broadcast_ended(message.data)
        finally:
            logged.close()
            for undo in withdraw:
                undo()

    async def _broadcast_ended(self, entry: dict[str, Any]) -> None:
        """The loudspeakers ended a live announcement by themselves (an emergency cut in, their time limit, a
        technician's stop all): the session has nothing left to carry."""
        for session in list(self.sessions.values()):
            if session.broadcast_job is not None and session.broadcast_job == entry.get("job_id"):
                session.broadcast_job = None  # finished: nothing to stop
                why = entry.get("reason") or entry.get("outcome")
                await self._end(session, f"the loudspeakers ended it ({why})")

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            await self._end(session, "the hub is stopping")

    # ---- commands ---------------------------------------------------------------------------------------

    async def _start_command(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            args = StartArgs.model_validate(data)
        except ValidationError as exc:
            self.counts["refused"] += 1
            raise _refusal(exc, "live.start") from None
        try:
            return await self.start_session(args)
        except CommandError as exc:
            self.counts["refused"] += 1
            self.last_error = str(exc)
            raise

    async def _stop_command(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            args = StopArgs.model_validate(data)
        except ValidationError as exc:
            raise _refusal(exc, "live.stop") from None
        session = self.sessions.get(args.session)
        if session is None:
            raise CommandError(f"session: no live session {args.session!r} is on")
        reason = f"stopped by {args.who}" if args.who else "stopped by the operator"
        await self._end(session, reason)
        return {"session": session.id, "stopped": True, "reason": reason, "duration_s": round(session.duration_s, 1)}

    async def _list_command(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"sessions": [s.as_dict() for s in self.sessions.values()], "ended": list(self.ended)}

    # ---- sessions ---------------------------------------------------------------------------------------

    def _check(self, args: StartArgs) -> CameraEntry | None:
        if not self.settings.enabled:
            raise CommandError("live sessions are turned off on this hub ([live] enabled = false)")
        if args.session in self.sessions:
            raise CommandError(f"session: {args.session!r} is already on")
        if len(self.sessions) >= self.settings.max_sessions:
            raise CommandError(
                f"this hub already has {len(self.sessions)} live session(s), its limit ([live] max_sessions)"
            )
        if args.mode == "camera":
            if not args.camera:
                if not self.cameras:
                    raise CommandError("camera: this hub has no camera ([[camera.cameras]] in hub.toml)")
                return next(iter(self.cameras.values()))  # none named: the first one, as configured
            entry = self.cameras.get(args.camera)
            if entry is None:
                known = ", ".join(repr(c) for c in self.cameras) or "none"
                raise CommandError(f"camera: no camera {args.camera!r} on this hub; cameras: {known}")
            return entry
        if any(s.mode == "announce" for s in self.sessions.values()):
            raise CommandError("mode: a live announcement is already on")
        return None

    def _configuration(self, args: StartArgs) -> Any:
        from aiortc import RTCConfiguration, RTCIceServer
        from aiortc.rtcconfiguration import RTCIceTransportPolicy

        # The session's servers come first (e.g. short-lived TURN credentials from the cloud) and win for the same
        # URL; the hub's own stay, so an operator who names only a STUN server does not cut the TURN relay a box
        # behind carrier NAT needs.
        session = list(args.ice_servers or [])
        named = {u for s in session for u in s.urls}
        servers = session + [s for s in self.settings.ice_servers if not set(s.urls) & named]
        policy = args.ice_transport_policy or self.settings.ice_transport_policy
        return RTCConfiguration(
            iceServers=[RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in servers],
            iceTransportPolicy=RTCIceTransportPolicy(policy),
        )

    async def _camera_url(self, entry: CameraEntry) -> tuple[str, bool]:
        from drivers.camera.source import is_url

        url = entry.analysis_url  # the sub-stream: near live-view size, far cheaper to decode than the main one
        if self.simulated and is_url(url):
            from drivers.camera.sim import demo_clip

            return str(await asyncio.to_thread(demo_clip, self.data_dir / SIM_CLIP)), True
        return url, entry.loop

    async def start_session(self, args: StartArgs) -> dict[str, Any]:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        entry = self._check(args)
        pc = RTCPeerConnection(self._configuration(args))
        session = Session(
            id=args.session,
            mode=args.mode,
            who=args.who,
            max_s=min(args.max_s or self.settings.max_s, self.settings.max_s),
            pc=pc,
        )
        self.sessions[session.id] = session  # counted at once: two starts racing cannot both pass the limit
        received: list[Any] = []
        pc.on("track", received.append)
        pc.on("connectionstatechange", lambda: self._state_changed(session))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=args.offer.sdp, type=args.offer.type))
            if entry is not None:
                await self._attach_camera(session, entry, args)
            else:
                await self._attach_voice(session, args, received)
            await pc.setLocalDescription(await pc.createAnswer())  # aiortc gathers every candidate first
            if "a=candidate:" not in pc.localDescription.sdp:
                policy = args.ice_transport_policy or self.settings.ice_transport_policy
                raise CommandError(
                    "ice_servers: the hub gathered no ICE candidate"
                    + (
                        " (relay-only: is the TURN server reachable, and its user and password right?)"
                        if policy == "relay"
                        else ""
                    )
                )
        except CommandError:
            await self._discard(session)
            raise
        except Exception as exc:  # a malformed SDP, an offer without the media this mode needs
            await self._discard(session)
            log.warning("live: session %s refused: %s", session.id, exc, exc_info=True)
            raise CommandError(f"offer: cannot answer it: {type(exc).__name__}: {exc}") from None
        answer = pc.localDescription
        self.counts["started"] += 1
        payload = self._summary(session)
        await self.store.append(_record_class(session), "live.started", payload)
        self.bus.publish("live.started", **payload)
        session.supervisor = asyncio.create_task(self._supervise(session), name=f"live:{session.id}")
        log.info("live: session %s (%s) started for %s", session.id, session.mode, session.who or WHO)
        return {"session": session.id, "mode": session.mode, "answer": {"sdp": answer.sdp, "type": answer.type}}

    async def _attach_camera(self, session: Session, entry: CameraEntry, args: StartArgs) -> None:
        from hub.live.camera_track import CameraTrack

        if not any(t.kind == "video" for t in session.pc.getTransceivers()):
            raise CommandError("offer: a live view's offer must receive video (a recvonly video transceiver)")
        url, loop = await self._camera_url(entry)
        session.camera = entry.name
        session.width = args.width or self.settings.width
        session.height = args.height or self.settings.height
        session.fps = args.fps or self.settings.fps
        session.track = CameraTrack(
            url,
            width=session.width,
            height=session.height,
            fps=session.fps,
            privacy_masks=entry.privacy_masks,
            loop=loop,
            name=entry.name,
            overlay=self.overlay,
        )
        session.pc.addTrack(session.track)

    async def _attach_voice(self, session: Session, args: StartArgs, received: list[Any]) -> None:
        from hub.live.announce import LiveAudioStream

        audio = next((t for t in received if t.kind == "audio"), None)
        if audio is None:
            raise CommandError("offer: a live announcement's offer must send audio")
        session.zones = list(args.zones or [])
        session.audio = LiveAudioStream(audio, session.id)
        url = await session.audio.start()
        who = args.who or WHO
        try:
            started = await self.bus.call("broadcast.start_live", url=url, zones=args.zones, who=who)
        except CommandError as exc:
            raise CommandError(f"the loudspeakers refused the live announcement: {exc}") from None
        if started.get("outcome") != "queued":
            raise CommandError(f"the loudspeakers refused the live announcement: {started.get('reason')}")
        session.broadcast_job = started.get("job_id")
        session.zones = list(started.get("zones") or session.zones)

    def _state_changed(self, session: Session) -> None:
        session.state = session.pc.connectionState
        if session.state == "connected" and session.connected_mono is None:
            session.connected_mono = time.monotonic()
            session.peer = _peer_address(session.pc)
        if session.state in ("failed", "closed"):
            session.stop_requested.set()

    async def _supervise(self, session: Session) -> None:
        deadline = session.started_mono + session.max_s
        connect_by = session.started_mono + self.settings.connect_timeout_s
        reason = "the session ended"
        while True:
            now = time.monotonic()
            if session.stop_requested.is_set():
                reason = f"the peer left (connection {session.state})"
                break
            if session.audio is not None and session.audio.ended.is_set():
                reason = "the operator's audio ended"
                break
            if now >= deadline:
                reason = f"the time limit of {session.max_s:g} s was reached"
                break
            if session.connected_mono is None and now >= connect_by:
                reason = f"the peer did not connect within {self.settings.connect_timeout_s:g} s"
                break
            if session.track is not None:
                # A camera that cannot be opened (or went dark) would hold one of the few encoder slots with a
                # black picture until max_s: end the session and say why instead.
                last_frame = session.track.last_frame_mono or session.started_mono
                if now - last_frame >= self.settings.no_picture_s:
                    error = session.track.source.stats().last_error
                    reason = f"camera {session.camera} sent no picture for {self.settings.no_picture_s:g} s"
                    reason += f": {error}" if error else ""
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.stop_requested.wait(), min(0.5, max(0.01, deadline - now)))
        await self._end(session, reason, from_supervisor=True)

    async def _end(self, session: Session, reason: str, *, from_supervisor: bool = False) -> None:
        if self.sessions.get(session.id) is not session or session.ended_reason is not None:
            return  # ended already, or ending
        session.ended_reason = reason
        session.ended_wall = time.time()
        if session.supervisor is not None and not from_supervisor:
            session.supervisor.cancel()
        await self._release(session)
        self.counts["ended"] += 1
        payload = self._summary(session) | {"reason": reason, "duration_s": round(session.duration_s, 1)}
        if session.track is not None:
            payload["frames_sent"] = session.track.frames_sent
        if session.audio is not None:
            payload["audio_s"] = round(session.audio.seconds_received, 1)
        self.ended.insert(0, session.as_dict())
        del self.ended[ENDED_KEPT:]
        try:
            await self.store.append(_record_class(session), "live.ended", payload)
        except Exception:
            log.exception("live: could not record the end of session %s", session.id)
        self.bus.publish("live.ended", **payload)
        del self.sessions[session.id]  # only now: until its end is recorded, it counts against the limit
        log.info("live: session %s ended: %s", session.id, reason)

    async def _discard(self, session: Session) -> None:
        """A session refused while it was being set up: nothing was recorded, release what it took."""
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        await self._release(session)

    async def _release(self, session: Session) -> None:
        if session.broadcast_job is not None:
            try:
                await self.bus.call("broadcast.stop_live", who=session.who or WHO)
            except CommandError as exc:  # it ended already (stop_all, an emergency cut it): nothing to stop
                log.info("live: session %s: %s", session.id, exc)
        if session.track is not None:
            session.track.stop()
        with contextlib.suppress(Exception):
            await session.pc.close()
        if session.audio is not None:
            await session.audio.close()

    def _summary(self, session: Session) -> dict[str, Any]:
        out: dict[str, Any] = {"session": session.id, "mode": session.mode, "who": session.who}
        if session.mode == "camera":
            out |= {"camera": session.camera, "width": session.width, "height": session.height, "fps": session.fps}
        else:
            out |= {"zones": session.zones, "broadcast_job": session.broadcast_job}
        return out

    # ---- health -----------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "enabled": self.settings.enabled,
            "sessions": [s.as_dict() for s in self.sessions.values()],
            "max_sessions": self.settings.max_sessions,
            "ice_servers": [u for s in self.settings.ice_servers for u in s.urls],
            "ice_transport_policy": self.settings.ice_transport_policy,
            "counts": dict(self.counts),
            "last_error": self.last_error,
            "recent": self.ended[:5],
        }

    def problems(self) -> list[str]:
        out = []
        for session in self.sessions.values():
            if session.track is not None:
                error = session.track.source.stats().last_error
                if error:
                    out.append(f"live view of {session.camera}: {error}")
        return out


def _record_class(session: Session) -> RecordClass:
    """Who watched which camera, and when, is an access record (security class: kept and sent before routine
    operations when the outbox is full); a live announcement is heard by everyone and logged as operations."""
    return RecordClass.SECURITY if session.mode == "camera" else RecordClass.OPERATIONS


def _peer_address(pc: RTCPeerConnection) -> str | None:
    """The operator's address as ICE chose it (best effort: aiortc exposes the pair only on its ICE objects)."""
    try:
        for transceiver in pc.getTransceivers():
            connection = transceiver.receiver.transport.transport._connection
            pair = connection._nominated.get(1)
            if pair is not None:
                host, port = pair.remote_addr
                return f"{host}:{port} ({pair.remote_candidate.type}, via {pair.local_candidate.type})"
    except (AttributeError, TypeError):
        pass
    return None
