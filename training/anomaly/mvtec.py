"""A folder in MVTec AD layout: `<root>/<category>/train/good/*`, `<root>/<category>/test/<kind>/*`
where kind is `good` or a defect name; `<root>/<category>/ground_truth/<kind>/<name>_mask.png`
masks, where present, give pixel-level figures."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from inspection.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
GOOD = "good"


@dataclass(frozen=True)
class MvtecCategory:
    train_good: tuple[Path, ...]
    test: tuple[tuple[Path, str], ...]  # (photo, kind)
    masks: dict[Path, Path] = field(default_factory=dict)  # test photo -> its pixel mask

    @property
    def defect_kinds(self) -> list[str]:
        return sorted({kind for _, kind in self.test if kind != GOOD})


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def scan_category(root: Path, category: str) -> MvtecCategory:
    """Find the photos of one category; raise InputError naming what is missing."""
    base = Path(root) / category
    train = base / "train" / GOOD
    test = base / "test"
    for folder in (train, test):
        if not folder.is_dir():
            raise InputError(f"not in MVTec AD layout: {folder} is missing", where="--root")
    train_good = _images(train)
    test_items = [(photo, kind.name) for kind in sorted(test.iterdir()) if kind.is_dir()
                  for photo in _images(kind)]
    if len(train_good) < 4:
        raise InputError(f"need at least 4 good training photos, found {len(train_good)} in "
                         f"{train}", where="--root")
    kinds = {kind for _, kind in test_items}
    if GOOD not in kinds or len(kinds) < 2:
        raise InputError(f"{test} needs a `good` folder and at least one defect folder, found "
                         f"{sorted(kinds) or 'none'}", where="--root")
    masks = {photo: mask for photo, kind in test_items
             if (mask := base / "ground_truth" / kind / f"{photo.stem}_mask.png").is_file()}
    return MvtecCategory(tuple(train_good), tuple(test_items), masks)


def holdout_split(photos: tuple[Path, ...], fraction: float, seed: int = 0
                  ) -> tuple[list[Path], list[Path]]:
    """Seeded (fit, held-out) split of the good training photos; at least 2 on each side."""
    order = list(photos)
    random.Random(seed).shuffle(order)
    held = min(max(2, round(len(order) * fraction)), len(order) - 2)
    return sorted(order[held:]), sorted(order[:held])
