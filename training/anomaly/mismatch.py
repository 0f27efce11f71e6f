"""Measure item mismatch on a bundle: genuine photos of a category vs photos of other products
(e.g. MVTec bottles, magnetic tiles) declared as that category — returns fraud.

    python -m training.anomaly.mismatch --bundle models/default --manifest M \
        --impostors ../shared/datasets/mvtec_ad/bottle ../shared/datasets/magnetic_tile \
        [--categories phone shoe] [--as-category bottle] [--max-impostors 200] [--json FILE]

true mismatch rate = impostor photos flagged; false mismatch rate = genuine photos flagged, also
told apart for the good and the damaged ones. Genuine photos are the manifest's test split of the
category (damaged ones too: a cracked phone is still a phone), or val where there is no test split.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from inspection.anomaly import AnomalyDetectors, ReferenceEmbeddings
from inspection.engine import Engine
from inspection.errors import InputError
from inspection.images import load_photo
from inspection.manifest import read_manifest, with_category
from training.anomaly.fit import is_good
from training.anomaly.mvtec import IMAGE_SUFFIXES


def impostor_photos(folders: list[Path], limit: int, seed: int = 0) -> list[Path]:
    """Photos under the folders, masks left out (a `.png` beside a same-named `.jpg`)."""
    found = []
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"{folder} is not a folder", where="--impostors")
        for path in sorted(folder.rglob("*")):
            is_mask = path.suffix.lower() == ".png" and path.with_suffix(".jpg").exists()
            if path.suffix.lower() in IMAGE_SUFFIXES and not is_mask:
                found.append(path)
    random.Random(seed).shuffle(found)
    return sorted(found[:limit])


def model_outputs(engine: Engine, detectors: AnomalyDetectors, paths: list[Path]
                  ) -> dict[str, np.ndarray]:
    """Embeddings and anomaly verdicts (per category with a detector) of photos, as served."""
    names = ["embedding", "patch_features"]
    chunks: dict[str, list[np.ndarray]] = {"embedding": []}
    for start in range(0, len(paths), 16):
        photos = [load_photo(p, min_side=engine.input_size) for p in paths[start:start + 16]]
        raw = next(engine.iter_raw(photos, 16, outputs=names))
        chunks["embedding"].append(raw["embedding"])
        for category in detectors.categories:  # as served: upright items where fitted so
            result = detectors.score_photos(category, photos, raw["patch_features"],
                                            engine.patch_features)
            assert result is not None
            chunks.setdefault(f"anomalous:{category}", []).append(result.is_anomalous)
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def photo_flags(category: str, outputs: dict[str, np.ndarray], references: ReferenceEmbeddings
                ) -> dict[str, np.ndarray]:
    """Per photo, whether each check that holds a refund fires: item_mismatch, anomaly, either."""
    mismatch = np.array([references.is_mismatch(category, e) for e in outputs["embedding"]], bool)
    anomalous = outputs.get(f"anomalous:{category}")
    anomalous = np.asarray(anomalous, bool) if anomalous is not None else np.zeros_like(mismatch)
    return {"mismatch": mismatch, "anomaly": anomalous, "held": mismatch | anomalous}


def rates(flags: dict[str, np.ndarray]) -> dict[str, float]:
    return {check: float(fired.mean()) for check, fired in flags.items()}


def measure(bundle: Path, manifest_path: Path, impostor_folders: list[Path],
            categories: list[str] | None, limit: int, as_category: str | None = None) -> dict:
    engine = Engine.load(bundle, threads=2)
    references = ReferenceEmbeddings.load(bundle, engine.card)
    if not references.references:
        raise InputError(f"{bundle} has no references.npz: run `anomaly fit` first", "--bundle")
    detectors = AnomalyDetectors.load(bundle, engine.card)
    manifest = read_manifest(manifest_path)
    if as_category:
        manifest = with_category(manifest, as_category)
    impostor_paths = impostor_photos(impostor_folders, limit)
    impostors = model_outputs(engine, detectors, impostor_paths)
    result: dict[str, Any] = {"impostors": len(impostor_paths), "folders": [str(f) for f in impostor_folders],
              "categories": {}}
    for category in categories or sorted(references.references):
        rows = [s for s in manifest.samples if s.category == category]
        genuine_rows = [s for s in rows if s.split == "test"] or [s for s in rows
                                                                   if s.split == "val"]
        flags = photo_flags(category, model_outputs(
            engine, detectors, [manifest.image_path(s) for s in genuine_rows]), references)
        genuine, impostor = rates(flags), rates(photo_flags(category, impostors, references))
        good = np.array([is_good(s, engine.taxonomy) for s in genuine_rows], bool)
        by_condition = {name: float(flags["mismatch"][chosen].mean()) if chosen.any() else None
                        for name, chosen in (("good", good), ("damaged", ~good))}
        result["categories"][category] = {
            "threshold": references.thresholds[category], "genuine": len(genuine_rows),
            "damaged": int((~good).sum()),
            "false_mismatch_rate": genuine["mismatch"], "true_mismatch_rate": impostor["mismatch"],
            "false_mismatch_rate_good": by_condition["good"],
            "false_mismatch_rate_damaged": by_condition["damaged"],
            "genuine_anomaly_rate": genuine["anomaly"], "impostor_anomaly_rate": impostor["anomaly"],
            "genuine_held_rate": genuine["held"], "impostor_held_rate": impostor["held"],
        }
    return result


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--impostors", type=Path, nargs="+", required=True)
    parser.add_argument("--categories", nargs="*")
    parser.add_argument("--as-category", metavar="NAME",
                        help="photos without a category count as category NAME (as `anomaly fit`)")
    parser.add_argument("--max-impostors", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.bundle, args.manifest, args.impostors, args.categories,
                     args.max_impostors, args.as_category)
    print(f"{result['impostors']} impostor photos from {', '.join(result['folders'])}")
    for category, figures in result["categories"].items():
        print(f"  declared {category:<12} threshold {figures['threshold']:.3f}  true mismatch "
              f"{figures['true_mismatch_rate']:6.1%}  false mismatch "
              f"{figures['false_mismatch_rate']:6.1%} of {figures['genuine']} genuine "
              f"({percent(figures['false_mismatch_rate_damaged'])} of the {figures['damaged']} "
              f"damaged); "
              f"held by mismatch or anomaly: impostors {figures['impostor_held_rate']:6.1%}, "
              f"genuine {figures['genuine_held_rate']:6.1%}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
