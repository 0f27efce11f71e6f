"""How long registering a SKU takes, against the model's own forward pass on the same photos
measured in the same run (the ratio holds on a loaded machine; the milliseconds do not).

    python bench/bench_catalog_build.py [--photos ../shared/datasets/mvtec_ad/bottle/train/good]
        [--sizes 1 5 10 25 50] [--repeats 3]

Per N: the model's forward pass over N decoded photos (`embedding` + `patch_features`), and the
whole reference build (forward pass + numpy coreset bank + leave-one-out thresholds), medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench.machine import describe
from inspection.catalog import build_reference, model_views
from inspection.engine import Engine
from inspection.images import load_photo

DEFAULT_PHOTOS = Path("../shared/datasets/mvtec_ad/bottle/train/good")


def median_ms(task: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        task()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 10, 25, 50])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(describe())
    engine = Engine.load(args.bundle)
    files = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in {".png", ".jpg"})
    photos = [load_photo(path, min_side=engine.input_size) for path in files[:max(args.sizes)]]
    print(f"{len(photos)} photos from {args.photos}, model input {engine.input_size} px")
    print(f"{'N':>4} {'forward ms':>11} {'build ms':>10} {'ratio':>6}")
    for size in args.sizes:
        chosen = photos[:size]
        forward = median_ms(lambda chosen=chosen: model_views(engine, chosen), args.repeats)
        build = median_ms(lambda chosen=chosen: build_reference(engine, chosen), args.repeats)
        print(f"{size:>4} {forward:>11.0f} {build:>10.0f} {build / forward:>6.2f}")


if __name__ == "__main__":
    main()
