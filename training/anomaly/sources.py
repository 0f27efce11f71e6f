"""Where `anomaly evaluate` finds a category's good and test photos: an MVTec AD folder, the
magnetic-tile layout, or a manifest's category. Each becomes the same `MvtecCategory` (good
training photos; test photos with their kind; pixel masks where the set has them), so one
protocol scores all of them.
"""

from __future__ import annotations

import random
from pathlib import Path

from inspection.errors import InputError
from inspection.manifest import read_manifest
from training.anomaly.fit import is_good
from training.anomaly.mvtec import GOOD, IMAGE_SUFFIXES, MvtecCategory, scan_category

MAGNETIC_TILE_GOOD = "MT_Free"
MAGNETIC_TILE_TEST_GOOD = 0.2  # seeded share of MT_Free kept out of training as test goods


def find_category(root: Path | None, category: str, manifest: Path | None = None,
                  seed: int = 0) -> MvtecCategory:
    """The category's photos from whichever layout `root` (or `manifest`) holds."""
    if manifest is not None:
        return manifest_category(manifest, category)
    if root is None:
        raise InputError("give --root (a folder) or --manifest", where="--root")
    if (Path(root) / category / MAGNETIC_TILE_GOOD).is_dir():
        return magnetic_tile_category(Path(root) / category, seed=seed)
    return scan_category(root, category)


def _photos_with_masks(folder: Path) -> list[Path]:
    """Photos in a magnetic-tile class folder; a `.png` beside a same-named `.jpg` is its mask."""
    images = folder / "Imgs" if (folder / "Imgs").is_dir() else folder
    return sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                  and not (p.suffix.lower() == ".png" and p.with_suffix(".jpg").exists()))


def mask_beside(photo: Path) -> Path | None:
    """The pixel mask stored beside a photo (magnetic tile: same name, `.png`), if any."""
    mask = photo.with_suffix(".png")
    return mask if mask != photo and mask.is_file() else None


def magnetic_tile_category(root: Path, test_share: float = MAGNETIC_TILE_TEST_GOOD,
                           seed: int = 0) -> MvtecCategory:
    """MT_Free photos are the good ones (a seeded share held out as test goods); every other
    MT_* folder is a defect kind, all of it test."""
    good = _photos_with_masks(root / MAGNETIC_TILE_GOOD)
    random.Random(seed).shuffle(good)
    held = max(2, round(len(good) * test_share))
    kinds = sorted(d for d in root.iterdir() if d.is_dir() and d.name != MAGNETIC_TILE_GOOD)
    test = [(photo, GOOD) for photo in sorted(good[:held])]
    test += [(photo, kind.name) for kind in kinds for photo in _photos_with_masks(kind)]
    if len(good) - held < 4 or not kinds:
        raise InputError(f"{root}: need MT_Free with at least {held + 4} photos and one defect "
                         f"folder", where="--root")
    masks = {photo: mask for photo, _ in test if (mask := mask_beside(photo)) is not None}
    return MvtecCategory(tuple(sorted(good[held:])), tuple(test), masks)


def manifest_category(manifest_path: Path, category: str) -> MvtecCategory:
    """Train-split good photos fit; the test split (val where there is none) is scored, each
    photo's kind being its damage labels (or `good`)."""
    manifest = read_manifest(manifest_path)
    rows = [s for s in manifest.samples if s.category == category]
    if not rows:
        known = sorted({s.category for s in manifest.samples if s.category})
        raise InputError(f"no photos of {category!r} in the manifest (it has {known})",
                         where="--category")
    train = tuple(manifest.image_path(s) for s in rows if s.split == "train" and is_good(s))
    scored = [s for s in rows if s.split == "test"] or [s for s in rows if s.split == "val"]
    test = tuple((manifest.image_path(s),
                  GOOD if is_good(s) else ";".join(s.labels.get("damage", ())) or "damaged")
                 for s in scored)
    masks = {manifest.image_path(s): mask for s in scored
             if not is_good(s) and (mask := manifest.mask_path(s)) is not None}
    if len(train) < 4 or len({kind == GOOD for _, kind in test}) < 2:
        raise InputError(f"{category!r} needs 4 good train photos and both good and damaged "
                         f"test photos", where=manifest_path)
    return MvtecCategory(train, test, masks)
