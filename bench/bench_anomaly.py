"""Per-photo CPU latency of the classifier ONNX alone vs classifier + the category's anomaly
ONNX (issue 4 asks for at most 1.5x), on one machine in one run.

    python bench/bench_anomaly.py [--bundle models/default --category C] [--bank-size 16384]
        [--searched-rows 1536]

With a bundle that has a detector for C, both files come from it. Otherwise the classifier is
exported from `training.model.build_model` (ImageNet backbone, default taxonomy) and a detector
is built with a bank of `--bank-size` real patch features (16,384 is about what a 10% coreset
of 209 photos at 224 px keeps), `--searched-rows` of them compared with every patch (0: all).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe  # noqa: E402
from inspection.card import PreprocessSpec, read_card  # noqa: E402
from inspection.preprocess import batch_inputs  # noqa: E402
from training.anomaly.patchcore import SEARCHED_ROWS  # noqa: E402


def interleaved_medians(first: Callable[[], object], second: Callable[[], object], repeats: int,
                        warmup: int = 3) -> tuple[float, float]:
    """Median ms of each, timed alternately so load from other processes hits both alike."""
    for _ in range(warmup):
        first()
        second()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for function, bucket in ((first, samples[0]), (second, samples[1])):
            start = time.perf_counter()
            function()
            bucket.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_current_model(folder: Path, input_size: int) -> Path:
    """The current training.model, ImageNet weights, exported as the service would get it."""
    from inspection.taxonomy import load_taxonomy
    from training.export import write_onnx
    from training.model import build_model

    model = build_model(load_taxonomy(), pretrained=True).eval()
    path = folder / "model.onnx"
    write_onnx(model, path, PreprocessSpec(input_size=input_size), 17, "bench")
    return path


def build_detector(folder: Path, classifier: ort.InferenceSession, image: np.ndarray,
                   bank_size: int, neighbours: int, searched_rows: int) -> Path:
    from training.anomaly.export import save_detector
    from training.anomaly.patchcore import flatten_patches, support_neighbours

    features = classifier.run(["patch_features"], {"image": image})[0]
    patches = flatten_patches(features)
    rng = np.random.default_rng(0)
    bank = patches[rng.integers(0, len(patches), bank_size)] + rng.normal(
        0, 0.1, (bank_size, patches.shape[1])).astype(np.float32)
    support = support_neighbours(bank, neighbours) if neighbours > 1 else None
    return save_detector(bank, folder / "anomaly.onnx", support=support,
                         searched_rows=searched_rows or None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--category", help="the bundle's anomaly category to time")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--bank-size", type=int, default=16384)
    parser.add_argument("--searched-rows", type=int, default=SEARCHED_ROWS,
                        help="rows every patch is compared with (0: every row, one pass)")
    parser.add_argument("--neighbours", type=int, default=9,
                        help="support rows of the weighted score (1: plain max)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(f"onnxruntime {ort.__version__}, {args.threads} intra-op thread(s), batch of 1")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.bundle is not None and args.category:
            card = read_card(args.bundle)
            model_path = args.bundle / card.onnx_file
            detector_path = args.bundle / card.anomaly[args.category]["file"]
            size = card.preprocessing.input_size
        else:
            size = args.input_size
            model_path = export_current_model(Path(tmp), size)
        photo = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        image = batch_inputs([photo], PreprocessSpec(input_size=size))
        classifier = session(model_path, args.threads)
        if args.bundle is None or not args.category:
            detector_path = build_detector(Path(tmp), classifier, image, args.bank_size,
                                           args.neighbours, args.searched_rows)
        detector = session(detector_path, args.threads)
        bank = detector.get_inputs()[0].shape
        print(f"classifier {model_path.name} at {size} px; detector {detector_path.name} "
              f"({detector_path.stat().st_size / 2**20:.1f} MiB, input {bank})")

        def classify() -> dict:
            names = [o.name for o in classifier.get_outputs()]
            return dict(zip(names, classifier.run(names, {"image": image}), strict=True))

        def classify_and_score() -> object:
            features = classify()["patch_features"]
            return detector.run(None, {"patch_features": features})

        base, both = interleaved_medians(classify, classify_and_score, args.repeats)
    print(f"classifier only:        {base:7.1f} ms / photo (median of {args.repeats})")
    print(f"classifier + anomaly:   {both:7.1f} ms / photo")
    print(f"ratio: {both / base:.2f}x (target <= 1.50x)")


if __name__ == "__main__":
    main()
