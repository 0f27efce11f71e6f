"""Backlog re-scoring throughput on Ray Data: photos/s with 1 and 2 actors and the scaling ratio,
against the in-process engine measured in the same run (load from other processes hits all
alike, so read the ratios), plus where an item's time goes (decode vs model).

    python bench/bench_ray.py [--manifest datasets/sample/manifest.csv] [--items 150] [--generate WxH]
                              [--bundle models/default] [--actors 1 2] [--batch-size 8]

Items are the first `--items` of the manifest (the synthetic sample set, 256 px photos, when
present), or that many generated JPEGs of `--generate WxH` (default 1024x768 without a manifest):
phone-camera sizes show what decoding costs. A local Ray gets as many CPUs as the most actors asked
for; each actor runs ONNX Runtime on one thread. Throughput counts from the first result to
the last, so actor start-up (loading the bundle) is reported apart, not averaged in.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe  # noqa: E402
from inspection.loaded_model import LoadedModel  # noqa: E402
from inspection.score import score_items  # noqa: E402
from inspection.score_output import PartWriter, check_model, plan_parts  # noqa: E402
from inspection.score_ray import RayOptions, score_on_ray  # noqa: E402
from inspection.score_sources import Item, items_from  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BURST_S = 0.002  # results closer together than this came from one batch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=ROOT / "datasets/sample/manifest.csv")
    parser.add_argument("--bundle", type=Path, default=ROOT / "models/default")
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--generate", metavar="WxH", default="",
                        help="score that many generated JPEGs of this size instead (e.g. 3000x2000)")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each engine, taking turns")
    return parser.parse_args()


def backlog(manifest: Path, count: int, generate: str, folder: Path) -> list[Item]:
    if manifest.is_file() and not generate:
        return items_from(manifest, None)[:count]
    import numpy as np
    from PIL import Image

    width, height = (int(v) for v in (generate or "1024x768").split("x"))
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    for index in range(count):  # a lit tray with a product-coloured block: compresses like a photo
        base = (120 + 60 * np.sin(x / 97 + index) * np.cos(y / 131)).astype(np.int16)
        rgb = np.stack([base, base + 10, base - 10], axis=2)
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        rgb[top:top + height // 3, left:left + width // 3] = rng.integers(0, 255, 3)
        rgb = np.clip(rgb + rng.integers(-8, 8, rgb.shape), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{index:04d}.jpg", quality=90)
    return items_from(folder, "phone")


def timed(records: Iterable[dict[str, Any]], started: float) -> dict[str, Any]:
    """Start-up (to the first result), steady photos/s (from the first results to the last),
    and the median per-item decode and model times."""
    arrivals: list[tuple[float, int]] = []  # (when, photos)
    decode, inference = [], []
    for record in records:
        arrivals.append((time.perf_counter(), len(record.get("photos", []))))
        if "timings" in record:
            decode.append(record["timings"]["decode_ms"])
            inference.append(record["timings"]["inference_ms"])
    first, last = arrivals[0][0], arrivals[-1][0]
    # A Ray batch arrives as one burst: its photos were scored before the clock started.
    burst = sum(photos for when, photos in arrivals if when - first < BURST_S)
    photos = sum(photos for _, photos in arrivals)
    return {"startup_s": first - started, "photos_per_s": (photos - burst) / max(last - first, 1e-9),
            "photos": photos, "decode_ms": statistics.median(decode),
            "inference_ms": statistics.median(inference), "wall_s": last - started}


def main() -> int:
    args = parse_args()
    import ray

    print(f"machine: {describe()}, ray {ray.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        items = backlog(args.manifest, args.items, args.generate, Path(folder))
        source = args.manifest if args.manifest.is_file() and not args.generate else \
            f"generated {args.generate or '1024x768'} JPEGs"
        print(f"backlog: {len(items)} items, {sum(len(i.images) for i in items)} photos from "
              f"{source}; bundle {args.bundle}")
        ray.init(num_cpus=max(args.actors), object_store_memory=200 * 2**20,
                 include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        runs: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.rounds):  # engines take turns, so a burst of load hits them alike
            for name, run in engines(items, args).items():
                runs.setdefault(name, []).append(run())
        ray.shutdown()
        results = {name: median_run(rows) for name, rows in runs.items()}
        report(results, args.actors)
        driver_ceiling(items, args.bundle, Path(folder) / "driver")
    return 0


def driver_ceiling(items: list[Item], bundle: Path, out: Path) -> None:
    """What the driver does per item (parse the actor's JSON, write it to a part), timed alone:
    the most items/s one driver takes in, however many actors feed it."""
    model = LoadedModel.load(bundle)
    sample = [json.dumps(r) for r in score_items(model, items[:50], None)]
    check_model(out, model.card.model_id, model.card.name)
    texts = sample * 20  # 1,000 records
    ids = [f"item-{i}" for i in range(len(texts))]
    started = time.process_time()
    writer = PartWriter(out, plan_parts(out, [Item(i, [], None, None) for i in ids], 250))
    for item_id, text in zip(ids, texts, strict=True):
        writer.add({**json.loads(text), "item_id": item_id})
    per_item = (time.process_time() - started) / len(texts)
    size = statistics.mean(len(text) for text in sample)
    print(f"driver: {per_item * 1e3:.2f} ms CPU per item (parse + Parquet/JSONL part), "
          f"{size / 1024:.1f} KiB of JSON per item -> one driver takes at most "
          f"~{1 / per_item:,.0f} items/s")


def engines(items: list[Item], args: argparse.Namespace) -> dict[str, Callable[[], dict[str, Any]]]:
    def in_process(threads: int) -> dict[str, Any]:
        # ONNX Runtime's threads are read when the session is made; OpenCV's (resize, quality
        # checks) are set here, as Ray's OMP_NUM_THREADS=1 sets them in each actor.
        os.environ["RETURNS_ORT_THREADS"] = str(threads)
        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(threads)
        started = time.perf_counter()
        model = LoadedModel.load(args.bundle)
        del os.environ["RETURNS_ORT_THREADS"]
        try:
            return timed(score_items(model, items, None), started)
        finally:
            cv2.setNumThreads(cv2_threads)

    def on_ray(actors: int) -> dict[str, Any]:
        started = time.perf_counter()
        options = RayOptions(None, actors, args.batch_size, threads=1)
        return timed(score_on_ray(items, args.bundle, None, options), started)

    cores = os.cpu_count() or 1
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        f"in-proc {cores} th": partial(in_process, cores), "in-proc 1 th": partial(in_process, 1)}
    runners.update({f"ray x{n}": partial(on_ray, n) for n in args.actors})
    return runners


def median_run(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput."""
    return sorted(rows, key=lambda row: row["photos_per_s"])[len(rows) // 2]


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
    print(f"ray x{actors[-1]} / in-proc 1 th: {most / results['in-proc 1 th']['photos_per_s']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
