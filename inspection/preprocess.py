"""Photo -> model input, written once and read from the model card by training, evaluation,
export parity checks and the service alike."""

from __future__ import annotations

import cv2
import numpy as np

from inspection.card import PreprocessSpec


def resize_for_model(rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Resize an RGB uint8 photo to the model's square input (area filter when shrinking)."""
    size = spec.input_size
    if spec.resize != "squash":
        msg = f"unknown resize mode {spec.resize!r}; this version knows 'squash'"
        raise ValueError(msg)
    height, width = rgb.shape[:2]
    interpolation = cv2.INTER_AREA if min(height, width) > size else cv2.INTER_LINEAR
    if (height, width) == (size, size):
        return rgb
    return cv2.resize(rgb, (size, size), interpolation=interpolation)


def normalise(rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 H x W x 3 at input size -> float32 3 x H x W, (x - mean) / std per channel."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    chw = (rgb.astype(np.float32) - mean) / std
    return np.ascontiguousarray(chw.transpose(2, 0, 1))


def to_model_input(rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    return normalise(resize_for_model(rgb, spec), spec)


def batch_inputs(photos: list[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """Stack photos into one N x 3 x S x S float32 batch."""
    return np.stack([to_model_input(photo, spec) for photo in photos])
