"""Live announcement: the reference operator's audio (aiortc, Opus) plays on the simulated loudspeaker through
the real broadcast engine at live priority — the chosen zone's relay on, the others off — and ends in the
broadcast log; the session ends when the operator leaves."""

from __future__ import annotations

import datetime as dt
import wave
from pathlib import Path

import numpy as np
import pytest

from cloud.live_client import Operator, start
from hub.bus import CommandError
from hub.store import RecordClass
from tests.broadcast.rig import AMP_PIN, VN, ZONE1_PIN, ZONE2_PIN, Rig
from tests.live.rig import LiveRig, need_host_address, wait_for

pytestmark = pytest.mark.webrtc

START = dt.datetime(2025, 9, 1, 9, 0, 0, tzinfo=VN)
TONE_HZ = 440.0


def tone_file(path: Path, seconds: float = 2.5, rate: int = 48_000) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    pcm = np.round(0.5 * np.sin(2 * np.pi * TONE_HZ * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def dominant_hz(path: Path) -> tuple[float, float]:
    """The loudest frequency of a recording and its RMS level (0..1)."""
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)[:, 0] / 32768.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))]), float(np.sqrt(np.mean(samples**2)))


async def test_operator_voice_plays_on_the_chosen_zone_and_is_logged(tmp_path: Path) -> None:
    need_host_address()
    source = tone_file(tmp_path / "giong-noi.wav")
    async with Rig(tmp_path / "broadcast", START) as broadcast:
        async with LiveRig(tmp_path / "live", None, bus=broadcast.bus, store=broadcast.store) as rig:
            operator = Operator.from_file(str(source))
            try:
                result = await start(operator, rig.signal, mode="announce", zones=["khu 1"], who="trưởng thôn")
                [listed] = rig.svc.health()["sessions"]
                assert listed["zones"] == ["khu 1"]
                assert listed["broadcast_job"]
                await wait_for(lambda: broadcast.pin_on(ZONE1_PIN), 10, "the zone relay")
                assert broadcast.pin_on(AMP_PIN)
                assert not broadcast.pin_on(ZONE2_PIN)
                current = broadcast.svc.arbiter.current
                assert current is not None
                assert current.origin == "live"
                audio = rig.svc.sessions[result["session"]].audio
                assert audio is not None
                await wait_for(lambda: audio.seconds_received >= 2.0, 15, "the operator's audio")
                # a second operator meanwhile: the loudspeakers take one live voice at a time
                other = Operator.from_file(str(source))
                try:
                    with pytest.raises(CommandError, match="already on"):
                        await start(other, rig.signal, mode="announce")
                finally:
                    await other.close()
            finally:
                await operator.close()
            await wait_for(lambda: not rig.svc.sessions, 40, "the hub to see the operator leave")
            [entry] = await broadcast.wait_logged(timeout=10)
            records = rig.outbox("live.")
            assert rig.store is not None
            classes = {r.cls for r in rig.store.pending(10_000) if r.kind.startswith("live.")}
        await wait_for(lambda: not broadcast.pin_on(ZONE1_PIN), 10, "the zone relay to go off")
        [played] = [p for p in broadcast.playbacks() if p["source"].startswith("http://127.0.0.1")]
    assert entry["origin"] == "live"
    assert entry["level"] == "live"
    assert classes == {RecordClass.OPERATIONS}  # heard by everyone: not an access record
    assert entry["zones"] == ["khu 1"]
    assert "trưởng thôn" in entry["title"]
    assert [kind for kind, _ in records] == ["live.started", "live.ended"]
    assert records[1][1]["audio_s"] >= 2.0
    assert played["recording"], played
    hz, level = dominant_hz(Path(str(played["recording"])))
    assert abs(hz - TONE_HZ) < 10, hz  # the operator's tone, through Opus, WebRTC and the player
    assert level > 0.05, level


async def test_when_the_loudspeakers_end_the_announcement_the_session_ends_too(tmp_path: Path) -> None:
    need_host_address()
    source = tone_file(tmp_path / "giong-noi.wav", seconds=5.0)
    broadcast = Rig(tmp_path / "broadcast", START)
    async with broadcast, LiveRig(tmp_path / "live", None, bus=broadcast.bus, store=broadcast.store) as rig:
        operator = Operator.from_file(str(source))
        try:
            await start(operator, rig.signal, mode="announce", who="trưởng thôn")
            # no zones named: every zone (the relays switch one after the other)
            await wait_for(lambda: broadcast.pin_on(ZONE1_PIN) and broadcast.pin_on(ZONE2_PIN), 10, "the zone relays")
            await broadcast.bus.call("broadcast.stop_all", who="kỹ thuật viên", reason="kiểm tra")
            await wait_for(lambda: not rig.svc.sessions, 10, "the session to end with the broadcast")
            # the hub closed the peer connection: the operator sees it go
            await wait_for(lambda: operator.pc.connectionState in ("closed", "failed"), 40, "the operator")
        finally:
            await operator.close()
        [ended] = [p for kind, p in rig.outbox("live.") if kind == "live.ended"]
    assert ended["reason"] == "the loudspeakers ended it (stopped by kỹ thuật viên: kiểm tra)"
