"""Where on the photo: a class activation map (or anomaly map), upsampled to the photo,
colour-mapped and blended over it, as a PNG an operator can look at."""

from __future__ import annotations

import cv2
import numpy as np

from inspection.anomaly import upsample_map

ANOMALY = "anomaly"  # the label under which a photo's anomaly map is drawn
DISPLAY_SIDE = 640  # longest side of the overlay; operators see it in a browser
BLEND = 0.45  # share of the colour map in the blend: the product stays recognisable


def normalise_map(values: np.ndarray, peak: float | None = None) -> np.ndarray:
    """Map -> 0..1. CAMs are in logit space: only positive evidence should glow, so the map is
    clipped at its median before scaling (a flat map stays dark). `peak` puts two photos on one
    scale (a comparison pair): the top of the scale is at least that value, so a photo with weak
    evidence stays cool beside one with strong evidence."""
    values = np.asarray(values, dtype=np.float32)
    low = float(np.median(values))
    high = max(float(values.max()), peak if peak is not None else -np.inf)
    if high - low < 1e-6:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def fit_display(rgb: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def overlay(rgb: np.ndarray, heat: np.ndarray, blend: float = BLEND) -> np.ndarray:
    """Blend a 0..1 map (any size) over an RGB photo; returns RGB uint8 at the photo's size."""
    height, width = rgb.shape[:2]
    upsampled = cv2.resize(heat.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    coloured = cv2.applyColorMap(np.clip(upsampled * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
    weight = (blend * np.clip(upsampled, 0, 1))[:, :, None]  # cold areas keep the photo as is
    return (rgb * (1 - weight) + coloured * weight).astype(np.uint8)


def encode_png(rgb: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV only fails here on an empty array
        raise ValueError(f"cannot encode a {rgb.shape} image as PNG")
    return buffer.tobytes()


def heat_over(label: str, values: np.ndarray, width: int, height: int,
              peak: float | None = None) -> np.ndarray:
    """A label's map as 0..1 heat for a width x height photo. The anomaly map is drawn exactly
    as its pixel AUROC and PRO are measured (`upsample_map`, smoothed); a CAM is scaled first and
    `overlay` resizes it."""
    if label == ANOMALY:
        values = upsample_map(values, width, height)
    return normalise_map(values, peak)


def heatmap_png(rgb: np.ndarray, values: np.ndarray, peak: float | None = None,
                label: str = "") -> bytes:
    display = fit_display(rgb)
    return encode_png(overlay(display, heat_over(label, values, display.shape[1],
                                                 display.shape[0], peak)))
