"""Issue 10: how steep should the second opinion be? `anomaly fit` turns a photo's anomaly score
into P(defect | score) with a class-balanced logistic regression on the log score (val goods
against train + val defects). Its slope carries an L2 penalty (sklearn's C = 1): where the
detector separates the two perfectly, the penalty keeps the slope shallow, and a photo scored
above every good photo can still get q < 1/2 and be served as good (bottle's faint
contaminations `003` and `019`).

For each finished run of `bench/split_draws.py` (the defaults, every draw and seed found) this
recomputes the served call with the regression refitted at several C, from the served scores (the
bundle's ONNX model and the detector `anomaly fit` put in the bundle), and
prints, per C: test macro-F1 of the `defect` head, the share of good photos called defective, and
the share of defective photos called good.

    python bench/opinion_fit.py --dataset mvtec_bottle [--inverse-penalties 1 10 100 1000 0]

(0: C chosen per run by 5-fold cross-validated log loss on the opinion's own photos.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.anomaly_plus_heads import macro_f1, model_outputs  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.recipe_table import PROTOCOL  # noqa: E402
from bench.second_opinion_served import CATEGORY  # noqa: E402
from bench.split_draws import OUT as DRAWS  # noqa: E402
from bench.supervised_real import WORK  # noqa: E402
from inspection.anomaly import AnomalyDetectors  # noqa: E402
from inspection.card import read_card  # noqa: E402
from inspection.engine import Engine  # noqa: E402
from inspection.manifest import read_manifest  # noqa: E402
from inspection.second_opinion import reweigh  # noqa: E402
from training.anomaly.threshold import fit_second_opinion, opinion_examples  # noqa: E402

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class RunScores:
    """What the served call needs of one run: labels, the head's probabilities, anomaly scores."""

    name: str
    labels: list[str]
    good: str
    kinds: dict[str, list[str]]  # split -> true label per photo
    head: np.ndarray  # test photos x labels
    scores: dict[str, np.ndarray]  # split -> anomaly score per photo


def run_scores(run_dir: Path, manifest_path: Path, category: str, threads: int) -> RunScores:
    """The served scores: the bundle's own detector (`anomaly fit --as-category`), normalised."""
    engine = Engine.load(run_dir / "bundle", threads=threads)
    detectors = AnomalyDetectors.load(run_dir / "bundle", read_card(run_dir / "bundle"), threads)
    head = engine.taxonomy.head("defect")
    good = str(head.no_defect)
    manifest = read_manifest(manifest_path)
    rows = {split: [s for s in manifest.samples if s.split == split] for split in SPLITS}
    kinds = {split: [s.labels["defect"][0] for s in rows[split]] for split in SPLITS}
    outputs = {split: model_outputs(engine, [manifest.image_path(s) for s in rows[split]])
               for split in SPLITS}
    scores = {split: detectors.score(category, outputs[split][1]).scores  # type: ignore[union-attr]
              for split in SPLITS}
    return RunScores(run_dir.name, list(head.labels), good, kinds, outputs["test"][0], scores)


def cross_validated_penalty(goods: np.ndarray, defects: np.ndarray) -> float:
    """C of the class-balanced regression with the lowest 5-fold log loss, from a grid."""
    from sklearn.linear_model import LogisticRegressionCV

    log_scores, is_defect = opinion_examples(goods, defects)
    folds = int(min(5, goods.size, defects.size))
    with warnings.catch_warnings():  # sklearn 1.8's notice that its fitted attributes will change
        warnings.simplefilter("ignore", FutureWarning)
        search = LogisticRegressionCV(Cs=[0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0], cv=folds,
                                      scoring="neg_log_loss", class_weight="balanced"
                                      ).fit(log_scores, is_defect)
    return float(search.C_[0])


def served_figures(run: RunScores, inverse_penalty: float) -> dict[str, float]:
    def of(split: str, good: bool) -> np.ndarray:
        return run.scores[split][[(kind == run.good) == good for kind in run.kinds[split]]]

    good_scores, defect_scores = of("val", True), np.r_[of("train", False), of("val", False)]
    if inverse_penalty <= 0:  # 0: the penalty chosen by cross-validated log loss on the same photos
        inverse_penalty = cross_validated_penalty(good_scores, defect_scores)
    opinion, why = fit_second_opinion(good_scores, defect_scores, ("defect",), inverse_penalty)
    if opinion is None:
        raise SystemExit(f"{run.name}: no second opinion: {why}")
    served = reweigh(run.head, run.labels.index(run.good), opinion.defect_probability(run.scores["test"]))
    called = [run.labels[i] for i in served.argmax(axis=1)]
    truth = run.kinds["test"]
    goods = [c for t, c in zip(truth, called, strict=True) if t == run.good]
    defects = [c for t, c in zip(truth, called, strict=True) if t != run.good]
    return {"macro-F1": macro_f1(truth, called),
            "goods called defective": sum(c != run.good for c in goods) / len(goods),
            "defects called good": sum(c == run.good for c in defects) / len(defects)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mvtec_bottle", choices=list(PROTOCOL))
    parser.add_argument("--variant", default="default", help="runs/draws/<dataset>/<variant>/")
    parser.add_argument("--inverse-penalties", type=float, nargs="+", default=[1.0, 10.0, 100.0, 1000.0, 0.0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {describe()}", flush=True)
    run_dirs = sorted((DRAWS / args.dataset / args.variant).glob("draw*-seed*"))
    run_dirs = [d for d in run_dirs if (d / "bundle" / "model.onnx").is_file()]
    if not run_dirs:
        print(f"run bench/split_draws.py --dataset {args.dataset} first", file=sys.stderr)
        return 2
    runs = []
    for run_dir in run_dirs:
        draw = run_dir.name.split("-")[0].removeprefix("draw")
        runs.append(run_scores(run_dir, WORK / args.dataset / f"draw-{draw}.csv",
                               CATEGORY[args.dataset], args.threads))
        print(f"scored {run_dir.name}", flush=True)
    print(f"\n{args.dataset}, {len(runs)} runs: mean ± std (lowest) of each figure")
    for inverse_penalty in args.inverse_penalties:
        figures = [served_figures(run, inverse_penalty) for run in runs]
        summary = ", ".join(f"{name} {statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f} ({min(v):.3f})"
                            for name in figures[0] for v in [[f[name] for f in figures]])
        print(f"C = {inverse_penalty or 'cross-validated'}: {summary}")
        print("    macro-F1 per run: " + " ".join(f"{f['macro-F1']:.3f}" for f in figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
