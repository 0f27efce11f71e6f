"""Where `catalog evaluate` finds its SKUs: each SKU is a pool of good photos to take references
from, held-out good photos, damaged photos, and a group (its swaps come from the other SKUs of
the same group).

- real photos (../shared/datasets): MVTec AD bottle and magnetic tile (MT_Free good, every MT_*
  defect class damaged) are two SKUs of one group: a tile declared as the bottle is a swap;
- the synthetic set: each product variant (phone-01 ... shoe-04) is a SKU, grouped by category,
  so a swap is a different model of the same product type, the hard case.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from inspection.manifest import read_manifest

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


@dataclass(frozen=True)
class SkuSet:
    sku: str
    group: str
    category: str | None  # the bundle's category, for the category-level comparison
    references: list[Path]  # pool, in the order references are taken
    held_out: list[Path]  # good photos never used as references
    damaged: list[Path]


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _sample(paths: list[Path], count: int, seed: int) -> list[Path]:
    shuffled = list(paths)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:count]


def real_sets(root: Path, pool: int, held: int, damaged: int, seed: int = 0) -> list[SkuSet]:
    """Bottle and magnetic tile under `root` (../shared/datasets); those absent are skipped."""
    sets = []
    bottle = root / "mvtec_ad" / "bottle"
    if bottle.is_dir():
        defects = [p for d in sorted((bottle / "test").iterdir()) if d.name != "good"
                   for p in _photos(d)]
        sets.append(SkuSet("mvtec-bottle", "real", None,
                           _sample(_photos(bottle / "train" / "good"), pool, seed),
                           _sample(_photos(bottle / "test" / "good"), held, seed),
                           _sample(defects, damaged, seed)))
    tile = root / "magnetic_tile"
    if (tile / "MT_Free").is_dir():
        goods = [p for p in _photos(tile / "MT_Free" / "Imgs") if p.suffix == ".jpg"]
        shuffled = _sample(goods, pool + held, seed)
        defects = [p for d in sorted(tile.glob("MT_*")) if d.name != "MT_Free"
                   for p in _photos(d / "Imgs") if p.suffix == ".jpg"]
        sets.append(SkuSet("magnetic-tile", "real", None, shuffled[:pool], shuffled[pool:],
                           _sample(defects, damaged, seed)))
    return sets


def synthetic_sets(manifest_path: Path, pool: int, held: int, damaged: int,
                   seed: int = 0) -> list[SkuSet]:
    """One SKU per product variant: references from train goods, held-out goods and damaged
    photos from the test split (val where test has too few)."""
    manifest = read_manifest(manifest_path)
    by_sku: dict[str, list] = {}
    for sample in manifest.samples:
        if sample.sku:
            by_sku.setdefault(sample.sku, []).append(sample)
    sets = []
    for sku, samples in sorted(by_sku.items()):
        def good(s) -> bool:  # noqa: ANN001 - a manifest Sample
            return (set(s.labels.get("condition", ())) <= {"A", "B"}
                    and not s.labels.get("damage"))
        path = manifest.image_path
        train = [path(s) for s in samples if s.split == "train" and good(s)]
        tests = [s for s in samples if s.split in ("test", "val")]
        sets.append(SkuSet(sku, samples[0].category or "", samples[0].category,
                           _sample(train, pool, seed),
                           _sample([path(s) for s in tests if good(s)], held, seed),
                           _sample([path(s) for s in tests if s.labels.get("damage")], damaged, seed)))
    return sets
