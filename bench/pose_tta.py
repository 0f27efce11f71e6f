"""Issue 10, bottle: do the square's poses at test time, with the served second opinion, move the
recipe table's bundles? Bottle is photographed from above, so its eight poses (quarter turns x
mirror) are all real photos of a bottle.

For each seed's bundle of `bench/recipe_table.py` (runs/recipes/mvtec_bottle/<variant>-seed<N>)
it scores the test split in each pose through the bundle's ONNX model, averages the defect head's
log-probabilities over a set of poses, and reports test macro-F1 with and without the second
opinion as the service weighs it in (`inspection.second_opinion.reweigh`, fitted as `anomaly fit`
fits it: a 1 % PatchCore bank on the train goods' patch features of the unrotated photos, the val
goods against the train + val defects). The photo is posed before the engine's resize, so the
mirror row can differ by a photo from `export --flip-tta`, which mirrors the model's input.

    python bench/pose_tta.py [--variant default] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.anomaly_plus_heads import GOOD, MANIFEST, RUNS, macro_f1, served_opinion  # noqa: E402
from bench.machine import describe  # noqa: E402
from inspection.engine import Engine, softmax  # noqa: E402
from inspection.images import load_photo  # noqa: E402
from inspection.manifest import read_manifest  # noqa: E402
from inspection.second_opinion import reweigh  # noqa: E402

Pose = tuple[int, bool]  # quarter turns, mirrored left-right
POSES: list[Pose] = [(turns, mirrored) for mirrored in (False, True) for turns in range(4)]
POSE_SETS: dict[str, list[Pose]] = {"as photographed": POSES[:1], "4 quarter turns": POSES[:4],
                                    "8 poses": POSES}


def posed(photo: np.ndarray, pose: Pose) -> np.ndarray:
    turns, mirrored = pose
    turned = np.rot90(photo, turns)
    return np.ascontiguousarray(turned[:, ::-1] if mirrored else turned)


def model_outputs(engine: Engine, photos: list[np.ndarray], pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """The defect head's log-probabilities (N x K, the taxonomy's label order) and patch features
    (N x C x h x w) of the photos in one pose: one model run gives both."""
    labels = engine.taxonomy.head("defect").labels
    log_probabilities, features = [], []
    for start in range(0, len(photos), 16):
        for prediction in engine.predict([posed(p, pose) for p in photos[start:start + 16]]):
            log_probabilities.append([np.log(max(prediction.probabilities["defect"][label], 1e-12))
                                      for label in labels])
            features.append(prediction.patch_features)
    return np.asarray(log_probabilities), np.stack(features)


def one_seed(bundle: Path) -> dict[str, float]:
    from training.anomaly.patchcore import PatchCore

    engine = Engine.load(bundle, threads=2)
    labels = engine.taxonomy.head("defect").labels
    manifest = read_manifest(MANIFEST)
    rows = {split: [s for s in manifest.samples if s.split == split] for split in ("train", "val", "test")}
    kinds = {split: [s.labels["defect"][0] for s in rows[split]] for split in rows}
    photos = {split: [load_photo(manifest.image_path(s), min_side=engine.input_size) for s in rows[split]]
              for split in rows}
    # the detector and its opinion see the photos as photographed, as the service does
    as_photographed = {split: model_outputs(engine, photos[split], POSES[0]) for split in rows}
    train_goods = [kind == GOOD for kind in kinds["train"]]
    detector = PatchCore.fit(as_photographed["train"][1][train_goods], 0.01, progress=False)
    scores = {split: detector.score(as_photographed[split][1])[0] for split in rows}
    defect_probability = served_opinion(scores, kinds, bundle).defect_probability(scores["test"])
    per_pose = {pose: model_outputs(engine, photos["test"], pose)[0] for pose in POSES[1:]}
    per_pose[POSES[0]] = as_photographed["test"][0]
    result = {}
    for name, poses in POSE_SETS.items():
        probabilities = softmax(np.mean([per_pose[pose] for pose in poses], axis=0), axis=1)
        seconded = reweigh(probabilities, labels.index(GOOD), defect_probability)
        result[name] = macro_f1(kinds["test"], [labels[i] for i in probabilities.argmax(axis=1)])
        result[f"{name} + second opinion"] = macro_f1(kinds["test"],
                                                       [labels[i] for i in seconded.argmax(axis=1)])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="default", help="<runs>/<variant>-seed<N>/bundle")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(f"machine: {describe()}")
    bundles = [RUNS / f"{args.variant.replace(' ', '-')}-seed{seed}" / "bundle" for seed in args.seeds]
    missing = [str(b) for b in bundles if not (b / "model.onnx").is_file()]
    if missing or not MANIFEST.is_file():
        print(f"run bench/recipe_table.py --datasets mvtec_bottle first: missing {missing or MANIFEST}",
              file=sys.stderr)
        return 2
    results = [one_seed(bundle) for bundle in bundles]
    for seed, result in zip(args.seeds, results, strict=True):
        print(f"seed {seed}: " + ", ".join(f"{name} {value:.3f}" for name, value in result.items()))
    for name in results[0]:
        values = [r[name] for r in results]
        print(f"{name}: {statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f} "
              f"({' '.join(f'{v:.3f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
