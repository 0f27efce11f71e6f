"""`returns-inspect evaluate`: metrics.json and report.html of a bundle on a manifest split.

    returns-inspect evaluate --bundle models/default --manifest data/synth/manifest.csv --split test \\
        --out runs/default/eval

The photos go through the served path (`load_photo`, the card's preprocessing, the bundle's ONNX
session, the card's temperatures and thresholds), so the figures describe what the service
answers, not what the PyTorch model did during training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from inspection.atomic import replacing
from inspection.bundle import seal_bundle
from inspection.card import read_card
from inspection.decide import defect_check, load_policy
from inspection.engine import Engine, head_probabilities
from inspection.errors import InputError
from inspection.manifest import Sample, read_manifest, rows_by_item, with_category
from inspection.taxonomy import Taxonomy
from training.calibrate import item_flags
from training.calibration import default_thresholds
from training.metrics import multi_label_metrics, single_label_metrics
from training.predictions import (
    collect_logits,
    flag_rates,
    item_defect_calls,
    model_photo,
    multi_targets,
    single_targets,
    split_samples,
    weigh_second_opinion,
)
from training.report import ReportData, thumbnail_b64, write_report
from training.versioning import code_version, utc_now


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="bundle folder, e.g. models/default")
    parser.add_argument("--manifest", required=True, help="manifest with the split to evaluate")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/eval/NAME-SPLIT)")
    parser.add_argument("--worst", type=int, default=24, help="errors shown in the gallery (default 24)")
    parser.add_argument("--flip-tta", action="store_true",
                        help="average each photo's logits with its mirror image's (measures what "
                             "test-time flips would buy a bundle exported without --flip-tta)")
    parser.add_argument("--as-category", metavar="NAME",
                        help="photos without a category count as category NAME (as for `anomaly "
                             "fit`): their anomaly detector's second opinion applies")
    parser.add_argument("--head-only", action="store_true",
                        help="the heads' own probabilities, without the anomaly score's second "
                             "opinion the bundle serves (to measure what it buys)")
    parser.add_argument("--update-card", action="store_true",
                        help="write the metrics into the card's `metrics` (ONNX untouched)")


def main(args: argparse.Namespace) -> int:
    if args.worst < 0:
        raise InputError(f"must be >= 0, got {args.worst}", "--worst")
    if args.update_card and args.flip_tta:
        raise InputError("flip-averaged metrics do not describe the served model; "
                         "drop --flip-tta to update the card", "--update-card")
    if args.update_card and args.head_only:
        raise InputError("the heads' own metrics do not describe the served model (it weighs in "
                         "the anomaly score); drop --head-only to update the card", "--update-card")
    engine = Engine.load(args.bundle)
    if args.flip_tta and engine.mirrored:
        raise InputError(f"{args.bundle} already serves mirrored logits (exported with "
                         "--flip-tta); drop --flip-tta", "--flip-tta")
    if args.flip_tta:  # exactly what the bundle would serve if exported with --flip-tta
        engine.mirrored = True
    manifest = read_manifest(args.manifest, engine.taxonomy)
    if args.as_category:
        manifest = with_category(manifest, args.as_category)
    samples = split_samples(manifest, args.split)
    outputs = collect_logits(engine, manifest, samples, desc=f"evaluate {args.split}")
    card = engine.card
    thresholds = {**default_thresholds(engine.taxonomy), **card.thresholds}
    probabilities = {head.name: head_probabilities(outputs.logits[head.name], head,
                                                   card.temperatures.get(head.name, 1.0))
                     for head in engine.taxonomy.heads}
    opinion = {} if args.head_only else weigh_second_opinion(engine, manifest, samples, probabilities)
    heads = head_metrics(probabilities, samples, engine.taxonomy, thresholds)
    metrics: dict[str, Any] = {
        "bundle": {"name": card.name, "version": card.version, "model_id": card.model_id,
                   "path": str(engine.bundle_dir)},
        "manifest": str(manifest.path), "manifest_sha256": manifest.sha256(), "split": args.split,
        "photos": len(samples), "items": len({s.item_id for s in samples}),
        "test_time_augmentation": "horizontal flip" if engine.mirrored else "none",
        "second_opinion": opinion,
        "heads": heads,
        "items_metrics": item_metrics(probabilities, samples, engine.taxonomy, thresholds),
        "timing": {"seconds": outputs.seconds,
                   "photos_per_second": len(samples) / max(outputs.seconds, 1e-9)},
        "code_version": code_version(), "created": utc_now(),
    }
    worst = worst_errors(probabilities, samples, engine.taxonomy, thresholds, args.worst)
    for entry in worst:
        entry["image"] = str(outputs.paths[entry["row"]])
    metrics["worst_errors"] = worst
    out = args.out or Path("runs") / "eval" / f"{card.name}-{args.split}"
    with replacing(out / "metrics.json") as temporary:
        temporary.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    gallery = [{**entry, "thumbnail": thumbnail_b64(model_photo(Path(entry["image"]), card.preprocessing))}
               for entry in worst]
    write_report(out / "report.html", ReportData(metrics, engine.taxonomy,
                                                 labelled_scores(probabilities, samples, engine.taxonomy),
                                                 gallery))
    if args.update_card:
        update_card(engine.bundle_dir, metrics)
    if opinion:
        print(f"second opinion of the anomaly score weighed in: {opinion} photos per category")
    for name, values in heads.items():
        print(f"{name}: accuracy {values.get('accuracy', 0):.3f}, "
              f"macro-F1 {values.get('macro_f1') or 0:.3f}, ECE {values.get('ece', 0):.3f}")
    print(f"wrote {out / 'metrics.json'} and {out / 'report.html'}")
    return 0


def head_metrics(probabilities: dict[str, np.ndarray], samples: list[Sample], taxonomy: Taxonomy,
                 thresholds: dict[str, Any]) -> dict[str, dict[str, Any]]:
    heads: dict[str, dict[str, Any]] = {}
    for head in taxonomy.heads:
        if head.type == "single":
            heads[head.name] = single_label_metrics(single_targets(samples, head), probabilities[head.name],
                                                    head.labels)
        else:
            y, labelled = multi_targets(samples, head)
            heads[head.name] = multi_label_metrics(y, probabilities[head.name], head.labels,
                                                   thresholds.get(head.name), labelled)
    return heads


def labelled_scores(probabilities: dict[str, np.ndarray], samples: list[Sample],
                    taxonomy: Taxonomy) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(targets, probabilities) of the labelled photos of each multi-label head: PR curves."""
    scores = {}
    for head in taxonomy.heads:
        if head.type == "multi":
            y, labelled = multi_targets(samples, head)
            scores[head.name] = (y[labelled], probabilities[head.name][labelled])
    return scores


def defect_flag_metrics(probabilities: dict[str, np.ndarray], samples: list[Sample],
                        taxonomy: Taxonomy, thresholds: dict[str, Any]) -> dict[str, Any]:
    """Per item, for each head with a `no_defect` label: does the service raise `defect_found`
    (inspection.decide's own check, so the figure is what operators get) on the items some photo
    of which truly shows a defect, and how often on the items none of whose photos does. Whether
    the head names the right kind of defect is its macro-F1's business, not this."""
    policy = load_policy()
    result: dict[str, Any] = {}
    for head in taxonomy.heads:
        if head.no_defect is None or head.type != "single":
            continue
        calls, defective = item_defect_calls(probabilities[head.name], samples, head)
        if not defective.size:
            continue
        flagged = np.array([defect_check(head.name, call, thresholds, policy).fails
                            for call in calls], dtype=bool)
        rates = flag_rates(flagged, defective)
        result[f"defect_found_recall.{head.name}"] = rates["recall"]
        result[f"defect_found_false_flag_rate.{head.name}"] = rates["false_flag_rate"]
        result[f"defect_found_items.{head.name}"] = (f"{rates['items_with_defect']} with a defect, "
                                                     f"{rates['items_without']} without")
    return result


def item_metrics(probabilities: dict[str, np.ndarray], samples: list[Sample], taxonomy: Taxonomy,
                 thresholds: dict[str, Any]) -> dict[str, Any]:
    """Missing accessories per item (the category's kit minus what any photo shows), judged
    against the same rule applied to the true labels, and the share of items sent to review."""
    result: dict[str, Any] = {"review_rate": float(item_flags(probabilities, samples, taxonomy,
                                                                thresholds).mean())}
    result.update(defect_flag_metrics(probabilities, samples, taxonomy, thresholds))
    if not (taxonomy.has_head("accessories") and taxonomy.kits):
        return result
    head = taxonomy.head("accessories")
    cut = np.array([thresholds["accessories"][label] for label in head.labels])
    judged = [[row for row in item_rows if samples[row].category in taxonomy.kits
               and "accessories" in samples[row].labels]
              for item_rows in rows_by_item(samples).values()]
    rows = [item_rows for item_rows in judged if item_rows]
    exact, decisions, correct = 0, 0, 0
    for item_rows in rows:
        category = samples[item_rows[0]].category
        seen = np.any(probabilities["accessories"][item_rows] >= cut, axis=0)
        visible = {label for label, shown in zip(head.labels, list(seen), strict=True) if shown}
        predicted = set(taxonomy.missing_accessories(category, visible))
        truly_visible = {label for row in item_rows for label in samples[row].labels["accessories"]}
        actual = set(taxonomy.missing_accessories(category, truly_visible))
        exact += predicted == actual
        kit = taxonomy.kits[category]
        decisions += len(kit)
        correct += sum((part in predicted) == (part in actual) for part in kit)
    if rows:
        result.update({"missing_accessories_items": len(rows),
                       "missing_accessories_exact_match": exact / len(rows),
                       "missing_accessories_part_accuracy": correct / max(decisions, 1)})
    return result


def worst_errors(probabilities: dict[str, np.ndarray], samples: list[Sample], taxonomy: Taxonomy,
                 thresholds: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The most confident wrong answers: a wrong top-1, a missed label or a false one."""
    errors: list[dict[str, Any]] = []
    for head in taxonomy.heads:
        probs = probabilities[head.name]
        if head.type == "single":
            y = single_targets(samples, head)
            for row in np.flatnonzero((y >= 0) & (probs.argmax(1) != y)):
                predicted = int(probs[row].argmax())
                errors.append({"row": int(row), "head": head.name, "true": head.labels[y[row]],
                               "predicted": head.labels[predicted],
                               "confidence": float(probs[row, predicted])})
            continue
        y, labelled = multi_targets(samples, head)
        cut = np.array([thresholds.get(head.name, {}).get(label, 0.5) for label in head.labels])
        wrong = ((probs >= cut) != (y == 1)) & labelled[:, None]
        for row in np.flatnonzero(wrong.any(axis=1)):
            miss = np.where(wrong[row], np.abs(probs[row] - y[row]), -1.0)
            label = int(miss.argmax())
            missed = y[row, label] == 1
            errors.append({"row": int(row), "head": head.name,
                           "true": head.labels[label] if missed else "-",
                           "predicted": "-" if missed else head.labels[label],
                           "confidence": float(miss[label]),
                           "error": f"{head.labels[label]} missed" if missed
                           else f"{head.labels[label]} not in the photo"})
    errors.sort(key=lambda entry: entry["confidence"], reverse=True)
    return errors[:count]


def update_card(bundle_dir: Path, metrics: dict[str, Any]) -> None:
    card = read_card(bundle_dir)
    compact = {name: {k: v for k, v in head.items() if k not in ("reliability", "confusion_matrix")}
               for name, head in metrics["heads"].items()}
    card.metrics[metrics["split"]] = {"manifest_sha256": metrics["manifest_sha256"],
                                      "photos": metrics["photos"], "heads": compact,
                                      "items": metrics["items_metrics"], "created": metrics["created"]}
    card.save(bundle_dir)
    seal_bundle(bundle_dir)  # the card changed on purpose: bind it again
