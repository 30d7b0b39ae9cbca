"""Vietnamese text-to-speech with espeak-ng (Debian package espeak-ng), run as a child process.

Why a child process: espeak-ng is a C program with no maintained Python binding; a process can be given a
timeout and killed, so a pathological text cannot hang the hub. The text goes in on stdin, never on the
command line: a text beginning with "-" would otherwise be read as an option, and stdin has no length limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import unicodedata
from pathlib import Path

ESPEAK = "espeak-ng"
VOICES = ("vi", "vi-vn-x-central", "vi-vn-x-south")  # Northern (Hà Nội), Central (Huế), Southern (Sài Gòn)
DEFAULT_VOICE = "vi"
# espeak-ng's default is 175 words per minute; for loudspeakers on poles, heard over distance and echo, a
# slower reading is clearer (Vietnamese syllables are words to espeak-ng).
DEFAULT_RATE_WPM = 150
MIN_RATE_WPM = 80
MAX_RATE_WPM = 450  # espeak-ng's own range
MAX_TEXT_CHARS = 5000  # about six minutes of speech at 150 wpm: longer is a recording, not a bulletin
DEFAULT_TIMEOUT_S = 60.0  # espeak-ng reads a sentence in ~15 ms here; a Pi is slower, a stuck one is stuck
WAV_HEADER_BYTES = 44

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t]+")


class TtsError(Exception):
    """Speech could not be made; the message says why (missing tool, bad input, engine failure)."""


def prepare_text(text: str) -> str:
    """The text as espeak-ng is given it: NFC (a phone keyboard may send decomposed diacritics, which
    espeak-ng reads as separate marks), no control characters, runs of spaces collapsed."""
    normal = unicodedata.normalize("NFC", text)
    normal = _CONTROL.sub(" ", normal)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in normal.splitlines()).strip()


def check_request(text: str, voice: str, rate_wpm: int) -> str:
    """The prepared text, or TtsError naming what is wrong with the request."""
    if voice not in VOICES:
        raise TtsError(f"unknown voice {voice!r}; expected one of {', '.join(VOICES)}")
    if not MIN_RATE_WPM <= rate_wpm <= MAX_RATE_WPM:
        raise TtsError(f"rate {rate_wpm} words/min is out of range {MIN_RATE_WPM}-{MAX_RATE_WPM}")
    prepared = prepare_text(text)
    if not any(ch.isalnum() for ch in prepared):
        raise TtsError("text is empty: nothing to read aloud")
    if len(prepared) > MAX_TEXT_CHARS:
        raise TtsError(f"text is too long: {len(prepared)} characters, at most {MAX_TEXT_CHARS}")
    return prepared


async def synthesize(
    text: str,
    out: Path,
    voice: str = DEFAULT_VOICE,
    rate_wpm: int = DEFAULT_RATE_WPM,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    executable: str = ESPEAK,
) -> Path:
    """Speak `text` into the WAV file `out` (mono, 22.05 kHz, 16-bit); returns `out`.

    The file appears whole or not at all (written beside it, then renamed)."""
    prepared = check_request(text, voice, rate_wpm)
    out = Path(out)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    argv = [executable, "-v", voice, "-s", str(rate_wpm), "-b", "1", "-w", str(partial), "--stdin"]
    try:
        await _run(argv, prepared.encode("utf-8"), timeout_s)
        size = partial.stat().st_size if partial.exists() else 0
        if size <= WAV_HEADER_BYTES:
            raise TtsError(f"{executable} produced no sound for the text")
        partial.replace(out)
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
    return out


async def _run(argv: list[str], stdin: bytes, timeout_s: float) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise TtsError(f"{argv[0]} is not installed (Debian package espeak-ng)") from None
    except PermissionError:
        raise TtsError(f"{argv[0]} cannot be run: permission denied") from None
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(stdin), timeout_s)
    except TimeoutError:
        raise TtsError(f"{argv[0]} took longer than {timeout_s:g} s and was stopped") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        message = stderr.decode("utf-8", "replace").strip() or "no message"
        raise TtsError(f"{argv[0]} failed (exit {proc.returncode}): {message}")
