"""FP32 or INT8: which bundle the service runs.

`export --int8` writes `OUT-int8/` beside `OUT/`, its card naming the FP32 model it was
quantised from (`export.quantized_from`) and the FP32 card recording the accuracy check
(`export.int8.accuracy_delta` per head, on the val split). INT8 is only faster on CPUs with 8-bit
dot-product instructions (x86 VNNI or AMX, ARM dot product); elsewhere ONNX Runtime emulates it
and it is slower than FP32 -- and even with them a small network may not gain (measured in
BENCHMARKS.md: 0.87-0.99 x FP32 on an AMD EPYC with AVX512-VNNI). So with
`RETURNS_PRECISION=auto` (the default) the service serves the INT8 sibling only when all hold:
this CPU has the instructions, no head lost more than INT8_MAX_ACCURACY_DROP of accuracy, and
INT8 runs at least INT8_MIN_SPEEDUP x FP32 on this host, measured at load (about a second).
`fp32` and `int8` force the choice.
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any, Literal

from inspection.card import ModelCard, read_card

log = logging.getLogger(__name__)
Precision = Literal["auto", "fp32", "int8"]
INT8_MAX_ACCURACY_DROP = 0.01  # per head, absolute accuracy on the val split
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")  # /proc/cpuinfo names
INT8_MIN_SPEEDUP = 1.1
SPEED_RUNS = 15


def cpu_int8_features(cpuinfo: str | None = None) -> list[str]:
    """The 8-bit dot-product instruction sets this CPU reports."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ["asimddp"] if platform.machine() == "arm64" else []  # Apple silicon has it
    words = set(cpuinfo.split())
    return [flag for flag in INT8_FLAGS if flag in words]


def is_int8(card: ModelCard) -> bool:
    return bool((card.export or {}).get("quantized_from"))


def int8_accuracy_ok(report: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether the recorded FP32 -> INT8 accuracy change passes, and why not."""
    if not report:
        return False, "the card records no INT8 accuracy check"
    worst = {head: delta for head, delta in (report.get("accuracy_delta") or {}).items()
             if delta is not None and delta < -INT8_MAX_ACCURACY_DROP}
    if worst:
        return False, f"INT8 loses accuracy on {worst} (limit -{INT8_MAX_ACCURACY_DROP})"
    return True, ""


def choose_bundle(bundle_dir: Path, precision: Precision, cpuinfo: str | None = None) -> tuple[Path, str]:
    """(the bundle to serve, why). Only `auto` and `int8` look for the `-int8` sibling."""
    sibling = bundle_dir.with_name(f"{bundle_dir.name}-int8")
    if precision == "fp32" or not (sibling / "model_card.json").is_file():
        return bundle_dir, "FP32" if precision == "fp32" else "FP32: no INT8 bundle beside it"
    if precision == "int8":
        return sibling, "INT8: RETURNS_PRECISION=int8"
    features = cpu_int8_features(cpuinfo)
    if not features:
        return bundle_dir, "FP32: this CPU has no 8-bit dot-product instructions (VNNI/AMX)"
    card = read_card(sibling)
    if card.export.get("quantized_from") != read_card(bundle_dir).model_id:
        return bundle_dir, f"FP32: {sibling} was not quantised from this bundle"
    ok, why = int8_accuracy_ok(card.export.get("int8"))
    if not ok:
        return bundle_dir, f"FP32: {why}"
    speedup = measured_speedup(bundle_dir / read_card(bundle_dir).onnx_file, sibling / card.onnx_file,
                               card.preprocessing.input_size)
    if speedup < INT8_MIN_SPEEDUP:
        return bundle_dir, f"FP32: INT8 runs at {speedup:.2f} x FP32 on this CPU"
    return sibling, (f"INT8: the CPU has {', '.join(features)}, the accuracy check passes and it "
                     f"runs at {speedup:.2f} x FP32 here")


def measured_speedup(fp32: Path, int8: Path, size: int) -> float:
    """INT8 over FP32 photos/s at batch 1 on this host: best of interleaved runs."""
    import numpy as np
    import onnxruntime as ort

    batch = np.zeros((1, 3, size, size), dtype=np.float32)
    sessions = [ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in (fp32, int8)]
    best = [float("inf"), float("inf")]
    for _ in range(SPEED_RUNS):
        for index, session in enumerate(sessions):
            started = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: batch})
            best[index] = min(best[index], time.perf_counter() - started)
    return best[0] / best[1]
