"""Detections over frames become tracked objects, so one person walking through makes one event.

An IoU tracker (with a centre-distance fallback: detections from differently sized crops of the same person
overlap less than the same crop would). A track is *confirmed* — and only then an event starts — after
`min_hits` detections within `confirm_window_s` whose mean score reaches `confirm_score`: a detector that
fires on a static structure or a cat's face now and then (the pose detector does) never makes an event. A
confirmed track ends when it has not been seen for `lost_after_s`. Each track keeps its best-scoring frame
for the snapshot.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ml.boxes import Box, Detection, centre, iou
from ml.masks import Polygon, contains

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    min_hits: int = 3
    # The mean score of those detections must reach this: the pose detector scores people 0.8–0.97, but also
    # a cat's face or a coffee cup 0.5–0.85 in single frames (bench/camera_cpu.py), never high on average.
    confirm_score: float = 0.75
    confirm_window_s: float = 3.0
    lost_after_s: float = 3.0
    iou_match: float = 0.2
    centre_match: float = 0.5  # or centres closer than this × the larger box's diagonal


@dataclass
class Track:
    id: int
    label: str
    box: Box
    first_seen: float
    last_seen: float
    hits: int = 1
    confirmed: bool = False
    best_score: float = 0.0
    best_box: Box = (0.0, 0.0, 0.0, 0.0)
    best_frame: NDArray[np.uint8] | None = None
    best_at: float = 0.0
    zones: list[str] = field(default_factory=list)
    recent: list[tuple[float, float]] = field(default_factory=list)  # (time, score) of recent hits


@dataclass(frozen=True, slots=True)
class TrackEvent:
    kind: Literal["start", "end", "zone"]
    track: Track
    at: float
    zone: str | None = None


class Tracker:
    def __init__(self, config: TrackerConfig | None = None, zones: Mapping[str, Polygon] | None = None) -> None:
        self.config = config or TrackerConfig()
        self.zones = dict(zones or {})
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def _matches(self, track: Track, d: Detection) -> float:
        if track.label != d.label:
            return 0.0
        overlap = iou(track.box, d.box)
        if overlap >= self.config.iou_match:
            return overlap
        (ax, ay), (bx, by) = centre(track.box), centre(d.box)
        diagonal = max(
            ((track.box[2] - track.box[0]) ** 2 + (track.box[3] - track.box[1]) ** 2) ** 0.5,
            ((d.box[2] - d.box[0]) ** 2 + (d.box[3] - d.box[1]) ** 2) ** 0.5,
        )
        distance = ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5
        return 0.01 if diagonal > 0 and distance < self.config.centre_match * diagonal else 0.0

    def update(
        self, detections: list[Detection], now: float, frame: NDArray[np.uint8], size: tuple[int, int]
    ) -> list[TrackEvent]:
        """Feed one analysed frame's detections (frame pixels; `size` = (width, height)); returns what happened."""
        events: list[TrackEvent] = []
        free = list(self.tracks)
        for d in sorted(detections, key=lambda d: d.score, reverse=True):
            scored = [(self._matches(t, d), t) for t in free]
            best = max(scored, key=lambda s: s[0], default=(0.0, None))
            track = best[1] if best[0] > 0 else None
            if track is None:
                track = Track(next(self._ids), d.label, d.box, now, now, best_score=-1.0)
                self.tracks.append(track)
            else:
                free.remove(track)
                track.hits += 1
                track.box = d.box
                track.last_seen = now
            window = self.config.confirm_window_s
            track.recent = [(t, s) for t, s in track.recent if now - t <= window] + [(now, d.score)]
            if d.score > track.best_score:
                track.best_score, track.best_box, track.best_at = d.score, d.box, now
                track.best_frame = frame
            if (
                not track.confirmed
                and len(track.recent) >= self.config.min_hits
                and sum(s for _, s in track.recent) / len(track.recent) >= self.config.confirm_score
            ):
                track.confirmed = True
                events.append(TrackEvent("start", track, now))
            events.extend(self._enter_zones(track, size, now))
        for track in list(self.tracks):
            if now - track.last_seen > self.config.lost_after_s or (
                not track.confirmed and now - track.last_seen > self.config.confirm_window_s
            ):
                self.tracks.remove(track)
                if track.confirmed:
                    events.append(TrackEvent("end", track, now))
        return events

    def _enter_zones(self, track: Track, size: tuple[int, int], now: float) -> list[TrackEvent]:
        if not self.zones:
            return []
        # Where a person stands: the middle of the bottom edge of the box.
        x = (track.box[0] + track.box[2]) / 2 / size[0]
        y = track.box[3] / size[1]
        entered = []
        for name, polygon in self.zones.items():
            if name not in track.zones and contains(polygon, x, min(y, 0.999)):
                track.zones.append(name)
                if track.confirmed:
                    entered.append(TrackEvent("zone", track, now, zone=name))
        return entered

    def flush(self, now: float) -> list[TrackEvent]:
        """End every confirmed track (the source stopped)."""
        events = [TrackEvent("end", t, now) for t in self.tracks if t.confirmed]
        self.tracks.clear()
        return events
