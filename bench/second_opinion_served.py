"""Issue 10 item 3, served: the anomaly score's second opinion as `anomaly fit` fits it into a
bundle and as the service weighs it in, measured by `evaluate` on the test split against the same
bundle's heads alone (`evaluate --head-only`): the head's macro-F1 and, per item, how often the
service raises `defect_found` on defective items (recall) and on good ones (false flags).

For each set and seed it copies the fine-tuned bundle of `bench/recipe_table.py` (all labelled
photos) or `bench/learning_curves_finetune.py --every-good` (5 or 10 labelled defects per kind,
every good photo), then runs what a user runs:

    returns-inspect anomaly fit --bundle B --manifest M --as-category C --no-references
    returns-inspect evaluate --bundle B --manifest M --split test --as-category C [--head-only]

Bundles trained before the taxonomy named its `no_defect` label get it written into their card
first (what `dataset import --good-label` now writes; the ONNX model is untouched).

    python bench/second_opinion_served.py [--sets bottle-all bottle-5 tile-all tile-5 tile-10]
        [--seeds 0 1 2] [--threads 2] [--defect-recall 0.95]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.learning_curves_finetune import NO_DEFECT  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.supervised_real import WORK, run  # noqa: E402
from inspection.bundle import seal_bundle  # noqa: E402
from inspection.card import read_card  # noqa: E402

OUT = REPO / "runs" / "opinion"
CATEGORY = {"mvtec_bottle": "bottle", "magnetic_tile": "tile"}
# set -> (dataset, the trained bundle per seed, its manifest per seed)
SETS = {
    "bottle-all": ("mvtec_bottle", "runs/recipes/mvtec_bottle/probe,-frozen-bn-seed{seed}/bundle",
                   "manifest.csv"),
    "bottle-5": ("mvtec_bottle", "runs/curves/mvtec_bottle/default-every-good/5-seed{seed}/bundle",
                 "curve-5-every-good-seed{seed}.csv"),
    "tile-all": ("magnetic_tile", "runs/recipes/magnetic_tile/probe,-frozen-bn-seed{seed}/bundle",
                 "manifest.csv"),
    "tile-5": ("magnetic_tile", "runs/curves/magnetic_tile/default-every-good/5-seed{seed}/bundle",
               "curve-5-every-good-seed{seed}.csv"),
    "tile-10": ("magnetic_tile", "runs/curves/magnetic_tile/default-every-good/10-seed{seed}/bundle",
                "curve-10-every-good-seed{seed}.csv"),
}


def declare_no_defect(bundle: Path, label: str) -> None:
    card = read_card(bundle)
    head = card.taxonomy["heads"]["defect"]
    if head.get("no_defect") != label:
        head["no_defect"] = label
        card.save(bundle)
        seal_bundle(bundle)


def one_seed(name: str, seed: int, threads: int, recall: float | None) -> dict[str, float]:
    dataset, trained, manifest_name = SETS[name]
    manifest = WORK / dataset / manifest_name.format(seed=seed)
    work = OUT / name / f"seed{seed}"
    shutil.rmtree(work, ignore_errors=True)
    bundle = work / "bundle"
    shutil.copytree(REPO / trained.format(seed=seed), bundle)
    declare_no_defect(bundle, NO_DEFECT[dataset])
    category = ["--as-category", CATEGORY[dataset]]
    run(["anomaly", "fit", "--bundle", str(bundle), "--manifest", str(manifest), *category,
         "--no-references", "--threads", str(threads)])
    figures, flags = {}, {}
    for label, extra in (("head alone", ["--head-only"]), ("second opinion", [])):
        out = work / ("eval-head" if extra else "eval")
        run(["evaluate", "--bundle", str(bundle), "--manifest", str(manifest), "--split", "test",
             *category, *extra, "--out", str(out)])
        metrics = json.loads((out / "metrics.json").read_text())
        figures[label] = metrics["heads"]["defect"]["macro_f1"]
        items = metrics["items_metrics"]
        flags[f"{label}: defect_found recall"] = items["defect_found_recall.defect"]
        flags[f"{label}: false flags"] = items["defect_found_false_flag_rate.defect"]
    opinion = read_card(bundle).anomaly[CATEGORY[dataset]]["second_opinion"]["fitted_on"]
    figures["opinion AUROC"] = opinion["auroc"]
    if recall is not None:  # the recall knob: a threshold on P(any defect) fitted on val
        run(["calibrate", "--bundle", str(bundle), "--manifest", str(manifest), *category,
             "--target", f"defect_recall={recall}"])
        out = work / "eval-recall"
        run(["evaluate", "--bundle", str(bundle), "--manifest", str(manifest), "--split", "test",
             *category, "--out", str(out)])
        metrics = json.loads((out / "metrics.json").read_text())
        items = metrics["items_metrics"]
        flags["calibrated: defect_found recall"] = items["defect_found_recall.defect"]
        flags["calibrated: false flags"] = items["defect_found_false_flag_rate.defect"]
        flags["calibrated: macro-F1"] = metrics["heads"]["defect"]["macro_f1"]
    return {**figures, **flags}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--defect-recall", type=float, metavar="R",
                        help="then `calibrate --target defect_recall=R` on val (temperatures too) "
                             "and evaluate again")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    missing = [SETS[name][1].format(seed=seed) for name in args.sets for seed in args.seeds
               if not (REPO / SETS[name][1].format(seed=seed) / "model.onnx").is_file()]
    if missing:
        print(f"train them first (bench/recipe_table.py, bench/learning_curves_finetune.py "
              f"--every-good): missing {missing}", file=sys.stderr)
        return 2
    rows = []
    for name in args.sets:
        results = [one_seed(name, seed, args.threads, args.defect_recall) for seed in args.seeds]
        for seed, result in zip(args.seeds, results, strict=True):
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items()),
                  flush=True)
        rows.append((name, {key: [r[key] for r in results] for key in results[0]}))
    knob = (f" calibrated for defect_recall={args.defect_recall}: defective / good |"
            if args.defect_recall is not None else "")
    print("\n| set | head alone | served with the second opinion | opinion's val AUROC | "
          "items flagged defect_found, head alone: defective / good | served: defective / good |"
          + knob)
    print("|---|---|---|---|---|---|" + ("---|" if knob else ""))
    for name, values in rows:
        cells = [f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}" for v in values.values()]
        calibrated = f" {cells[7]} / {cells[8]} (macro-F1 {cells[9]}) |" if len(cells) > 7 else ""
        print(f"| {name} | " + " | ".join(cells[:3]) + f" | {cells[3]} / {cells[4]} | "
              f"{cells[5]} / {cells[6]} |{calibrated}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
