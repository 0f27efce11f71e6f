"""Heatmaps as stored with an inspection: uint8 arrays, not JSON floats.

The heatmap endpoint draws a map min-max scaled (inspection.service.heatmap.normalise_map), so
256 levels between the map's own minimum and maximum lose nothing an operator can see. A map is
stored as `{"u8": base64, "shape": [h, w], "low": min, "high": max}`: a 5 x 5 CAM takes 36
characters instead of ~200, a 20 x 20 anomaly map ~540 instead of ~3,200, and writing it costs no
float formatting. Rows written before this format (nested lists of floats) still read.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

LEVELS = 255


def pack_map(values: np.ndarray) -> dict[str, Any]:
    array = np.asarray(values, dtype=np.float32)
    low, high = float(array.min()), float(array.max())
    span = high - low
    scaled = (array - low) / span * LEVELS if span > 0 else np.zeros_like(array)
    quantised = np.clip(np.rint(scaled), 0, LEVELS).astype(np.uint8)
    return {"u8": base64.b64encode(quantised.tobytes()).decode("ascii"),
            "shape": list(array.shape), "low": low, "high": high}


def unpack_map(stored: dict[str, Any] | list[Any]) -> np.ndarray:
    """A stored map back to float32, whichever format the row was written in."""
    if isinstance(stored, list):  # the old format: nested lists of floats
        return np.asarray(stored, dtype=np.float32)
    quantised = np.frombuffer(base64.b64decode(stored["u8"]), dtype=np.uint8)
    scale = (stored["high"] - stored["low"]) / LEVELS
    return (quantised.reshape(stored["shape"]).astype(np.float32) * scale + stored["low"])
