"""A tiny labelled photo set and an untrained checkpoint in the training run's format, for the
export / calibrate / evaluate tests (64 px input: each export takes about a second)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from inspection.manifest import Sample, file_sha256, write_manifest
from inspection.taxonomy import load_taxonomy

SPLITS = ["train"] * 6 + ["val"] * 5 + ["test"] * 5  # per item; 2 photos per item
CATEGORIES = ("phone", "headphones", "shoe", "boxed_kit")
DAMAGES = ("scratch", "crack", "dent", "stain")
ACCESSORIES = ("charger", "cable", "case", "box")


def write_photo_set(root: Path, seed: int = 0) -> Path:
    """JPEG photos (a coloured box on a tray, numpy-drawn) and a CSV manifest with every split."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for item, split in enumerate(SPLITS):
        category = CATEGORIES[item % len(CATEGORIES)]
        for photo in range(2):
            index = 2 * item + photo
            rgb = np.full((72, 96, 3), rng.integers(120, 220), dtype=np.uint8)
            top, left = rng.integers(5, 30), rng.integers(5, 40)
            rgb[top:top + 30, left:left + 40] = rng.integers(0, 255, 3)
            name = f"photo_{index:03d}.jpg"
            Image.fromarray(rgb).save(root / name, quality=90)
            labels = {
                "condition": ("ABCD"[index % 4],),
                "damage": (DAMAGES[index % 4],) if index % 3 == 0 else (),
                "accessories": tuple(a for k, a in enumerate(ACCESSORIES) if (index >> k) & 1),
            }
            samples.append(Sample(image=name, item_id=f"item{item:02d}", category=category,
                                  split=split, labels=labels))
    return write_manifest(root / "manifest.csv", samples, ["condition", "damage", "accessories"])


def write_checkpoint(path: Path, manifest: Path, input_size: int = 64, seed: int = 0) -> Path:
    """An untrained model saved as `training.train` saves `best.pt`."""
    import torch

    from training.model import build_model
    from training.versioning import library_versions

    torch.manual_seed(seed)
    taxonomy = load_taxonomy()
    model = build_model(taxonomy, pretrained=False).eval()
    checkpoint = {
        "model": model.state_dict(), "taxonomy": taxonomy.to_dict(),
        "preprocessing": {"input_size": input_size, "mean": [127.0] * 3, "std": [128.0] * 3,
                          "resize": "squash", "input_name": "image"},
        "backbone": "efficientnet_lite0", "embedding_dim": 128, "categories": list(model.categories),
        "config": {"epochs": 0, "note": "test"}, "epoch": 0,
        "metrics": {"condition_accuracy": 0.25}, "manifest": str(manifest),
        "manifest_sha256": file_sha256(manifest), "optimizer": {}, "scheduler": {},
        "code_version": "test", "libraries": library_versions(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path
