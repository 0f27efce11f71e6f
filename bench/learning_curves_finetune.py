"""Issue 10's learning curves, fine-tuned points: test macro-F1 of the default recipe trained on
5, 10 and 20 labelled photos per class, beside the frozen-feature baselines of
`bench/learning_curves.py` on the same draws.

For bottle and magnetic tile (../shared/datasets; skipped when absent) it builds the manifests of
`bench/supervised_real.py`; for each n and seed it keeps n train photos per class, drawn as
`bench/learning_curves.py --pool train` draws them (same seed, same photos), every val and test
row, and runs what a user runs with the defaults and the dataset's protocol
(`bench/recipe_table.py`): train, export, evaluate on the test split.

    python bench/learning_curves_finetune.py [--datasets ...] [--shots 5 10 20] [--seeds 3] [--threads 1]
        [--variant NAME] [--every-good]

`--every-good` keeps every good train photo and draws only the defect kinds (the same draw): the
usual returns situation of issue 10 item 3, few labelled defects beside many good photos; its runs
go to runs/curves/<dataset>/<variant>-every-good/, where `bench/anomaly_plus_heads.py` reads them.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.learning_curves import HEAD, draw  # noqa: E402
from bench.recipe_table import PROTOCOL, VARIANTS  # noqa: E402
from bench.supervised_real import WORK, prepared, run  # noqa: E402

OUT = REPO / "runs" / "curves"
NO_DEFECT = {"mvtec_bottle": "good", "magnetic_tile": "MT_Free"}  # bench/supervised_real.py's labels


def subset_manifest(dataset: str, shots: int, seed: int, every_good: bool = False) -> Path:
    """The dataset's manifest with only `shots` train photos per class (with `every_good`, per
    defect kind and every good photo); beside it, so the photos' relative paths still resolve."""
    source = WORK / dataset / "manifest.csv"
    with source.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames or [], list(reader)
    train = [index for index, row in enumerate(rows) if row["split"] == "train" and row[HEAD]]
    labels = np.array([rows[index][HEAD] for index in train])
    kept = {train[i] for i in draw(labels, shots, np.random.default_rng(seed))}
    if every_good:
        kept |= {index for index in train if rows[index][HEAD] == NO_DEFECT[dataset]}
    target = source.with_name(f"curve-{shots}{'-every-good' if every_good else ''}-seed{seed}.csv")
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(row for index, row in enumerate(rows)
                         if row["split"] != "train" or index in kept)
    return target


def fine_tune(dataset: str, shots: int, seed: int, threads: int, variant: str = "default",
              every_good: bool = False) -> float:
    """Test macro-F1 of the `defect` head after the recipe `variant` (bench/recipe_table.py's
    VARIANTS; `default`: the defaults) on the subset."""
    manifest = subset_manifest(dataset, shots, seed, every_good)
    folder = variant.replace(" ", "-") + ("-every-good" if every_good else "")
    run_dir = OUT / dataset / folder / f"{shots}-seed{seed}"
    run(["train", "--manifest", str(manifest), "--out", str(run_dir), "--seed", str(seed),
         "--threads", str(threads), *PROTOCOL[dataset], *VARIANTS[variant]])
    run(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(run_dir / "bundle"),
         "--name", f"{dataset}-curve-{shots}-{seed}"])
    run(["evaluate", "--bundle", str(run_dir / "bundle"), "--manifest", str(manifest), "--split",
         "test", "--out", str(run_dir / "eval")])
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    return float(metrics["heads"][HEAD]["macro_f1"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(PROTOCOL), choices=list(PROTOCOL))
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    parser.add_argument("--variant", default="default", choices=list(VARIANTS),
                        help="a recipe of bench/recipe_table.py instead of the defaults")
    parser.add_argument("--every-good", action="store_true",
                        help="keep every good train photo; draw only the defect kinds")
    args = parser.parse_args()
    if not prepared(args.datasets):
        return 0
    table: dict[str, dict[int, list[float]]] = {}
    for dataset in args.datasets:
        for shots in args.shots:
            for seed in range(args.seeds):
                started = time.perf_counter()
                score = fine_tune(dataset, shots, seed, args.threads, args.variant, args.every_good)
                table.setdefault(dataset, {}).setdefault(shots, []).append(score)
                print(f"{dataset} {shots}/class seed {seed}: macro-F1 {score:.3f} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    name = args.variant.replace(" ", "-") + ("-every-good" if args.every_good else "")
    (OUT / f"summary-{name}.json").write_text(json.dumps(table, indent=2))
    for dataset, points in table.items():
        cells = " | ".join(f"{statistics.fmean(v):.3f} ± {statistics.pstdev(v):.3f}"
                           for v in points.values())
        print(f"| {dataset}, fine-tuned ({name}) | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
