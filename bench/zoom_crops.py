"""Issue 10's recipe space, "tiles/crops for thin scratches and small stains": does a second
model that sees the defect up close tell the defect kinds apart better than the whole photo at
224 px does?

For each finished run of `bench/split_draws.py` (the defaults on draw D, seed S) it
1. scores every photo of the draw's manifest with the run's bundle and a 1 % PatchCore bank on
   the train goods' patch features (as `anomaly fit` builds the served second opinion);
2. cuts out a square of `--share` of the photo's shorter side, at the photo's full resolution,
   centred on the anomaly map's peak (the defect on a defective photo; the least typical spot on
   a good one), and writes the crops with the photos' labels and splits as a manifest;
3. trains, exports and scores the defaults' recipe on the crops (the zoom model);
4. reports test macro-F1 of the served call (head + second opinion), of the zoom model alone,
   and of the served call with the zoom model's say among the defect kinds: the served good
   probability is kept, the defect kinds' share is split by the geometric mean of the two
   models' kind probabilities.

    python bench/zoom_crops.py --dataset mvtec_bottle --draws 0 --seeds 0 1 2 [--share 0.5]

Crops and runs go to datasets/work/zoom/ and runs/zoom/ (never committed).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.anomaly_plus_heads import GOOD, macro_f1, model_outputs, served_opinion  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.recipe_table import PROTOCOL  # noqa: E402
from bench.split_draws import OUT as DRAWS  # noqa: E402
from bench.supervised_real import WORK, run  # noqa: E402
from inspection.engine import Engine  # noqa: E402
from inspection.images import load_photo  # noqa: E402
from inspection.manifest import Sample, file_sha256, read_manifest, write_manifest  # noqa: E402
from inspection.second_opinion import reweigh  # noqa: E402
from inspection.taxonomy import taxonomy_beside  # noqa: E402

CROPS = WORK / "zoom"
OUT = REPO / "runs" / "zoom"
SPLITS = ("train", "val", "test")


def peak(anomaly_map: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """(x, y) in photo pixels of the smoothed map's maximum."""
    resized = cv2.resize(anomaly_map.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    smoothed = cv2.GaussianBlur(resized, (0, 0), sigmaX=max(1.0, 0.02 * max(width, height)))
    y, x = np.unravel_index(int(smoothed.argmax()), smoothed.shape)
    return int(x), int(y)


def square_around(centre: tuple[int, int], side: int, width: int, height: int) -> tuple[int, int]:
    """Top-left corner of a side x side square centred on `centre`, moved inside the photo."""
    left = min(max(centre[0] - side // 2, 0), width - side)
    top = min(max(centre[1] - side // 2, 0), height - side)
    return left, top


def write_crops(manifest_path: Path, bundle: Path, out: Path, share: float, threads: int
                ) -> tuple[Path, dict[str, np.ndarray], dict[str, list[str]], list[str]]:
    """The crop manifest, each split's served probabilities and labels, and the head's labels."""
    from training.anomaly.patchcore import PatchCore

    engine = Engine.load(bundle, threads=threads)
    labels = engine.taxonomy.head("defect").labels
    good = str(engine.taxonomy.head("defect").no_defect)  # bottle's `good`, magnetic tile's `MT_Free`
    manifest = read_manifest(manifest_path)
    rows: dict[str, list[Sample]] = {split: [s for s in manifest.samples if s.split == split]
                                     for split in SPLITS}
    kinds = {split: [GOOD if s.labels["defect"][0] == good else s.labels["defect"][0]
                     for s in rows[split]] for split in SPLITS}
    labels = [GOOD if label == good else label for label in labels]
    outputs = {split: model_outputs(engine, [manifest.image_path(s) for s in rows[split]])
               for split in SPLITS}
    train_goods = [kind == GOOD for kind in kinds["train"]]
    detector = PatchCore.fit(outputs["train"][1][train_goods], 0.01, progress=False)
    scored = {split: detector.score(outputs[split][1]) for split in SPLITS}
    opinion = served_opinion({split: scored[split][0] for split in SPLITS}, kinds, bundle)
    served = {split: reweigh(outputs[split][0], labels.index(GOOD),
                             opinion.defect_probability(scored[split][0])) for split in SPLITS}
    if out.exists():
        shutil.rmtree(out)
    crops = []
    for split in SPLITS:
        for sample, anomaly_map in zip(rows[split], scored[split][1], strict=True):
            photo = load_photo(manifest.image_path(sample))
            height, width = photo.shape[:2]
            side = max(1, round(share * min(width, height)))
            left, top = square_around(peak(anomaly_map, width, height), side, width, height)
            crop = photo[top:top + side, left:left + side]
            path = out / split / f"{sample.item_id.replace('/', '_')}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            crops.append(dataclasses.replace(sample, image=str(path.relative_to(out)), mask="",
                                             sha256=file_sha256(path)))
    crop_manifest = write_manifest(out / "manifest.csv", crops, ["defect"])
    shutil.copy(taxonomy_beside(manifest_path), taxonomy_beside(crop_manifest))
    return crop_manifest, served, kinds, labels


def zoom_probabilities(dataset: str, crop_manifest: Path, run_dir: Path, seed: int, threads: int
                       ) -> np.ndarray:
    """Train and export the defaults on the crops; the test crops' defect probabilities."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run(["train", "--manifest", str(crop_manifest), "--out", str(run_dir), "--seed", str(seed),
         "--threads", str(threads), *PROTOCOL[dataset]])
    run(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(run_dir / "bundle")])
    engine = Engine.load(run_dir / "bundle", threads=threads)
    manifest = read_manifest(crop_manifest)
    test = [manifest.image_path(s) for s in manifest.samples if s.split == "test"]
    return model_outputs(engine, test)[0]


def with_zoom(served: np.ndarray, zoom: np.ndarray, good: int) -> np.ndarray:
    """Served good probability kept; the defect kinds' share split by the geometric mean of the
    served and the zoom model's kind probabilities."""
    kinds = [column for column in range(served.shape[1]) if column != good]
    mixed = np.sqrt(np.clip(served[:, kinds], 1e-12, None) * np.clip(zoom[:, kinds], 1e-12, None))
    mixed /= mixed.sum(axis=1, keepdims=True)
    combined = np.empty_like(served)
    combined[:, good] = served[:, good]
    combined[:, kinds] = mixed * (1.0 - served[:, [good]])
    return combined


def one_run(dataset: str, draw: int, seed: int, share: float, threads: int) -> dict[str, float]:
    name = f"draw{draw}-seed{seed}"
    bundle = DRAWS / dataset / "default" / name / "bundle"
    manifest = WORK / dataset / f"draw-{draw}.csv"
    if not (bundle / "model.onnx").is_file() or not manifest.is_file():
        raise SystemExit(f"run bench/split_draws.py --dataset {dataset} first: "
                         f"{bundle} or {manifest} missing")
    tag = f"share{share:g}"
    crop_manifest, served, kinds, labels = write_crops(manifest, bundle, CROPS / dataset / tag / name,
                                                       share, threads)
    zoom = zoom_probabilities(dataset, crop_manifest, OUT / dataset / tag / name, seed, threads)
    good = labels.index(GOOD)
    calls = {"served": served["test"], "zoom alone": zoom,
             "served + zoom among kinds": with_zoom(served["test"], zoom, good)}
    result = {rule: macro_f1(kinds["test"], [labels[i] for i in probabilities.argmax(axis=1)])
              for rule, probabilities in calls.items()}
    wrong = [(i, labels[int(p)]) for i, p in enumerate(calls["served + zoom among kinds"].argmax(axis=1))
             if labels[int(p)] != kinds["test"][i]]
    print(f"{dataset} {name}: " + ", ".join(f"{rule} {value:.3f}" for rule, value in result.items())
          + f"; still wrong: {len(wrong)}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mvtec_bottle", choices=list(PROTOCOL))
    parser.add_argument("--draws", type=int, nargs="+", default=[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--share", type=float, default=0.5, help="crop side / photo's shorter side")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {describe()}", flush=True)
    started = time.perf_counter()
    results = [one_run(args.dataset, draw, seed, args.share, args.threads)
               for draw in args.draws for seed in args.seeds]
    for rule in results[0]:
        values = [r[rule] for r in results]
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        each = " ".join(f"{value:.3f}" for value in values)
        print(f"{rule}: {statistics.mean(values):.3f} ± {spread:.3f} ({each})")
    print(f"{len(results)} runs in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
