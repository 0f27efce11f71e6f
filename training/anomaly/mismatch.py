"""Measure item mismatch on a bundle: genuine photos of a category vs photos of other products
(e.g. MVTec bottles, magnetic tiles) declared as that category — returns fraud.

    python -m training.anomaly.mismatch --bundle models/default --manifest M \
        --impostors ../shared/datasets/mvtec_ad/bottle ../shared/datasets/magnetic_tile \
        [--categories phone shoe] [--max-impostors 200] [--json FILE]

true mismatch rate = impostor photos flagged; false mismatch rate = genuine photos flagged.
Genuine photos are the manifest's test split of the category (damaged ones too: a cracked phone
is still a phone), or val where there is no test split.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from inspection.anomaly import ReferenceEmbeddings
from inspection.engine import Engine
from inspection.errors import InputError
from inspection.images import load_photo
from inspection.manifest import read_manifest
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


def embeddings(engine: Engine, paths: list[Path]) -> np.ndarray:
    rows = []
    for start in range(0, len(paths), 16):
        photos = [load_photo(p) for p in paths[start:start + 16]]
        rows.append(next(engine.iter_raw(photos, 16, outputs=["embedding"]))["embedding"])
    return np.concatenate(rows)


def measure(bundle: Path, manifest_path: Path, impostor_folders: list[Path],
            categories: list[str] | None, limit: int) -> dict:
    engine = Engine.load(bundle, threads=2)
    references = ReferenceEmbeddings.load(bundle, engine.card)
    if not references.references:
        raise InputError(f"{bundle} has no references.npz: run `anomaly fit` first", "--bundle")
    manifest = read_manifest(manifest_path)
    impostor_paths = impostor_photos(impostor_folders, limit)
    impostors = embeddings(engine, impostor_paths)
    result = {"impostors": len(impostor_paths), "folders": [str(f) for f in impostor_folders],
              "categories": {}}
    for category in categories or sorted(references.references):
        rows = [s for s in manifest.samples if s.category == category]
        genuine_rows = [s for s in rows if s.split == "test"] or [s for s in rows
                                                                   if s.split == "val"]
        genuine = embeddings(engine, [manifest.image_path(s) for s in genuine_rows])
        genuine_flags = np.array([references.is_mismatch(category, e) for e in genuine])
        impostor_flags = np.array([references.is_mismatch(category, e) for e in impostors])
        result["categories"][category] = {
            "threshold": references.thresholds[category], "genuine": len(genuine),
            "false_mismatch_rate": float(genuine_flags.mean()),
            "true_mismatch_rate": float(impostor_flags.mean()),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--impostors", type=Path, nargs="+", required=True)
    parser.add_argument("--categories", nargs="*")
    parser.add_argument("--max-impostors", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.bundle, args.manifest, args.impostors, args.categories,
                     args.max_impostors)
    print(f"{result['impostors']} impostor photos from {', '.join(result['folders'])}")
    for category, figures in result["categories"].items():
        print(f"  declared {category:<12} threshold {figures['threshold']:.3f}  true mismatch "
              f"{figures['true_mismatch_rate']:6.1%}  false mismatch "
              f"{figures['false_mismatch_rate']:6.1%} of {figures['genuine']} genuine")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
