"""Cameras: RTSP and file sources decoded with PyAV (FFmpeg) in threads of their own, the segment recorder
(FFmpeg's segment muxer through PyAV), JPEG encoding, and the simulated camera (a generated video file)."""

from drivers.camera.source import CameraFrame, SourceStats, VideoSource

__all__ = ["CameraFrame", "SourceStats", "VideoSource"]
