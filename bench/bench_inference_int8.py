"""INT8 against FP32 on real photos: speed, and what it changes.

The served bundle's ONNX graph is quantised the way `export --int8` does (training.quantize:
static QDQ, per-channel S8S8 weights, percentile ranges), calibrated on real photos. The default
bundle was trained on synthetic photos, so its grade heads mean nothing on bottles and tiles;
its embedding does: the metric is leave-one-out 1-nearest-neighbour accuracy of each dataset's
classes (MVTec bottle: good / 3 defects; magnetic tile: free / 5 defects) on FP32 vs INT8
embeddings, plus how often the two models agree on every head's top label.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.bench_inference_ort import interleaved, session
from bench.timing import per_second
from inspection.images import load_photo
from inspection.preprocess import batch_inputs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATASETS = {
    "mvtec_bottle": (SHARED / "mvtec_ad" / "bottle" / "test", "*/*.png"),
    "magnetic_tile": (SHARED / "magnetic_tile", "*/Imgs/*.jpg"),
}


def labelled_photos(name: str, per_class: int) -> list[tuple[Path, str]]:
    root, pattern = DATASETS[name]
    by_class: dict[str, list[Path]] = {}
    for path in sorted(root.glob(pattern)):
        label = path.parent.parent.name if path.parent.name == "Imgs" else path.parent.name
        by_class.setdefault(label, []).append(path)
    return [(path, label) for label, paths in sorted(by_class.items()) for path in paths[:per_class]]


def quantise(fp32: Path, calibration: list[Path], engine: Any, out: Path) -> Path:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from training.quantize import PhotoReader

    ort.set_default_logger_severity(3)
    prepared = out / "prepared.onnx"
    try:  # as training.quantize: the clean-up is optional, some graphs defeat its shape inference
        quant_pre_process(str(fp32), str(prepared))
    except Exception:  # noqa: BLE001
        shutil.copyfile(fp32, prepared)
    quantised = out / "int8.onnx"
    quantize_static(str(prepared), str(quantised), PhotoReader(calibration, engine),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile)
    return quantised


def outputs(run: ort.InferenceSession, photos: list[np.ndarray], spec: Any) -> dict[str, np.ndarray]:
    names = [o.name for o in run.get_outputs() if o.name.endswith("_logits") or o.name == "embedding"]
    chunks = [dict(zip(names, run.run(names, {spec.input_name: batch_inputs(photos[i:i + 16], spec)}),
                       strict=True)) for i in range(0, len(photos), 16)]
    return {name: np.concatenate([c[name] for c in chunks]) for name in names}


def nearest_neighbour_accuracy(embeddings: np.ndarray, labels: list[str]) -> float:
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)  # leave one out
    nearest = similarity.argmax(axis=1)
    return float(np.mean([labels[j] == labels[i] for i, j in enumerate(nearest)]))


def bench_int8(engine: Any, per_class: int, calibration_count: int, seconds: float,
               rounds: int) -> dict[str, Any]:
    spec = engine.card.preprocessing
    fp32_path = engine.bundle_dir / engine.card.onnx_file
    sets = {name: labelled_photos(name, per_class) for name in DATASETS if DATASETS[name][0].is_dir()}
    if not sets:
        return {"skipped": f"no real photos under {SHARED}"}
    calibration = [path for photos in sets.values() for path, _ in photos[::3]][:calibration_count]
    work = Path(tempfile.mkdtemp(prefix="bench-int8-"))
    try:
        int8_path = quantise(fp32_path, calibration, engine, work)
        fp32, int8 = session(fp32_path, 2, False), session(int8_path, 2, False)
        report: dict[str, Any] = {"calibration_photos": len(calibration), "datasets": {}}
        for name, photos in sets.items():
            rgb = [load_photo(path, min_side=spec.input_size) for path, _ in photos]
            labels = [label for _, label in photos]
            base, quant = outputs(fp32, rgb, spec), outputs(int8, rgb, spec)
            agreement = {key.removesuffix("_logits"): float(np.mean(
                base[key].argmax(1) == quant[key].argmax(1))) for key in base if key.endswith("_logits")}
            report["datasets"][name] = {
                "photos": len(rgb), "classes": sorted(set(labels)),
                "knn_accuracy_fp32": nearest_neighbour_accuracy(base["embedding"], labels),
                "knn_accuracy_int8": nearest_neighbour_accuracy(quant["embedding"], labels),
                "top1_agreement": agreement}
        size = spec.input_size
        speeds = {}
        for batch_size in (1, 8):
            batch = np.random.default_rng(2).normal(size=(batch_size, 3, size, size)).astype(np.float32)
            for precision, run in (("fp32", fp32), ("int8", int8)):
                speeds[f"{precision} batch={batch_size}"] = (
                    lambda r=run, b=batch, n=batch_size: per_second(lambda: r.run(None, {"image": b}),
                                                                    n, seconds))
        report["photos_per_s"] = interleaved(speeds, rounds)
        report["size_bytes"] = {"fp32": fp32_path.stat().st_size, "int8": int8_path.stat().st_size}
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)
