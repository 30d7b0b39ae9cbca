"""The real loudspeakers: PCM written to an ALSA device by an `aplay` child process (Debian: alsa-utils).

Why aplay rather than pyalsaaudio: it ships with every Raspberry Pi OS / Jetson image (pyalsaaudio has no
wheels and needs a compiler and libasound2-dev on the box); ALSA runs in another process, so a wedged
driver cannot hang the hub; and SIGKILL is an instant, certain stop: the kernel closes the PCM and the
samples still buffered are dropped, which is exactly "the emergency alert cuts in now".

Timing: aplay opens the PCM and prints "Playing raw data ..." before it reads any input; we wait for that
line, so a missing or busy device fails before the first sample, and the first write marks the start.
aplay starts the device when its buffer (`buffer_ms`) is full, which the decoder fills at once, so the
reported start is within a few ms of the sound; the end of a complete item is when aplay exits after
draining; the end of a stopped item is the kill. `frames_played` of a stopped item is the time between
start and kill at the sample rate (capped by what was written): accurate to about one device buffer.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from drivers.audio.interface import DeviceError, Instant, PcmFormat, PlaybackReport, StreamDropped

READY_TIMEOUT_S = 3.0
DRAIN_GRACE_S = 3.0  # on top of the device buffer: how long aplay may take to drain and exit
PROC_ASOUND = Path("/proc/asound")
VIRTUAL_PCMS = ("null", "file", "pulse", "pipewire", "jack", "dmix", "dsnoop")  # need no card of their own
_CARD_PATTERNS = (
    re.compile(r"CARD=([^,]+)"),
    re.compile(r"^(?:plug)?hw:([^,]+)"),
)


def card_of(device: str) -> str | None:
    """The card an ALSA device name points at ('plughw:CARD=Headphones,DEV=0' -> 'Headphones', 'hw:1,0' -> '1'),
    or None if it names no particular card ('default', 'sysdefault', a name from asound.conf)."""
    for pattern in _CARD_PATTERNS:
        match = pattern.search(device)
        if match:
            return match.group(1).strip("'\"")
    return None


def list_cards(proc_asound: Path = PROC_ASOUND) -> dict[str, str]:
    """Sound cards the kernel knows: {index: id}, from /proc/asound/cards (' 0 [Headphones     ]: ...')."""
    try:
        text = (proc_asound / "cards").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    cards = {}
    for line in text.splitlines():
        match = re.match(r"\s*(\d+)\s+\[([^\]]+)\]", line)
        if match:
            cards[match.group(1)] = match.group(2).strip()
    return cards


def alsa_device_present(device: str, proc_asound: Path = PROC_ASOUND) -> bool:
    """Cheap (two file reads, no subprocess) so health() can call it: the card the name points at exists,
    or for a name with no card in it, some card exists. Virtual PCMs (null, file) are always present."""
    base = device.split(":", 1)[0]
    if base in VIRTUAL_PCMS:
        return True
    cards = list_cards(proc_asound)
    card = card_of(device)
    if card is None:
        return bool(cards)
    return card in cards or card in cards.values()


class AplayStream:
    def __init__(self, argv: list[str], device: str, fmt: PcmFormat, buffer_ms: int) -> None:
        self.device = device
        self.fmt = fmt
        self.buffer_s = buffer_ms / 1000
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=8)
        self._ready = threading.Event()
        self._underruns = 0
        self._lock = threading.Lock()
        self._started: Instant | None = None
        self._ended: Instant | None = None
        self._dropped = False
        self._written_bytes = 0
        self._completed = False
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                bufsize=0,
                # aplay's messages are translated by gettext; we read them, so they must be in English.
                env={**os.environ, "LC_ALL": "C"},
            )
        except OSError as exc:
            raise DeviceError(device, f"cannot run {argv[0]!r} ({exc.strerror}); install alsa-utils") from exc
        self._reader = threading.Thread(target=self._read_stderr, name="aplay-stderr", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready.wait(0.01):
            if self._proc.poll() is not None:
                self._reader.join(timeout=0.5)
                raise DeviceError(device, f"aplay could not open it: {self.stderr_summary()}")
            if time.monotonic() > deadline:
                # An aplay that says nothing yet may still be fine (quiet builds); go on, the first write will tell.
                break

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            if line.startswith("Playing"):
                self._ready.set()
            elif "underrun" in line:
                self._underruns += 1
            else:
                self._stderr_tail.append(line)

    def stderr_summary(self) -> str:
        lines = list(self._stderr_tail)
        # ALSA prints a chain of "ALSA lib ..." lines; aplay's own last line says what failed.
        own = [line for line in lines if line.startswith("aplay")]
        return (own or lines or [f"exit status {self._proc.returncode}"])[-1]

    def write(self, pcm: bytes) -> None:
        assert self._proc.stdin is not None
        view = memoryview(pcm)
        try:
            while view:
                written = self._proc.stdin.write(view)
                if self._started is None:
                    self._started = Instant.now()
                view = view[written:]
                self._written_bytes += written
        except (BrokenPipeError, ValueError, OSError) as exc:  # ValueError: stdin closed by drop()
            if self._dropped:
                raise StreamDropped from exc
            self._proc.wait()
            self._reader.join(timeout=0.5)
            raise DeviceError(self.device, f"aplay stopped while playing: {self.stderr_summary()}") from exc

    def drain(self) -> None:
        assert self._proc.stdin is not None
        with contextlib.suppress(OSError):
            self._proc.stdin.close()  # EOF: aplay drains the device and exits
        try:
            self._proc.wait(timeout=self.buffer_s + DRAIN_GRACE_S + self._pipe_backlog_s())
        except subprocess.TimeoutExpired:
            self.drop()
            raise DeviceError(self.device, "aplay did not finish draining; killed") from None
        with self._lock:
            if self._dropped:
                raise StreamDropped
            self._ended = Instant.now()
        if self._proc.returncode != 0:
            self._reader.join(timeout=0.5)
            raise DeviceError(self.device, f"aplay failed: {self.stderr_summary()}")
        self._completed = True

    def _pipe_backlog_s(self) -> float:
        return 65536 / (self.fmt.rate * self.fmt.bytes_per_frame)  # a full default pipe buffer

    def drop(self) -> None:
        with self._lock:
            if self._dropped or self._ended is not None:
                return
            self._dropped = True
            self._ended = Instant.now()
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()

    def close(self) -> None:
        if self._proc.poll() is None:
            self.drop()
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        self._proc.wait()
        self._reader.join(timeout=1.0)
        if self._proc.stderr is not None:
            self._proc.stderr.close()

    @property
    def started(self) -> Instant | None:
        return self._started

    @property
    def ended(self) -> Instant | None:
        return self._ended

    @property
    def frames_played(self) -> int:
        written = self._written_bytes // self.fmt.bytes_per_frame
        if self._completed:
            return written
        if self._started is None or self._ended is None:
            return 0
        heard = round((self._ended.mono - self._started.mono) * self.fmt.rate)
        return max(0, min(written, heard))

    @property
    def underruns(self) -> int:
        return self._underruns

    @property
    def recording(self) -> Path | None:
        return None


class AplayDevice:
    simulated = False

    def __init__(self, device: str, *, buffer_ms: int = 100, aplay: str = "aplay") -> None:
        self.device = device
        self.buffer_ms = buffer_ms
        self.aplay = aplay

    @property
    def name(self) -> str:
        return self.device

    def argv(self, fmt: PcmFormat) -> list[str]:
        return [
            self.aplay,
            "-D",
            self.device,
            "-t",
            "raw",
            "-f",
            "S16_LE",
            "-r",
            str(fmt.rate),
            "-c",
            str(fmt.channels),
            f"--buffer-time={self.buffer_ms * 1000}",
            f"--period-time={self.buffer_ms * 250}",  # 4 periods per buffer: ALSA's usual shape
        ]

    def present(self) -> bool:
        return shutil.which(self.aplay) is not None and alsa_device_present(self.device)

    def open(self, fmt: PcmFormat) -> AplayStream:
        return AplayStream(self.argv(fmt), self.device, fmt, self.buffer_ms)

    def played(self, report: PlaybackReport) -> None:
        """The broadcast log is the hub's; nothing to record at device level."""
