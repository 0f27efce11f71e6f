"""Issue 10's recipe table: test macro-F1 of training recipes on real photos, mean ± std over seeds.

For bottle and magnetic tile (../shared/datasets; skipped when absent) it builds the manifests of
`bench/supervised_real.py`, then for each recipe variant and seed trains, exports and evaluates
the `defect` head on the test split through the service's preprocessing, exactly as a user would:

    returns-inspect train --manifest M --out R --input-size S --epochs E --seed N [variant flags]
    returns-inspect export --checkpoint R/best.pt --out R/bundle
    returns-inspect evaluate --bundle R/bundle --manifest M --split test

Each dataset keeps its protocol's input size and epochs (bottle 224 px / 10, magnetic tile 160 px /
8, half an epoch of warm-up, as in "Real photos, supervised"). A test split of 5–20 photos per
defect class makes one seed noise (one photo moves macro-F1 by several points), hence the seeds.

    python bench/recipe_table.py [--datasets ...] [--variants default mirror ...] [--seeds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.supervised_real import WORK, prepared, run  # noqa: E402

# Each dataset's protocol, as bench/supervised_real.py trains it (its half-epoch warm-up too, the
# trainer's default since 2026-12-04; spelled out so that these figures do not move with it).
PROTOCOL = {"mvtec_bottle": ["--input-size", "224", "--epochs", "10", "--warmup-epochs", "0.5"],
            "magnetic_tile": ["--input-size", "160", "--epochs", "8", "--warmup-epochs", "0.5"]}
VARIANTS = {  # name -> train flags on top of the defaults (training/config.py, training/presets.py)
    "default": [],
    # the defaults before LP-FT (random heads, one frozen epoch, batch statistics)
    "former defaults": ["--probe-steps", "0", "--no-frozen-bn", "--freeze-epochs", "1"],
    "former defaults + turns": ["--probe-steps", "0", "--no-frozen-bn", "--freeze-epochs", "1",
                                "--augment", "turns"],
    # LP-FT taken apart: each half of the defaults alone
    "probe, batch statistics": ["--no-frozen-bn"],
    "frozen bn, random heads": ["--probe-steps", "0", "--freeze-epochs", "1"],
    "mirror": ["--augment", "mirror"],
    "medium": ["--augment", "medium"],
    "light": ["--augment", "light"],
    "strong": ["--augment", "strong"],
    "lr 3e-3": ["--lr", "0.003"],
    "heads lr 1e-2": ["--lr", "0.01", "--backbone-lr-scale", "0.03"],
    "4 blocks": ["--unfreeze-blocks", "4"],
    "all blocks": ["--unfreeze-blocks", "all"],
    "turns": ["--augment", "turns"],
    "turns 20 epochs": ["--augment", "turns", "--epochs", "20"],
    "lr 3e-4": ["--lr", "0.0003"],
    "batch 8": ["--batch-size", "8"],
    "warm-up 3 epochs": ["--warmup-epochs", "3"],
    "warm-up 1 epoch": ["--warmup-epochs", "1"],  # the trainer's default until 2026-12-04
    # after the probe the heads are converged: fine-tune them no faster than the blocks
    "heads lr 3e-4": ["--lr", "0.0003", "--backbone-lr-scale", "1.0"],
    "heads lr 1e-4": ["--lr", "0.0001", "--backbone-lr-scale", "3.0"],
    "constant rate": ["--full-rate-steps", "0"],  # short runs at the full rate (before it scaled)
    "sampler": ["--balance", "sampler"],  # balanced batches instead of a class-weighted loss
    "no label smoothing": ["--label-smoothing", "0"],
    "mixup 0.4": ["--mixup-alpha", "0.4"],
    "cutmix 1.0": ["--cutmix-alpha", "1.0"],
    "ema 0.9": ["--ema-decay", "0.9"],  # val and best.pt: the weights' moving average
    "lite1 240 px": ["--backbone", "efficientnet_lite1", "--input-size", "240"],
    "lite2 260 px": ["--backbone", "efficientnet_lite2", "--input-size", "260"],
    "320 px": ["--input-size", "320"],
}
OUT = REPO / "runs" / "recipes"


def score(dataset: str, variant: str, seed: int, threads: int) -> dict:
    """Train, export and evaluate one (dataset, variant, seed); its test figures and seconds."""
    run_dir = OUT / dataset / f"{variant.replace(' ', '-')}-seed{seed}"
    manifest = WORK / dataset / "manifest.csv"
    started = time.perf_counter()
    run(["train", "--manifest", str(manifest), "--out", str(run_dir), "--seed", str(seed),
         "--threads", str(threads), *PROTOCOL[dataset], *VARIANTS[variant]])
    seconds = time.perf_counter() - started
    run(["export", "--checkpoint", str(run_dir / "best.pt"), "--out", str(run_dir / "bundle"),
         "--name", f"{dataset}-{variant}-{seed}".replace(" ", "-")])
    run(["evaluate", "--bundle", str(run_dir / "bundle"), "--manifest", str(manifest), "--split",
         "test", "--out", str(run_dir / "eval")])
    head = json.loads((run_dir / "eval" / "metrics.json").read_text())["heads"]["defect"]
    return {"dataset": dataset, "variant": variant, "seed": seed, "macro_f1": head["macro_f1"],
            "accuracy": head["accuracy"], "train_seconds": round(seconds)}


def mean_std(values: list[float]) -> str:
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {spread:.3f}"


def print_table(results: list[dict]) -> None:
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        print(f"\n{dataset} ({' '.join(PROTOCOL[dataset])}): test `defect` head, mean ± std over seeds")
        print("| recipe | flags | macro-F1 | accuracy | per seed (macro-F1) | train s (mean) |")
        print("|---|---|---|---|---|---|")
        for variant in dict.fromkeys(r["variant"] for r in results if r["dataset"] == dataset):
            rows = [r for r in results if (r["dataset"], r["variant"]) == (dataset, variant)]
            seeds = " ".join(f"{r['macro_f1']:.3f}" for r in rows)
            seconds = statistics.fmean(r["train_seconds"] for r in rows)
            print(f"| {variant} | `{' '.join(VARIANTS[variant]) or '(defaults)'}` | "
                  f"{mean_std([r['macro_f1'] for r in rows])} | "
                  f"{mean_std([r['accuracy'] for r in rows])} | {seeds} | {seconds:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(PROTOCOL), choices=list(PROTOCOL))
    parser.add_argument("--variants", nargs="+", default=["default", "mirror"], choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    args = parser.parse_args()
    if not prepared(args.datasets):
        return 0
    results = []
    for dataset in args.datasets:
        for variant in args.variants:
            for seed in range(args.seeds):
                results.append(score(dataset, variant, seed, args.threads))
                print(f"{dataset} {variant} seed {seed}: macro-F1 {results[-1]['macro_f1']:.3f} "
                      f"({results[-1]['train_seconds']} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.json").write_text(json.dumps(results, indent=2))
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
