"""Is this file audio we can play, and how long is it? Decided by decoding all of it with PyAV (FFmpeg).

Used on uploads before they are kept: FFmpeg's demuxers are many and some follow references (an HLS
playlist named song.mp3 makes FFmpeg open the files it lists), so only audio containers and the `file`
protocol are allowed. A file's header can lie or promise more than the file holds (a truncated upload), so
the length is counted from decoded samples and compared with what the header declares.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from drivers.audio.decode import describe_ffmpeg_error

# FFmpeg demuxer names (one name of each matches the demuxer: "mov" is "mov,mp4,m4a,3gp,3g2,mj2"): WAV, MP3,
# OGG (Vorbis, Opus), FLAC, M4A/3GP (a phone's recorder), ADTS AAC, Matroska/WebM, WMA, AMR (older phones).
AUDIO_DEMUXERS = ("wav", "mp3", "ogg", "flac", "mov", "aac", "matroska", "asf", "amr")
SAFE_OPEN_OPTIONS = {"format_whitelist": ",".join(AUDIO_DEMUXERS), "protocol_whitelist": "file"}
MAX_CONSECUTIVE_DECODE_ERRORS = 20
# Decoders end a little before or after the declared length (encoder padding, the last partial frame).
TRUNCATION_TOLERANCE_S = 0.5


class ProbeError(Exception):
    """The file is not playable audio; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class AudioProbe:
    container: str  # FFmpeg's demuxer name, e.g. "mp3", "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str
    sample_rate: int
    channels: int
    duration_s: float  # counted from decoded samples
    declared_duration_s: float | None  # what the header says, if it says
    decode_errors: int  # damaged packets skipped


def probe_audio(path: Path, *, max_duration_s: float) -> AudioProbe:
    """Decode `path` through; ProbeError if it is not audio, corrupt, truncated, empty or too long.

    Blocking (decoding a 10-minute MP3 takes about half a second): call it in a thread."""
    try:
        container = av.open(
            "file:" + str(Path(path).absolute()), options=dict(SAFE_OPEN_OPTIONS), metadata_errors="replace"
        )
    except av.error.ArgumentError:
        # What FFmpeg says when the format whitelist refused the only demuxer that recognised the file.
        raise ProbeError("not audio: FFmpeg reads it as a format that is not an audio file") from None
    except (av.error.FFmpegError, OSError, UnicodeError, ValueError) as exc:
        raise ProbeError(f"not audio: {describe_ffmpeg_error(exc)}") from None
    try:
        return _decode_all(container, max_duration_s)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise ProbeError(f"corrupt: {describe_ffmpeg_error(exc)}") from None
    finally:
        container.close()


def _decode_all(container: av.container.InputContainer, max_duration_s: float) -> AudioProbe:
    if not container.streams.audio:
        raise ProbeError(f"not audio: it is {container.format.long_name or container.format.name} with no sound")
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate
    if not rate:
        raise ProbeError("corrupt: the audio stream has no sample rate")
    declared: float | None = None
    if stream.duration and stream.time_base:
        declared = float(stream.duration * stream.time_base)
    elif container.duration:
        declared = container.duration / 1_000_000
    if container.format.name == "wav":
        # FFmpeg clips a WAV's length to the file's size, which hides a cut-off upload; the header knows better.
        declared = _wav_declared_duration(Path(container.name.removeprefix("file:"))) or declared
    samples = errors = consecutive = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            errors += 1
            consecutive += 1
            if consecutive > MAX_CONSECUTIVE_DECODE_ERRORS:
                raise ProbeError(f"corrupt: {consecutive} damaged packets in a row") from None
            continue
        consecutive = 0
        samples += sum(frame.samples for frame in frames)
        if samples / rate > max_duration_s:
            raise ProbeError(f"too long: more than {max_duration_s:g} s (the limit)")
    duration = samples / rate
    if samples == 0:
        raise ProbeError("no sound in it: zero duration")
    if declared is not None and duration < declared - TRUNCATION_TOLERANCE_S:
        raise ProbeError(f"truncated: it declares {declared:.1f} s but holds only {duration:.1f} s")
    return AudioProbe(
        container=container.format.name,
        codec=stream.codec_context.name,
        sample_rate=rate,
        channels=stream.codec_context.channels,
        duration_s=duration,
        declared_duration_s=declared,
        decode_errors=errors,
    )


def _wav_declared_duration(path: Path) -> float | None:
    """Seconds the RIFF header's 'data' chunk declares, from its 'fmt ' byte rate; None if it does not say."""
    with path.open("rb") as f:
        head = f.read(65536)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    byte_rate = None
    offset = 12
    while offset + 8 <= len(head):
        chunk_id, size = head[offset : offset + 4], struct.unpack_from("<I", head, offset + 4)[0]
        if chunk_id == b"fmt " and offset + 16 <= len(head):
            byte_rate = struct.unpack_from("<I", head, offset + 16)[0]
        elif chunk_id == b"data":
            # 0 and 0xFFFFFFFF: written by a recorder that did not know the length yet
            if byte_rate and 0 < size < 0xFFFFFFFF:
                return float(size / byte_rate)
            return None
        offset += 8 + size + (size & 1)
    return None
