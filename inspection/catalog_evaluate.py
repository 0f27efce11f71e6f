"""`returns-inspect catalog evaluate`: the catalog protocol (issue 8) on real and synthetic photos.

Each SKU is registered from N reference photos (N = 1, 5, 10, 25, the same pool for every N)
through the service's own code (decode at reduced scale, the served ONNX model, the numpy bank,
leave-one-out thresholds), then:
  (a) defects: image AUROC of the anomaly score, damaged vs held-out good photos of that SKU, and
      the share of damaged photos flagged at the fitted threshold (recall), beside the share of
      held-out good photos flagged (anomaly or mismatch: the genuine false-flag rate);
  (b) swaps: held-out good photos of the other SKUs of its group declared as this SKU: the share
      flagged item_mismatch, and flagged at all (mismatch or anomaly).
Beside it, the category-level comparison the bundle already had (per-category detector and
references.npz) on the same photos, where the bundle knows the category.

    returns-inspect catalog evaluate --bundle models/default --datasets ../shared/datasets \
        --manifest datasets/sample/manifest.csv --json runs/catalog-evaluate.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from inspection.catalog import Views, mirrored, model_views, reference_from_views
from inspection.catalog_sets import SkuSet, real_sets, synthetic_sets
from inspection.errors import InputError
from inspection.images import load_photo
from inspection.loaded_model import LoadedModel

SIZES = (1, 5, 10, 25)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--datasets", type=Path, help="folder with mvtec_ad/bottle, magnetic_tile")
    parser.add_argument("--manifest", type=Path, help="synthetic set: each product variant a SKU")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--held-out", type=int, default=20, help="good photos per SKU, at most")
    parser.add_argument("--damaged", type=int, default=20, help="damaged photos per SKU, at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float | None:
    """P(a positive scores above a negative), ties half (Mann-Whitney U)."""
    if not len(negatives) or not len(positives):
        return None
    above = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    return float(above + 0.5 * ties)


def rgb(paths: Sequence[Path], side: int) -> list[np.ndarray]:
    return [load_photo(path, min_side=side) for path in paths]


def sku_views(model: LoadedModel, sku: SkuSet) -> dict[str, Views | None]:
    side = model.engine.input_size
    return {part: model_views(model.engine, rgb(paths, side)) if paths else None
            for part, paths in (("references", sku.references), ("held_out", sku.held_out),
                                ("damaged", sku.damaged))}


def _take(views: Views, count: int) -> Views:
    return Views(views.embeddings[:count], views.patch_features[:count])


def evaluate_sku(model: LoadedModel, sku: SkuSet, views: dict[str, Views | None],
                 swaps: Views | None, size: int) -> dict[str, Any]:
    pool = views["references"]
    assert pool is not None
    started = time.perf_counter()
    reference = reference_from_views(
        model.card.model_id, _take(pool, size),
        lambda: model_views(model.engine, mirrored(rgb(sku.references[:size], model.engine.input_size))))
    build_ms = (time.perf_counter() - started) * 1000.0
    limits = reference.thresholds

    def flagged(part: Views | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if part is None:
            return np.zeros(0), np.zeros(0, bool), np.zeros(0, bool)
        result = reference.compare(part)
        scores = np.asarray(result.anomaly_scores)
        return (scores, scores >= limits.anomaly,
                np.asarray(result.similarities) < limits.similarity)

    good, good_anomaly, good_mismatch = flagged(views["held_out"])
    bad, bad_anomaly, _ = flagged(views["damaged"])
    _, swap_anomaly, swap_mismatch = flagged(swaps)
    return {"sku": sku.sku, "references": size, "build_ms": round(build_ms, 1),
            "defect_auroc": auroc(good, bad), "defect_recall": _share(bad_anomaly),
            "genuine_flagged": _share(good_anomaly | good_mismatch),
            "genuine_mismatch": _share(good_mismatch),
            "swap_mismatch": _share(swap_mismatch), "swap_flagged": _share(swap_anomaly | swap_mismatch),
            "counts": {"held_out": len(good), "damaged": len(bad), "swaps": len(swap_mismatch)}}


def category_level(model: LoadedModel, sku: SkuSet, views: dict[str, Views | None],
                   swaps: Views | None) -> dict[str, Any] | None:
    """The bundle's per-category detector and references on the same photos, if it has them."""
    category = sku.category
    if not category or model.anomaly is None or not model.anomaly.has(category):
        return None
    if model.anomaly.crop_of(category) != "none":
        return None  # it scores upright items; these views hold whole photos' features
    good, bad = views["held_out"], views["damaged"]

    def scores(part: Views | None) -> np.ndarray:
        outcome = model.anomaly.score(category, part.patch_features) if part is not None else None
        return np.asarray(outcome.scores) if outcome is not None else np.zeros(0)

    limit = model.anomaly.score(category, (good or bad).patch_features[:1]).threshold  # type: ignore[union-attr]
    mismatch = ([model.references.is_mismatch(category, e) for e in swaps.embeddings]
                if swaps is not None and model.references.has(category) else [])
    return {"defect_auroc": auroc(scores(good), scores(bad)),
            "defect_recall": _share(scores(bad) >= limit),
            "genuine_flagged": _share(scores(good) >= limit),
            "swap_mismatch": _share(np.asarray(mismatch, bool))}


def _share(flags: np.ndarray) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


def run(model: LoadedModel, skus: list[SkuSet], sizes: Sequence[int]) -> dict[str, Any]:
    views = {sku.sku: sku_views(model, sku) for sku in tqdm(skus, desc="model outputs", unit="sku")}
    rows, baseline = [], {}
    for sku in skus:
        others = [views[o.sku]["held_out"] for o in skus if o.group == sku.group and o.sku != sku.sku]
        others = [v for v in others if v is not None]
        swaps = Views(np.concatenate([v.embeddings for v in others]),
                      np.concatenate([v.patch_features for v in others])) if others else None
        baseline[sku.sku] = category_level(model, sku, views[sku.sku], swaps)
        for size in sizes:
            if size <= len(sku.references):
                rows.append({"group": sku.group, **evaluate_sku(model, sku, views[sku.sku], swaps, size)})
    return {"model_id": model.card.model_id, "rows": rows, "category_level": baseline,
            "summary": summarise(rows, baseline, skus)}


def summarise(rows: list[dict[str, Any]], baseline: dict[str, Any], skus: list[SkuSet]
              ) -> list[dict[str, Any]]:
    """Mean over a group's SKUs, per N (and the category level once per group)."""
    keys = ("defect_auroc", "defect_recall", "genuine_flagged", "genuine_mismatch",
            "swap_mismatch", "swap_flagged", "build_ms")
    out = []
    for group in sorted({row["group"] for row in rows}):
        for size in sorted({row["references"] for row in rows if row["group"] == group}):
            chosen = [r for r in rows if r["group"] == group and r["references"] == size]
            out.append({"group": group, "references": size, "skus": len(chosen),
                        **{k: _mean([r[k] for r in chosen]) for k in keys}})
        levels = [baseline[s.sku] for s in skus if s.group == group and baseline.get(s.sku)]
        if levels:
            out.append({"group": group, "references": "category", "skus": len(levels),
                        **{k: _mean([lv.get(k) for lv in levels]) for k in keys}})
    return out


def _mean(values: list[Any]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(float(np.mean(kept)), 3) if kept else None


def machine() -> str:
    """Build times depend on it: cores, and the load the other jobs put on them meanwhile."""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load average {load}; Python {platform.python_version()}")


def main(args: argparse.Namespace) -> int:
    skus: list[SkuSet] = []
    pool = max(args.sizes)
    if args.datasets:
        skus += real_sets(args.datasets, pool, args.held_out, args.damaged, args.seed)
    if args.manifest:
        skus += synthetic_sets(args.manifest, pool, args.held_out, args.damaged, args.seed)
    if not skus:
        raise InputError("no SKUs: give --datasets (with mvtec_ad/bottle or magnetic_tile) "
                         "and/or --manifest", "--datasets")
    model = LoadedModel.load(args.bundle)
    started = time.perf_counter()
    result = run(model, skus, args.sizes)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"] = machine()
    print(f"{len(skus)} SKUs, model {model.card.name} {model.card.version}, "
          f"{result['seconds']:.0f} s on {result['machine']}")
    print(f"{'group':<12}{'N':>9}{'SKUs':>6}{'AUROC':>8}{'recall':>8}{'genuine':>9}"
          f"{'swap mm':>9}{'swap any':>9}{'build ms':>10}")
    for row in result["summary"]:
        cells = [row[k] for k in ("defect_auroc", "defect_recall", "genuine_flagged",
                                  "swap_mismatch", "swap_flagged", "build_ms")]
        text = "".join(f"{'—' if v is None else format(v, '.3f' if i < 5 else '.0f'):>{w}}"
                       for i, (v, w) in enumerate(zip(cells, (8, 8, 9, 9, 9, 10), strict=True)))
        print(f"{row['group']:<12}{row['references']!s:>9}{row['skus']:>6}{text}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
