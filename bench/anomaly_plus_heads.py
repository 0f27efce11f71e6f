"""Issue 10 item 3: few labelled defects, many good photos — does the good-only anomaly map help
the supervised defect head tell defect kinds apart?

For each fine-tuned bottle bundle of `bench/recipe_table.py` (runs/recipes/mvtec_bottle/<variant>
-seed<N>/bundle), through the bundle's own ONNX model:

1. the defect head's probabilities on every photo;
2. a PatchCore bank fitted on the train split's good photos' patch features (no defect photo
   seen), normalised on the val goods; per photo, what its anomaly map says about the defect's
   extent: the worst patch, the mean of the ten worst, and the share of patches above 1, 1.5 and 2
   times the normaliser;
3. a logistic regression on those map figures alone, trained on the train + val defect photos
   (7-11 per kind), giving each photo a defect-kind distribution that never saw the head's output.

Two rules, each on the head's probabilities, neither estimator trained on the other's output:

- **extent** (which defect kind): the head's call when it says good; otherwise the defect kind
  maximising the product of the head's and the map's distributions;
- **second opinion** (whether good), the rule the service serves (inspection.second_opinion,
  fitted as `anomaly fit` fits it): the photo's anomaly score, turned into P(defect | score) by a
  logistic regression on the log score of the val goods (never in the bank) against the train +
  val defect photos, class-balanced so its prior is one half; the head's good probability is
  multiplied by (1 - q) / 0.5 and each defect kind's by q / 0.5, then renormalised (a product of
  experts). Where the detector separates goods from defects well the head's doubtful goods are
  overruled; where it does not, q stays near one half and the head decides.

Test macro-F1 of the head alone and of each rule, per seed. `--flip` averages each photo's
logits with its mirror image's, as a bundle exported with `--flip-tta` is served.

    python bench/anomaly_plus_heads.py [--variant V] [--seeds 0 1 2] [--runs R --manifest M]
        [--good-label good] [--flip]
    # few defects, every good photo (bench/learning_curves_finetune.py --every-good):
    python bench/anomaly_plus_heads.py --runs runs/curves/mvtec_bottle/default-every-good --variant 5 \\
        --manifest 'datasets/work/mvtec_bottle/curve-5-every-good-seed{seed}.csv'
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe  # noqa: E402
from inspection.engine import Engine  # noqa: E402
from inspection.images import load_photo  # noqa: E402
from inspection.manifest import read_manifest  # noqa: E402
from inspection.second_opinion import SecondOpinion, reweigh  # noqa: E402

RUNS = REPO / "runs" / "recipes" / "mvtec_bottle"
MANIFEST = REPO / "datasets" / "work" / "mvtec_bottle" / "manifest.csv"
GOOD = "good"


def model_outputs(engine: Engine, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """The defect head's probabilities (N x K, the taxonomy's label order) and patch features
    (N x C x h x w)."""
    labels = engine.taxonomy.head("defect").labels
    probabilities, features = [], []
    for start in range(0, len(paths), 16):
        photos = [load_photo(p, min_side=engine.input_size) for p in paths[start:start + 16]]
        predictions = engine.predict(photos)
        probabilities.extend([p.probabilities["defect"][label] for label in labels]
                             for p in predictions)
        features.extend(p.patch_features for p in predictions)
    return np.stack(probabilities), np.stack(features)


def map_figures(maps: np.ndarray, normaliser: float) -> np.ndarray:
    """Per photo: worst patch, mean of the ten worst, share of patches above 1, 1.5, 2 x normaliser."""
    flat = maps.reshape(len(maps), -1) / normaliser
    worst10 = np.sort(flat, axis=1)[:, -10:].mean(axis=1)
    return np.column_stack([flat.max(axis=1), worst10,
                            *((flat > level).mean(axis=1) for level in (1.0, 1.5, 2.0))])


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    from sklearn.metrics import f1_score
    return float(f1_score(truth, predicted, average="macro"))


def extent_calls(probabilities: np.ndarray, labels: list[str], map_probabilities: np.ndarray,
                 kinds: list[str]) -> list[str]:
    """The head's call when it says good; otherwise the defect kind maximising the product of
    the head's and the map extent's distributions."""
    calls = []
    for row, map_row in zip(probabilities, map_probabilities, strict=True):
        call = labels[int(row.argmax())]
        if call != GOOD:
            scores = {kind: row[labels.index(kind)] * map_row[column] for column, kind in enumerate(kinds)}
            call = max(scores, key=scores.__getitem__)
        calls.append(call)
    return calls


def served_opinion(scores: dict[str, np.ndarray], kinds: dict[str, list[str]],
                   bundle: Path) -> SecondOpinion:
    """The served rule (inspection.second_opinion), fitted as `anomaly fit` fits it: the val goods'
    anomaly scores (never in the bank) against the train + val defect photos'."""
    from training.anomaly.threshold import fit_second_opinion

    def of(split: str, good: bool) -> np.ndarray:
        return scores[split][[(kind == GOOD) == good for kind in kinds[split]]]

    opinion, why = fit_second_opinion(of("val", True), np.concatenate([of("train", False), of("val", False)]),
                                      ("defect",))
    if opinion is None:
        raise SystemExit(f"{bundle}: no second opinion: {why}")
    return opinion


def one_seed(bundle: Path, manifest_path: Path, good: str, flip: bool) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from training.anomaly.patchcore import PatchCore

    engine = Engine.load(bundle, threads=1)
    engine.mirrored = flip
    labels = [GOOD if label == good else label for label in engine.taxonomy.head("defect").labels]
    manifest = read_manifest(manifest_path)
    rows = {split: [s for s in manifest.samples if s.split == split] for split in ("train", "val", "test")}
    kinds = {split: [GOOD if s.labels["defect"][0] == good else s.labels["defect"][0]
                     for s in rows[split]] for split in rows}
    outputs = {split: model_outputs(engine, [manifest.image_path(s) for s in rows[split]])
               for split in rows}
    good_train = outputs["train"][1][[k == GOOD for k in kinds["train"]]]
    detector = PatchCore.fit(good_train, 0.01, progress=False)
    val_good = outputs["val"][1][[k == GOOD for k in kinds["val"]]]
    normaliser = float(np.quantile(detector.score(val_good)[0], 0.95))
    scored = {split: detector.score(outputs[split][1]) for split in rows}
    figures = {split: map_figures(scored[split][1], normaliser) for split in rows}
    defect_rows = {split: [i for i, k in enumerate(kinds[split]) if k != GOOD] for split in rows}
    train_x = np.concatenate([figures[s][defect_rows[s]] for s in ("train", "val")])
    train_y = [kinds[s][i] for s in ("train", "val") for i in defect_rows[s]]
    scaler = StandardScaler().fit(train_x)
    extent = LogisticRegression(max_iter=2000, C=1.0).fit(scaler.transform(train_x), train_y)
    head = outputs["test"][0]
    map_probabilities = extent.predict_proba(scaler.transform(figures["test"]))
    opinion = served_opinion({split: scored[split][0] for split in rows}, kinds, bundle)
    fused = reweigh(head, labels.index(GOOD), opinion.defect_probability(scored["test"][0]))
    calls = {"head alone": [labels[i] for i in head.argmax(axis=1)],
             "extent": extent_calls(head, labels, map_probabilities, list(extent.classes_)),
             "second opinion": [labels[i] for i in fused.argmax(axis=1)],
             "second opinion, then extent": extent_calls(fused, labels, map_probabilities,
                                                         list(extent.classes_))}
    return {rule: macro_f1(kinds["test"], called) for rule, called in calls.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="probe,-frozen-bn",
                        help="<runs>/<variant>-seed<N>: the recipe table's LP-FT runs (the defaults)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--manifest", default=str(MANIFEST),
                        help="the runs' manifest; `{seed}` in it stands for each seed (learning-curve "
                             "subsets: datasets/work/D/curve-5-every-good-seed{seed}.csv)")
    parser.add_argument("--good-label", default=GOOD, help="the defect head's label for no defect")
    parser.add_argument("--flip", action="store_true", help="average with the mirror image")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    bundles = [args.runs / f"{args.variant}-seed{seed}" / "bundle" for seed in args.seeds]
    missing = [str(b) for b in bundles if not (b / "model.onnx").is_file()]
    manifests = [Path(args.manifest.format(seed=seed)) for seed in args.seeds]
    missing += [str(m) for m in manifests if not m.is_file()]
    if missing:
        print(f"run bench/recipe_table.py first: missing {missing}", file=sys.stderr)
        return 2
    results = [one_seed(bundle, manifest, args.good_label, args.flip)
               for bundle, manifest in zip(bundles, manifests, strict=True)]
    for seed, result in zip(args.seeds, results, strict=True):
        print(f"seed {seed}: " + ", ".join(f"{rule} {value:.3f}" for rule, value in result.items()))
    for name in results[0]:
        values = [r[name] for r in results]
        print(f"{name}: {statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
