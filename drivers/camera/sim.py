"""The simulated camera: a video file of a scene in which a person walks across, made with PyAV (H.264).

On simulated hardware (the demo, `hub run` on a laptop) a camera is such a file, played in a loop at its own
pace through the same source code an RTSP camera goes through. The person is a photo of a person (scikit-
image's astronaut, when scikit-image is installed) moving over a still background.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Walk:
    """A person crossing the frame from `enter_s` to `exit_s`, left to right."""

    enter_s: float
    exit_s: float
    height_fraction: float = 0.8  # the person's height as a fraction of the frame's
    y_fraction: float = 0.1  # top of the person


def background_scene(width: int, height: int, seed: int = 7) -> NDArray[np.uint8]:
    """A still, person-free scene: sky, a road, a wall with texture (deterministic)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    sky = np.array([150, 180, 220], dtype=np.float32)
    ground = np.array([110, 100, 80], dtype=np.float32)
    scene = np.where(y < 0.45, sky, ground) * np.ones((1, width, 1), dtype=np.float32)
    wall = np.array([170, 160, 140], dtype=np.float32)
    scene[int(height * 0.3) : int(height * 0.6), : width // 3] = wall
    noise = rng.normal(0, 4, size=(height, width, 1)).astype(np.float32)
    return np.clip(scene + noise, 0, 255).astype(np.uint8)


def resize_nearest(image: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    import numpy as np

    ys = (np.arange(height) * image.shape[0] / height).astype(int)
    xs = (np.arange(width) * image.shape[1] / width).astype(int)
    out: NDArray[np.uint8] = image[ys][:, xs]
    return out


def frames(
    background: NDArray[np.uint8], person: NDArray[np.uint8] | None, walks: list[Walk], fps: float, seconds: float
) -> list[NDArray[np.uint8]]:
    """The clip's frames: the background with the person pasted where each walk puts it at that time."""
    height, width = background.shape[:2]
    out = []
    for i in range(round(seconds * fps)):
        t = i / fps
        frame = background.copy()
        for walk in walks:
            if person is None or not walk.enter_s <= t < walk.exit_s:
                continue
            ph = int(height * walk.height_fraction)
            pw = int(person.shape[1] * ph / person.shape[0])
            sprite = resize_nearest(person, pw, ph)
            progress = (t - walk.enter_s) / (walk.exit_s - walk.enter_s)
            x = int(progress * (width - pw))
            y = int(height * walk.y_fraction)
            frame[y : y + ph, x : x + pw] = sprite[: height - y]
        out.append(frame)
    return out


def write_video(path: Path, images: list[NDArray[np.uint8]], fps: float, gop_s: float = 1.0) -> Path:
    """H.264 in MP4 (or whatever the suffix names), key frames every `gop_s`."""
    import fractions

    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    suffix = path.suffix.lstrip(".") or "mp4"
    with av.open(str(partial), mode="w", format={"ts": "mpegts", "mkv": "matroska"}.get(suffix, suffix)) as container:
        stream = container.add_stream("libx264", rate=fractions.Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = max(1, round(fps * gop_s))
        stream.options = {"preset": "veryfast", "tune": "zerolatency"}
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    partial.replace(path)
    return path


def person_photo() -> NDArray[np.uint8] | None:
    """A photo of a person that a package carries offline: scikit-image's astronaut (None without it)."""
    try:
        from skimage import data
    except ImportError:
        return None
    image: NDArray[np.uint8] = data.astronaut()  # type: ignore[no-untyped-call]
    return image


def demo_clip(path: Path, width: int = 640, height: int = 360, fps: float = 10.0) -> Path:
    """The demo camera's clip (made once): 20 s of a still scene with one person crossing it."""
    if path.exists():
        return path
    images = frames(background_scene(width, height), person_photo(), [Walk(6.0, 12.0)], fps, 20.0)
    return write_video(path, images, fps)
