"""Backlog re-scoring throughput on Ray Data: photos/s with 1 and 2 actors and the scaling ratio,
against the in-process engine measured in the same run (load from other processes hits all
alike, so read the ratios), plus where an item's time goes (decode vs model).

    python bench/bench_ray.py [--manifest datasets/sample/manifest.csv] [--items 150]
                              [--bundle models/default] [--actors 1 2] [--batch-size 8]

Items are the first `--items` of the manifest (the synthetic sample set when present; else
that many generated 1024x768 JPEGs). A local Ray gets as many CPUs as the most actors asked
for; each actor runs ONNX Runtime on one thread. Throughput counts from the first result to
the last, so actor start-up (loading the bundle) is reported apart, not averaged in.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe  # noqa: E402
from inspection.loaded_model import LoadedModel  # noqa: E402
from inspection.score import score_items  # noqa: E402
from inspection.score_ray import RayOptions, score_on_ray  # noqa: E402
from inspection.score_sources import Item, items_from  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=ROOT / "datasets/sample/manifest.csv")
    parser.add_argument("--bundle", type=Path, default=ROOT / "models/default")
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    return parser.parse_args()


def backlog(manifest: Path, count: int, folder: Path) -> list[Item]:
    if manifest.is_file():
        return items_from(manifest, None)[:count]
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        rgb = rng.integers(0, 255, (768, 1024, 3), dtype=np.uint8)
        rgb[200:560, 300:720] = rng.integers(0, 255, 3, dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"{index:04d}.jpg", quality=90)
    return items_from(folder, "phone")


def timed(records: Iterable[dict[str, Any]], started: float) -> dict[str, Any]:
    """Start-up (to the first result), steady photos/s (first to last), and per-item timings."""
    arrivals, photos, decode, inference = [], 0, [], []
    for record in records:
        arrivals.append(time.perf_counter())
        photos += len(record.get("photos", []))
        if "timings" in record:
            decode.append(record["timings"]["decode_ms"])
            inference.append(record["timings"]["inference_ms"])
    first_photos = photos / len(arrivals)  # photos of the first item, on average
    steady = (photos - first_photos) / max(arrivals[-1] - arrivals[0], 1e-9)
    return {"startup_s": arrivals[0] - started, "photos_per_s": steady, "photos": photos,
            "decode_ms": statistics.median(decode), "inference_ms": statistics.median(inference),
            "wall_s": arrivals[-1] - started}


def main() -> int:
    args = parse_args()
    import ray

    print(f"machine: {describe()}, ray {ray.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        items = backlog(args.manifest, args.items, Path(folder))
        source = args.manifest if args.manifest.is_file() else "generated 1024x768 JPEGs"
        print(f"backlog: {len(items)} items, {sum(len(i.images) for i in items)} photos from "
              f"{source}; bundle {args.bundle}")
        results: dict[str, dict[str, Any]] = {}
        started = time.perf_counter()
        model = LoadedModel.load(args.bundle)  # ONNX Runtime's default threads (all cores)
        results["in-process"] = timed(score_items(model, items, None), started)
        os.environ["RETURNS_ORT_THREADS"] = "1"  # read when a session is made
        started = time.perf_counter()
        model = LoadedModel.load(args.bundle)
        results["in-proc 1 th"] = timed(score_items(model, items, None), started)
        del os.environ["RETURNS_ORT_THREADS"]
        ray.init(num_cpus=max(args.actors), object_store_memory=200 * 2**20,
                 include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        for actors in args.actors:
            options = RayOptions(None, actors, args.batch_size, threads=1)
            started = time.perf_counter()
            results[f"ray x{actors}"] = timed(score_on_ray(items, args.bundle, None, options),
                                              started)
        ray.shutdown()
    report(results, args.actors)
    return 0


def report(results: dict[str, dict[str, Any]], actors: list[int]) -> None:
    print(f"{'engine':<12} {'photos/s':>9} {'start-up s':>11} {'wall s':>7} "
          f"{'decode ms':>10} {'model ms':>9}  (median per item)")
    for name, row in results.items():
        print(f"{name:<12} {row['photos_per_s']:>9.1f} {row['startup_s']:>11.1f} "
              f"{row['wall_s']:>7.1f} {row['decode_ms']:>10.1f} {row['inference_ms']:>9.1f}")
    base = results[f"ray x{actors[0]}"]["photos_per_s"]
    for count in actors[1:]:
        ratio = results[f"ray x{count}"]["photos_per_s"] / base
        print(f"scaling ray x{count} / ray x{actors[0]}: {ratio:.2f} (ideal {count / actors[0]:.0f})")
    most = results[f"ray x{actors[-1]}"]["photos_per_s"]
    print(f"ray x{actors[-1]} / in-process (all cores): {most / results['in-process']['photos_per_s']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
