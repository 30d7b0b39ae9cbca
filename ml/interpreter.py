"""Loading a TFLite model: ai-edge-litert (maintained; numpy 2; Python 3.12+), else tflite-runtime.

tflite-runtime 2.14 is the last release (numpy < 2, no wheels past Python 3.11); it is used only when it is
what is installed. A delegate (the Coral Edge TPU's libedgetpu) is loaded when asked for and present.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ModelLoadError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Loaded:
    interpreter: Any  # ai_edge_litert.interpreter.Interpreter (no type stubs)
    runtime: str  # "ai-edge-litert" | "tflite-runtime"
    delegate: str | None


def _runtime() -> tuple[Any, str]:
    try:
        from ai_edge_litert import interpreter as litert  # type: ignore[import-untyped,unused-ignore]

        return litert, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as tflite  # type: ignore[import-not-found,unused-ignore]

        return tflite, "tflite-runtime"
    except ImportError:
        raise ModelLoadError("no TFLite runtime: install ai-edge-litert (pip install ai-edge-litert)") from None


def load(path: Path, threads: int = 1, delegate: str | None = None) -> Loaded:
    """Load `path` with `threads` CPU threads; `delegate` names a delegate library (e.g. 'libedgetpu.so.1')."""
    if not path.is_file():
        raise ModelLoadError(f"model file {path} is missing (run scripts/fetch-models)")
    module, runtime = _runtime()
    delegates = []
    if delegate:
        try:
            delegates.append(module.load_delegate(delegate))
        except (ValueError, OSError) as exc:
            raise ModelLoadError(f"delegate {delegate!r} could not be loaded: {exc}") from None
    try:
        interpreter = module.Interpreter(
            model_path=str(path), num_threads=threads, experimental_delegates=delegates or None
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from None
    return Loaded(interpreter, runtime, delegate)
