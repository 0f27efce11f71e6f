"""Augmentation presets, applied to the uint8 RGB photo already at model input size (so each
costs a few hundred microseconds at 160 px) before `inspection.preprocess.normalise`.

Photos come from a camera above a tray or a customer's phone: any in-plane orientation, mirror
images, varying light and focus. Augmentations imitate that and nothing that changes a label:
no crops (damage at the edge would be cut off; the service squashes the whole photo too) and no
hue shifts beyond a little (a stain is a colour).

The trainer's default (`TrainConfig.augment`) is `none`. Measured on real photos (BENCHMARKS.md,
"Training recipe on real photos", issue 10; 3 seeds, a CPU-sized budget of ~250 optimizer steps):
on magnetic tile every augmentation cost accuracy, the resampling ones most (rotation, zoom and
shift blur a crack a pixel or two wide, cut off the borders where breaks and frays sit and mirror
made-up edges in: 0.14 test macro-F1), mirror images 0.04; on bottle none was better than no
augmentation (0.852 ± 0.011 against 0.856 ± 0.031 for the former default, 0.820 ± 0.056
mirrored), and no augmentation varies least across seeds. `mirror` is lossless and is the one to
try first on photos in any orientation, `turns` adds the quarter turns (bottle, 3 seeds:
0.830 ± 0.039 against 0.844 ± 0.010 without, BENCHMARKS.md "LP-FT"; over five draws of bottle's
split x 3 seeds it is steadier, 0.841 ± 0.038 served against 0.825 ± 0.065, and costs magnetic
tile 0.03-0.09 head alone on every draw, "Other draws of the split"); `medium` (the former
default, kept for the synthetic default bundle's recipe), `light` and `strong` are for sets whose
photos really vary in pose and light, with more epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Preset:
    hflip: float = 0.0  # probability
    vflip: float = 0.0
    quarter_turns: float = 0.0  # probability of 1-3 quarter turns: lossless on the square input
    rotate_degrees: float = 0.0  # uniform in +-
    scale: float = 0.0  # zoom factor uniform in 1 +- scale
    shift: float = 0.0  # fraction of the side, uniform in +-
    brightness: float = 0.0  # multiplicative, uniform in 1 +- brightness
    contrast: float = 0.0
    saturation: float = 0.0
    blur: float = 0.0  # probability of a Gaussian blur, sigma 0.3..1.2 px
    noise: float = 0.0  # probability of Gaussian noise, sigma 2..8 grey levels


PRESETS: dict[str, Preset] = {
    "none": Preset(),
    "mirror": Preset(hflip=0.5, vflip=0.5),
    # The eight lossless poses of a square input (mirror images x quarter turns): for items
    # photographed from above in any orientation, e.g. a bottle's opening, a tile on a tray.
    "turns": Preset(hflip=0.5, quarter_turns=0.75),
    "light": Preset(hflip=0.5, rotate_degrees=5, brightness=0.1, contrast=0.1),
    "medium": Preset(hflip=0.5, vflip=0.2, rotate_degrees=10, scale=0.08, shift=0.05,
                     brightness=0.2, contrast=0.2, saturation=0.2, blur=0.2, noise=0.2),
    "strong": Preset(hflip=0.5, vflip=0.5, rotate_degrees=25, scale=0.15, shift=0.1,
                     brightness=0.35, contrast=0.35, saturation=0.35, blur=0.35, noise=0.35),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        msg = f"unknown augmentation preset {name!r}; choose one of {list(PRESETS)}"
        raise ValueError(msg)
    return PRESETS[name]


def augment(rgb: np.ndarray, preset: Preset, rng: np.random.Generator) -> np.ndarray:
    """One random draw of the preset applied to an H x W x 3 uint8 photo; returns uint8."""
    if preset == PRESETS["none"]:
        return rgb
    image: np.ndarray = rgb
    if rng.random() < preset.hflip:
        image = image[:, ::-1]
    if rng.random() < preset.vflip:
        image = image[::-1]
    if rng.random() < preset.quarter_turns:
        image = np.rot90(image, int(rng.integers(1, 4)))
    if preset.rotate_degrees or preset.scale or preset.shift:
        image = _affine(image, preset, rng)
    image = _colour(image.astype(np.float32), preset, rng)
    if rng.random() < preset.blur:
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=rng.uniform(0.3, 1.2))
    if rng.random() < preset.noise:
        image = image + rng.normal(0.0, rng.uniform(2.0, 8.0), image.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))


def _affine(image: np.ndarray, preset: Preset, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    angle = rng.uniform(-preset.rotate_degrees, preset.rotate_degrees)
    zoom = 1.0 + rng.uniform(-preset.scale, preset.scale)
    matrix = np.asarray(cv2.getRotationMatrix2D((width / 2, height / 2), angle, zoom), np.float64)
    matrix[:, 2] += rng.uniform(-preset.shift, preset.shift, 2) * (width, height)
    # Reflected borders look like more tray, where a constant colour would be a new edge.
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (width, height),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _colour(image: np.ndarray, preset: Preset, rng: np.random.Generator) -> np.ndarray:
    if preset.brightness:
        image = image * rng.uniform(1 - preset.brightness, 1 + preset.brightness)
    if preset.contrast:
        mean = image.mean()
        image = (image - mean) * rng.uniform(1 - preset.contrast, 1 + preset.contrast) + mean
    if preset.saturation:
        grey = image.mean(axis=2, keepdims=True)
        image = (image - grey) * rng.uniform(1 - preset.saturation, 1 + preset.saturation) + grey
    return image
