"""Synthetic damage on good photos (CutPaste / DRAEM-style), to train the supervised damage
head where real damaged photos are few.

Three kinds, each returning the damaged photo and the mask of what changed:
- `cutpaste`: a patch of the photo itself, rotated and colour-shifted, pasted elsewhere
  (Li et al. 2021): locally plausible texture in the wrong place -> `broken_part`.
- `texture`: a smooth random blob filled with a foreign noise texture, alpha-blended
  (DRAEM, Zavrtanik et al. 2021, with value noise in place of Perlin) -> `stain`.
- `scratch`: thin bright or dark polylines drawn across the photo -> `scratch`.

A training config enables it with `synthetic_damage: "cutpaste,texture,scratch@0.3"` (kinds,
then the probability that a good training photo is damaged); `"0.3"` means every kind. A kind may
name the label it teaches, `"cutpaste=broken_small,texture=contamination@0.3"`: the label is looked
up in the taxonomy's heads, so a single-label head (MVTec's `defect`, whose `no_defect` label
marks the photos that may be damaged, as `dataset import` writes it) learns from synthetic damage
too.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inspection.taxonomy import shows_no_defect

KINDS = ("cutpaste", "texture", "scratch")
DAMAGE_LABEL = {"cutpaste": "broken_part", "texture": "stain", "scratch": "scratch"}


@dataclass(frozen=True)
class SyntheticDamage:
    kinds: tuple[str, ...]
    probability: float
    labels: tuple[tuple[str, str], ...] = ()  # (kind, label) where the option names one

    def label(self, kind: str) -> str:
        return dict(self.labels).get(kind, DAMAGE_LABEL[kind])


def parse_synthetic_damage(text: str) -> SyntheticDamage | None:
    """`""` -> None (off); `"0.3"`, `"cutpaste,scratch@0.3"` or `"cutpaste=broken_small@0.3"`."""
    text = text.strip()
    if not text:
        return None
    kinds_text, _, probability_text = text.rpartition("@") if "@" in text else ("", "", text)
    entries = [entry.strip() for entry in kinds_text.split(",") if entry.strip()]
    pairs = [tuple(part.strip() for part in entry.partition("=")[::2]) for entry in entries]
    kinds = tuple(kind for kind, _ in pairs) or KINDS
    labels = tuple((kind, label) for kind, label in pairs if label)
    unknown = sorted(set(kinds) - set(KINDS))
    try:
        probability = float(probability_text)
    except ValueError:
        probability = -1.0
    if unknown or not 0.0 < probability <= 1.0:
        msg = (f"synthetic_damage must look like 'cutpaste,texture,scratch@0.3' or "
               f"'cutpaste=broken_small@0.3' (kinds from {KINDS}, probability in (0, 1]), got {text!r}")
        raise ValueError(msg)
    return SyntheticDamage(kinds, probability, labels)


def _cutpaste(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    height, width = rgb.shape[:2]
    side_h = max(4, int(height * rng.uniform(0.08, 0.25)))
    side_w = max(4, int(width * rng.uniform(0.08, 0.25)))
    top, left = rng.integers(0, height - side_h + 1), rng.integers(0, width - side_w + 1)
    patch = rgb[top:top + side_h, left:left + side_w].astype(np.float32)
    patch = np.clip(patch * rng.uniform(0.7, 1.3, 3) + rng.uniform(-30, 30, 3), 0, 255)
    patch = np.rot90(patch, k=int(rng.integers(0, 4)))
    ph, pw = patch.shape[:2]
    ph, pw = min(ph, height), min(pw, width)
    y, x = rng.integers(0, height - ph + 1), rng.integers(0, width - pw + 1)
    out = rgb.copy()
    out[y:y + ph, x:x + pw] = patch[:ph, :pw].astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[y:y + ph, x:x + pw] = 1
    return out, mask


def _smooth_noise(height: int, width: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid, bicubically enlarged."""
    grid = rng.random((cells, cells)).astype(np.float32)
    noise = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return (noise - noise.min()) / max(float(noise.max() - noise.min()), 1e-6)


def _texture(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    height, width = rgb.shape[:2]
    blob = _smooth_noise(height, width, int(rng.integers(3, 7)), rng)
    mask = (blob > rng.uniform(0.75, 0.9)).astype(np.uint8)
    if not mask.any():
        mask[blob.argmax() // width, blob.argmax() % width] = 1
    colour = rng.uniform(0, 255, 3).astype(np.float32)
    texture = colour * (0.5 + _smooth_noise(height, width, int(rng.integers(8, 32)), rng))[..., None]
    alpha = rng.uniform(0.5, 1.0) * mask[..., None]
    out = rgb.astype(np.float32) * (1 - alpha) + np.clip(texture, 0, 255) * alpha
    return out.astype(np.uint8), mask


def _scratch(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    height, width = rgb.shape[:2]
    out = rgb.copy()
    mask = np.zeros((height, width), np.uint8)
    thickness = max(1, round(min(height, width) / 150))
    for _ in range(int(rng.integers(1, 4))):
        start = rng.uniform([0, 0], [width, height])
        step = rng.normal(0, min(height, width) / 6, (int(rng.integers(2, 5)), 2))
        points = np.clip(start + np.cumsum(step, axis=0), 0, [width - 1, height - 1])
        points = np.vstack([start, points]).astype(np.int32).reshape(-1, 1, 2)
        shade = int(rng.choice([rng.integers(0, 50), rng.integers(205, 256)]))
        cv2.polylines(out, [points], False, (shade, shade, shade), thickness, cv2.LINE_AA)
        cv2.polylines(mask, [points], False, 1, thickness)
    return out, mask


_APPLY = {"cutpaste": _cutpaste, "texture": _texture, "scratch": _scratch}


def add_synthetic_damage(rgb: np.ndarray, rng: np.random.Generator,
                         kinds: tuple[str, ...] = KINDS) -> tuple[np.ndarray, np.ndarray, str]:
    """Damage an RGB uint8 photo: (damaged photo, mask H x W of 0/1, kind). The input is kept."""
    kind = str(rng.choice(kinds))
    damaged, mask = _APPLY[kind](np.ascontiguousarray(rgb), rng)
    return damaged, mask, kind


class SyntheticDamageDataset:
    """Wraps a `training.data.InspectionDataset`: with probability p a good training photo is
    damaged before augmentation and learns the kind's label — one more positive in a multi-label
    head (`damage`), or the class of a single-label head; its condition target is masked out of
    the loss (how bad a pasted patch is, nobody graded).
    """

    def __init__(self, dataset: object, option: str) -> None:
        parsed = parse_synthetic_damage(option)
        if parsed is None:
            msg = "SyntheticDamageDataset needs a non-empty synthetic_damage option"
            raise ValueError(msg)
        self.dataset = dataset
        self.option = parsed
        heads = dataset.taxonomy.heads  # type: ignore[attr-defined]
        self.targets = {kind: _head_of(parsed.label(kind), heads) for kind in parsed.kinds}
        without = sorted({head.name for head in self.targets.values()  # type: ignore[attr-defined]
                          if head.type == "single" and head.no_defect is None})  # type: ignore[attr-defined]
        if without:  # which photos are good, and may be damaged, would be a guess
            msg = (f"synthetic damage teaches single-label heads {without}, which name no "
                   "`no_defect` label; add `no_defect: <label>` to the head in the taxonomy")
            raise ValueError(msg)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> dict:
        import torch

        from inspection.preprocess import normalise
        from training.data import encode_targets
        from training.presets import augment

        base = self.dataset
        sample = base.samples[index]  # type: ignore[attr-defined]
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
        rgb = base.photo(index)  # type: ignore[attr-defined]
        kind = None
        if (shows_no_defect(sample.labels, base.taxonomy)  # type: ignore[attr-defined]
                and rng.random() < self.option.probability):
            rgb, _, kind = add_synthetic_damage(rgb, rng, self.option.kinds)
        if base.preset is not None:  # type: ignore[attr-defined]
            rgb = augment(rgb, base.preset, rng)  # type: ignore[attr-defined]
        item = {"image": torch.from_numpy(normalise(rgb, base.spec))}  # type: ignore[attr-defined]
        item.update(encode_targets(sample, base.taxonomy, base.categories))  # type: ignore[attr-defined]
        if kind is not None:
            head = self.targets[kind]
            position = head.index(self.option.label(kind))
            if head.type == "multi":
                item[head.name][position] = 1.0
            else:
                item[head.name] = torch.tensor(position)
            item[f"{head.name}_mask"] = torch.tensor(1.0)
            if "condition_mask" in item:
                item["condition_mask"] = torch.tensor(0.0)
        return item


def _head_of(label: str, heads: tuple) -> object:
    """The taxonomy head that has `label` (the `damage` head first, where it has it)."""
    for head in sorted(heads, key=lambda h: h.name != "damage"):
        if label in head.labels and head.name != "condition":
            return head
    msg = (f"synthetic damage teaches label {label!r}, which no head of the taxonomy has; name one "
           f"with kind=label, e.g. 'cutpaste=broken_small@0.3'")
    raise ValueError(msg)
