"""Is a photo usable? Measured before the model's answer is trusted, so a customer can be asked,
politely and specifically, for a better one.

Blur and exposure are measured on a grey copy scaled to a fixed size (`analysis_side`), so the
numbers do not depend on the camera's resolution or on the reduced JPEG decode: the variance
of the Laplacian of a sharp product photo at 256 px is typically well above 100, a defocused
or shaken one falls under 25.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class QualityLimits:
    min_side: int = 160
    analysis_side: int = 256
    min_sharpness: float = 25.0
    min_brightness: float = 40.0
    max_brightness: float = 225.0
    clipped_fraction: float = 0.5

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityLimits:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"unknown quality setting(s) {unknown}; known: {sorted(known)}"
            raise ValueError(msg)
        return cls(**data)


@dataclass(frozen=True)
class QualityCheck:
    name: str  # too_small | blurred | too_dark | too_bright
    ok: bool
    value: float
    threshold: float
    reason: str  # empty when ok

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PhotoQuality:
    checks: tuple[QualityCheck, ...]

    @property
    def usable(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[QualityCheck]:
        return [check for check in self.checks if not check.ok]


def analysis_grey(rgb: np.ndarray, side: int) -> np.ndarray:
    """Grey copy whose shorter side is `side` pixels (never upscaled beyond the photo)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    scale = side / max(1, min(height, width))
    if scale >= 1.0:
        return grey
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian: edges make it large, blur flattens it."""
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def check_size(original_size: tuple[int, int], limits: QualityLimits) -> QualityCheck:
    shorter = min(original_size)
    ok = shorter >= limits.min_side
    reason = "" if ok else (
        f"The photo is too small ({original_size[0]}x{original_size[1]} pixels). Please send one "
        f"at least {limits.min_side} pixels on its shorter side.")
    return QualityCheck("too_small", ok, float(shorter), float(limits.min_side), reason)


def check_blur(grey: np.ndarray, limits: QualityLimits) -> QualityCheck:
    value = sharpness(grey)
    ok = value >= limits.min_sharpness
    reason = "" if ok else (
        f"The photo looks blurred (sharpness {value:.0f}, we need at least "
        f"{limits.min_sharpness:.0f}). Please hold the camera still and tap to focus on the item.")
    return QualityCheck("blurred", ok, value, limits.min_sharpness, reason)


def check_exposure(grey: np.ndarray, limits: QualityLimits) -> list[QualityCheck]:
    mean = float(grey.mean())
    dark_share = float((grey <= 5).mean())  # pixels crushed to black
    bright_share = float((grey >= 250).mean())  # pixels blown out to white
    too_dark = mean < limits.min_brightness or dark_share > limits.clipped_fraction
    too_bright = mean > limits.max_brightness or bright_share > limits.clipped_fraction
    dark_reason = "" if not too_dark else (
        f"The photo is too dark (average brightness {mean:.0f} of 255, {dark_share:.0%} of it "
        "black). Please take it in better light.")
    bright_reason = "" if not too_bright else (
        f"The photo is too bright (average brightness {mean:.0f} of 255, {bright_share:.0%} of it "
        "white). Please avoid direct light or flash on the item.")
    return [
        QualityCheck("too_dark", not too_dark, mean, limits.min_brightness, dark_reason),
        QualityCheck("too_bright", not too_bright, mean, limits.max_brightness, bright_reason),
    ]


def assess_quality(rgb: np.ndarray, original_size: tuple[int, int],
                   limits: QualityLimits | None = None) -> PhotoQuality:
    """Every check on one photo; `original_size` is (width, height) as sent, before any draft."""
    limits = limits or QualityLimits()
    grey = analysis_grey(rgb, limits.analysis_side)
    checks = [check_size(original_size, limits), check_blur(grey, limits),
              *check_exposure(grey, limits)]
    return PhotoQuality(tuple(checks))
