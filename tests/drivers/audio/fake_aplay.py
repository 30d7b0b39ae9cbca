"""A stand-in for ALSA's `aplay` with the same command line, stdin and stderr, for machines without a sound card
or alsa-utils: it consumes raw PCM at the sample rate (never more than ~50 ms ahead, like a device buffer) and
appends what it received to $FAKE_APLAY_OUT.

Devices: 'missing' fails to open as aplay does; with $FAKE_APLAY_DIE_AFTER set it fails mid-play as aplay does
when a USB sound card is pulled out.
"""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> int:
    device = argv[argv.index("-D") + 1]
    rate = int(argv[argv.index("-r") + 1])
    channels = int(argv[argv.index("-c") + 1])
    if device == "missing":
        sys.stderr.write(
            "ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM missing\n"
            "aplay: main:831: audio open error: No such file or directory\n"
        )
        return 1
    sys.stderr.write(f"Playing raw data 'stdin' : Signed 16 bit Little Endian, Rate {rate} Hz, Stereo\n")
    sys.stderr.flush()
    die_after = float(os.environ.get("FAKE_APLAY_DIE_AFTER", "0"))
    bytes_per_frame = 2 * channels
    started: float | None = None
    frames = 0
    with open(os.environ["FAKE_APLAY_OUT"], "ab") as out:
        while chunk := os.read(0, 4096):
            if started is None:
                started = time.monotonic()
            out.write(chunk)
            out.flush()
            frames += len(chunk) // bytes_per_frame
            ahead = started + frames / rate - time.monotonic() - 0.05
            if ahead > 0:
                time.sleep(ahead)
            if die_after and time.monotonic() - started > die_after:
                sys.stderr.write("aplay: pcm_write:2127: write error: Input/output error\n")
                return 1
    if started is not None:  # drain: return when the last frame has been "heard"
        time.sleep(max(0.0, started + frames / rate - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
