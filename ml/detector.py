"""A detector: one TFLite model described by a ModelSpec, run on square regions of RGB frames.

Not thread-safe by itself (one interpreter has one set of tensors): the caller serialises calls, which costs
nothing because inference uses every core it is given anyway.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ml import interpreter
from ml.anchors import ssd_anchors
from ml.boxes import Box, Detection
from ml.decode import decode_anchors, decode_boxes
from ml.model_spec import ModelSpec
from ml.preprocess import crop_resize, full_frame_square

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class Detector:
    def __init__(self, spec: ModelSpec, threads: int = 1, delegate: str | None = None) -> None:
        import numpy as np

        self.spec = spec
        self.threads = threads
        loaded = interpreter.load(spec.file, threads, delegate)
        self.runtime = loaded.runtime
        self.delegate = loaded.delegate
        self._interpreter = loaded.interpreter
        details = self._interpreter.get_input_details()[0]
        self._input_index = details["index"]
        _, height, width, _ = details["shape"]
        if height != width:
            raise interpreter.ModelLoadError(f"{spec.file.name}: only square inputs are supported ({width}x{height})")
        self.input_size = int(width)
        self._input_float = details["dtype"] == np.float32
        self._outputs = sorted(self._interpreter.get_output_details(), key=lambda d: d["index"])
        self._anchors: NDArray[np.float32] | None = None
        if spec.decoding == "anchors":
            self._anchors = ssd_anchors(self.input_size, spec.strides, spec.anchors_per_layer)
            # The regressors are the output with the most values per anchor, the logits the one with one.
            self._outputs.sort(key=lambda d: -int(d["shape"][-1]))
            count = int(self._outputs[0]["shape"][1])
            if count != len(self._anchors):
                raise interpreter.ModelLoadError(
                    f"{spec.file.name}: {count} outputs, but strides {spec.strides} make {len(self._anchors)} anchors"
                )
        self.calls = 0
        self.latencies_ms: deque[float] = deque(maxlen=200)

    def infer(self, tensor: NDArray[np.uint8]) -> list[Detection]:
        """Run on one size×size RGB image; boxes normalised to that image."""
        import numpy as np

        spec = self.spec
        data: NDArray[Any] = (tensor.astype(np.float32) - spec.mean) / spec.std if self._input_float else tensor
        started = time.perf_counter()
        self._interpreter.set_tensor(self._input_index, data[None])
        self._interpreter.invoke()
        outputs = [self._interpreter.get_tensor(d["index"]) for d in self._outputs]
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.calls += 1
        threshold = self.spec.score_threshold
        if self._anchors is not None:
            return decode_anchors(self.spec, outputs[0], outputs[1], self._anchors, self.input_size, threshold)
        return decode_boxes(self.spec, outputs, threshold)

    def detect(self, frame: NDArray[np.uint8], region: Box | None = None) -> list[Detection]:
        """Detections in `region` (a square of the frame; the whole frame letterboxed when None), in frame pixels."""
        h, w = frame.shape[:2]
        region = region or full_frame_square(w, h)
        x0, y0, x1, y1 = region
        side_x, side_y = x1 - x0, y1 - y0
        found = self.infer(crop_resize(frame, region, self.input_size))
        return [
            Detection(
                d.label,
                d.score,
                (
                    max(0.0, x0 + d.box[0] * side_x),
                    max(0.0, y0 + d.box[1] * side_y),
                    min(float(w), x0 + d.box[2] * side_x),
                    min(float(h), y0 + d.box[3] * side_y),
                ),
            )
            for d in found
        ]

    def latency(self) -> dict[str, float | None]:
        values = sorted(self.latencies_ms)
        if not values:
            return {"median_ms": None, "p99_ms": None}
        return {
            "median_ms": round(statistics.median(values), 2),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 2),
        }
